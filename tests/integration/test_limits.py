"""Abusive clients (issue 7, item 3): endless lines, 10,000 pipelined
commands, a client that never reads a 50 MB RETR, clients that dawdle before
logging in, and user names and passwords built to break IMAP quoting.

Memory is measured on the release binary (ASan's shadow memory and quarantine
inflate RSS): POPGATE_RELEASE_BIN if set, else ./popgate brought up to date
with `make popgate`. Everything else runs on POPGATE_BIN (the ASan build under
`make integration`). What the upstream server receives for odd credentials is
recorded by tests/integration/fake_imap.py.
"""
import base64
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "dev"))
sys.path.insert(0, os.path.dirname(__file__))
import testbed  # noqa: E402
from fake_imap import FakeImap  # noqa: E402
from pop3client import POP3, is_ok  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "limitpw"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


@pytest.fixture(scope="module")
def bed():
    with testbed.Testbed(name="pglimits") as tb:
        yield tb


@pytest.fixture(scope="module")
def release_binary():
    path = os.environ.get("POPGATE_RELEASE_BIN")
    if path:
        return os.path.abspath(path)
    r = subprocess.run(["make", "-C", str(REPO), "popgate"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=600)
    if r.returncode != 0:
        pytest.fail("`make popgate` failed:\n" + (r.stdout + r.stderr).decode("utf-8", "replace")[-3000:],
                    pytrace=False)
    return str(REPO / "popgate")


def checked_stop(pg):
    """Stop a popgate; it must still have been running, and ASan silent."""
    assert pg.running(), "popgate died" + testbed.log_tail(pg.log_path)
    pg.stop()


@pytest.fixture(scope="module")
def release_pg(bed, release_binary):
    pg = bed.popgate(binary=release_binary, server={"allow_plaintext_auth": "yes"}).start()
    yield pg
    checked_stop(pg)


@pytest.fixture(scope="module")
def pg(bed):
    """The ASan build, with a one-second pre-auth timeout."""
    p = bed.popgate(server={"allow_plaintext_auth": "yes", "preauth_timeout": 1}).start()
    yield p
    checked_stop(p)


_users = iter(range(1, 10000))


def new_user(bed, messages):
    name = f"limit{next(_users)}"
    bed.add_user(name, PASSWORD)
    bed.seed(name, messages)
    return name


def login(pg, user, **kw):
    c = POP3("127.0.0.1", pg.port, timeout=15, **kw)
    c.login(user, PASSWORD)
    return c


# ---- endless lines ------------------------------------------------------------

LINE = 100_000           # octets of the first over-long line
MORE = 10 * 1024 * 1024  # octets more of the same line, to make growth visible
MAX_GROWTH_KB = 1024


def test_endless_line_is_refused_in_bounded_memory(bed, release_pg):
    user = new_user(bed, [b"Subject: x\r\n\r\nx\r\n"])
    c = login(release_pg, user)
    baseline = rss_kb(release_pg.pid)
    c.send_raw(b"A" * LINE)
    # Refused at once, before the line ends: popgate does not wait for an LF.
    assert c.read_line() == b"-ERR Command line too long."
    chunk = b"B" * (1024 * 1024)
    peak = baseline
    for _ in range(MORE // len(chunk)):
        c.send_raw(chunk)
        peak = max(peak, rss_kb(release_pg.pid))
    c.send_raw(b"NOOP\r\n")  # still the long line: skipped up to its LF, unanswered
    peak = max(peak, rss_kb(release_pg.pid))
    print(f"\n[limits] RSS {baseline} kB before a {(LINE + MORE) // 1024} KiB line without LF, "
          f"peak {peak} kB (growth {peak - baseline} kB)")
    assert peak - baseline < MAX_GROWTH_KB
    assert c.stat() == (1, 17)   # the next line is a command again
    assert is_ok(c.quit())


def test_endless_line_before_login_and_in_auth_plain(pg):
    c = POP3("127.0.0.1", pg.port, timeout=15)
    c.send_raw(b"X" * LINE)
    assert c.read_line() == b"-ERR Command line too long."
    c.send_raw(b"\r\n")
    assert is_ok(c.cmd("CAPA"))
    c.read_multi()
    # An AUTH PLAIN response may be longer (1024), but not endless.
    assert c.cmd("AUTH PLAIN").startswith(b"+")
    c.send_raw(b"QUFB" * (LINE // 4))
    assert c.read_line() == b"-ERR [AUTH] Authentication response too long."
    c.send_raw(b"\r\n")
    assert is_ok(c.cmd("CAPA"))   # back in AUTHORIZATION, not still in the SASL exchange
    c.read_multi()
    c.quit()


# ---- pipelining -----------------------------------------------------------------

PIPELINED = 10_000


def test_ten_thousand_pipelined_commands_answered_in_order(bed, pg):
    msgs = [b"Subject: one\r\n\r\nbody one\r\n", b"Subject: two\r\n\r\n.body two\r\n", b"Subject: 3\r\n\r\n3\r\n"]
    user = new_user(bed, msgs)
    c = login(pg, user)
    # The reply to each command, learned one at a time.
    cycle = ["NOOP", "STAT", "LIST 1", "UIDL 2", "LIST", "RETR 2", "TOP 3 0"]
    single = {}
    for cmd in cycle:
        reply = c.cmd(cmd) + b"\r\n"
        if cmd in ("LIST", "RETR 2", "TOP 3 0"):
            reply += c.read_multi_raw() + b".\r\n"
        single[cmd] = reply
    single["XYZZY"] = b"-ERR Unknown command.\r\n"
    commands = [cycle[i % len(cycle)] for i in range(PIPELINED)]
    # A few bad commands (more than max_bad_commands would end the session).
    for i in range(999, PIPELINED, 2000):
        commands[i] = "XYZZY"
    want = b"".join(single[cmd] for cmd in commands)
    payload = b"".join(cmd.encode() + b"\r\n" for cmd in commands)

    # One write; a thread sends it so the replies can be read meanwhile.
    writer = threading.Thread(target=c.send_raw, args=(payload,), daemon=True)
    t0 = time.monotonic()
    writer.start()
    got = bytearray(c.buf)
    c.buf.clear()
    c.settimeout(30)
    while len(got) < len(want):
        data = c.sock.recv(256 * 1024)
        assert data, f"connection closed after {len(got)} of {len(want)} octets of replies"
        got += data
    writer.join(10)
    took = time.monotonic() - t0
    print(f"\n[limits] {PIPELINED} pipelined commands in one write: {len(want)} octets of replies "
          f"in {took:.2f}s")
    assert bytes(got) == want
    assert is_ok(c.cmd("NOOP"))   # nothing extra was queued behind them
    assert c.buf == b""
    assert is_ok(c.quit())


# ---- a client that never reads -----------------------------------------------

HUGE = 50 * 1024 * 1024
WATCH = 3.0   # seconds the RSS is watched while the client reads nothing


def huge_message():
    """HUGE octets of plain lines: never read, so their content does not matter."""
    head = b"From: a@example.org\r\nSubject: never read\r\n\r\n"
    line = b"x" * 78 + b"\r\n"
    body = line * ((HUGE - len(head)) // len(line))
    return head + body + b"y" * (HUGE - len(head) - len(body) - 2) + b"\r\n"


def test_client_that_never_reads_a_50mb_retr_keeps_rss_bounded(bed, release_pg):
    msg = huge_message()
    assert len(msg) == HUGE
    user = new_user(bed, [msg])
    c = login(release_pg, user, rcvbuf=64 * 1024)
    assert c.stat()[0] == 1
    baseline = rss_kb(release_pg.pid)
    c.send("RETR 1")
    peak = baseline
    end = time.monotonic() + WATCH
    while time.monotonic() < end:
        peak = max(peak, rss_kb(release_pg.pid))
        time.sleep(0.02)
    print(f"\n[limits] RSS {baseline} kB before a 50 MB RETR the client never reads, "
          f"peak {peak} kB over {WATCH:.0f}s (growth {peak - baseline} kB)")
    assert peak - baseline < MAX_GROWTH_KB
    c.close()
    # The abandoned session goes away and frees the device: a new one works.
    deadline = time.monotonic() + 10
    while True:
        c = POP3("127.0.0.1", release_pg.port, timeout=15)
        reply = c.user_pass(user, PASSWORD)
        if is_ok(reply):
            break
        c.close()
        assert b"[IN-USE]" in reply and time.monotonic() < deadline, reply
        time.sleep(0.2)
    assert c.stat()[0] == 1
    assert is_ok(c.quit())


SMALL = 12 * 1024       # octets of each small message: prefetched (under a quarter of 64 KiB)
SMALL_COUNT = 400       # 4.8 MB in all, far more than the bound


def small_message(i):
    head = b"From: a@example.org\r\nSubject: small %d\r\n\r\n" % i
    line = b"s" * 78 + b"\r\n"
    return head + line * ((SMALL - len(head)) // len(line))


def test_client_that_never_reads_pipelined_retrs_of_small_messages_keeps_rss_bounded(bed, release_binary):
    """With prefetch on (prefetch_kb = 64, the default), a client that sends
    RETR for every small message at once and reads nothing: popgate holds at
    most the client's output bound (NET_STREAM_OUT_HIGH_WATER and what one
    read adds) plus the prefetch budget, not the 4.8 MB the RETRs ask for."""
    pg = bed.popgate(binary=release_binary, server={"allow_plaintext_auth": "yes", "prefetch_kb": 64,
                                                    "log_level": "debug"}).start()
    try:
        user = new_user(bed, [small_message(i) for i in range(SMALL_COUNT)])
        c = login(pg, user, rcvbuf=64 * 1024)
        assert c.stat()[0] == SMALL_COUNT
        baseline = rss_kb(pg.pid)
        c.send_raw(b"".join(b"RETR %d\r\n" % i for i in range(1, SMALL_COUNT + 1)))
        peak = baseline
        end = time.monotonic() + WATCH
        while time.monotonic() < end:
            peak = max(peak, rss_kb(pg.pid))
            time.sleep(0.02)
        print(f"\n[limits] RSS {baseline} kB before {SMALL_COUNT} pipelined RETRs of {SMALL // 1024} KiB "
              f"never read, prefetch on: peak {peak} kB over {WATCH:.0f}s (growth {peak - baseline} kB)")
        # The bodies came in batches: prefetch was at work while memory stayed put.
        assert "event=prefetch " in pg.log()
        assert peak - baseline < MAX_GROWTH_KB
        c.close()
    finally:
        checked_stop(pg)


# ---- dawdling before login --------------------------------------------------------

PREAUTH = 1        # [server] preauth_timeout of the pg fixture
SLACK = 3.0        # seconds the close may come late (ASan, a loaded machine)


def closed_for_inactivity(c, start):
    """The -ERR and the close came, within the pre-auth timeout."""
    c.settimeout(PREAUTH + SLACK + 1)
    reply = c.read_line()
    assert reply == b"-ERR Disconnected for inactivity.", reply
    assert c.is_closed(SLACK)
    took = time.monotonic() - start
    assert PREAUTH * 0.9 <= took <= PREAUTH + SLACK, took


def test_idle_connection_closed_before_login(pg):
    c = POP3("127.0.0.1", pg.port, timeout=15)
    closed_for_inactivity(c, time.monotonic())


def test_trickling_bytes_do_not_extend_the_preauth_timeout(pg):
    # A slowloris: one byte every 0.2 s, never a whole line.
    c = POP3("127.0.0.1", pg.port, timeout=15)
    start = time.monotonic()
    arrived = None
    while arrived is None and time.monotonic() - start < PREAUTH + SLACK + 2:
        try:
            c.send_raw(b"U")
        except OSError:
            pass
        ready, _, _ = select.select([c.sock], [], [], 0.2)
        if ready:
            arrived = time.monotonic() - start
    assert arrived is not None, "still open while bytes trickle in"
    assert arrived <= PREAUTH + SLACK, arrived
    assert c.read_line() == b"-ERR Disconnected for inactivity."
    assert c.is_closed(SLACK)


def test_commands_do_not_extend_the_preauth_timeout(pg):
    c = POP3("127.0.0.1", pg.port, timeout=15)
    start = time.monotonic()
    while time.monotonic() - start < PREAUTH + SLACK + 0.5:
        try:
            c.send(b"CAPA")
            reply = c.read_line()
        except OSError:
            reply = b"closed"
        if not is_ok(reply):
            break
        c.read_multi()
        time.sleep(PREAUTH / 3)
    assert reply == b"-ERR Disconnected for inactivity.", "still connected, never logged in"
    assert time.monotonic() - start <= PREAUTH + SLACK


def test_tls_handshake_never_started_is_closed(pg):
    s = socket.create_connection(("127.0.0.1", pg.tls_port), timeout=PREAUTH + SLACK + 1)
    start = time.monotonic()
    assert s.recv(100) == b""
    assert time.monotonic() - start <= PREAUTH + SLACK
    s.close()


# ---- credentials that try to break IMAP quoting ----------------------------------

UPSTREAM_MODES = {
    "login": (),                                   # LOGIN: quoted strings and literals
    "sasl-ir": ("AUTH=PLAIN", "SASL-IR"),          # AUTHENTICATE PLAIN <base64>
    "sasl": ("AUTH=PLAIN",),                       # AUTHENTICATE PLAIN, "+", <base64>
}

# (name, user, password): passed through exactly, or refused before upstream.
CREDENTIALS = [
    ("quotes", b'o"hara', b'pa"ss"'),
    ("backslashes", b"dom\\user", b"back\\slash\\"),
    ("quote-escape", b'x\\"', b'\\"\\\\"'),
    ("literal-lookalike", b"{5}", b"pw {5}"),
    ("literal-plus", b"u{0+}", b"{3+}"),
    ("imap-specials", b"a(b)c%d*e]f", b"(){}%*]"),
    ("injection", b"user", b'x" "y"\r\nA1 LOGOUT'),
    ("spaces", b"first last", b"correct horse battery staple"),
    ("utf8", "jürgen".encode(), "pässwörd€".encode()),
    ("latin1", b"caf\xe9", b"\xff\xfe\x80"),
    ("control", b"tab\there", b"bell\x07esc\x1b"),
    ("long", b"l" * 100, b"p" * 600),
    ("cr-in-password", b"user", b"pass\rword"),
    ("lf-in-password", b"user", b"pass\nword"),
    ("nul-in-password", b"user", b"pass\x00word"),
    ("cr-in-user", b"us\rer", b"password"),
    ("lf-in-user", b"us\ner", b"password"),
]
FORBIDDEN = b"\r\n\x00"


def refused(user, password):
    return any(b in FORBIDDEN for b in user + password)


@pytest.fixture(scope="module")
def cred_fake():
    fake = FakeImap()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def cred_pg(bed, cred_fake):
    p = bed.popgate(server={"allow_plaintext_auth": "yes", "max_auth_failures_per_user": 0,
                            "max_auth_failures_per_addr": 0},
                    upstream={"host": "127.0.0.1", "port": cred_fake.port, "tls": "none",
                              "connect_timeout": 5, "command_timeout": 5}).start()
    yield p
    checked_stop(p)


def pop3_login(c, method, login, password):
    """Log in by method (see pop3_can_carry); returns the reply."""
    if method == "auth-plain":
        blob = base64.b64encode(b"\0" + login + b"\0" + password)
        if len(b"AUTH PLAIN " + blob) <= 255:
            return c.cmd(b"AUTH PLAIN " + blob)
        # RFC 5034: an initial response that does not fit the command line
        # goes after the "+" instead.
        assert c.cmd(b"AUTH PLAIN").startswith(b"+")
        return c.cmd(blob)
    r = c.cmd(b"USER " + login)
    assert is_ok(r), r
    return c.cmd(b"PASS " + password)


def pop3_can_carry(method, user, password):
    """USER takes one word; a line holds at most 255 octets and no NUL or LF
    (a lone CR it can). AUTH PLAIN carries any octets."""
    return method == "auth-plain" or not (
        b" " in user or any(b in user + password for b in b"\n\x00") or len(b"PASS " + password) > 255)


@pytest.mark.parametrize("mode", list(UPSTREAM_MODES))
@pytest.mark.parametrize("method,user,password", [
    pytest.param(method, user, password, id=f"{name}-{method}")
    for name, user, password in CREDENTIALS for method in ("auth-plain", "user-pass")
    if pop3_can_carry(method, user, password)])
def test_credentials_reach_upstream_exactly_or_not_at_all(cred_fake, cred_pg, mode, method, user, password):
    cred_fake.reset()
    cred_fake.caps = list(UPSTREAM_MODES[mode])
    cred_fake.accept = (user, password)
    c = POP3("127.0.0.1", cred_pg.port, timeout=15)
    # A device of its own per test: the previous test's lock may still be
    # on its way out. The upstream server never sees the device suffix.
    login = user + f"#{mode}.{method}".encode()
    try:
        reply = pop3_login(c, method, login, password)
    finally:
        c.close()
    logins = [cmd for cmd in cred_fake.all_commands() if cmd.verb in ("LOGIN", "AUTHENTICATE")]
    if refused(user, password):
        assert reply.startswith(b"-ERR"), reply
        assert logins == [], f"sent upstream: {bytes(logins[0].raw)!r}"
    else:
        assert is_ok(reply), reply
        assert len(logins) == 1
        sent = logins[0]
        assert (sent.user, sent.password) == (user, password), bytes(sent.raw)
        assert sent.verb == ("LOGIN" if mode == "login" else "AUTHENTICATE")
        if mode == "sasl-ir":
            assert b"\r\n" not in bytes(sent.raw)[:-2], "SASL-IR expected in one line"
    assert cred_fake.violations() == []
    # Nothing but the login and what follows a login was sent: no injected command.
    assert all(v in ("LOGIN", "AUTHENTICATE", "CAPABILITY", "SELECT", "UID FETCH", "LOGOUT", "NOOP")
               for v in cred_fake.verbs()), cred_fake.verbs()
    assert cred_pg.running()
    assert cred_pg.sanitizer_reports() == []
    # Log lines stay lines whatever the user name holds.
    assert all(line.startswith("ts=") for line in cred_pg.log().splitlines())


def test_fake_server_refuses_what_it_should(cred_fake):
    """The fake's parser is strict, or the test above could pass on a lenient
    one: 8-bit in a quoted string, an unknown escape, and a literal sent
    before the "+" are each recorded."""
    cred_fake.reset()
    cred_fake.caps = []
    for bad, violation in ((b'A1 LOGIN "caf\xe9" "pw"\r\n', "0xe9"),
                           (b'A1 LOGIN "a\\b" "pw"\r\n', "bad escape"),
                           (b"A1 LOGIN {4}\r\nuser \"pw\"\r\n", "before the + continuation")):
        with socket.create_connection(("127.0.0.1", cred_fake.port), timeout=5) as s:
            f = s.makefile("rb")
            f.readline()
            s.sendall(bad)
            if f.readline().startswith(b"+ "):
                f.readline()
        deadline = time.monotonic() + 2
        while not any(violation in v for v in cred_fake.violations()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(violation in v for v in cred_fake.violations()), cred_fake.violations()
        cred_fake.reset()
