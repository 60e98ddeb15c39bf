"""Abuse limits and safe defaults (issue 7): password guessing throttled per user
and per address across nodes, per-address connection caps, privilege drop,
and no credential in any log line. Real Dovecot, Redis and popgate."""
import os
import poplib
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "dev"))
import testbed  # noqa: E402

PASSWORD = "Corr3ct-Horse"


@pytest.fixture(scope="module")
def bed():
    with testbed.Testbed(name="pgabuse") as tb:
        yield tb


def start(bed, **server):
    srv = {"allow_plaintext_auth": "yes"}
    srv.update({k: str(v) for k, v in server.items()})
    pg = testbed.Popgate(bed, server=srv)
    pg.start()
    # start() probed the ports; let popgate see those probes close, or they
    # would still count against the connection caps under test.
    time.sleep(0.5)
    return pg


def try_login(pg, user, password):
    p = poplib.POP3("127.0.0.1", pg.port, timeout=15)
    try:
        p.user(user)
        return p.pass_(password)
    except poplib.error_proto as e:
        return e.args[0]
    finally:
        try:
            p.quit()
        except (poplib.error_proto, OSError):
            pass


def test_password_guessing_is_throttled_per_user_across_nodes(bed):
    bed.add_user("guessme", PASSWORD)
    bed.seed("guessme", [b"Subject: x\r\n\r\nx\r\n"])
    node_a = start(bed, max_auth_failures_per_user=3, max_auth_failures_per_addr=100)
    node_b = start(bed, max_auth_failures_per_user=3, max_auth_failures_per_addr=100)
    try:
        for i, node in enumerate((node_a, node_b, node_a)):
            assert try_login(node, "guessme", f"wrong{i}").startswith(b"-ERR [AUTH]")
        # Three failures, spread over two nodes: now even the right password waits.
        reply = try_login(node_b, "guessme", PASSWORD)
        assert reply.startswith(b"-ERR [AUTH]") and b"Too many failed logins" in reply
        # Another user from the same address is not affected.
        bed.add_user("innocent", PASSWORD)
        assert try_login(node_a, "innocent", PASSWORD).startswith(b"+OK")
        # The upstream server never saw the throttled attempt (only 3 failures logged).
        assert bed_auth_failures(bed, "guessme") == 3
    finally:
        node_a.stop()
        node_b.stop()


def bed_auth_failures(bed, user):
    with open(bed.dovecot_log, errors="replace") as f:
        return sum(1 for line in f if f"user=<{user}>" in line and "auth failed" in line.lower()
                   or (f"({user})" in line and "Password mismatch" in line))


def test_password_guessing_is_throttled_per_address(bed):
    pg = start(bed, max_auth_failures_per_user=100, max_auth_failures_per_addr=4)
    try:
        for i in range(4):
            bed.add_user(f"victim{i}", PASSWORD)
            assert try_login(pg, f"victim{i}", "nope").startswith(b"-ERR [AUTH]")
        bed.add_user("victim9", PASSWORD)
        reply = try_login(pg, "victim9", PASSWORD)
        assert b"Too many failed logins" in reply
    finally:
        pg.stop()
    # The counters live in Redis with an expiry (the window), not forever.
    import subprocess
    ttl = subprocess.run(["redis-cli", "-p", str(bed.ports["redis"]), "TTL", "pg1:authfail:addr:{127.0.0.1}"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert 0 < int(ttl) <= 15 * 60


def test_failed_login_is_delayed(bed):
    bed.add_user("slowfail", PASSWORD)
    pg = start(bed, auth_failure_delay=1, max_auth_failures_per_user=100, max_auth_failures_per_addr=100)
    try:
        t0 = time.monotonic()
        assert try_login(pg, "slowfail", "bad").startswith(b"-ERR [AUTH]")
        assert time.monotonic() - t0 >= 0.9
    finally:
        pg.stop()


def test_per_address_connection_cap(bed):
    pg = start(bed, max_connections_per_addr=3)
    socks = []
    try:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", pg.port), timeout=5)
            assert s.recv(100).startswith(b"+OK")
            socks.append(s)
        extra = socket.create_connection(("127.0.0.1", pg.port), timeout=5)
        assert extra.recv(200).startswith(b"-ERR [SYS/TEMP] Too many connections from your address")
        extra.close()
        # A slot frees when a connection ends.
        socks.pop().close()
        deadline = time.monotonic() + 5
        while True:
            s = socket.create_connection(("127.0.0.1", pg.port), timeout=5)
            greeting = s.recv(100)
            if greeting.startswith(b"+OK"):
                socks.append(s)
                break
            s.close()
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        for s in socks:
            s.close()
        pg.stop()


def test_global_connection_cap(bed):
    pg = start(bed, max_connections=2, max_connections_per_addr=0)
    socks = []
    try:
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", pg.port), timeout=5)
            assert s.recv(100).startswith(b"+OK")
            socks.append(s)
        extra = socket.create_connection(("127.0.0.1", pg.port), timeout=5)
        assert extra.recv(200).startswith(b"-ERR [SYS/TEMP] Too many connections")
        extra.close()
    finally:
        for s in socks:
            s.close()
        pg.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs root")
def test_privileges_dropped_after_binding(bed):
    pg = start(bed, user="nobody", group="nogroup")
    try:
        with open(f"/proc/{pg.proc.pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        uid_nobody = 65534
        assert [int(x) for x in status["Uid"].split()] == [uid_nobody] * 4
        assert [int(x) for x in status["Gid"].split()] == [65534] * 4
        # It still works: ports bound before the drop, TLS key read before it too.
        bed.add_user("dropper", PASSWORD)
        assert try_login(pg, "dropper", PASSWORD).startswith(b"+OK")
    finally:
        pg.stop()


def test_no_credential_in_any_log(bed):
    secret = "Sekr1t-\"quote\\back"
    bed.add_user("logcheck", secret)
    pg = start(bed, max_auth_failures_per_user=100, max_auth_failures_per_addr=100)
    try:
        assert try_login(pg, "logcheck", secret).startswith(b"+OK")
        assert try_login(pg, "logcheck", secret + "x").startswith(b"-ERR [AUTH]")
        # AUTH PLAIN too: the base64 form must not appear either.
        import base64
        blob = base64.b64encode(b"\0logcheck\0" + secret.encode()).decode()
        p = poplib.POP3("127.0.0.1", pg.port, timeout=15)
        assert p._shortcmd(f"AUTH PLAIN {blob}").startswith(b"+OK")
        p.quit()
    finally:
        pg.stop()
    log = open(pg.log_path, errors="replace").read()
    assert "logcheck" in log  # the log does have the session
    for needle in (secret, secret + "x", blob, "Sekr1t"):
        assert needle not in log
