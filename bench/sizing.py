#!/usr/bin/env python3
"""popgate sizing by measurement (issue 16, part 4): fills a throwaway Redis
with synthetic device state for many users of a realistic size, reports
Redis memory per user and per message, and measures popgate's login latency
against that Redis with a real Dovecot, before and after the fill.

    python3 bench/sizing.py                # make bench-sizing: 100,000 users, a few minutes
    python3 bench/sizing.py --users 2000   # a quick look

The distribution (stated in the output): messages retrieved per user
log-normal with median --median (1,000) and sigma --sigma (1.0: mean ~1,650,
1 user in 100 above ~10,000), capped at 100,000; 1, 2 or 3 devices (50%, 35%,
15%), each of which retrieved every message (view new: the most state a
device can hold for its mailbox), plus the user's read list; each device's
hash as popgate writes it; every key with device_ttl. Ids are random 8-byte
values, as the hashed ids are. The same users are also written in the
previous release's format (sets of 16-hex ids) into another database for
--old-users of them, to compare.

Logins: --logins sessions (USER, PASS, STAT, UIDL, QUIT) through ./popgate
(release build) against users whose --login-messages messages are in a real
Dovecot and whose state popgate wrote itself; the latency of PASS (upstream
login, listing, lock and state load: one script call) and of the whole
session, median and 95th percentile, with the Redis time per state-load call
(INFO commandstats). Output: bench/sizing.md (or --out).
"""
import argparse
import math
import os
import poplib
import random
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "deploy", "dev"))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
import testbed  # noqa: E402
from redis_resp import Redis  # noqa: E402

