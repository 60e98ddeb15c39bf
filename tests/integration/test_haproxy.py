"""Several stateless nodes behind HAProxy (issue 8, items 2, 4 and 5): PROXY v2
from a trusted balancer gives popgate the real client address, sessions
spread over both nodes, a killed node's share goes to the other, and
/metrics counts what happened. Everything on loopback."""
import os
import poplib
import re
import socket
import sys
import time
import urllib.request

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "dev"))
import ha_beds  # noqa: E402
import testbed  # noqa: E402

PASSWORD = "pw"


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def metric(text, name, **labels):
    """Sum of the samples of name whose labels include the given ones."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


wait_for = testbed.wait_for


@pytest.fixture
def stack(tmp_path):
    with testbed.Testbed(name="pghaproxy") as tb:
        tb.add_user("alice", PASSWORD)
        tb.seed("alice", [b"Subject: m%d\r\n\r\nbody\r\n" % i for i in range(1, 4)])
        nodes = []
        for _ in range(2):
            mport = testbed.free_port()
            pg = testbed.Popgate(tb, server={"allow_plaintext_auth": "yes", "proxy_trusted": "127.0.0.1/32"},
                                 extra_sections={"metrics": {"listen": f"127.0.0.1:{mport}"}})
            pg.metrics_port = mport
            pg.start()
            nodes.append(pg)
        haproxy = ha_beds.HAProxy(str(tmp_path), ["pop3"],
                                  [(f"n{i}", {"pop3": pg.port}, pg.metrics_port)
                                   for i, pg in enumerate(nodes)], timeout_client_s=30)
        try:
            haproxy.start()
            yield tb, nodes, haproxy.ports["pop3"]
        finally:
            haproxy.stop()
            for pg in nodes:
                pg.stop(check=False)


def session(front, device):
    p = poplib.POP3("127.0.0.1", front, timeout=15)
    local_port = p.sock.getsockname()[1]
    p.user(f"alice#{device}")
    p.pass_(PASSWORD)
    n = p.stat()[0]
    assert p.quit().startswith(b"+OK")
    return local_port, n


def test_two_nodes_behind_haproxy(stack):
    tb, nodes, front = stack
    time.sleep(1.0)  # both nodes checked healthy at least once
    ports = [session(front, f"d{i}")[0] for i in range(6)]

    logs = [pg.log() for pg in nodes]
    # Round robin: both nodes served sessions.
    served = [sum(f"peer=127.0.0.1:{p} " in log for p in ports) for log in logs]
    assert served[0] > 0 and served[1] > 0, served
    # The peer each node logged is the client's own port, not HAProxy's: the
    # PROXY v2 header was believed.
    assert sum(served) >= 6

    scraped = [scrape(pg.metrics_port) for pg in nodes]
    assert sum(metric(t, "popgate_logins_total", result="ok") for t in scraped) == 6
    assert sum(metric(t, "popgate_sessions_total", outcome="quit") for t in scraped) == 6
    assert all(metric(t, "popgate_redis_latency_seconds_count") >= 1 for t in scraped)
    with urllib.request.urlopen(f"http://127.0.0.1:{nodes[0].metrics_port}/health", timeout=5) as r:
        assert r.status == 200

    # One node dies; HAProxy's health check sends everyone to the other.
    os.kill(nodes[0].proc.pid, 9)
    nodes[0].proc.wait()
    time.sleep(1.0)
    for i in range(4):
        session(front, f"after{i}")
    assert metric(scrape(nodes[1].metrics_port), "popgate_logins_total", result="ok") == served[1] + 4


def test_proxy_header_from_untrusted_peer_is_not_believed():
    with testbed.Testbed(name="pguntrusted") as tb:
        pg = testbed.Popgate(tb, server={"allow_plaintext_auth": "yes", "proxy_trusted": "10.255.255.0/24"})
        pg.start()
        try:
            s = socket.create_connection(("127.0.0.1", pg.port), timeout=5)
            assert s.recv(100).startswith(b"+OK")
            s.sendall(b"PROXY TCP4 192.0.2.1 192.0.2.2 1234 110\r\n")
            assert s.recv(100).startswith(b"-ERR")
            s.close()
            time.sleep(0.3)
            assert "192.0.2.1" not in pg.log()
        finally:
            pg.stop()
