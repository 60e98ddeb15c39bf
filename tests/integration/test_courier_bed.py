"""Courier-IMAP 5.0 as popgate's upstream (issue 12): the test bed
(deploy/dev/servers/courier_bed.py) and the facts about Courier that popgate's
fallbacks and the differential tests rely on, checked over Courier's own IMAP
and POP3, then popgate logging in through Courier.

The run's one Courier (conftest's upstream_bed("courier"), shared with the
cross-server tests); that a stopped bed leaves no process and no directory
behind is test_upstream_beds.py's test_bed_stops_everything_it_started.
"""

import imaplib
import os
import re
import ssl
import subprocess
import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "dev"))
import testbed as testbed_mod  # noqa: E402
from pop3client import POP3  # noqa: E402
from upstream_beds import BEDS  # noqa: E402  (puts servers/ on the path)
from courier_bed import TRASH_FOLDER, CourierBed  # noqa: E402

# What popgate must do without on Courier (its fallbacks).
COURIER_LACKS = {"LITERAL+", "SASL-IR", "AUTH=PLAIN", "MOVE", "SPECIAL-USE", "ESEARCH",
                 "CONDSTORE", "QRESYNC", "OBJECTID"}

LF_MSG = b"Subject: lf\nMessage-ID: <lf@courier.test>\n\nline1\nline2\n"
CRLF_MSG = b"Subject: crlf\r\nMessage-ID: <crlf@courier.test>\r\n\r\nline1\r\nline2\r\n"
HDR_ONLY_CRLF = b"Subject: hdronly\r\nMessage-ID: <hdr-crlf@courier.test>\r\n"
HDR_ONLY_LF = b"Subject: hdronly-lf\nMessage-ID: <hdr-lf@courier.test>\n"
EMPTY = b""
NO_FINAL_NL = b"Subject: nofinal\r\nMessage-ID: <nofinal@courier.test>\r\n\r\nabc"


def cr_cr_lf(data):
    """What Courier serves for a Maildir file: each LF becomes CRLF, so a
    stored CRLF becomes CR CR LF."""
    return data.replace(b"\n", b"\r\n")


@pytest.fixture(scope="module")
def courier(upstream_bed):
    return upstream_bed("courier")


_users = iter(range(1, 10**6))


def courier_user(bed, password=None):
    n = next(_users)
    user = f"cu{n}"
    pw = password if password is not None else f"pw{n}secret"
    bed.add_user(user, pw)
    return types.SimpleNamespace(user=user, password=pw)


def fetch(bed, user, uid, items):
    """{item: bytes} for one message, read-only (BODY.PEEK)."""
    conn = bed.imap(user)
    try:
        conn.select("INBOX", readonly=True)
        typ, data = conn.uid("FETCH", str(uid), f"({items})")
        assert typ == "OK", data
        out = {}
        for part in data:
            if isinstance(part, tuple):
                name = re.search(rb"(BODY\[[A-Z]*\])(?:<\d+>)? \{\d+\}$", part[0]).group(1)
                out[name.decode()] = part[1]
                head = part[0]
            else:
                head = part
            m = re.search(rb"RFC822\.SIZE (\d+)", head or b"")
            if m:
                out["RFC822.SIZE"] = int(m.group(1))
            m = re.search(rb"FLAGS \(([^)]*)\)", head or b"")
            if m:
                out["FLAGS"] = set(m.group(1).decode().split()) - {"\\Recent"}
        return out
    finally:
        conn.logout()


def uidvalidity(bed, user):
    """From a read-write SELECT. Courier keeps UIDVALIDITY in the Maildir's
    courierimapuiddb, which only a read-write SELECT creates: until then
    EXAMINE and STATUS report a new time-based value each second (seen:
    796362191, then 796362192), and Courier's pop3d does not create it either.
    popgate SELECTs, so its first login fixes the value."""
    conn = bed.imap(user)
    try:
        typ, _ = conn.select("INBOX")
        assert typ == "OK"
        return int(conn.response("UIDVALIDITY")[1][0])
    finally:
        conn.logout()


def courier_pop3(bed, mb):
    c = POP3(bed.host, bed.ports["pop3"])
    c.login(mb.user, mb.password)
    return c


def test_registry_and_interface(courier):
    assert BEDS["courier"] is CourierBed
    assert courier.kind == "courier" and courier.host == "127.0.0.1"
    assert set(courier.ports) == {"imap", "pop3", "pop3s"}
    assert all(testbed_mod.port_accepts(courier.host, p) for p in courier.ports.values())
    up = courier.popgate_upstream()
    assert up == {"host": "127.0.0.1", "port": courier.ports["imap"], "tls": "starttls",
                  "ca_file": courier.cert, "verify": "yes", "verify_name": "localhost"}
    assert Path(courier.cert).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert courier.startup_seconds < 30


