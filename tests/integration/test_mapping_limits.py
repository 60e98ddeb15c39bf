"""A mapping's limits and folders (issue 5), against a real Dovecot, a real
Redis and the real popgate binary: LOGIN-DELAY and EXPIRE advertised in CAPA
(RFC 2449) and enforced, sessions per user capped across devices, and several
upstream folders served as one maildrop with distinct UIDLs.
"""
import imaplib
import os
import poplib
import ssl
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "dev"))
import testbed  # noqa: E402

PASSWORD = "s3cret"


def message(i):
    return (b"From: sender@example.org\r\nTo: user@example.org\r\n"
            b"Subject: message %d\r\nMessage-ID: <lim%d@example.org>\r\n\r\nbody of %d\r\n" % (i, i, i))


@pytest.fixture(scope="module")
def bed():
    tb = testbed.Testbed(name="pglim")
    tb.start()
    yield tb
    tb.stop()


_users = iter(range(1, 1000))


@pytest.fixture
def user(bed):
    name = f"lim{next(_users)}"
    bed.add_user(name, PASSWORD)
    return name


@pytest.fixture
def start(bed):
    started = []

    def run(policy=None, upstream=None, mappings=None):
        sections = {"redis": {"address": f"127.0.0.1:{bed.ports['redis']}", "timeout": 2},
                    "state": {"lock_ttl": "30s"},
                    "policy": {"view": "all", "on_retr": "keep", "on_dele": "hide", **(policy or {})}}
        for name, keys in (mappings or {}).items():
            sections[f"mapping {name}"] = keys
        pg = testbed.Popgate(bed, server={"allow_plaintext_auth": "yes"}, upstream=upstream,
                             extra_sections=sections)
        started.append(pg)
        return pg.start()

    yield run
    for pg in started:
        pg.stop()


def login(pg, name, device=None):
    p = poplib.POP3("127.0.0.1", pg.port, timeout=15)
    p.user(f"{name}#{device}" if device else name)
    p.pass_(PASSWORD)
    return p


def login_error(pg, name, device=None):
    with pytest.raises(poplib.error_proto) as e:
        login(pg, name, device)
    return e.value.args[0].decode()


def capa(p):
    return [line.decode() for line in p._longcmd("CAPA")[1]]


def imap(bed, name):
    m = imaplib.IMAP4("127.0.0.1", bed.ports["imap"])
    m.starttls(ssl_context=ssl._create_unverified_context())
    m.login(name, PASSWORD)
    return m


def test_capa_lists_login_delay_and_expire_per_user(bed, start, user):
    other = bed.add_user(f"{user}x", PASSWORD)
    pg = start(policy={"login_delay": "300", "expire": "30"},
               mappings={"slow": {"users": other, "login_delay": "15m", "expire": "never"}})
    p = poplib.POP3("127.0.0.1", pg.port, timeout=15)
    # Before login: the smallest value any user has, tagged USER as users differ.
    assert "LOGIN-DELAY 300 USER" in capa(p)
    assert "EXPIRE 30 USER" in capa(p)
    p.user(user)
    p.pass_(PASSWORD)
    after = capa(p)
    assert "LOGIN-DELAY 300" in after and "EXPIRE 30" in after
    p.quit()
    q = login(pg, other)
    after = capa(q)
    assert "LOGIN-DELAY 900" in after and "EXPIRE NEVER" in after
    q.quit()


def test_no_limits_configured_advertises_neither(start, user):
    pg = start()
    p = login(pg, user)
    assert not [c for c in capa(p) if c.startswith(("LOGIN-DELAY", "EXPIRE"))]
    p.quit()


def test_login_delay_refuses_a_device_logging_in_again_too_soon(bed, start, user):
    pg = start(policy={"login_delay": "3s"})
    p = login(pg, user, "phone")
    p.quit()
    assert login_error(pg, user, "phone").startswith("-ERR [LOGIN-DELAY]")
    # Another device of the same user has its own delay.
    login(pg, user, "desk").quit()
    time.sleep(3.2)
    login(pg, user, "phone").quit()


def test_login_delay_counts_only_successful_logins(bed, start, user):
    pg = start(policy={"login_delay": "1h"})
    p = poplib.POP3("127.0.0.1", pg.port, timeout=15)
    p.user(user)
    with pytest.raises(poplib.error_proto):
        p.pass_("wrong")
    p.close()
    login(pg, user).quit()


def test_max_sessions_per_user_counts_every_device(bed, start, user):
    pg = start(policy={"max_sessions_per_user": "2"})
    a = login(pg, user, "a")
    b = login(pg, user, "b")
    assert login_error(pg, user, "c").startswith("-ERR [IN-USE]")
    a.quit()
    c = login(pg, user, "c")
    b.quit()
    c.quit()


