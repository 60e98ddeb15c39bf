"""Upstream faults (issue 7, item 2): an IMAP server that hangs up inside a
message, stalls, sends garbage or over-long lines, offers the wrong
certificate or no STARTTLS, and popgate shutting down in the middle of a RETR.

Most faults come from tests/integration/fake_imap.py, a scriptable IMAP server,
because a real server cannot be made to misbehave on cue; shutdown runs
against the real Dovecot. For every fault the client must get a clean -ERR or
a hang-up (never a cut message ended by "."), popgate must keep running
(ASan silent) and serve the next session, and nothing may change in Redis or
upstream.
"""
import contextlib
import os
import re
import signal
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "dev"))
sys.path.insert(0, os.path.dirname(__file__))
import testbed  # noqa: E402
from fake_imap import FakeImap  # noqa: E402
from messages import big_message, dot_stuff, expected_retr  # noqa: E402
from pop3client import POP3, Pop3Closed, is_ok  # noqa: E402

USER, PASSWORD = "faultuser", "faultpw"
COMMAND_TIMEOUT = 1        # [upstream] connect_timeout and command_timeout, seconds
TIMEOUT_SLACK = 4.0        # seconds past a timeout a reply may take (ASan, a loaded machine)
MESSAGES = [
    b"From: a@example.org\r\nSubject: first\r\n\r\nline one\r\n.dot line\r\nlast\r\n",
    b"From: b@example.org\r\nSubject: second\r\n\r\n" + b"".join(
        b"body line %05d with some text to make it longer\r\n" % i for i in range(2000)),
]
# Commands that change a mailbox: none may reach upstream without QUIT.
MUTATING = {"UID STORE", "UID EXPUNGE", "UID MOVE", "UID COPY", "STORE", "EXPUNGE", "CLOSE",
            "COPY", "MOVE", "APPEND", "DELETE"}


def wire(msg):
    """What RETR must send for msg, without the terminating line."""
    return dot_stuff(expected_retr(msg))


def redis_command(sock_file, *args):
    """One Redis command over RESP; the reply as Python values."""
    sock_file.write(b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() if isinstance(x, str) else x for x in args)))
    sock_file.flush()

    def reply():
        line = sock_file.readline()[:-2]
        kind, rest = line[:1], line[1:]
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind in (b"+", b":"):
            return rest.decode()
        if kind == b"$":
            return None if rest == b"-1" else sock_file.read(int(rest) + 2)[:-2].decode("latin-1")
        return [reply() for _ in range(int(rest))]
    return reply()


def redis_dump(bed, user):
    """Every key of a user (and the address throttle keys) with its contents."""
    with socket.create_connection(("127.0.0.1", bed.ports["redis"]), timeout=10) as s, s.makefile("rwb") as f:
        keys, cursor = [], "0"
        while True:
            cursor, batch = redis_command(f, "SCAN", cursor, "COUNT", "1000")
            keys += [k for k in batch if k.startswith((f"pg1:{{{user}}}:", "pg1:authfail:"))]
            if cursor == "0":
                break
        dump = {}
        for key in keys:
            kind = redis_command(f, "TYPE", key)
            if kind == "set":
                dump[key] = sorted(redis_command(f, "SMEMBERS", key))
            elif kind == "hash":
                dump[key] = redis_command(f, "HGETALL", key)
            elif kind == "string":
                dump[key] = redis_command(f, "GET", key)
            # "none": the key went away after SCAN saw it.
        return dump


