"""Every POP3 command through popgate against the test bed's Dovecot (IMAP).

RFC 1939 (POP3), 2449 (CAPA, RESP-CODES, PIPELINING), 2595 (STLS), 5034 (SASL
AUTH) and docs/design.md "Session lifecycle" and "Limits and defaults".
"""

import base64
import re
import socket

import pytest

from messages import expected_retr, expected_top
import testbed as testbed_lib
from pop3client import Pop3Closed, is_err, is_ok

MSGS = [
    b"From: a@example.org\r\nSubject: one\r\n\r\nfirst body\r\nline 2\r\nline 3\r\n",
    b"From: b@example.org\r\nSubject: two\r\n\r\nsecond body\r\n.leading dot\r\n",
    b"From: c@example.org\r\nSubject: three\r\n\r\n" + b"third body line\r\n" * 50,
]
REQUIRED_CAPS = ("TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING")


@pytest.fixture
def mb(mailbox):
    mailbox.seed(MSGS)
    return mailbox


def sasl_plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


# -- greeting and CAPA -------------------------------------------------------
def test_greeting_is_ok_without_version_or_apop_banner(popgate, connect):
    c = connect(popgate.port)
    assert is_ok(c.greeting)
    assert not re.search(rb"\d+\.\d+", c.greeting), "greeting must not reveal a version"
    assert not re.search(rb"<[^>]*@[^>]*>", c.greeting), "APOP timestamp offered; APOP is not supported"


def test_capa_before_tls_hides_plaintext_auth(popgate, connect):
    c = connect(popgate.port)
    caps = c.capa()
    for cap in REQUIRED_CAPS + ("STLS",):
        assert cap in caps, f"{cap} missing from CAPA before TLS: {caps}"
    assert "USER" not in caps, "USER offered on a plaintext connection with allow_plaintext_auth = no"
    assert "PLAIN" not in caps.get("SASL", []), "SASL PLAIN offered before TLS"
    assert "APOP" not in caps


def test_capa_after_stls(popgate, connect):
    c = connect(popgate.port)
    c.stls()
    caps = c.capa()
    for cap in REQUIRED_CAPS + ("USER",):
        assert cap in caps, f"{cap} missing from CAPA after STLS: {caps}"
    assert "PLAIN" in caps.get("SASL", [])
    assert "STLS" not in caps, "STLS offered on a connection that already uses TLS"
    assert "APOP" not in caps


def test_capa_implicit_tls(popgate, connect):
    c = connect(popgate.tls_port, tls=True)
    caps = c.capa()
    for cap in REQUIRED_CAPS + ("USER",):
        assert cap in caps
    assert "PLAIN" in caps.get("SASL", [])
    assert "STLS" not in caps


def test_capa_plaintext_allowed_by_config(start_popgate, connect):
    pg = start_popgate(server={"allow_plaintext_auth": "yes"})
    caps = connect(pg.port).capa()
    assert "USER" in caps
    assert "PLAIN" in caps.get("SASL", [])
    assert "STLS" in caps


def test_capa_in_transaction_state(popgate, mb, session):
    c = session(popgate, mb)
    caps = c.capa()
    for cap in REQUIRED_CAPS:
        assert cap in caps
    assert "STLS" not in caps


# -- logins --------------------------------------------------------------------
def test_user_pass_after_stls(popgate, mb, connect):
    c = connect(popgate.port)
    c.stls()
    assert is_ok(c.cmd(f"USER {mb.user}"))
    assert is_ok(c.cmd(f"PASS {mb.password}"))
    assert c.stat() == (3, sum(len(m) for m in MSGS))


