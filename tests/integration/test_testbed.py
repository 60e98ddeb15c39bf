"""The test bed itself: a second, independent Dovecot (conftest's
second_testbed, Testbed(dovecot_settings=...)) starts beside the first, plays
an old POP3 server with another UIDL format, and stops cleanly."""

import os
import poplib
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "dev"))
import testbed as testbed_mod  # noqa: E402
from conftest import SECOND_UIDL_FORMAT  # noqa: E402


def pop3_uidls(tb, user, password):
    p = poplib.POP3("127.0.0.1", tb.ports["pop3"], timeout=30)
    p.user(user)
    p.pass_(password)
    out = [ln.split()[1].decode() for ln in p.uidl()[1]]
    p.quit()
    return out


def test_second_testbed_is_independent(testbed, second_testbed):
    assert SECOND_UIDL_FORMAT == "%v.%u"
    assert not set(testbed.ports.values()) & set(second_testbed.ports.values())
    assert testbed.mail_root != second_testbed.mail_root
    # The same user name on both, different mail, different UIDL formats.
    user = "tbsame@example.org"
    for tb, n in ((testbed, 1), (second_testbed, 2)):
        tb.add_user(user, "pw")
        tb.seed(user, [b"Subject: %d\r\n\r\nx\r\n" % i for i in range(n)])
    main, second = pop3_uidls(testbed, user, "pw"), pop3_uidls(second_testbed, user, "pw")
    assert len(main) == 1 and len(second) == 2
    assert all(len(u) == 16 and u == u.lower() for u in main), main     # %08Xu%08Xv
    assert all(u.endswith(f".{i}") for i, u in enumerate(second, 1)), second   # %v.%u
    conn = second_testbed.imap(user)
    assert conn.select("INBOX")[1] == [b"2"]
    conn.logout()


def test_settings_replace_or_add_and_stop_cleanly():
    tb = testbed_mod.Testbed(name="pgtbchk", redis=False,
                             dovecot_settings={"pop3_uidl_format": "%g", "mail_max_keyword_length": 40})
    try:
        tb.start()
        conf = Path(tb.dovecot_conf).read_text().splitlines()
        assert conf.count("pop3_uidl_format = %g") == 1
        assert not any(ln.startswith("pop3_uidl_format = %08") for ln in conf)
        assert "mail_max_keyword_length = 40" in conf
        assert tb.redis is None and not testbed_mod.port_accepts("127.0.0.1", tb.ports["redis"])
        tb.add_user("g1", "pw")
        names = tb.seed("g1", [b"Subject: a\r\n\r\nx\r\n"])
        assert pop3_uidls(tb, "g1", "pw") == [names[0]]          # %g: the Maildir base name
        # stop_dovecot / start_dovecot: the old server goes away and comes back.
        tb.stop_dovecot()
        assert not any(testbed_mod.port_accepts(h, p) for h, p in tb.dovecot_endpoints())
        with pytest.raises(OSError):
            poplib.POP3("127.0.0.1", tb.ports["pop3"], timeout=5)
        tb.start_dovecot()
        assert pop3_uidls(tb, "g1", "pw") == [names[0]]
        pid = tb.dovecot.pid
        kids = testbed_mod._descendants(pid)
    finally:
        tb.stop()
    assert not os.path.exists(tb.dir)
    assert not any(testbed_mod._pid_alive(p) for p in [pid] + kids)
    tb.stop()   # again: harmless


def test_raw_settings_text():
    tb = testbed_mod.Testbed(name="pgtbraw", redis=False,
                             dovecot_settings="protocol pop3 {\n  pop3_uidl_format = %v-%u\n}")
    with tb:
        tb.add_user("r1", "pw")
        tb.seed("r1", [b"Subject: a\r\n\r\nx\r\n"])
        (uidl,) = pop3_uidls(tb, "r1", "pw")
        assert uidl.endswith("-1"), uidl