def wait_unlocked(bed, user, timeout=10.0):
    """The dump once no device of user is locked (a session that just ended
    releases its lock asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        dump = redis_dump(bed, user)
        if not any(":lock:" in k for k in dump) or time.monotonic() > deadline:
            return dump
        time.sleep(0.05)


def read_to_eof(c, timeout=10.0):
    """Everything the server sends until it closes; fails if it does not."""
    c.settimeout(timeout)
    while c._recv():
        pass
    data = bytes(c.buf)
    c.buf.clear()
    return data


def assert_cut(c, msg):
    """RETR was answered +OK, then part of msg, then the connection closed
    without the terminating ".": a client cannot take it as whole."""
    status = c.read_line()
    assert status.startswith(b"+OK"), status
    body = read_to_eof(c)
    assert not body.endswith(b"\r\n.\r\n") and body != b".\r\n", "a cut message was ended with '.'"
    assert wire(msg).startswith(body), "bytes that are not the message reached the client"
    return body


def assert_err_then_closed(c, prefix=b"-ERR [SYS/TEMP]"):
    status = c.read_line()
    assert status.startswith(prefix), status
    assert read_to_eof(c) == b""


# ---- the shared set-up: one test bed, one fake server, one popgate ---------

class Env:
    def __init__(self, bed, fake, pg):
        self.bed, self.fake, self.pg = bed, fake, pg

    def connect(self, **kw):
        return POP3("127.0.0.1", self.pg.port, timeout=15, **kw)

    def login(self):
        c = self.connect()
        assert is_ok(c.user_pass(USER, PASSWORD))
        return c

    def healthy_session(self):
        """A complete session with QUIT works, byte for byte."""
        c = self.login()
        assert c.stat() == (len(MESSAGES), sum(len(m) for m in MESSAGES))
        for n, msg in enumerate(MESSAGES, 1):
            assert c.retr_raw(n) == wire(msg)
        assert is_ok(c.quit())

    @contextlib.contextmanager
    def unharmed(self):
        """Around a fault: afterwards popgate runs, ASan is silent, Redis holds
        what it held before, no mutating command reached upstream, every
        upstream connection was closed by popgate, and a new session works."""
        self.fake.reset()
        before = wait_unlocked(self.bed, USER)
        log_start = len(self.pg.log())
        yield
        self.fake.hooks = {}
        assert self.fake.wait_all_closed(10), "popgate left an upstream connection open"
        touched = [v for v in self.fake.verbs() if v in MUTATING]
        assert touched == [], f"the fault session changed the mailbox: {touched}"
        assert self.fake.violations() == []
        assert self.pg.running(), "popgate died" + testbed.log_tail(self.pg.log_path)
        assert self.pg.sanitizer_reports() == []
        assert wait_unlocked(self.bed, USER) == before
        self.new_log = self.pg.log()[log_start:]
        self.healthy_session()


@pytest.fixture(scope="module")
def bed():
    with testbed.Testbed(name="pgfault") as tb:
        yield tb


@pytest.fixture(scope="module")
def env(bed):
    fake = FakeImap(messages=MESSAGES, user=USER.encode(), password=PASSWORD.encode())
    pg = testbed.Popgate(bed, server={"allow_plaintext_auth": "yes", "log_level": "debug"},
                         upstream={"host": "127.0.0.1", "port": fake.port, "tls": "none",
                                   "connect_timeout": COMMAND_TIMEOUT,
                                   "command_timeout": COMMAND_TIMEOUT},
                         extra_sections={"policy": {"view": "all", "on_retr": "seen", "on_dele": "hide"}})
    pg.start()
    e = Env(bed, fake, pg)
    try:
        # The first complete session leaves the device's state in Redis, so
        # "nothing changed" below compares real state.
        e.healthy_session()
        assert redis_dump(bed, USER)
        yield e
    finally:
        fake.stop()
        pg.stop()


# ---- hooks --------------------------------------------------------------------

def fetch_header(cmd, length=None):
    n = len(cmd.data) if length is None else length
    return b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (cmd.uid, cmd.uid, n)


def close_mid_literal(conn, tag, cmd):
    conn.send(fetch_header(cmd) + cmd.data[:len(cmd.data) // 2])
    time.sleep(0.2)  # let popgate pass the half on before the hang-up
    conn.close()


def stall(conn, tag, cmd):
    conn.stall()


def stall_mid_literal(conn, tag, cmd):
    conn.send(fetch_header(cmd) + cmd.data[:1000])
    conn.stall()


def send_then_stall(payload):
    def hook(conn, tag, cmd):
        conn.send(payload(tag, cmd) if callable(payload) else payload)
        conn.stall()
    return hook


def send_then_close(payload):
    def hook(conn, tag, cmd):
        conn.send(payload(tag, cmd) if callable(payload) else payload)
        time.sleep(0.2)
        conn.close()
    return hook


# ---- upstream hangs up inside a message -------------------------------------------

def test_upstream_closes_mid_literal_during_retr(env):
    with env.unharmed():
        env.fake.hooks["body"] = close_mid_literal
        c = env.login()
        c.send("RETR 2")
        body = assert_cut(c, MESSAGES[1])
        assert len(body) > 1000, "popgate passed on nothing of the half it received"
    assert "upstream-failed-mid-message" in env.new_log


# ---- upstream stalls ------------------------------------------------------------

@pytest.mark.parametrize("point", ["greeting", "login", "select", "listing"])
def test_upstream_stall_during_login_times_out(env, point):
    with env.unharmed():
        env.fake.hooks[point] = stall
        c = env.connect()
        assert is_ok(c.cmd(f"USER {USER}"))
        t0 = time.monotonic()
        reply = c.cmd(f"PASS {PASSWORD}")
        elapsed = time.monotonic() - t0
        assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
        assert COMMAND_TIMEOUT * 0.9 <= elapsed <= COMMAND_TIMEOUT + TIMEOUT_SLACK, elapsed
        # The POP3 session survives the failed login.
        assert is_ok(c.cmd("CAPA"))
        c.read_multi()
        c.quit()
    assert "upstream=timeout" in env.new_log


def test_upstream_stall_before_body_times_out(env):
    with env.unharmed():
        env.fake.hooks["body"] = stall
        c = env.login()
        t0 = time.monotonic()
        c.send("RETR 1")
        assert_err_then_closed(c)
        assert time.monotonic() - t0 <= COMMAND_TIMEOUT + TIMEOUT_SLACK


def test_upstream_stall_mid_literal_cuts_the_message(env):
    with env.unharmed():
        env.fake.hooks["body"] = stall_mid_literal
        c = env.login()
        t0 = time.monotonic()
        c.send("RETR 2")
        assert_cut(c, MESSAGES[1])
        elapsed = time.monotonic() - t0
        assert COMMAND_TIMEOUT * 0.9 <= elapsed <= COMMAND_TIMEOUT + TIMEOUT_SLACK, elapsed


# ---- garbage from upstream ------------------------------------------------------

ENDLESS = b"* OK " + b"x" * (100 * 1024)          # no CRLF, past IMAP_LINE_MAX


@pytest.mark.parametrize("point,payload", [
    ("greeting", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
    ("greeting", ENDLESS),
    ("greeting", b"* PREAUTH already logged in\r\n"),
    ("greeting", b"* OK \x00 NUL in the greeting\r\n"),
    ("login", lambda tag, cmd: b"\x16\x03\x01 binary junk \xff\xfe\r\n"),
    ("select", ENDLESS),
    ("select", lambda tag, cmd: f"* OK [UIDVALIDITY banana] no\r\n{tag} OK done\r\n".encode()),
    ("select", lambda tag, cmd: f"{tag} OK [READ-WRITE] but no UIDVALIDITY\r\n".encode()),
    ("listing", lambda tag, cmd: f"* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 99999999999 "
                                 f"INTERNALDATE \"01-Jan-2024 00:00:00 +0000\")\r\n{tag} OK done\r\n".encode()),
    ("listing", lambda tag, cmd: f"* 1 FETCH (UID 1 FLAGS (\r\n{tag} OK done\r\n".encode()),
    ("listing", lambda tag, cmd: b"* 1 FETCH {5}\r\nhello\r\n"),
], ids=["http-greeting", "endless-greeting", "preauth", "nul-greeting", "binary-login-reply",
        "endless-select", "bad-uidvalidity", "no-uidvalidity", "size-over-32-bits",
        "unbalanced-listing", "literal-listing"])
def test_upstream_garbage_during_login(env, point, payload):
    with env.unharmed():
        env.fake.hooks[point] = send_then_stall(payload)
        c = env.connect()
        assert is_ok(c.cmd(f"USER {USER}"))
        reply = c.cmd(f"PASS {PASSWORD}")
        assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
        c.quit()
    # Refused for what it is, not after waiting for the stalled server.
    assert "event=login-step-failed" in env.new_log
    assert "upstream=timeout" not in env.new_log




def _body(cmd, extra=b""):
    return fetch_header(cmd) + cmd.data + extra


@pytest.mark.parametrize("payload,cut", [
    (b"garbage instead of a response\r\n", False),
    (ENDLESS, False),
    (lambda tag, cmd: b"A9999 OK not my tag\r\n", False),
    (lambda tag, cmd: b"+ unsolicited continuation\r\n", False),
    (lambda tag, cmd: b"* %d FETCH (UID %d BODY[] {99999999999999999999999}\r\n" % (cmd.uid, cmd.uid), False),
    (lambda tag, cmd: b"* %d FETCH (UID %d BODY[] {-5}\r\n" % (cmd.uid, cmd.uid), False),
    (lambda tag, cmd: b"* %d FETCH (UID %d\x00 BODY[] {3}\r\nabc)\r\n" % (cmd.uid, cmd.uid), False),
    (lambda tag, cmd: _body(cmd, b"EXTRA BYTES THE LITERAL DID NOT ANNOUNCE)\r\n")
     + f"{tag} OK done\r\n".encode(), True),
    (lambda tag, cmd: _body(cmd, b")\r\n\x01\x02 garbage line after the literal\r\n")
     + f"{tag} OK done\r\n".encode(), True),
    (lambda tag, cmd: _body(cmd, b")") + ENDLESS, True),
    (lambda tag, cmd: _body(cmd, b"\r\n") + f"{tag} OK done\r\n".encode(), True),
], ids=["garbage-line", "endless-line", "wrong-tag", "continuation", "literal-overflow",
        "negative-literal", "nul", "literal-longer-than-announced", "garbage-after-literal",
        "endless-after-literal", "missing-paren"])
def test_upstream_garbage_during_retr(env, payload, cut):
    with env.unharmed():
        env.fake.hooks["body"] = send_then_stall(payload)
        c = env.login()
        c.send("RETR 1")
        if cut:
            assert_cut(c, MESSAGES[0])
        else:
            assert_err_then_closed(c)
    # Refused for what it is, not after waiting for the stalled server.
    assert "upstream=protocol-error" in env.new_log


def test_upstream_bye_during_retr(env):
    with env.unharmed():
        env.fake.hooks["body"] = send_then_close(b"* BYE server shutting down\r\n")
        c = env.login()
        reply = c.cmd("RETR 1")
        assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
        # Whatever popgate does next, it never sends a message it cannot read.
        try:
            again = c.cmd("RETR 1")
        except Pop3Closed:
            again = None
        assert again is None or again.startswith(b"-ERR [SYS/TEMP]"), again
        c.close()


# ---- upstream TLS ----------------------------------------------------------------

def tls_popgate(bed, fake, **upstream):
    up = {"host": "127.0.0.1", "port": fake.port, "ca_file": bed.cert, "verify": "yes",
          "connect_timeout": 3, "command_timeout": 3}
    up.update(upstream)
    return testbed.Popgate(bed, server={"allow_plaintext_auth": "yes"}, upstream=up).start()


def login_reply(pg):
    c = POP3("127.0.0.1", pg.port, timeout=15)
    try:
        assert is_ok(c.cmd(f"USER {USER}"))
        return c.cmd(f"PASS {PASSWORD}")
    finally:
        c.close()


def finish(pg):
    assert pg.running()
    pg.stop()  # checks exit status and sanitizer reports


@pytest.fixture(scope="module")
def tls_fake(bed):
    fake = FakeImap(messages=MESSAGES, user=USER.encode(), password=PASSWORD.encode(), tls="implicit",
                    certfile=bed.cert, keyfile=bed.key)
    yield fake
    fake.stop()


def test_implicit_tls_certificate_for_another_name_is_refused(bed, tls_fake):
    pg = tls_popgate(bed, tls_fake, tls="implicit", verify_name="imap.example.org")
    try:
        tls_fake.reset()
        reply = login_reply(pg)
        assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
        assert "LOGIN" not in tls_fake.verbs() and "AUTHENTICATE" not in tls_fake.verbs()
        assert tls_fake.connections, "popgate never reached the server"
        assert "upstream certificate did not verify" in pg.log()
    finally:
        finish(pg)


def test_implicit_tls_with_the_right_name_works(bed, tls_fake):
    # The control for the test above: only the name differs.
    pg = tls_popgate(bed, tls_fake, tls="implicit", verify_name="localhost")
    try:
        tls_fake.reset()
        assert is_ok(login_reply(pg))
        assert tls_fake.last().tls
    finally:
        finish(pg)


@pytest.mark.parametrize("offered", [False, True], ids=["not-offered", "offered"])
def test_starttls_required(bed, offered):
    fake = FakeImap(messages=MESSAGES, user=USER.encode(), password=PASSWORD.encode(), starttls=offered,
                    certfile=bed.cert, keyfile=bed.key)
    pg = tls_popgate(bed, fake, tls="starttls", verify_name="localhost")
    try:
        reply = login_reply(pg)
        if offered:
            assert is_ok(reply)
            assert fake.last().tls
        else:
            assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
            # The password never went out in plaintext.
            assert "LOGIN" not in fake.verbs() and "AUTHENTICATE" not in fake.verbs()
            assert PASSWORD.encode() not in b"".join(bytes(c.received) for c in fake.connections)
            assert "does not offer STARTTLS" in pg.log()
    finally:
        fake.stop()
        finish(pg)


def test_starttls_with_injected_plaintext_is_refused(bed):
    # CVE-2011-0411: a man in the middle appends a response to the STARTTLS
    # reply, hoping the client reads it as if it came over TLS.
    def inject(conn, tag, cmd):
        conn.send(f"{tag} OK Begin TLS negotiation now\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n".encode())
        conn.stall()
    fake = FakeImap(messages=MESSAGES, user=USER.encode(), password=PASSWORD.encode(), starttls=True,
                    certfile=bed.cert, keyfile=bed.key)
    fake.hooks["starttls"] = inject
    pg = tls_popgate(bed, fake, tls="starttls", verify_name="localhost")
    try:
        reply = login_reply(pg)
        assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
        assert "LOGIN" not in fake.verbs() and "AUTHENTICATE" not in fake.verbs()
        assert "plaintext data after STARTTLS" in pg.log()
    finally:
        fake.stop()
        finish(pg)


# ---- SIGTERM in the middle of a RETR (real Dovecot) ------------------------------

BIG = 20 * 1024 * 1024
READ_RATE = 8 * 1024 * 1024   # octets/s: slow enough that SIGTERM lands mid-RETR


def imap_flags(bed, user, password):
    """{uid: flags} of the INBOX, read without changing anything."""
    conn = bed.imap(user, password)
    try:
        conn.select("INBOX", readonly=True)
        typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
        out = {}
        for item in data:
            m = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", item or b"")
            if m:
                # \Recent only tells which IMAP session saw the message first.
                out[int(m.group(1))] = set(m.group(2).split()) - {b"\\Recent"}
        return out
    finally:
        conn.logout()


@pytest.fixture(scope="module")
def big_user(bed):
    bed.add_user("bigfault", "bigpw")
    msg = big_message(BIG, name=b"fault")
    bed.seed("bigfault", [msg])
    return "bigfault", "bigpw", msg


def start_retr(pg, user, password, rcvbuf=None):
    c = POP3("127.0.0.1", pg.port, timeout=30, rcvbuf=rcvbuf)
    c.login(user, password)
    c.send("RETR 1")
    assert c.read_line().startswith(b"+OK")
    return c


def wait_refused(port, timeout=5.0):
    """True once nothing accepts connections on port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except (ConnectionRefusedError, ConnectionResetError):
            # Reset: the attempt sat in the backlog of a listener that closed.
            return True
        time.sleep(0.05)
    return False