def test_user_pass_implicit_tls(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    assert is_ok(c.user_pass(mb.user, mb.password))
    assert c.stat()[0] == 3


def test_plaintext_login_refused_by_default(popgate, mb, connect):
    c = connect(popgate.port)
    r = c.user_pass(mb.user, mb.password)
    assert is_err(r), f"plaintext USER/PASS accepted without TLS: {r!r}"
    assert is_err(c.cmd("STAT")), "session reached TRANSACTION state without TLS"
    assert is_err(c.cmd(f"AUTH PLAIN {sasl_plain(mb.user, mb.password)}"))
    assert is_err(c.cmd("STAT"))


def test_plaintext_login_allowed_by_config(start_popgate, mb, connect):
    pg = start_popgate(server={"allow_plaintext_auth": "yes"})
    c = connect(pg.port)
    assert is_ok(c.user_pass(mb.user, mb.password))
    assert c.stat()[0] == 3


def test_login_steps_entered_in_order(start_popgate, mb, session):
    """proxy/session_login.c enters every step through one function that logs
    it: a one-folder mapping without legacy UIDLs walks them all, in order."""
    pg = start_popgate(server={"log_level": "debug"})
    c = session(pg, mb)
    assert c.stat()[0] == 3
    steps = [(m.group(1), m.group(2)) for m in
             re.finditer(r"event=login-step from=(\S+) to=(\S+)", pg.log())]
    assert steps == [
        ("none", "throttle"), ("throttle", "mapping"), ("mapping", "connect"),
        ("connect", "authenticate"), ("authenticate", "device-lock"),
        ("device-lock", "legacy-check"), ("legacy-check", "select"), ("select", "listing"),
        ("listing", "legacy-match"), ("legacy-match", "state-load"),
        ("state-load", "measure-sizes"), ("measure-sizes", "complete"),
    ]
    assert "event=login " in pg.log() and "result=ok" in pg.log()


def test_auth_plain_initial_response(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    r = c.auth_plain(mb.user, mb.password, initial_response=True)
    assert is_ok(r), r
    assert c.stat()[0] == 3


def test_auth_plain_continuation(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    r = c.cmd("AUTH PLAIN")
    # RFC 5034: the server asks for the response with "+ " and an empty challenge.
    assert r.startswith(b"+"), r
    assert not is_ok(r)
    r = c.cmd(sasl_plain(mb.user, mb.password))
    assert is_ok(r), r
    assert c.stat()[0] == 3


def test_auth_plain_cancelled(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    assert c.cmd("AUTH PLAIN").startswith(b"+")
    assert is_err(c.cmd("*"))
    # Still in AUTHORIZATION state and able to log in.
    assert is_ok(c.user_pass(mb.user, mb.password))


def test_auth_plain_with_matching_authzid(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    assert is_ok(c.auth_plain(mb.user, mb.password, authzid=mb.user))


def test_auth_unknown_mechanism(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    assert is_err(c.cmd("AUTH CRAM-MD5"))
    assert is_err(c.cmd("AUTH LOGIN")), "only PLAIN is offered"
    assert is_ok(c.user_pass(mb.user, mb.password))


def test_bare_auth_lists_mechanisms(popgate, connect):
    c = connect(popgate.tls_port, tls=True)
    status, body = c.multi("AUTH")
    assert is_ok(status), status
    mechs = [ln.strip().upper() for ln in body.split(b"\r\n") if ln.strip()]
    assert b"PLAIN" in mechs


def test_apop_not_supported(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    assert is_err(c.cmd(f"APOP {mb.user} 0123456789abcdef0123456789abcdef"))


def test_stls_then_login_with_sasl(popgate, mb, connect):
    c = connect(popgate.port)
    c.stls()
    assert is_ok(c.auth_plain(mb.user, mb.password))
    assert c.uidl()


def test_stls_refused_when_already_tls(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    assert is_err(c.cmd("STLS"))
    c2 = connect(popgate.port)
    c2.stls()
    assert is_err(c2.cmd("STLS"))
    c2.login(mb.user, mb.password)
    assert is_err(c2.cmd("STLS"))


def test_password_needing_imap_quoting(popgate, new_user, session):
    """Space, double quote, backslash, braces: popgate must quote (or send a
    literal for) the password on IMAP LOGIN."""
    mb = new_user(password='p w"\\{3}\\')
    mb.seed(MSGS[:1])
    c = session(popgate, mb)
    assert c.stat()[0] == 1


def test_password_with_utf8(popgate, new_user, session):
    mb = new_user(password="pässwörd€")
    mb.seed(MSGS[:1])
    c = session(popgate, mb)
    assert c.stat()[0] == 1


def test_pass_without_user(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    assert is_err(c.cmd(f"PASS {mb.password}"))
    assert is_ok(c.user_pass(mb.user, mb.password))


def test_transaction_commands_refused_before_login(popgate, connect):
    c = connect(popgate.tls_port, tls=True)
    for cmd in ("STAT", "LIST", "UIDL", "RETR 1", "TOP 1 0", "DELE 1", "RSET"):
        assert is_err(c.cmd(cmd)), cmd
    assert is_ok(c.cmd("QUIT"))


def test_quit_in_authorization_state(popgate, connect):
    c = connect(popgate.tls_port, tls=True)
    assert is_ok(c.cmd("QUIT"))
    assert c.is_closed()


# -- transaction state -----------------------------------------------------
def test_stat_list_uidl(popgate, mb, session):
    c = session(popgate, mb)
    sizes = [len(m) for m in MSGS]
    assert c.stat() == (3, sum(sizes))
    assert c.list() == [(1, sizes[0]), (2, sizes[1]), (3, sizes[2])]
    for n in (1, 2, 3):
        assert c.list_one(n) == (n, sizes[n - 1])
    # UIDL is the upstream UID and UIDVALIDITY as 8 hex digits each (Dovecot's
    # pop3_uidl_format = %08Xu%08Xv); the exact spelling, digit case included,
    # is checked against Dovecot itself in test_uidl_matches_dovecot_pop3.
    validity = mb.uidvalidity()
    uids = sorted(mb.upstream())
    listing = c.uidl()
    assert [n for n, _ in listing] == [1, 2, 3]
    for (n, u), uid in zip(listing, uids):
        assert re.fullmatch(r"[0-9A-Fa-f]{16}", u), u
        assert (int(u[:8], 16), int(u[8:], 16)) == (uid, validity)
    for n, u in listing:
        r = c.ok(f"UIDL {n}").split()
        assert (int(r[1]), r[2].decode()) == (n, u)


def test_uidl_matches_dovecot_pop3(popgate, mb, session, connect, testbed):
    """Users moved from Dovecot POP3 keep their UIDLs: byte for byte the same
    strings (Dovecot 2.3 writes %08Xu%08Xv in lower-case hex)."""
    c = session(popgate, mb)
    d = connect(testbed.ports["pop3"])
    d.login(mb.user, mb.password)
    assert c.uidl() == d.uidl()
    d.quit()


def test_uidl_stable_across_sessions_and_devices(popgate, mb, session):
    c = session(popgate, mb)
    first = c.uidl()
    assert is_ok(c.quit())
    assert session(popgate, mb).uidl() == first
    # Two devices of the same user at the same time see the same UIDLs.
    phone = session(popgate, mb, device="phone")
    desk = session(popgate, mb, device="desk")
    assert phone.uidl() == first
    assert desk.uidl() == first


def test_retr(popgate, mb, session):
    c = session(popgate, mb)
    for n, m in enumerate(MSGS, 1):
        r = c.cmd(f"RETR {n}")
        assert is_ok(r)
        assert c.read_multi() == expected_retr(m)


def test_retr_dot_stuffed_on_the_wire(popgate, mb, session):
    c = session(popgate, mb)
    raw = c.retr_raw(2)
    assert b"\r\n..leading dot\r\n" in raw


@pytest.mark.parametrize("lines", [0, 1, 2, 100, 4294967295])
def test_top(popgate, mb, session, lines):
    c = session(popgate, mb)
    for n, m in enumerate(MSGS, 1):
        assert c.top(n, lines) == expected_top(m, lines), (n, lines)


def test_dele(popgate, mb, session):
    c = session(popgate, mb)
    assert is_ok(c.cmd("DELE 2"))
    assert is_err(c.cmd("LIST 2"))
    assert is_err(c.cmd("RETR 2"))
    assert is_err(c.cmd("TOP 2 0"))
    assert is_err(c.cmd("UIDL 2"))
    assert is_err(c.cmd("DELE 2")), "a message deleted twice"
    assert c.stat() == (2, len(MSGS[0]) + len(MSGS[2]))
    assert [n for n, _ in c.list()] == [1, 3]
    assert [n for n, _ in c.uidl()] == [1, 3]
    # Message numbers do not shift (RFC 1939).
    assert c.retr(3) == expected_retr(MSGS[2])


def test_rset(popgate, mb, session):
    c = session(popgate, mb)
    before = c.list()
    assert is_ok(c.cmd("DELE 1"))
    assert is_ok(c.cmd("DELE 3"))
    assert c.stat()[0] == 1
    assert is_ok(c.cmd("RSET"))
    assert c.stat() == (3, sum(len(m) for m in MSGS))
    assert c.list() == before
    assert c.retr(1) == expected_retr(MSGS[0])


def test_noop(popgate, mb, session):
    c = session(popgate, mb)
    assert is_ok(c.cmd("NOOP"))
    assert c.stat()[0] == 3


def test_quit_ends_session(popgate, mb, session):
    c = session(popgate, mb)
    c.send("QUIT")
    assert is_ok(c.read_line())
    assert c.is_closed()


def test_empty_mailbox(popgate, mailbox, session):
    c = session(popgate, mailbox)
    assert c.stat() == (0, 0)
    assert c.list() == []
    assert c.uidl() == []
    assert is_err(c.cmd("RETR 1"))
    assert is_err(c.cmd("LIST 1"))
    assert is_ok(c.cmd("QUIT"))


@pytest.mark.parametrize("verb", ["LIST", "UIDL", "RETR", "DELE", "TOP"])
def test_bad_message_numbers(popgate, mb, session, verb):
    c = session(popgate, mb)
    # One session per verb keeps the count of bad commands below the limit.
    for arg in ("0", "4", "4294967297", "4294967296", "abc", "-1", "+1", "1x"):
        cmd = f"{verb} {arg}" + (" 0" if verb == "TOP" else "")
        r = c.cmd(cmd)
        assert is_err(r), f"{cmd} -> {r!r}"
    assert is_ok(c.cmd("NOOP"))
    assert c.stat()[0] == 3, "a bad message number must not delete anything"


def test_top_bad_line_count(popgate, mb, session):
    c = session(popgate, mb)
    for cmd in ("TOP 1", "TOP 1 -1", "TOP 1 x", "TOP"):
        assert is_err(c.cmd(cmd)), cmd
    assert is_ok(c.cmd("NOOP"))


def test_unknown_command(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    assert is_err(c.cmd("FROBNICATE"))
    assert is_err(c.cmd("LAST"))
    c.login(mb.user, mb.password)
    assert is_err(c.cmd("XYZZY 1 2 3"))
    assert is_ok(c.cmd("NOOP"))


@pytest.mark.parametrize("length", [300, 5000, 100_000])
def test_overlong_line_gets_err_and_session_continues(popgate, mb, session, length):
    c = session(popgate, mb)
    r = c.cmd("NOOP " + "x" * length)
    assert is_err(r), r
    # Exactly one reply for the long line: the next command's reply is next.
    assert is_ok(c.cmd("NOOP"))
    assert c.stat()[0] == 3


def test_ten_bad_commands_close_the_session(popgate, mb, session):
    c = session(popgate, mb)
    for i in range(9):
        assert is_err(c.cmd(f"BOGUS{i}")), i
    c.send("BOGUS9")
    try:
        r = c.read_line()
        assert is_err(r), r
    except (OSError, Pop3Closed):
        pass  # closing without a last -ERR is fine too
    assert c.is_closed(wait=5), "session still open after 10 bad commands"


def test_max_bad_commands_setting(start_popgate, mb, session):
    pg = start_popgate(server={"max_bad_commands": 3})
    c = session(pg, mb)
    assert is_err(c.cmd("BOGUS1"))
    assert is_err(c.cmd("BOGUS2"))
    c.send("BOGUS3")
    assert c.is_closed(wait=5), "session still open after max_bad_commands = 3"


def test_pipelining_in_one_write(popgate, mb, session):
    c = session(popgate, mb)
    c.send_raw(b"STAT\r\nLIST\r\nUIDL 1\r\nRETR 1\r\nTOP 3 2\r\nNOOP\r\nDELE 2\r\nLIST 2\r\n"
               b"RETR 2\r\nRSET\r\nLIST 2\r\nQUIT\r\n")
    sizes = [len(m) for m in MSGS]
    assert c.read_line() == b"+OK 3 %d" % sum(sizes)
    assert is_ok(c.read_line())
    assert c.read_multi() == b"".join(b"%d %d\r\n" % (n, s) for n, s in enumerate(sizes, 1))
    assert c.read_line().startswith(b"+OK 1 ")
    assert is_ok(c.read_line())
    assert c.read_multi() == expected_retr(MSGS[0])
    assert is_ok(c.read_line())
    assert c.read_multi() == expected_top(MSGS[2], 2)
    assert is_ok(c.read_line())          # NOOP
    assert is_ok(c.read_line())          # DELE 2
    assert is_err(c.read_line())         # LIST 2
    assert is_err(c.read_line())         # RETR 2
    assert is_ok(c.read_line())          # RSET
    assert c.read_line() == b"+OK 2 %d" % sizes[1]
    assert is_ok(c.read_line())          # QUIT
    assert c.is_closed()


def test_pipelining_through_login(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    c.send_raw(f"USER {mb.user}\r\nPASS {mb.password}\r\nSTAT\r\nUIDL\r\nQUIT\r\n".encode())
    assert is_ok(c.read_line())
    assert is_ok(c.read_line())
    assert c.read_line().startswith(b"+OK 3 ")
    assert is_ok(c.read_line())
    assert len([ln for ln in c.read_multi().split(b"\r\n") if ln]) == 3
    assert is_ok(c.read_line())


def test_pipelining_byte_by_byte(popgate, mb, session):
    """The opposite split: a command arriving one octet at a time."""
    c = session(popgate, mb)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for b in b"LIST 3\r\n":
        c.send_raw(bytes([b]))
    assert c.read_line() == b"+OK 3 %d" % len(MSGS[2])


def test_lower_case_commands(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    assert is_ok(c.cmd("capa")) and c.read_multi()
    assert is_ok(c.cmd(f"user {mb.user}"))
    assert is_ok(c.cmd(f"pass {mb.password}"))
    assert c.cmd("stat").startswith(b"+OK 3 ")
    assert is_ok(c.cmd("list"))
    c.read_multi()
    assert is_ok(c.cmd("Retr 1"))
    assert c.read_multi() == expected_retr(MSGS[0])
    assert is_ok(c.cmd("uidl"))
    c.read_multi()
    assert is_ok(c.cmd("top 1 0"))
    c.read_multi()
    assert is_ok(c.cmd("noop"))
    assert is_ok(c.cmd("dele 1"))
    assert is_ok(c.cmd("rset"))
    assert is_ok(c.cmd("quit"))


def test_lower_case_auth_and_stls(popgate, mb, connect):
    c = connect(popgate.port)
    assert is_ok(c.cmd("stls"))
    c._wrap_tls()
    assert is_ok(c.cmd(f"auth plain {sasl_plain(mb.user, mb.password)}"))


def test_ipv6_listeners(start_popgate, mb, connect):
    try:
        v6_plain, v6_tls = testbed_lib.free_ports(2, host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    pg = start_popgate(server={
        "listen": [f"127.0.0.1:{testbed_lib.free_port()}", f"[::1]:{v6_plain}"],
        "listen_tls": [f"127.0.0.1:{testbed_lib.free_port()}", f"[::1]:{v6_tls}"],
    })
    c = connect(v6_tls, host="::1", tls=True)
    c.login(mb.user, mb.password)
    assert c.stat()[0] == 3
    assert is_ok(c.quit())
    c = connect(v6_plain, host="::1")
    c.stls()
    c.login(mb.user, mb.password)
    assert c.stat()[0] == 3
    assert pg.running()
