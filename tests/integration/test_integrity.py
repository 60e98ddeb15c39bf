"""What a session does to the upstream mailbox, and what the client can trust.

docs/design.md: "LIST size and RETR bytes", "Session lifecycle" (UPDATE at QUIT
only; a session without QUIT changes nothing), "Reply codes". Upstream state is
read back over IMAP (imaplib, EXAMINE: read-only) on the test bed's Dovecot.
"""

import os
import re
import signal
import subprocess
import time

import pytest

import testbed as testbed_lib
from messages import corpus, expected_retr, normalise
from pop3client import Pop3Truncated, is_err, is_ok

MSGS = [
    b"Subject: one\r\n\r\nfirst\r\n",
    b"Subject: two\r\n\r\nsecond\r\n",
    b"Subject: three\r\n\r\nthird\r\n",
]
# How long to wait for something that must NOT happen after a client drops
# its connection (popgate must notice the drop and change nothing).
DROP_SETTLE = 1.0


@pytest.fixture
def mb(mailbox):
    mailbox.seed(MSGS)
    return mailbox


def seen_uids(state):
    return {uid for uid, (flags, _) in state.items() if "\\Seen" in flags}


def deleted_uids(state):
    return {uid for uid, (flags, _) in state.items() if "\\Deleted" in flags}


def size_known_upstream(data):
    """True where the upstream size (RFC822.SIZE, line ends counted as CRLF)
    already equals what popgate sends: no bare CR, and a final line ending."""
    crlf_only = re.sub(rb"\r?\n", b"\r\n", data)
    return len(crlf_only) == len(normalise(data))


# -- sizes -----------------------------------------------------------------
def test_list_equals_retr_octets_for_every_message(popgate, mailbox, session):
    msgs = corpus(include_big=False)
    mailbox.seed(msgs)
    c = session(popgate, mailbox)
    before = dict(c.list())
    sent = {}
    for n, m in enumerate(msgs, 1):
        sent[n] = c.retr(n)
        assert sent[n] == expected_retr(m.data), m.name
        assert c.list_one(n) == (n, len(sent[n])), f"{m.name}: LIST after RETR"
        if size_known_upstream(m.data):
            assert before[n] == len(sent[n]), f"{m.name}: LIST before RETR"
    assert c.stat() == (len(msgs), sum(len(b) for b in sent.values()))
    assert dict(c.list()) == {n: len(b) for n, b in sent.items()}


def test_top_does_not_change_learned_size(popgate, mailbox, session):
    """TOP streams only part of a message: it must not be taken as the size."""
    msg = corpus(include_big=False)[4]  # no_final_newline
    assert msg.name == "no_final_newline"
    mailbox.seed([msg])
    c = session(popgate, mailbox)
    before = c.list_one(1)
    c.top(1, 0)
    assert c.list_one(1) == before
    body = c.retr(1)
    assert c.list_one(1) == (1, len(body))


# -- flags and expunges at QUIT ----------------------------------------------
def test_retr_then_quit_sets_seen(popgate, mb, session):
    uids = sorted(mb.upstream())
    c = session(popgate, mb)
    c.retr(2)
    assert seen_uids(mb.upstream()) == set(), "\\Seen set before QUIT"
    assert is_ok(c.quit())
    assert seen_uids(mb.upstream()) == {uids[1]}


def test_top_then_quit_does_not_set_seen(popgate, mb, session):
    c = session(popgate, mb)
    c.top(1, 0)
    c.top(2, 100)
    assert is_ok(c.quit())
    assert seen_uids(mb.upstream()) == set()


def test_retr_without_quit_changes_nothing(popgate, mb, session):
    before = mb.upstream()
    c = session(popgate, mb)
    c.retr(1)
    c.retr(3)
    c.close()
    time.sleep(DROP_SETTLE)
    assert mb.upstream() == before


def test_dele_then_quit_expunges(popgate, mb, session):
    uids = sorted(mb.upstream())
    c = session(popgate, mb)
    assert is_ok(c.cmd("DELE 1"))
    assert is_ok(c.cmd("DELE 3"))
    assert set(mb.upstream()) == set(uids), "expunged before QUIT"
    assert is_ok(c.quit())
    after = mb.upstream()
    assert set(after) == {uids[1]}
    assert deleted_uids(after) == set()
    c2 = session(popgate, mb)
    assert c2.stat() == (1, len(MSGS[1]))
    assert c2.retr(1) == expected_retr(MSGS[1])