def test_runs_in_private_namespaces_host_untouched(courier):
    procs = {}
    for p in courier.pids():
        try:   # a session of an earlier test may be exiting just now
            procs[p] = (Path(f"/proc/{p}/comm").read_text().strip(),
                        os.readlink(f"/proc/{p}/ns/mnt"))
        except FileNotFoundError:
            pass
    assert {"authdaemond", "couriertcpd"} <= {name for name, _ in procs.values()}, procs
    mine = os.readlink("/proc/self/ns/mnt")
    assert os.readlink(f"/proc/{courier.proc.pid}/ns/mnt") != mine
    assert {ns for _, ns in procs.values()} == {courier.mnt_ns}
    # The overlays and bind mounts exist only in Courier's namespace.
    assert "popgate-courier" not in Path("/proc/self/mountinfo").read_text()
    assert "popgate-courier-usr" in Path(f"/proc/{courier.proc.pid}/mountinfo").read_text()
    # Nothing was installed: Dovecot is still there, Courier's servers are not.
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\\n",
         "dovecot-imapd", "courier-imap", "courier-pop"],
        capture_output=True, text=True).stdout
    assert "dovecot-imapd installed" in status
    assert "courier-imap installed" not in status and "courier-pop installed" not in status


def test_capabilities(courier):
    pre = imaplib.IMAP4(courier.host, courier.ports["imap"], timeout=30)
    try:
        before = set(pre.capabilities)
        pre.starttls(ssl.create_default_context(cafile=courier.cert))
        after_tls = set(pre.capabilities)
    finally:
        pre.shutdown()
    assert "STARTTLS" in before and "IMAP4REV1" in before
    assert "STARTTLS" not in after_tls
    mb = courier_user(courier)
    courier.imap(mb.user).logout()
    after_login = courier.capabilities
    assert {"IMAP4REV1", "UIDPLUS", "IDLE", "NAMESPACE", "CHILDREN"} <= after_login
    for caps in (before, after_tls, after_login):
        assert not caps & COURIER_LACKS, caps & COURIER_LACKS
        assert not any(c.startswith("AUTH=") for c in caps), caps


def test_crlf_file_is_served_as_cr_cr_lf(courier):
    """LF files come out as CRLF; a file stored with CRLF comes out with
    CR CR LF line ends, over IMAP and over Courier's own POP3 alike, and the
    sizes count those bytes."""
    mb = courier_user(courier)
    courier.seed(mb.user, [LF_MSG, CRLF_MSG, NO_FINAL_NL])
    want = [cr_cr_lf(m) for m in (LF_MSG, CRLF_MSG, NO_FINAL_NL)]
    assert want[0] == b"Subject: lf\r\nMessage-ID: <lf@courier.test>\r\n\r\nline1\r\nline2\r\n"
    assert want[1] == (b"Subject: crlf\r\r\nMessage-ID: <crlf@courier.test>\r\r\n\r\r\n"
                       b"line1\r\r\nline2\r\r\n")
    for uid, body in enumerate(want, 1):
        f = fetch(courier, mb.user, uid, "RFC822.SIZE BODY.PEEK[]")
        assert f["BODY[]"] == body
        assert f["RFC822.SIZE"] == len(body)
    f = fetch(courier, mb.user, 2, "BODY.PEEK[HEADER] BODY.PEEK[TEXT]")
    assert f["BODY[HEADER]"] == b"Subject: crlf\r\r\nMessage-ID: <crlf@courier.test>\r\r\n\r\r\n"
    assert f["BODY[TEXT]"] == b"line1\r\r\nline2\r\r\n"
    with courier_pop3(courier, mb) as p:
        assert p.list() == [(i, len(b)) for i, b in enumerate(want, 1)]
        assert p.retr_raw(1) == want[0]
        assert p.retr_raw(2) == want[1]
        # No final newline: POP3 adds CRLF (not counted in LIST), IMAP does not.
        assert p.retr_raw(3) == want[2] + b"\r\n"
        # Courier's TOP finds no blank line in "\r\r\n\r\r\n": all of it comes.
        assert p.multi_ok("TOP 2 0") == want[1]
        assert p.multi_ok("TOP 1 0") == b"Subject: lf\r\nMessage-ID: <lf@courier.test>\r\n\r\n"
        uidls = p.uidl()
        p.quit()
    # Courier's own UIDLs: "UID<uid>-<t>", t a time stamp pop3d keeps in its
    # courierpop3dsizelist (not IMAP's UIDVALIDITY, which has its own).
    assert [n for n, _ in uidls] == [1, 2, 3]
    assert [u.split("-", 1)[0] for _, u in uidls] == ["UID1", "UID2", "UID3"]
    stamps = {u.split("-", 1)[1] for _, u in uidls}
    assert len(stamps) == 1 and stamps.pop().isdigit(), uidls