def test_sigterm_drains_a_running_retr(bed, big_user):
    user, password, msg = big_user
    pg = bed.popgate(server={"allow_plaintext_auth": "yes", "shutdown_timeout": 30}).start()
    want = wire(msg) + b".\r\n"
    c = start_retr(pg, user, password, rcvbuf=64 * 1024)
    got = bytearray(c.buf)
    c.buf.clear()
    start = time.monotonic()
    signalled = None
    while len(got) < len(want):
        data = c.sock.recv(64 * 1024)
        assert data, f"connection closed after {len(got)} of {len(want)} octets"
        got += data
        if signalled is None and len(got) > 1024 * 1024:
            pg.proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            assert wait_refused(pg.port), "popgate still accepts connections while draining"
            assert pg.running(), "popgate exited with a session running"
        ahead = len(got) / READ_RATE - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    assert bytes(got) == want
    assert signalled is not None
    assert pg.running(), "popgate exited before the session ended"
    assert is_ok(c.cmd("QUIT")), "the session could not end normally while draining"
    status = pg.proc.wait(timeout=10)
    took = time.monotonic() - signalled
    print(f"\n[shutdown] drained a 20 MB RETR; popgate exited {took:.1f}s after SIGTERM")
    assert status == 0
    assert took < 30
    assert pg.sanitizer_reports() == []