def test_max_sessions_is_per_mapping(bed, start, user):
    other = bed.add_user(f"{user}y", PASSWORD)
    pg = start(mappings={"one": {"users": other, "max_sessions_per_user": "1"}})
    a = login(pg, other, "a")
    assert login_error(pg, other, "b").startswith("-ERR [IN-USE]")
    # The default mapping has no cap.
    sessions = [login(pg, user, f"d{i}") for i in range(3)]
    for s in sessions + [a]:
        s.quit()


def test_expire_zero_removes_what_was_retrieved_at_quit(bed, start, user):
    bed.seed(user, [message(1), message(2)])
    pg = start(policy={"expire": "0", "on_dele": "hide"})
    p = login(pg, user, "phone")
    assert "EXPIRE 0" in capa(p)
    p.retr(1)
    p.quit()
    p = login(pg, user, "phone")
    assert p.stat()[0] == 1
    assert b"message 2" in b"\n".join(p.top(1, 0)[1])
    p.quit()
    # on_dele = hide: only that device stopped seeing it.
    q = login(pg, user, "desk")
    assert q.stat()[0] == 2
    q.quit()


def redis_cli(bed, *args):
    out = subprocess.run(["redis-cli", "-p", str(bed.ports["redis"]), "--raw", *args],
                         capture_output=True, text=True, timeout=10, check=True)
    return out.stdout.splitlines()


def test_expire_days_hides_mail_retrieved_that_long_ago(bed, start, user):
    bed.seed(user, [message(1), message(2)])
    pg = start(policy={"expire": "2d"})
    p = login(pg, user, "phone")
    p.retr(1)
    p.quit()
    # Recorded when the device retrieved it (runs "count@time" over the got
    # list, the time rounded up to the hour); not yet two days ago.
    key = f"pg1:{{{user}}}:rtime:phone"
    (runs,) = redis_cli(bed, "GET", key)
    count, at = runs.split("@")
    assert count == "1" and 0 <= int(at) - time.time() <= 3600
    p = login(pg, user, "phone")
    assert p.stat()[0] == 2
    p.quit()
    # Three days pass (moved back in Redis rather than waited for).
    redis_cli(bed, "SET", key, f"1@{int(time.time()) - 3 * 86400}")
    p = login(pg, user, "phone")
    assert p.stat()[0] == 1
    assert b"message 2" in b"\n".join(p.top(1, 0)[1])
    p.quit()
    # Another device never retrieved it: it still sees both.
    q = login(pg, user, "desk")
    assert q.stat()[0] == 2
    q.quit()


def test_folders_form_one_maildrop(bed, start, user):
    bed.seed(user, [message(1), message(2)])
    m = imap(bed, user)
    m.create("Archive")
    m.append("Archive", None, None, message(3))
    m.append("Archive", None, None, message(4))
    m.logout()
    pg = start(upstream={"folders": "INBOX, Archive"}, policy={"on_dele": "expunge"})
    p = login(pg, user)
    assert p.stat()[0] == 4
    ids = [line.split()[1].decode() for line in p.uidl()[1]]
    assert len(set(ids)) == 4
    # The first folder keeps Dovecot's UIDL; the others carry a folder tag.
    assert all("-" not in i for i in ids[:2]) and all("-" in i for i in ids[2:])
    assert b"Subject: message 3" in b"\r\n".join(p.retr(3)[1])
    assert b"Subject: message 1" in b"\r\n".join(p.retr(1)[1])
    assert b"Subject: message 4" in b"\r\n".join(p.retr(4)[1])
    p.dele(4)
    p.quit()
    m = imap(bed, user)
    m.select("Archive")
    typ, data = m.search(None, "ALL")
    assert len(data[0].split()) == 1
    m.select("INBOX")
    typ, data = m.search(None, "ALL")
    assert len(data[0].split()) == 2
    m.logout()
    p = login(pg, user)
    assert [line.split()[1].decode() for line in p.uidl()[1]] == ids[:3]
    p.quit()


def test_lazy_migration_wait_is_bounded_by_legacy_timeout(bed, start, user):
    """An old POP3 server that accepts and then says nothing: the login gives
    up after legacy_timeout with [SYS/TEMP] (the client retries), rather than
    waiting for the server or serving new UIDLs."""
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        pg = start(mappings={"old": {"users": user,
                                     "legacy_pop3": f"127.0.0.1:{silent.getsockname()[1]}",
                                     "legacy_timeout": "1"}})
        started = time.monotonic()
        err = login_error(pg, user)
        waited = time.monotonic() - started
        assert err.startswith("-ERR [SYS/TEMP]"), err
        assert waited < 6, waited
        assert "legacy-wait" in pg.log() and "result=timeout" in pg.log()
        # Nothing was recorded: the next login tries the old server again.
        assert redis_cli(bed, "EXISTS", f"pg1:{{{user}}}:legacy") == ["0"]
    finally:
        silent.close()