def test_dele_without_quit_changes_nothing(popgate, mb, session):
    before = mb.upstream()
    c = session(popgate, mb)
    assert is_ok(c.cmd("DELE 2"))
    c.close()
    time.sleep(DROP_SETTLE)
    after = mb.upstream()
    assert after == before
    assert deleted_uids(after) == set()


def test_dele_rset_quit_keeps_everything(popgate, mb, session):
    before = mb.upstream()
    c = session(popgate, mb)
    assert is_ok(c.cmd("DELE 1"))
    assert is_ok(c.cmd("DELE 2"))
    assert is_ok(c.cmd("RSET"))
    assert is_ok(c.quit())
    assert mb.upstream() == before


def test_dele_of_retrieved_message_expunges_it(popgate, mb, session):
    uids = sorted(mb.upstream())
    c = session(popgate, mb)
    c.retr(1)
    c.retr(2)
    assert is_ok(c.cmd("DELE 1"))
    assert is_ok(c.quit())
    after = mb.upstream()
    assert set(after) == {uids[1], uids[2]}
    assert seen_uids(after) == {uids[1]}


def test_message_expunged_upstream_during_session(popgate, mb, session):
    uids = sorted(mb.upstream())
    c = session(popgate, mb)
    assert c.stat()[0] == 3
    imap = mb.imap()
    try:
        assert imap.select("INBOX")[0] == "OK"
        assert imap.uid("STORE", str(uids[1]), "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
        assert imap.expunge()[0] == "OK"
    finally:
        imap.logout()
    r = c.cmd("RETR 2")
    assert is_err(r), f"RETR of a message expunged upstream: {r!r}"
    assert c.retr(1) == expected_retr(MSGS[0])
    assert c.retr(3) == expected_retr(MSGS[2])
    assert is_ok(c.cmd("NOOP"))
    assert is_ok(c.quit())
    after = mb.upstream()
    assert set(after) == {uids[0], uids[2]}
    assert seen_uids(after) == {uids[0], uids[2]}


# -- failures and reply codes -----------------------------------------------
def test_bad_password_gets_auth_code(popgate, mb, connect):
    c = connect(popgate.tls_port, tls=True)
    r = c.user_pass(mb.user, mb.password + "x")
    assert r.startswith(b"-ERR [AUTH]"), r
    r = c.auth_plain(mb.user, "wrong")
    assert r.startswith(b"-ERR [AUTH]"), r
    # Back in AUTHORIZATION state: the right password still works.
    assert is_ok(c.user_pass(mb.user, mb.password))
    assert c.stat()[0] == 3


def test_unknown_user_gets_auth_code(popgate, connect):
    c = connect(popgate.tls_port, tls=True)
    r = c.user_pass("nosuchuser", "whatever")
    assert r.startswith(b"-ERR [AUTH]"), r


def test_auth_failure_delay(start_popgate, mb, connect):
    pg = start_popgate(server={"auth_failure_delay": 2})
    c = connect(pg.tls_port, tls=True)
    assert is_ok(c.cmd(f"USER {mb.user}"))
    t0 = time.monotonic()
    r = c.cmd("PASS wrong")
    elapsed = time.monotonic() - t0
    assert r.startswith(b"-ERR [AUTH]"), r
    assert elapsed >= 1.9, f"-ERR [AUTH] after {elapsed:.2f}s, auth_failure_delay = 2"
    t0 = time.monotonic()
    assert is_ok(c.user_pass(mb.user, mb.password))
    elapsed = time.monotonic() - t0
    # Well under the delay, with room for a loaded machine and ASan.
    assert elapsed < 1.5, f"a good login took {elapsed:.2f}s: it must not be delayed"


def test_upstream_down_gets_sys_temp(start_popgate, mb, connect):
    closed_port = testbed_lib.free_port()
    pg = start_popgate(upstream={"port": closed_port})
    c = connect(pg.tls_port, tls=True)
    r = c.user_pass(mb.user, mb.password)
    assert r.startswith(b"-ERR [SYS/TEMP]"), r
    r = c.auth_plain(mb.user, mb.password)
    assert r.startswith(b"-ERR [SYS/TEMP]"), r


def test_upstream_certificate_name_checked(start_popgate, mb, connect):
    pg = start_popgate(upstream={"verify_name": "not-localhost.example"})
    c = connect(pg.tls_port, tls=True)
    r = c.user_pass(mb.user, mb.password)
    assert r.startswith(b"-ERR [SYS/"), f"logged in over an upstream TLS name mismatch: {r!r}"


def test_upstream_untrusted_certificate(start_popgate, mb, connect, tmp_path):
    other = tmp_path / "other-ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", str(tmp_path / "other-key.pem"), "-out", str(other)],
                   check=True, capture_output=True, timeout=60)
    pg = start_popgate(upstream={"ca_file": str(other)})
    c = connect(pg.tls_port, tls=True)
    r = c.user_pass(mb.user, mb.password)
    assert r.startswith(b"-ERR [SYS/"), f"logged in over an untrusted upstream certificate: {r!r}"