def test_sigterm_deadline_cuts_the_session(bed, big_user):
    user, password, msg = big_user
    login = f"{user}#cut"
    timeout = 1
    pg = bed.popgate(server={"allow_plaintext_auth": "yes", "shutdown_timeout": timeout}).start()
    # A first complete session leaves the device's state in Redis to compare.
    c = POP3("127.0.0.1", pg.port, timeout=15)
    c.login(login, password)
    assert is_ok(c.quit())
    flags_before = imap_flags(bed, user, password)
    redis_before = redis_dump(bed, user)
    # The client reads a little of the message and then nothing.
    c = start_retr(pg, login, password, rcvbuf=64 * 1024)
    c.settimeout(10)
    while len(c.buf) < 256 * 1024:
        c._recv(64 * 1024)
    pg.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    status = pg.proc.wait(timeout=timeout + 10)
    took = time.monotonic() - t0
    print(f"\n[shutdown] a stalled session was cut; popgate exited {took:.1f}s after SIGTERM "
          f"(shutdown_timeout {timeout}s)")
    # Cut: the client never sees the end of the message.
    body = read_to_eof(c)
    assert not body.endswith(b"\r\n.\r\n")
    assert wire(msg).startswith(body)
    assert took < timeout + 2 + TIMEOUT_SLACK   # the deadline, 2 s for final replies
    assert status == 0
    assert pg.sanitizer_reports() == []
    assert imap_flags(bed, user, password) == flags_before   # no \Seen: no QUIT happened
    # The device lock is test_shutdown_releases_the_device_lock's business.
    assert without_locks(redis_dump(bed, user)) == without_locks(redis_before)




