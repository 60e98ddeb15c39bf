"""Redis round trips per session do not grow with the mailbox (issue 4, item 8).

Loading and committing the state of every message is one EVALSHA each, whatever
the mailbox size; the scripts' text goes once per connection (SCRIPT LOAD at
connect, before the sessions counted here). This test counts the commands
Redis executed for a session on a 1,000-message and on a 50,000-message
mailbox and requires the same count, and prints login-to-STAT and QUIT times
for the large one (figures, not a pass/fail threshold: timings belong to
benchmarks).
"""
import os
import poplib
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "dev"))
import testbed  # noqa: E402
from loopback_relay import LoopbackRelay  # noqa: E402

PASSWORD = "pw"
SMALL, LARGE = 1000, 50000


class CountingRedisProxy(LoopbackRelay):
    """A loopback TCP relay between popgate and Redis that counts the commands
    (RESP arrays) popgate sends: the number of round trips, whatever the Lua
    scripts then do inside Redis."""

    def __init__(self, redis_port):
        self.commands = 0
        super().__init__(redis_port, backlog=4)

    def client_to_server(self, src, dst, state):
        f = src.makefile("rb")
        while header := f.readline():
            assert header.startswith(b"*"), header
            parts = [header]
            for _ in range(int(header[1:])):
                size_line = f.readline()
                parts.append(size_line)
                parts.append(f.read(int(size_line[1:]) + 2))
            # The node's periodic stats (pg1:node:*) are not a session's.
            key = parts[4] if len(parts) > 4 else b""
            if not key.startswith(b"pg1:node:"):
                self.commands += 1
            dst.sendall(b"".join(parts))


def seed_many(tb, user, count):
    body = b"Subject: bulk\r\n\r\nhello\r\n"
    tb.seed(user, [body] * count)


def session(tb, pg, proxy, user):
    """Login, STAT, RETR 1, DELE 2, QUIT; returns (login_to_stat_s, quit_s, redis calls)."""
    # Open the mailbox once through IMAP so Dovecot's index exists: the first
    # SELECT of 50,000 new files is Dovecot's cost, not the gateway's.
    conn = tb.imap(user, PASSWORD)
    conn.select("INBOX")
    conn.logout()
    before = proxy.commands
    t0 = time.monotonic()
    p = poplib.POP3("127.0.0.1", pg.port, timeout=120)
    p.user(f"{user}#phone")
    p.pass_(PASSWORD)
    count, _ = p.stat()
    t1 = time.monotonic()
    # The whole listing streams out, far past the output high-water mark.
    assert len(p.uidl()[1]) == count
    assert len(p.list()[1]) == count
    p.retr(1)
    p.dele(2)
    t2 = time.monotonic()
    assert p.quit().startswith(b"+OK")
    t3 = time.monotonic()
    time.sleep(0.5)  # the lock release follows the close
    return count, t1 - t0, t3 - t2, proxy.commands - before


@pytest.fixture(scope="module")
def bed():
    with testbed.Testbed(name="pgscale") as tb:
        yield tb


def test_redis_round_trips_do_not_grow_with_mailbox(bed, capsys):
    for user, n in (("small", SMALL), ("large", LARGE)):
        bed.add_user(user, PASSWORD)
        seed_many(bed, user, n)
    proxy = CountingRedisProxy(bed.ports["redis"])
    pg = testbed.Popgate(bed, server={"allow_plaintext_auth": "yes"},
                         extra_sections={"policy": {"view": "all", "on_dele": "hide"},
                                         "redis": {"address": f"127.0.0.1:{proxy.port}"}},
                         binary=os.environ.get("POPGATE_RELEASE_BIN"))
    pg.start()
    try:
        small = session(bed, pg, proxy, "small")
        large = session(bed, pg, proxy, "large")
        # A second session on the large mailbox: state now exists for it.
        large_again = session(bed, pg, proxy, "large")
    finally:
        pg.stop()
        proxy.close()
    assert small[0] == SMALL and large[0] == LARGE and large_again[0] == LARGE - 1
    with capsys.disabled():
        print(f"\n[scale] {LARGE} messages: login-to-STAT {large[1]:.3f} s, QUIT commit {large[2]:.3f} s, "
              f"second session login-to-STAT {large_again[1]:.3f} s; "
              f"Redis commands per session: {SMALL} msgs {small[3]}, {LARGE} msgs {large[3]}, "
              f"again {large_again[3]}")
    assert small[3] == large[3] == large_again[3]
    # What each command is (6 round trips; issue 17 folded 3 commands away):
    #   1-2 throttle check, pipelined: EVALSHA throttle-read (GET of the
    #       user's failure counter, PTTL of the user's upstream backoff) and
    #       GET of the address's failure counter (another Cluster slot);
    #   3   HGETALL of the user's override (pg1:map:<user>, its own slot);
    #   4   EVALSHA lock-acquire, which also reads the legacy UIDL check
    #       (HLEN of pg1:{u}:uidl, GET of the import marker);
    #   5   EVALSHA state-load;
    #   6   EVALSHA lock-refresh, QUIT's precheck: the RETR makes an upstream
    #       step (setting Seen), which must not run without the lock (a session
    #       that changes nothing upstream skips it: test_quit_without_upstream_steps);
    #   7   EVALSHA state-commit, which releases the lock on success.
    assert small[3] == 7


def test_quit_without_upstream_steps(bed, capsys):
    """A session that only looks (login, STAT, UIDL, QUIT: the benchmark's
    session) changes nothing upstream, so QUIT sends no precheck: 6 commands.
    Its commit releases the lock in the same step: the lock and the session
    count are gone when QUIT has answered, with no release command after."""
    from redis_resp import Redis
    bed.add_user("looker", PASSWORD)
    seed_many(bed, "looker", 20)
    proxy = CountingRedisProxy(bed.ports["redis"])
    pg = testbed.Popgate(bed, server={"allow_plaintext_auth": "yes"},
                         extra_sections={"redis": {"address": f"127.0.0.1:{proxy.port}"}},
                         binary=os.environ.get("POPGATE_RELEASE_BIN"))
    pg.start()
    redis = Redis(bed.ports["redis"])
    try:
        counts = []
        # The first session also counts the connection's setup (SCRIPT LOAD).
        for _ in range(3):
            before = proxy.commands
            p = poplib.POP3("127.0.0.1", pg.port, timeout=30)
            p.user("looker#phone")
            p.pass_(PASSWORD)
            assert p.stat()[0] == 20
            assert len(p.uidl()[1]) == 20
            assert p.quit().startswith(b"+OK")
            assert redis.call("EXISTS", "pg1:{looker}:lock:phone") == 0
            assert redis.call("ZCARD", "pg1:{looker}:sessions") == 0
            time.sleep(0.5)
            counts.append(proxy.commands - before)
        assert counts[1:] == [6, 6]
    finally:
        redis.close()
        pg.stop()
        proxy.close()