def test_header_only_and_empty_messages(courier):
    """A header with no blank line after it: BODY[HEADER] loses the last LF
    (it ends in a lone CR) and BODY[TEXT] is that CR, doubled for a CRLF
    file, so HEADER + TEXT is not BODY[]. An empty file: IMAP sends nothing,
    Courier's POP3 RETR one CRLF."""
    mb = courier_user(courier)
    courier.seed(mb.user, [HDR_ONLY_CRLF, HDR_ONLY_LF, EMPTY])
    crlf = fetch(courier, mb.user, 1, "RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT]")
    assert crlf == {"RFC822.SIZE": len(cr_cr_lf(HDR_ONLY_CRLF)),
                    "BODY[]": b"Subject: hdronly\r\r\nMessage-ID: <hdr-crlf@courier.test>\r\r\n",
                    "BODY[HEADER]": b"Subject: hdronly\r\r\nMessage-ID: <hdr-crlf@courier.test>\r",
                    "BODY[TEXT]": b"\r\r"}
    lf = fetch(courier, mb.user, 2, "RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT]")
    assert lf == {"RFC822.SIZE": len(cr_cr_lf(HDR_ONLY_LF)),
                  "BODY[]": b"Subject: hdronly-lf\r\nMessage-ID: <hdr-lf@courier.test>\r\n",
                  "BODY[HEADER]": b"Subject: hdronly-lf\r\nMessage-ID: <hdr-lf@courier.test>\r",
                  "BODY[TEXT]": b"\r"}
    empty = fetch(courier, mb.user, 3, "RFC822.SIZE BODY.PEEK[] BODY.PEEK[HEADER] BODY.PEEK[TEXT]")
    assert empty == {"RFC822.SIZE": 0, "BODY[]": b"", "BODY[HEADER]": b"", "BODY[TEXT]": b""}
    with courier_pop3(courier, mb) as p:
        assert p.list() == [(1, len(crlf["BODY[]"])), (2, len(lf["BODY[]"])), (3, 0)]
        assert p.retr_raw(1) == crlf["BODY[]"]
        assert p.retr_raw(2) == lf["BODY[]"]
        assert p.retr_raw(3) == b"\r\n"
        assert p.multi_ok("TOP 1 0") == crlf["BODY[]"]
        assert p.multi_ok("TOP 2 1") == lf["BODY[]"]
        assert p.multi_ok("TOP 3 0") == b"\r\n"
        p.quit()


def test_seed_order_flags_and_trash(courier):
    mb = courier_user(courier)
    msgs = [b"Subject: %d\r\nMessage-ID: <order%d@courier.test>\r\n\r\nx\r\n" % (i, i)
            for i in range(5)]
    courier.seed(mb.user, msgs[:3])
    courier.seed(mb.user, msgs[3:], flags="S")
    for uid in range(1, 6):
        f = fetch(courier, mb.user, uid, "FLAGS BODY.PEEK[]")
        assert f["BODY[]"] == cr_cr_lf(msgs[uid - 1])
        assert f["FLAGS"] == ({"\\Seen"} if uid > 3 else set())
    # Courier's pop3d numbers by file name; the seeded names keep list order.
    with courier_pop3(courier, mb) as p:
        ids = [re.search(rb"Message-ID: <([^>]*)>", p.retr(n)).group(1) for n in range(1, 6)]
        p.quit()
    assert ids == [b"order%d@courier.test" % i for i in range(5)]
    assert courier.create_trash(mb.user) == TRASH_FOLDER == "INBOX.Trash"
    conn = courier.imap(mb.user)
    try:
        typ, data = conn.list()
        lines = [d.decode() for d in data]
        trash = [ln for ln in lines if ln.endswith('"INBOX.Trash"')]
        assert len(trash) == 1 and "\\Trash" not in trash[0], lines   # no SPECIAL-USE
    finally:
        conn.logout()


def popgate_session(connect, pg, mb):
    c = connect(pg.tls_port, tls=True)
    c.login(mb.user, mb.password)
    return c


