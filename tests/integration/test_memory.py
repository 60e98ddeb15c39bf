"""Memory per session is independent of message size (docs/design.md: "A message is
never held whole in memory"; backpressure when the client reads slowly).

ASan's shadow memory and quarantine inflate RSS, so this measures the release
binary: POPGATE_RELEASE_BIN if set, else the repository's ./popgate, brought
up to date with `make popgate`.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

from messages import big_message, dot_stuff, expected_retr
from pop3client import is_ok

REPO = Path(__file__).resolve().parents[2]
MESSAGE_SIZE = 20 * 1024 * 1024
MAX_GROWTH_KB = 1024
READ_CHUNK = 16 * 1024
READ_RATE = 4 * 1024 * 1024  # octets/s the client reads: far below loopback speed
SAMPLE_EVERY = 0.02         # seconds between RSS samples
TRANSFER_TIMEOUT = 120


@pytest.fixture(scope="module")
def release_binary():
    path = os.environ.get("POPGATE_RELEASE_BIN")
    if path:
        return os.path.abspath(path)
    r = subprocess.run(["make", "-C", str(REPO), "popgate"], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=600)
    if r.returncode != 0:
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        pytest.fail("`make popgate` failed:\n" + out[-3000:], pytrace=False)
    return str(REPO / "popgate")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def test_slow_20mb_retr_keeps_rss_flat(release_binary, start_popgate, mailbox, connect, capsys):
    msg = big_message(MESSAGE_SIZE)
    mailbox.seed([msg])
    pg = start_popgate(binary=release_binary)
    # A small receive window so the kernel cannot soak up the message for us.
    c = connect(pg.tls_port, tls=True, rcvbuf=64 * 1024, timeout=30)
    c.login(mailbox.user, mailbox.password)
    assert c.stat()[0] == 1
    baseline = rss_kb(pg.pid)

    c.send("RETR 1")
    assert is_ok(c.read_line())
    want = dot_stuff(expected_retr(msg)) + b".\r\n"
    got = bytearray(c.buf)
    c.buf.clear()
    peak = baseline
    next_sample = 0.0
    start = time.monotonic()
    deadline = start + TRANSFER_TIMEOUT
    while len(got) < len(want):
        assert time.monotonic() < deadline, f"RETR unfinished after {TRANSFER_TIMEOUT}s: {len(got)} B"
        data = c.sock.recv(READ_CHUNK)
        assert data, f"connection closed after {len(got)} of {len(want)} octets"
        got += data
        now = time.monotonic()
        if now >= next_sample:
            peak = max(peak, rss_kb(pg.pid))
            next_sample = now + SAMPLE_EVERY
        ahead = len(got) / READ_RATE - (now - start)
        if ahead > 0:
            time.sleep(ahead)
    peak = max(peak, rss_kb(pg.pid))
    growth = peak - baseline

    with capsys.disabled():
        print(f"\n[memory] popgate RSS before RETR {baseline} kB, peak during a slow "
              f"{MESSAGE_SIZE // (1024 * 1024)} MB RETR {peak} kB, growth {growth} kB "
              f"(limit {MAX_GROWTH_KB} kB)")
    assert bytes(got) == want, "RETR bytes differ"
    assert growth < MAX_GROWTH_KB, f"RSS grew by {growth} kB during the RETR"
    assert is_ok(c.cmd("NOOP"))