def test_sigterm_deadline_adds_nothing_to_a_cut_message(bed, big_user):
    user, password, msg = big_user
    pg = bed.popgate(server={"allow_plaintext_auth": "yes", "shutdown_timeout": 1}).start()
    c = start_retr(pg, f"{user}#slowcut", password, rcvbuf=64 * 1024)
    # The client keeps reading, slowly: the RETR outlasts shutdown_timeout.
    rate = 2 * 1024 * 1024
    got = bytearray(c.buf)
    c.buf.clear()
    start = time.monotonic()
    while True:
        data = c.sock.recv(16 * 1024)
        if not data:
            break
        got += data
        if start and len(got) > 512 * 1024:
            pg.proc.send_signal(signal.SIGTERM)
            start = None
        time.sleep(len(data) / rate)
    assert pg.proc.wait(timeout=10) == 0
    assert len(got) < len(wire(msg)), "the RETR finished before the deadline"
    assert not got.endswith(b"\r\n.\r\n")
    is_prefix = wire(msg).startswith(bytes(got))
    assert is_prefix, f"not the message: ...{bytes(got[-80:])!r}"


def without_locks(dump):
    return {k: v for k, v in dump.items() if ":lock:" not in k}




@pytest.mark.parametrize("how", ["drain", "deadline"])
def test_shutdown_releases_the_device_lock(bed, big_user, how):
    user, password, msg = big_user
    device = f"lock{how}"
    pg = bed.popgate(server={"allow_plaintext_auth": "yes",
                             "shutdown_timeout": 30 if how == "drain" else 1}).start()
    c = start_retr(pg, f"{user}#{device}", password, rcvbuf=64 * 1024)
    if how == "drain":
        c.read_multi_raw()
    pg.proc.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    if how == "drain":
        assert is_ok(c.cmd("QUIT"))
    assert pg.proc.wait(timeout=10) == 0
    c.close()
    assert f"pg1:{{{user}}}:lock:{device}" not in redis_dump(bed, user), \
        "the device stays locked after popgate stopped"