PASSWORD = "bench-pw"
DEVICE_TTL_MS = 180 * 86400 * 1000
MAX_MESSAGES = 100000
DEVICE_WEIGHTS = ((1, 0.50), (2, 0.35), (3, 0.15))
DEVICE_NAMES = ("phone", "desk", "laptop")


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=100000)
    ap.add_argument("--median", type=float, default=1000)
    ap.add_argument("--sigma", type=float, default=1.0)
    ap.add_argument("--old-users", type=int, default=2000)
    ap.add_argument("--logins", type=int, default=300)
    ap.add_argument("--login-users", type=int, default=20)
    ap.add_argument("--login-messages", type=int, default=1000)
    ap.add_argument("--gap", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--out", default=os.path.join(HERE, "sizing.md"))
    return ap.parse_args(argv)


def population(args):
    rnd = random.Random(args.seed)
    mu = math.log(args.median)
    out = []
    for _ in range(args.users):
        m = min(MAX_MESSAGES, max(1, int(rnd.lognormvariate(mu, args.sigma))))
        r = rnd.random()
        devices = 1 if r < DEVICE_WEIGHTS[0][1] else 2 if r < DEVICE_WEIGHTS[0][1] + DEVICE_WEIGHTS[1][1] else 3
        out.append((m, devices))
    return out


def dev_hash(now, i):
    return ["first_seen", now - 86400 * 90, "last_seen", now - i % 86400, "last_addr", f"192.0.2.{i % 250 + 1}",
            "view", "new", "uidvalidity", 1700000000 + i % 1000, "idscheme", "uid", "retrieved", 1234]


def varint(v):
    out = bytearray()
    while True:
        byte, v = v & 0x7F, v >> 7
        out.append(byte | (0x80 if v else 0))
        if not v:
            return bytes(out)


def uid_list(rnd, m, gap):
    """The id list (translate/id_list.h, as lua_scripts.c encodes it) of m
    UID-based ids in UID order, where each UID is followed by the next one
    except with probability gap (a message expunged in between), and those
    ids as 16-hex strings for the previous release's format (hashed there,
    random here: only the size matters)."""
    uv = rnd.getrandbits(32) << 32
    out, group, uid, left = [], [], 0, m
    while left > 0:
        # A run ends where a message was expunged: the next UID skips 1 to 5.
        uid += 1 + (rnd.randint(1, 5) if uid else 0)
        # Each UID is followed by the next with probability 1 - gap: the
        # run's length past its first UID is geometric.
        extra = int(math.log(1.0 - rnd.random()) / math.log(1.0 - gap)) if gap > 0 else left
        length = min(left, 1 + extra)
        group.append((uv | uid).to_bytes(8, "big"))
        if length > 1:
            out.append(b"\0" + varint(len(group)) + b"".join(group))
            out.append(b"\1" + varint(length - 1))
            group = []
        uid += length - 1
        left -= length
    if group:
        out.append(b"\0" + varint(len(group)) + b"".join(group))
    return b"".join(out)


def hashed_list(m):
    """m ids that never follow each other (hashed EMAILID/X-GM-MSGID ids): one
    record of 8 bytes each."""
    return b"\0" + varint(m) + os.urandom(8 * m)


def fill(redis, users, kind, gap=0.0, db=0, start=0, seed=0):
    """Writes each user's state into db: kind "uid" or "hashed" id lists, or
    "old", the previous release's sets of 16-hex ids."""
    rnd = random.Random(seed)
    uid_lists = {}
    now = int(time.time())
    redis.call("SELECT", db)
    batch = []
    for i, (m, devices) in enumerate(users, start):
        base = f"pg1:{{syn{i}}}:"
        names = ["read"] + [f"got:{d}" for d in DEVICE_NAMES[:devices]]
        if kind == "old":
            members = [os.urandom(8).hex() for _ in range(m)]
            writes = [("SADD", base + k, *members) for k in names]
        else:
            if kind == "uid":
                # Lists of one length are alike in size: made once, stored per user.
                if m not in uid_lists:
                    uid_lists[m] = uid_list(rnd, m, gap)
                value = uid_lists[m]
            else:
                value = hashed_list(m)
            writes = [("SET", base + k, value) for k in names]
        for w in writes:
            batch.append(w)
            batch.append(("PEXPIRE", w[1], DEVICE_TTL_MS))
        for d in DEVICE_NAMES[:devices]:
            batch.append(("HSET", base + f"dev:{d}", *dev_hash(now, i)))
            batch.append(("PEXPIRE", base + f"dev:{d}", DEVICE_TTL_MS))
        if len(batch) > 2000:
            for r in redis.pipeline(batch):
                if isinstance(r, Exception):
                    raise r
            batch = []
    if batch:
        redis.pipeline(batch)
    redis.call("SELECT", 0)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def logins(pg, users, n):
    pass_s, session_s = [], []
    for k in range(n):
        name = users[k % len(users)]
        t0 = time.monotonic()
        p = poplib.POP3("127.0.0.1", pg.port, timeout=60)
        p.user(f"{name}#phone")
        p.pass_(PASSWORD)
        t1 = time.monotonic()
        p.stat()
        p.uidl()
        p.quit()
        t2 = time.monotonic()
        pass_s.append(t1 - t0)
        session_s.append(t2 - t0)
    return pass_s, session_s


def load_usec(redis):
    """Redis time per EVALSHA call (state load and commit, lock scripts)."""
    for line in redis.call("INFO", "commandstats").decode().splitlines():
        if line.startswith("cmdstat_evalsha:"):
            fields = dict(f.split("=") for f in line.split(":", 1)[1].split(","))
            return float(fields["usec_per_call"]), int(fields["calls"])
    return 0.0, 0


def main(argv):
    args = parse_args(argv)
    # SIGTERM (or SIGINT in the background, where it is ignored otherwise)
    # unwinds through the finally below, which stops every server.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sys.exit(1))
    bed = testbed.Testbed(name="pgsizing")
    bed.start()
    pg = None
    try:
        redis = Redis(bed.ports["redis"], timeout=600)
        names = []
        for u in range(args.login_users):
            name = f"login{u}"
            bed.add_user(name, PASSWORD)
            bed.seed(name, [b"From: a@example.org\r\nSubject: m%d\r\nMessage-ID: <s%d.%d@example.org>\r\n\r\n"
                            b"body\r\n" % (i, u, i) for i in range(args.login_messages)])
            names.append(name)
        pg = testbed.Popgate(bed, binary=os.path.join(REPO, "popgate"), server={"allow_plaintext_auth": "yes",
                             "max_connections_per_addr": 0},
                             extra_sections={"redis": {"address": f"127.0.0.1:{bed.ports['redis']}",
                                                       "timeout": 10},
                                             "policy": {"view": "new", "on_retr": "keep"}})
        pg.start()
        admin = os.path.join(REPO, "popgate-admin")
        for name in names:
            # Every message recorded as retrieved, as a device that had
            # downloaded them all; then one session so Dovecot has indexed it.
            subprocess.run([admin, "-c", pg.config_path, "device", "mark-all", "--new", name, "phone"],
                           check=True, capture_output=True)
            logins(pg, [name], 1)
        redis.call("CONFIG", "RESETSTAT")
        empty_pass, empty_session = logins(pg, names, args.logins)
        empty_usec, _ = load_usec(redis)

        users = population(args)
        messages = sum(m for m, _ in users)
        device_messages = sum(m * d for m, d in users)
        figures = {}
        for kind, db in (("uid", 0), ("hashed", 3)):
            before = redis.memory()
            t0 = time.monotonic()
            fill(redis, users, kind, gap=args.gap, db=db, seed=args.seed)
            fill_s = time.monotonic() - t0
            used = redis.memory()["used_memory"] - before["used_memory"]
            figures[kind] = dict(used=used, fill_s=fill_s)
        redis.call("CONFIG", "RESETSTAT")
        full_pass, full_session = logins(pg, names, args.logins)
        full_usec, calls = load_usec(redis)

        old_users = users[:args.old_users]
        old_dm = sum(m * d for m, d in old_users)
        compare = {}
        for kind, db in (("old", 1), ("uid", 2), ("hashed", 4)):
            before = redis.memory()["used_memory"]
            fill(redis, old_users, kind, gap=args.gap, db=db, seed=args.seed)
            compare[kind] = (redis.memory()["used_memory"] - before) / old_dm

        total = figures["uid"]["used"] + figures["hashed"]["used"]
        ms = lambda v: f"{v * 1000:.1f} ms"  # noqa: E731
        row = lambda k: (f"| {figures[k]['used'] / 2**20:,.0f} MiB | {figures[k]['used'] / len(users):,.0f} B | "  # noqa: E731
                         f"{figures[k]['used'] / messages:.2f} B | {figures[k]['used'] / device_messages:.2f} B | "
                         f"{figures[k]['fill_s']:.0f} s |")
        lines = [
            "# popgate sizing by measurement (`make bench-sizing`)",
            "",
            f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores, "
            f"Redis {redis.call('INFO', 'server').decode().split('redis_version:')[1].split()[0]}, "
            f"load average at the end {os.getloadavg()[0]:.2f}.",
            "",
            f"Synthetic state (`bench/sizing.py`): {len(users):,} users; messages retrieved per user "
            f"log-normal, median {args.median:.0f}, sigma {args.sigma} (mean {messages / len(users):,.0f}, "
            f"99th percentile {percentile([m for m, _ in users], 99):,}, largest {max(m for m, _ in users):,}, "
            f"cap {MAX_MESSAGES:,}); 1/2/3 devices at 50/35/15% (mean {sum(d for _, d in users) / len(users):.2f}), "
            "each having retrieved every message, plus the user's read list; device hashes as popgate writes "
            "them; every key with a TTL. Two id schemes, each for every user, measured apart: UID-based ids "
            f"(servers without OBJECTID, e.g. Dovecot, Courier) where {args.gap:.0%} of UIDs are followed by a "
            "gap (expunged mail), and hashed ids that never follow each other (EMAILID, X-GM-MSGID: Cyrus, "
            "Gmail), the worst case.",
            "",
            "| id scheme | Redis used_memory | per user | per message | per message per device | fill time |",
            "| --- | --- | --- | --- | --- | --- |",
            "| UID-based " + row("uid"),
            "| hashed " + row("hashed"),
            "",
            f"The same first {len(old_users):,} users in the previous release's format (sets of 16-hex ids): "
            f"{compare['old']:.1f} bytes per message per device; this release {compare['uid']:.2f} (UID-based), "
            f"{compare['hashed']:.2f} (hashed).",
            "",
            f"Logins: {args.logins} sessions (USER, PASS, STAT, UIDL, QUIT), one at a time, through "
            f"./popgate (release build) to Dovecot, over {args.login_users} users of {args.login_messages:,} "
            "messages each, every one recorded as retrieved (view new: the state load checks every id).",
            "",
            "| Redis holds | PASS median | PASS p95 | session median | session p95 | Redis time per script call |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| only the login users | {ms(statistics.median(empty_pass))} | {ms(percentile(empty_pass, 95))} | "
            f"{ms(statistics.median(empty_session))} | {ms(percentile(empty_session, 95))} | {empty_usec:.0f} µs |",
            f"| both populations ({total / 2**30:.1f} GiB) | {ms(statistics.median(full_pass))} | "
            f"{ms(percentile(full_pass, 95))} | {ms(statistics.median(full_session))} | "
            f"{ms(percentile(full_session, 95))} | {full_usec:.0f} µs ({calls} calls) |",
            "",
            "Sizing, from the per-user figures above (Redis memory scales with users; add headroom for fork "
            "copy-on-write during BGSAVE and replica sync, up to 2x under heavy writes):",
            "",
            "| users | UID-based ids | hashed ids (worst case) | hashed, with 2x fork headroom |",
            "| --- | --- | --- | --- |",
        ]
        for n in (1_000_000, 10_000_000):
            per = {k: figures[k]["used"] / len(users) * n / 2**30 for k in figures}
            lines.append(f"| {n:,} | {per['uid']:,.1f} GiB | {per['hashed']:,.0f} GiB | {2 * per['hashed']:,.0f} GiB |")
        text = "\n".join(lines) + "\n"
        with open(args.out, "w") as f:
            f.write(text)
        print(text)
    finally:
        if pg:
            pg.stop()
        bed.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
