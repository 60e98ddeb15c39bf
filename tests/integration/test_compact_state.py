"""Compact device state (issue 16, part 1) against a real Dovecot, a real
Redis and the real popgate binary: what a device retrieved costs at most 16
bytes per message per device in Redis, measured through the daemon, when no
two UIDs follow each other (the worst case for UID-based ids, and what
EMAILID-based ids always cost), and far less when they do; and keys the
previous release wrote (sets of 16-hex hashed ids, a sorted set of retrieval
times) are converted at the device's next login without losing an id, with
popgate-admin showing the same figures before and after.
"""
import json
import math
import os
import poplib
import socket
import struct
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "dev"))
import testbed  # noqa: E402
from redis_resp import Redis, decode_ids  # noqa: E402

PASSWORD = "s3cret"
# The bound of issue 16, over its workload.
BYTES_PER_MESSAGE_PER_DEVICE = 16
MESSAGES = 2000
DEVICES = ("phone", "desk")


def message(i):
    return (b"From: sender@example.org\r\nTo: user@example.org\r\n"
            b"Subject: message %d\r\nMessage-ID: <c%d@example.org>\r\n\r\nbody %d\r\n" % (i, i, i))


@pytest.fixture(scope="module")
def bed():
    tb = testbed.Testbed(name="pgcompact")
    tb.start()
    yield tb
    tb.stop()


@pytest.fixture(scope="module")
def redis(bed):
    r = Redis(bed.ports["redis"])
    yield r
    r.close()


_users = iter(range(1, 1000))


@pytest.fixture
def user(bed):
    name = f"cmp{next(_users)}"
    bed.add_user(name, PASSWORD)
    return name


@pytest.fixture
def popgate(bed):
    sections = {"redis": {"address": f"127.0.0.1:{bed.ports['redis']}", "timeout": 5},
                "policy": {"view": "new", "on_retr": "keep", "on_dele": "hide"}}
    pg = testbed.Popgate(bed, server={"allow_plaintext_auth": "yes"}, extra_sections=sections)
    pg.start()
    yield pg
    pg.stop(check=True)


def login(pg, name, device):
    p = poplib.POP3("127.0.0.1", pg.port, timeout=60)
    p.user(f"{name}#{device}")
    p.pass_(PASSWORD)
    return p


def retrieve_all(pg, name, device):
    p = login(pg, name, device)
    count = p.stat()[0]
    for n in range(1, count + 1):
        p.retr(n)
    p.quit()
    return count


def user_bytes(redis, name):
    """MEMORY USAGE (every sample) summed over the user's keys (None: a key
    that expired since the SCAN, such as a lock released meanwhile)."""
    return sum(redis.call("MEMORY", "USAGE", k, "SAMPLES", "0") or 0 for k in redis.scan(f"pg1:{{{name}}}:*"))


def fnv1a(seed, data):
    h = seed
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def old_state_id(uidvalidity, uid):
    """The previous release's id of a UID-scheme message (a hash;
    message_state_id_hashed_uid() of translate/login_name.c)."""
    return fnv1a(fnv1a(0xCBF29CE484222325, b"U"), struct.pack("<II", uidvalidity, uid))


def uidvalidity(bed, name):
    conn = bed.imap(name, PASSWORD)
    try:
        conn.select("INBOX")
        return int(conn.response("UIDVALIDITY")[1][0])
    finally:
        conn.logout()


def unpack_ids(value):
    return set(decode_ids(value))


def measure(bed, redis, popgate, user):
    """Both devices retrieve every message; bytes of the user's keys per
    message per device, with INFO memory's growth printed for the record."""
    redis.call("EVAL", "collectgarbage('collect') return 0", "0")
    memory_before = redis.memory()
    assert user_bytes(redis, user) == 0
    for device in DEVICES:
        assert retrieve_all(popgate, user, device) == MESSAGES
    key_bytes = user_bytes(redis, user)
    # Garbage the scripts left in Redis's Lua heap is not state.
    redis.call("EVAL", "collectgarbage('collect') return 0", "0")
    memory_after = redis.memory()
    per_message = key_bytes / (MESSAGES * len(DEVICES))
    growth = {f: memory_after[f] - memory_before[f] for f in ("used_memory", "used_memory_dataset")}
    print(f"{user}: user keys {key_bytes} B = {per_message:.2f} B/message/device; INFO memory growth {growth}")
    # What the lists say holds: nothing is new for either device.
    for device in DEVICES:
        p = login(popgate, user, device)
        assert p.stat()[0] == 0
        p.quit()
    return per_message


def test_scattered_uids_cost_at_most_16_bytes_per_message_per_device(bed, redis, popgate, user):
    # 4,000 delivered and numbered, every other one removed: 2,000 messages
    # whose UIDs never follow each other.
    bed.seed(user, [message(i) for i in range(1, 2 * MESSAGES + 1)])
    uidvalidity(bed, user)
    new = os.path.join(bed.maildir(user), "new")
    cur = os.path.join(bed.maildir(user), "cur")
    files = sorted(os.path.join(d, f) for d in (new, cur) for f in os.listdir(d))
    assert len(files) == 2 * MESSAGES
    for f in files[1::2]:
        os.unlink(f)
    per_message = measure(bed, redis, popgate, user)
    assert per_message <= BYTES_PER_MESSAGE_PER_DEVICE
    # Each list holds every id once, 8 bytes each, in one record.
    for k in [f"got:{d}" for d in DEVICES] + ["read"]:
        value = redis.call("GET", f"pg1:{{{user}}}:{k}")
        assert len(value) == 1 + 2 + 8 * MESSAGES and len(decode_ids(value)) == MESSAGES