def test_popgate_through_courier(courier, start_popgate, connect):
    """popgate logs in through Courier (STARTTLS, certificate verified, LOGIN
    since there is no AUTH=PLAIN, no SASL-IR) and serves LIST, UIDL, RETR and
    TOP with the bytes Courier's own POP3 sends for the same Maildir."""
    mb = courier_user(courier)
    msgs = [LF_MSG, CRLF_MSG, HDR_ONLY_CRLF, HDR_ONLY_LF, NO_FINAL_NL,
            b"Subject: dots\r\n\r\n.\r\n..x\r\na\rb\r\n"]
    courier.seed(mb.user, msgs)
    with courier_pop3(courier, mb) as p:
        native_list = p.list()
        native_retr = [p.retr_raw(n) for n in range(1, len(msgs) + 1)]
        p.quit()
    pg = start_popgate(upstream=courier.popgate_upstream())
    c = popgate_session(connect, pg, mb)
    assert c.list() == native_list
    assert c.stat() == (len(msgs), sum(size for _, size in native_list))
    first_uidls = c.uidl()
    validity = uidvalidity(courier, mb.user)
    assert first_uidls == [(i, f"{i:08x}{validity:08x}") for i in range(1, len(msgs) + 1)]
    for n, native in enumerate(native_retr, 1):
        assert c.retr_raw(n) == native, n
    # TOP of a message with a header/body separator: the header and n lines,
    # CR CR LF lines kept.
    assert c.top(1, 1) == b"Subject: lf\r\nMessage-ID: <lf@courier.test>\r\n\r\nline1\r\n"
    assert c.top(2, 1) == (b"Subject: crlf\r\r\nMessage-ID: <crlf@courier.test>\r\r\n\r\r\n"
                           b"line1\r\r\n")
    # Header-only messages: BODY[HEADER] ends in a lone CR, one octet short
    # of BODY[]; TOP n 0 and TOP n 1 send what RETR sends, no CR invented.
    for n in (3, 4):
        for lines in (0, 1):
            c.ok(f"TOP {n} {lines}")
            assert c.read_multi_raw() == native_retr[n - 1], (n, lines)
    assert c.quit() == b"+OK Logging out."
    # popgate's SELECT fixed Courier's UIDVALIDITY: the UIDLs stay.
    again = popgate_session(connect, pg, mb)
    assert again.uidl() == first_uidls
    again.quit()
    # Courier's log: popgate's session came over STARTTLS. imapd writes its
    # closing line when the connection is gone, a moment after popgate's QUIT
    # (popgate closes without LOGOUT: "INFO: DISCONNECTED ...").
    testbed_mod.wait_for(
        lambda: re.search(rf"INFO: DISCONNECTED, user={mb.user}, .*starttls=1",
                          Path(courier.log_path).read_text()),
        10, "Courier's log line for popgate's session\n" + courier.log_tail())
    assert re.search(rf"INFO: LOGIN, user={mb.user}, .*protocol=IMAP",
                     Path(courier.log_path).read_text())
    assert "event=login user=%s device=default result=ok" % mb.user in pg.log()


def test_popgate_empty_message_through_courier(courier, start_popgate, connect):
    """An empty message: popgate sends no line (LIST 0, RETR nothing), where
    Courier's own POP3 sends a CRLF that its LIST 0 does not count."""
    mb = courier_user(courier)
    courier.seed(mb.user, [EMPTY, LF_MSG])
    pg = start_popgate(upstream=courier.popgate_upstream())
    c = popgate_session(connect, pg, mb)
    assert c.list() == [(1, 0), (2, len(cr_cr_lf(LF_MSG)))]
    assert c.retr_raw(1) == b""
    assert c.retr_raw(2) == cr_cr_lf(LF_MSG)
    c.quit()


def test_popgate_8bit_password_uses_synchronizing_literal(courier, start_popgate, connect):
    """Courier has no LITERAL+: popgate's LOGIN carries an 8-bit password as a
    synchronizing literal, waiting for "+". A wrong password is refused
    (Courier answers a failed LOGIN after 5 s)."""
    mb = courier_user(courier, password="pässwörd-ß")
    courier.seed(mb.user, [LF_MSG])
    courier.imap(mb.user).logout()   # the bed's own literal login works
    pg = start_popgate(upstream=courier.popgate_upstream())
    c = popgate_session(connect, pg, mb)
    assert c.stat() == (1, len(cr_cr_lf(LF_MSG)))
    c.quit()
    bad = connect(pg.tls_port, tls=True)
    assert bad.cmd(f"USER {mb.user}").startswith(b"+OK")
    assert bad.cmd("PASS pässwörd-x".encode()).startswith(b"-ERR [AUTH]")