def test_upstream_implicit_tls(start_popgate, mb, session, testbed):
    pg = start_popgate(upstream={"tls": "implicit", "port": testbed.ports["imaps"]})
    c = session(pg, mb)
    assert c.retr(1) == expected_retr(MSGS[0])


def test_upstream_without_tls(start_popgate, mb, session, testbed):
    pg = start_popgate(upstream={"tls": "none", "port": testbed.ports["imap"]})
    c = session(pg, mb)
    assert c.stat()[0] == 3
    assert c.retr(3) == expected_retr(MSGS[2])


def repeated_message(size):
    """A large message built fast: size octets of 78-octet CRLF lines."""
    line = b"0123456789" * 7 + b"abcdef\r\n"
    head = b"Subject: huge\r\n\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    return head + body[:size - len(head) - 2] + b"\r\n"


def test_upstream_dies_mid_retr_closes_without_terminator(popgate, mailbox, connect, testbed):
    """A client must never take a cut message as whole: popgate closes the
    connection without the final "." when the upstream dies mid-message. The
    message is larger than every socket buffer on the path together, so the
    upstream cannot have sent it all when it is killed."""
    size = 96 * 1024 * 1024
    mailbox.seed([repeated_message(size)])
    c = connect(popgate.tls_port, tls=True, rcvbuf=64 * 1024, timeout=30)
    c.login(mailbox.user, mailbox.password)
    c.send("RETR 1")
    assert is_ok(c.read_line())
    while len(c.buf) < 512 * 1024:
        assert c._recv(64 * 1024), "connection closed early"
    pids = testbed.imap_process_pids(mailbox.user)
    assert len(pids) == 1, f"expected popgate's one upstream imap process, found {pids}"
    os.kill(pids[0], signal.SIGKILL)
    with pytest.raises(Pop3Truncated) as info:
        c.read_multi_raw()
    assert len(info.value.partial) < size, "the whole message arrived although upstream died"


# -- device lock across restarts -----------------------------------------------
def test_device_lock_released_when_client_drops_just_before_restart(start_popgate, mb, session):
    """SIGTERM drains: a session whose client has just gone must still release
    its device lock, or the user gets -ERR [IN-USE] from the next popgate until
    the lock expires."""
    for _ in range(3):
        pg = start_popgate()
        c = session(pg, mb)
        c.retr(1)
        c.close()
        pg.stop()
    c = session(start_popgate(), mb)
    assert c.stat()[0] == 3


def test_device_lock_released_when_restart_ends_a_session(start_popgate, mb, session):
    """A client still connected when popgate stops is disconnected after
    shutdown_timeout, its session changes nothing, and its lock is released."""
    before = mb.upstream()
    pg = start_popgate(server={"shutdown_timeout": 1})
    c = session(pg, mb)
    c.retr(1)
    assert is_ok(c.cmd("DELE 2"))
    pg.stop()
    assert c.is_closed(wait=1)
    assert mb.upstream() == before
    c2 = session(start_popgate(), mb)
    assert c2.stat()[0] == 3