def test_contiguous_uids_cost_a_few_bytes_per_device(bed, redis, popgate, user):
    bed.seed(user, [message(i) for i in range(1, MESSAGES + 1)])
    per_message = measure(bed, redis, popgate, user)
    # One run per list: the keys' own overhead, spread over 4,000 messages.
    assert per_message <= 0.5
    uv = uidvalidity(bed, user)
    for k in [f"got:{d}" for d in DEVICES] + ["read"]:
        value = redis.call("GET", f"pg1:{{{user}}}:{k}")
        assert len(value) == 2 + 8 + 3  # one id, then a run of 1,999
        assert decode_ids(value) == [uv << 32 | uid for uid in range(1, MESSAGES + 1)]


def admin_devices(bed, popgate):
    admin = os.environ.get("POPGATE_ADMIN_BIN") or os.path.join(os.path.dirname(popgate.binary),
                                                                "popgate-admin")
    def run(name):
        r = subprocess.run([admin, "-c", popgate.config_path, "--json", "device", "list", name],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return {d["device"]: (d["got"], d["hidden"]) for d in json.loads(r.stdout)["devices"]}
    return run


def test_previous_release_keys_are_converted_at_first_login(bed, redis, popgate, user):
    bed.seed(user, [message(i) for i in range(1, 7)])
    uv = uidvalidity(bed, user)
    old = {uid: "%016x" % old_state_id(uv, uid) for uid in range(1, 7)}
    new = {uid: uv << 32 | uid for uid in range(1, 7)}
    key = f"pg1:{{{user}}}:"
    now = int(time.time())
    # As the previous release wrote them: sets of 16-hex hashed ids,
    # retrieval times in a sorted set, a measured size, every key with
    # device_ttl; and an id of a message no longer upstream.
    gone = "%016x" % old_state_id(uv, 99)
    redis.call("SADD", key + "read", old[1], old[2], old[3], old[4], gone)
    redis.call("SADD", key + "got:phone", old[1], old[2], old[3])
    redis.call("SADD", key + "hide:phone", old[5])
    redis.call("ZADD", key + "rtime:phone", now - 7200, old[1], now - 60, old[2], now, old[3])
    redis.call("HSET", key + "size", old[6], 4242)
    redis.call("HSET", key + "dev:phone", "first_seen", now - 86400, "last_seen", now - 60,
               "view", "new", "uidvalidity", uv, "idscheme", "uid", "retrieved", 3)
    for k in ("read", "got:phone", "hide:phone", "rtime:phone", "dev:phone", "size"):
        redis.call("PEXPIRE", key + k, 86400 * 1000)
    devices = admin_devices(bed, popgate)
    assert devices(user) == {"phone": (3, 1)}

    # view new: the phone has 1, 2, 3 and hides 5; 4 and 6 are new to it,
    # 6 with the size measured before.
    p = login(popgate, user, "phone")
    assert p.stat()[0] == 2
    assert [b"Subject: message 4" in b"\n".join(p.top(n, 0)[1]) for n in (1, 2)] == [True, False]
    assert p.list(2).split()[2] == b"4242"
    # Gone without QUIT: what is checked below is the load's conversion alone.
    p.sock.shutdown(socket.SHUT_RDWR)
    p.sock.close()
    deadline = time.monotonic() + 10
    while redis.call("EXISTS", key + "lock:phone") and time.monotonic() < deadline:
        time.sleep(0.05)

    for k in ("read", "got:phone", "hide:phone", "rtime:phone"):
        assert redis.call("TYPE", key + k) == "string", k
        assert 0 < redis.call("PTTL", key + k), k
    # Nothing lost: listed ids in the new form, the unlisted one kept as it
    # was (a later commit prunes it, as any id no longer upstream).
    assert unpack_ids(redis.call("GET", key + "read")) == {new[1], new[2], new[3], new[4], int(gone, 16)}
    got = decode_ids(redis.call("GET", key + "got:phone"))
    assert set(got) == {new[1], new[2], new[3]}
    assert unpack_ids(redis.call("GET", key + "hide:phone")) == {new[5]}
    assert redis.call("HGETALL", key + "size") == [b"%016x" % new[6], b"4242"]
    # Times survive as runs over got's order, rounded up to the hour.
    runs = [tuple(map(int, r.split(b"@"))) for r in redis.call("GET", key + "rtime:phone").split(b",")]
    assert got == [new[1], new[2], new[3]]
    hour = lambda t: math.ceil(t / 3600) * 3600  # noqa: E731
    expected = [(1, hour(now - 7200))] + ([(2, hour(now))] if hour(now - 60) == hour(now)
                                          else [(1, hour(now - 60)), (1, hour(now))])
    assert runs == expected
    assert devices(user) == {"phone": (3, 1)}

    # The converted state is the state: a session adds to it, and prunes
    # the id no longer upstream.
    p = login(popgate, user, "phone")
    p.retr(1)
    p.quit()
    assert decode_ids(redis.call("GET", key + "got:phone")) == [new[1], new[2], new[3], new[4]]
    assert unpack_ids(redis.call("GET", key + "read")) == {new[1], new[2], new[3], new[4]}
    assert devices(user) == {"phone": (4, 1)}
