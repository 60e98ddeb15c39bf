"""popgate-admin (issue 5, item 4) against a real Redis, and against state a
real popgate session left behind with a real Dovecot: every command, its
--json output parsed back, every bad-input case with nothing written, and the
exit statuses (0 done, 1 usage or bad input, 2 not found, 3 Redis).

The binary is POPGATE_ADMIN_BIN, else popgate-admin beside POPGATE_BIN (so
`make integration` tests build/asan/popgate-admin), else ./popgate-admin.
Every run is checked for sanitizer reports.
"""
import itertools
import json
import os
import poplib
import re
import socketserver
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "dev"))
import testbed  # noqa: E402

PASSWORD = "s3cret"
OK, USAGE, NOT_FOUND, UNAVAILABLE = 0, 1, 2, 3
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def popgate_binary():
    return os.path.abspath(os.environ.get("POPGATE_BIN") or REPO / "popgate")


def admin_binary():
    if os.environ.get("POPGATE_ADMIN_BIN"):
        return os.path.abspath(os.environ["POPGATE_ADMIN_BIN"])
    beside = Path(popgate_binary()).with_name("popgate-admin")
    return str(beside if beside.exists() else REPO / "popgate-admin")


@pytest.fixture(scope="module")
def bed():
    if not os.access(admin_binary(), os.X_OK):
        pytest.fail(f"{admin_binary()} is missing: build it with `make build/asan/popgate-admin` "
                    "(or set POPGATE_ADMIN_BIN)", pytrace=False)
    tb = testbed.Testbed(name="pgadmin")
    tb.start()
    yield tb
    tb.stop()


def write_config(bed, name, redis):
    """A popgate.conf whose [redis] section is redis (a dict); the rest is what
    config_load needs to accept the file."""
    path = os.path.join(bed.dir, f"{name}.conf")
    with open(path, "w") as f:
        f.write(testbed.format_ini({
            "server": {"listen": "127.0.0.1:1", "allow_plaintext_auth": "yes"},
            "upstream": {"host": "127.0.0.1", "tls": "none"},
            "redis": redis,
        }))
    return path


@pytest.fixture(scope="module")
def conf(bed):
    return write_config(bed, "admin", {"address": f"127.0.0.1:{bed.ports['redis']}", "timeout": 10})


_users = itertools.count(1)


@pytest.fixture
def user():
    """A user name no other test touches (in lower case: its Redis identity)."""
    return f"adm{next(_users)}"


def run(conf_path, *args, stdin=None):
    """popgate-admin -c conf_path args... -> CompletedProcess (text)."""
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    cmd = [admin_binary()] + (["-c", conf_path] if conf_path else []) + [str(a) for a in args]
    r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60, env=env)
    reports = [ln for ln in r.stderr.splitlines() if any(m in ln for m in SANITIZER_MARKS)]
    assert not reports, f"{cmd}: sanitizer reports:\n{r.stderr}"
    return r


def run_json(conf_path, *args, status=OK):
    r = run(conf_path, "--json", *args)
    assert r.returncode == status, r.stderr
    return json.loads(r.stdout)


# The user's read list is binary (packed ids): compared by its SHA-1.
SHA1_OF_KEY = "local v = redis.call('GET', KEYS[1]) return v and redis.sha1hex(v) or ''"


def redis_cli(bed, *args, db=0):
    out = subprocess.run(["redis-cli", "-p", str(bed.ports["redis"]), "-n", str(db), "--raw", *args],
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.splitlines()


def hgetall(bed, key, db=0):
    flat = redis_cli(bed, "HGETALL", key, db=db)
    return dict(zip(flat[::2], flat[1::2]))


def snapshot(bed, user):
    """Every key of user (device state, map, legacy UIDLs) with its contents."""
    keys = redis_cli(bed, "--scan", "--pattern", f"pg1:{{{user}}}:*") + \
        redis_cli(bed, "--scan", "--pattern", f"pg1:map:{user}")
    dump = {}
    for key in sorted(set(keys)):
        kind = redis_cli(bed, "TYPE", key)[0]
        if kind == "set":
            dump[key] = sorted(redis_cli(bed, "SMEMBERS", key))
        elif kind == "hash":
            dump[key] = hgetall(bed, key)
        else:
            dump[key] = redis_cli(bed, "GET", key)
    return dump


def assert_usage(r, *fragments):
    assert r.returncode == USAGE, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    for fragment in fragments:
        assert fragment in r.stderr, r.stderr


# ---- help and usage ----------------------------------------------------------

def test_help_needs_no_config_or_redis(bed):
    for args, expect in ((["--help"], ["map set USER", "device list USER", "uidl import USER FILE",
                                        "stats", "exit status"]),
                         (["-h"], ["map set USER"]),
                         (["map", "--help"], ["map set USER", "map list"]),
                         (["device", "list", "--help"], ["device mark-all USER DEVICE [--new]"]),
                         (["uidl", "import", "--help"], ["uidl export USER"]),
                         (["stats", "--help"], ["stats"])):
        r = run("/nonexistent/popgate.conf", *args)
        assert r.returncode == OK, r.stderr
        for text in expect:
            assert text in r.stdout
    # A group's help shows that group only.
    r = run(None, "map", "--help")
    assert "device list" not in r.stdout and "uidl import" not in r.stdout


def test_usage_errors_exit_1_before_connecting(bed, user):
    # The configuration does not even exist: argument checks come first.
    missing = "/nonexistent/popgate.conf"
    cases = [
        ([], "no command given"),
        (["frobnicate"], "unknown command frobnicate"),
        (["--bogus", "stats"], "unknown option --bogus"),
        (["map"], "map needs a subcommand"),
        (["map", "frob", user], "unknown subcommand map frob"),
        (["map", "set", user], "needs USER and at least one KEY=VALUE"),
        (["map", "set", user, "view"], "expected KEY=VALUE"),
        (["map", "set", user, "=new"], "expected KEY=VALUE"),
        (["map", "get"], "needs exactly one USER"),
        (["map", "get", user, "extra"], "needs exactly one USER"),
        (["map", "list", "extra"], "takes no arguments"),
        (["device", "list"], "needs exactly one USER"),
        (["device", "reset", user], "needs USER and DEVICE"),
        (["device", "forget", user, "phone", "extra"], "needs USER and DEVICE"),
        (["device", "wipe", user, "phone"], "unknown subcommand device wipe"),
        (["device", "reset", user, "bad/name"], "invalid device name"),
        (["device", "reset", user, "x" * 33], "invalid device name"),
        (["device", "list", "has space"], "invalid user name"),
        (["device", "list", "x" * 256], "invalid user name"),
        (["map", "get", "tab\tuser"], "invalid user name"),
        (["device", "reset", user, "phone", "--new"], "--new only applies to device mark-all"),
        (["uidl", "import", user], "needs USER and FILE"),
        (["uidl", "export"], "needs exactly one USER"),
        (["stats", "now"], "takes no arguments"),
        (["-c"], "-c needs a file name"),
    ]
    for args, message in cases:
        assert_usage(run(None, *args) if args[:1] == ["-c"] else run(missing, *args), message)
    # `--` ends the options: a user name may then start with '-'.
    r = run(missing, "map", "get", "--", "-odd")
    assert r.returncode == USAGE and "cannot read" in r.stderr


def test_bad_config_exits_1_and_redis_down_exits_3(bed, user):
    r = run("/nonexistent/popgate.conf", "stats")
    assert_usage(r, "/nonexistent/popgate.conf", "cannot read")
    bad = os.path.join(bed.dir, "bad.conf")
    with open(bad, "w") as f:
        f.write("[redis]\nbogus = 1\n")
    assert_usage(run(bad, "map", "list"), "line 2")

    down = write_config(bed, "down", {"address": f"127.0.0.1:{testbed.free_port()}", "timeout": 1})
    for args in (["stats"], ["map", "list"], ["map", "set", user, "view=new"], ["map", "get", user],
                 ["device", "list", user], ["device", "forget", user, "phone"]):
        r = run(down, *args)
        assert r.returncode == UNAVAILABLE, (args, r.stderr)
        assert "Connection refused" in r.stderr
        assert r.stdout == ""


# ---- map -----------------------------------------------------------------------

def test_map_set_get_list_del(bed, conf, user):
    mixed = user.upper()
    r = run(conf, "map", "set", mixed, "view=new", "MAX_AGE=30d", "on_dele=trash")
    assert r.returncode == OK, r.stderr
    assert user in r.stdout and "next login" in r.stdout
    # Stored under the lower-case identity, with canonical key names.
    assert hgetall(bed, f"pg1:map:{user}") == {"view": "new", "max_age": "30d", "on_dele": "trash"}

    # A second set adds and replaces keys.
    out = run_json(conf, "map", "set", user, "view=all", "since=2026-01-31", "from_first_login=yes",
                   "max_messages=50", "on_retr=keep")
    assert out == {"user": user, "set": {"view": "all", "since": "2026-01-31", "from_first_login": "yes",
                                         "max_messages": "50", "on_retr": "keep"}}
    settings = {"view": "all", "since": "2026-01-31", "from_first_login": "yes", "max_age": "30d",
                "max_messages": "50", "on_retr": "keep", "on_dele": "trash"}
    assert run_json(conf, "map", "get", mixed) == {"user": user, "settings": settings}
    r = run(conf, "map", "get", user)
    assert r.returncode == OK
    assert r.stdout.splitlines() == sorted(f"{k}={v}" for k, v in settings.items())

    other = f"{user}x"
    run(conf, "map", "set", other, "view=unread")
    maps = run_json(conf, "map", "list")["maps"]
    mine = {m["user"]: m["settings"] for m in maps if m["user"] in (user, other)}
    assert mine == {user: settings, other: {"view": "unread"}}
    r = run(conf, "map", "list")
    assert r.returncode == OK
    assert f"{other}: view=unread" in r.stdout.splitlines()

    # del of some keys, then of the rest.
    assert run_json(conf, "map", "del", user, "view", "SINCE", "view") == {"user": user, "removed": 2}
    assert "view" not in hgetall(bed, f"pg1:map:{user}")
    r = run(conf, "map", "del", user, "view")
    assert r.returncode == NOT_FOUND and "none of those overrides" in r.stderr
    r = run(conf, "map", "del", user)
    assert r.returncode == OK and "5 overrides removed" in r.stdout
    assert redis_cli(bed, "EXISTS", f"pg1:map:{user}") == ["0"]
    assert all(m["user"] != user for m in run_json(conf, "map", "list")["maps"])
    run(conf, "map", "del", other)


def test_map_unknown_user_exits_2(bed, conf, user):
    for args in (["map", "get", user], ["map", "del", user], ["map", "del", user, "view"]):
        r = run(conf, *args)
        assert r.returncode == NOT_FOUND, args
        assert f"no overrides for user {user}" in r.stderr or "none of those" in r.stderr
        assert r.stdout == ""
    r = run(conf, "--json", "map", "get", user)
    assert r.returncode == NOT_FOUND and r.stdout == ""


@pytest.mark.parametrize("pair,message", [
    ("colour=blue", "unknown key colour"),
    ("views=new", "unknown key views"),
    ("view=bogus", "view: invalid value \"bogus\""),
    ("view=", "view: invalid value"),
    ("since=2026-02-30", "since: invalid value"),
    ("since=31.01.2026", "since: invalid value"),
    ("from_first_login=maybe", "from_first_login: invalid value"),
    ("max_age=30x", "max_age: invalid value"),
    ("max_age=-1d", "max_age: invalid value"),
    ("max_messages=4294967296", "max_messages: invalid value"),
    ("max_messages=ten", "max_messages: invalid value"),
    ("on_retr=delete", "on_retr: invalid value"),
    ("on_dele=shred", "on_dele: invalid value"),
])
def test_map_set_bad_input_writes_nothing(bed, conf, user, pair, message):
    run(conf, "map", "set", user, "view=new")
    before = snapshot(bed, user)
    # One good pair before the bad one: nothing at all is written.
    good = "on_dele=trash" if pair.startswith("on_retr") else "on_retr=keep"
    assert_usage(run(conf, "map", "set", user, good, pair), message)
    assert snapshot(bed, user) == before
    if "unknown key" in message:
        assert_usage(run(conf, "map", "set", user, pair), "keys: view, since, from_first_login")


def test_map_set_same_key_twice_refused(bed, conf, user):
    assert_usage(run(conf, "map", "set", user, "view=new", "VIEW=all"), "view given twice")
    assert_usage(run(conf, "map", "del", user, "colour"), "unknown key colour")
    assert snapshot(bed, user) == {}


def test_map_json_escapes_non_ascii_user(bed, conf):
    user = f"j\u00fcrgen{next(_users)}"
    out = run_json(conf, "map", "set", user, "view=new")
    assert out["user"] == user
    assert run_json(conf, "map", "get", user)["settings"] == {"view": "new"}
    run(conf, "map", "del", user)


# ---- devices ---------------------------------------------------------------

def message(i):
    return (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: message %d\r\n"
            b"Message-ID: <admin%d@example.org>\r\n\r\nbody %d\r\n" % (i, i, i))


@pytest.fixture(scope="module")
def popgate(bed):
    """popgate with view new, so each device gets each message once."""
    pg = testbed.Popgate(bed, server={"allow_plaintext_auth": "yes"}, binary=popgate_binary(),
                         extra_sections={"policy": {"view": "new", "on_retr": "keep", "on_dele": "hide"}})
    pg.start()
    yield pg
    pg.stop()


def login(pg, user, device):
    p = poplib.POP3("127.0.0.1", pg.port, timeout=20)
    p.user(f"{user}#{device}")
    p.pass_(PASSWORD)
    return p


def count(pg, user, device):
    p = login(pg, user, device)
    try:
        return p.stat()[0]
    finally:
        p.quit()


def test_device_list_shows_real_session_state(bed, conf, popgate, user):
    bed.add_user(user, PASSWORD)
    bed.seed(user, [message(i) for i in range(1, 4)])
    started = time.time()
    p = login(popgate, user, "phone")
    assert p.stat()[0] == 3
    p.retr(1)
    p.retr(2)
    p.dele(3)
    assert p.quit().startswith(b"+OK")
    assert count(popgate, user, "desk") == 3

    out = run_json(conf, "device", "list", user.upper())
    assert out["user"] == user
    devices = {d["device"]: d for d in out["devices"]}
    assert sorted(devices) == ["desk", "phone"]
    phone = devices["phone"]
    assert phone["retrieved"] == 2 and phone["got"] == 2 and phone["hidden"] == 1
    assert phone["view"] == "new" and phone["last_addr"].startswith("127.0.0.1:")
    assert phone["in_session"] is False and phone["mark_all_pending"] is False
    for field in ("first_seen", "last_seen"):
        assert ISO.match(phone[field]), phone[field]
        t = datetime.strptime(phone[field], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
        assert started - 2 <= t <= time.time() + 2
    assert devices["desk"]["retrieved"] == 0 and devices["desk"]["got"] == 0

    r = run(conf, "device", "list", user)
    assert r.returncode == OK
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["DEVICE", "FIRST_SEEN", "LAST_SEEN", "LAST_ADDR", "RETRIEVED", "VIEW", "GOT",
                                "HIDDEN", "STATE"]
    phone_row = next(ln.split() for ln in lines if ln.startswith("phone "))
    assert phone_row[0] == "phone" and phone_row[3] == phone["last_addr"]
    assert phone_row[4:] == ["2", "new", "2", "1", "-"]


def test_device_list_marks_a_device_in_session(bed, conf, popgate, user):
    bed.add_user(user, PASSWORD)
    p = login(popgate, user, "phone")
    try:
        phone = run_json(conf, "device", "list", user)["devices"][0]
        assert phone["device"] == "phone" and phone["in_session"] is True
        assert ISO.match(phone["first_seen"]) and phone["last_seen"] is None
    finally:
        p.quit()


def test_device_reset_downloads_again(bed, conf, popgate, user):
    bed.add_user(user, PASSWORD)
    bed.seed(user, [message(i) for i in range(1, 4)])
    p = login(popgate, user, "phone")
    p.retr(1)
    p.retr(2)
    p.dele(3)
    p.quit()
    assert count(popgate, user, "phone") == 0
    assert count(popgate, user, "desk") == 3

    out = run_json(conf, "device", "reset", user, "phone")
    assert out == {"user": user, "device": "phone", "action": "reset", "got_forgotten": 2,
                   "hidden_forgotten": 1}
    assert redis_cli(bed, "EXISTS", f"pg1:{{{user}}}:got:phone", f"pg1:{{{user}}}:hide:phone") == ["0"]
    # The device itself and the user's other devices stay.
    assert hgetall(bed, f"pg1:{{{user}}}:dev:phone")["retrieved"] == "2"
    assert count(popgate, user, "phone") == 3


def test_device_mark_all_for_a_new_phone(bed, conf, popgate, user):
    bed.add_user(user, PASSWORD)
    bed.seed(user, [message(i) for i in range(1, 4)])
    assert count(popgate, user, "desk") == 3

    # Unknown device: refused unless --new says it has not logged in yet.
    before = snapshot(bed, user)
    r = run(conf, "device", "mark-all", user, "phone")
    assert r.returncode == NOT_FOUND and "--new" in r.stderr
    assert snapshot(bed, user) == before

    out = run_json(conf, "device", "mark-all", user, "phone", "--new")
    assert out == {"user": user, "device": "phone", "action": "mark-all"}
    key = f"pg1:{{{user}}}:dev:phone"
    assert hgetall(bed, key) == {"mark_all": "1"}
    # A device prepared but never used expires like any device (device_ttl, 180d).
    assert 180 * 86400 - 60 <= int(redis_cli(bed, "TTL", key)[0]) <= 180 * 86400
    assert run_json(conf, "device", "list", user)["devices"][1]["mark_all_pending"] is True

    # popgate carries it out at the phone's first login: nothing to download.
    assert count(popgate, user, "phone") == 0
    bed.seed(user, [message(4)])
    assert count(popgate, user, "phone") == 1


def test_device_mark_all_existing_device(bed, conf, popgate, user):
    bed.add_user(user, PASSWORD)
    bed.seed(user, [message(i) for i in range(1, 3)])
    assert count(popgate, user, "phone") == 2
    r = run(conf, "device", "mark-all", user, "phone")
    assert r.returncode == OK and "next login" in r.stdout
    assert hgetall(bed, f"pg1:{{{user}}}:dev:phone")["mark_all"] == "1"
    assert count(popgate, user, "phone") == 0


def test_device_forget(bed, conf, popgate, user):
    bed.add_user(user, PASSWORD)
    bed.seed(user, [message(1)])
    p = login(popgate, user, "phone")
    p.retr(1)
    p.quit()
    read_before = redis_cli(bed, "EVAL", SHA1_OF_KEY, "1", f"pg1:{{{user}}}:read")
    assert read_before and read_before[0]

    out = run_json(conf, "device", "forget", user, "phone")
    assert out == {"user": user, "device": "phone", "action": "forget"}
    keys = redis_cli(bed, "--scan", "--pattern", f"pg1:{{{user}}}:*:phone")
    assert keys == []
    # What the user's devices retrieved together is the user's, not the device's.
    assert redis_cli(bed, "EVAL", SHA1_OF_KEY, "1", f"pg1:{{{user}}}:read") == read_before
    r = run(conf, "device", "list", user)
    assert r.returncode == NOT_FOUND and f"user {user} has no devices" in r.stderr
    # A new device again: view new offers the message once more.
    assert count(popgate, user, "phone") == 1


def test_unknown_user_or_device_exits_2_and_writes_nothing(bed, conf, user):
    redis_cli(bed, "HSET", f"pg1:{{{user}}}:dev:phone", "first_seen", "1700000000")
    before = snapshot(bed, user)
    for args in (["device", "list", f"{user}nobody"],
                 ["device", "reset", user, "tablet"],
                 ["device", "mark-all", user, "tablet"],
                 ["device", "forget", user, "tablet"],
                 ["device", "forget", f"{user}nobody", "phone"]):
        r = run(conf, "--json", *args)
        assert r.returncode == NOT_FOUND, (args, r.stderr)
        assert r.stdout == ""
        assert "has no device" in r.stderr
    assert snapshot(bed, user) == before


def test_device_list_values_not_written_by_popgate(bed, conf, user):
    """Foreign or damaged values are shown as stored, never break the output."""
    redis_cli(bed, "HSET", f"pg1:{{{user}}}:dev:odd", "first_seen", "yesterday", "last_addr", "a\x1bb\u00e9")
    redis_cli(bed, "HSET", f"pg1:{{{user}}}:dev:bad{{name}}", "first_seen", "1")
    # Not UTF-8: each byte becomes the code point of its value.
    subprocess.run(["redis-cli", "-p", str(bed.ports["redis"]), "HSET", f"pg1:{{{user}}}:dev:odd".encode(),
                    b"view", b"\xff\xc3("], check=True, capture_output=True, timeout=30)
    out = run_json(conf, "device", "list", user)
    assert [d["device"] for d in out["devices"]] == ["odd"]
    assert out["devices"][0]["first_seen"] == "yesterday"
    assert out["devices"][0]["last_addr"] == "a\x1bb\u00e9"
    assert out["devices"][0]["view"] == "\u00ff\u00c3("
    r = run(conf, "device", "list", user)
    assert "a?b\u00e9" in r.stdout and "\x1b" not in r.stdout and "??(" in r.stdout


# ---- legacy UIDLs ----------------------------------------------------------

LEGACY = (
    "# exported from the old server\n"
    "\n"
    "UID1-1103476231 1200 <one@example.org>\r\n"
    "UID2-1103476231\t345\t-\n"
    "UID3-1103476231 99 <dup@example.org>\n"
    "  # an indented comment\n"
    "UID4-1103476231 98 <dup@example.org>\n"
    "UID5-1103476231 4294967295 <five@example.org>"
)


def write(bed, name, text):
    path = os.path.join(bed.dir, name)
    with open(path, "w", newline="") as f:
        f.write(text)
    return path


def test_uidl_import_and_export(bed, conf, user):
    path = write(bed, f"{user}.uidl", LEGACY)
    r = run(conf, "uidl", "import", user.upper(), path)
    assert r.returncode == OK, r.stderr
    assert f"{user}: 2 legacy UIDLs stored (2 by Message-ID, 0 by header hash)" in r.stdout
    assert "3 cannot be matched" in r.stdout
    assert f"{path}:4: uidl UID2-1103476231: no Message-ID, no header hash" in r.stdout
    assert f"{path}:5: uidl UID3-1103476231: same Message-ID as line 7, no header hash" in r.stdout
    assert f"{path}:7: uidl UID4-1103476231: same Message-ID as line 5, no header hash" in r.stdout
    assert hgetall(bed, f"pg1:{{{user}}}:uidl") == {
        "<one@example.org>": "UID1-1103476231 1200",
        "<five@example.org>": "UID5-1103476231 4294967295",
    }

    r = run(conf, "uidl", "export", user)
    assert r.returncode == OK
    assert r.stdout == ("UID1-1103476231 1200 - <one@example.org>\n"
                        "UID5-1103476231 4294967295 - <five@example.org>\n")
    # The export imports again unchanged.
    again = write(bed, f"{user}.export", r.stdout)
    assert run(conf, "uidl", "import", user, again).returncode == OK
    assert run(conf, "uidl", "export", user).stdout == r.stdout

    assert run_json(conf, "uidl", "export", user) == {"user": user, "entries": [
        {"uidl": "UID1-1103476231", "size": 1200, "message_id": "<one@example.org>", "header_hash": None},
        {"uidl": "UID5-1103476231", "size": 4294967295, "message_id": "<five@example.org>",
         "header_hash": None}]}

    # Keys of any syntax and header-hash keys come back the same way.
    h = "0123456789abcdef0123456789abcdef"
    text = f"A1 10 - PM20008:14:54%20AM\nA2 20 {h} -\nA3 30 {h} %3Cx%25%3E\n"
    assert run(conf, "uidl", "import", user, "-", stdin=text).returncode == OK
    assert hgetall(bed, f"pg1:{{{user}}}:uidl") == {
        "PM20008:14:54 AM": "A1 10", f" hdr 20 {h}": "A2 20", "<x%>": "A3 30", " size 20": "1"}
    assert run(conf, "uidl", "export", user).stdout == \
        f"A1 10 - PM20008:14:54%20AM\nA2 20 {h} -\nA3 30 - <x%25>\n"


def test_uidl_import_json_report(bed, conf, user):
    out = run_json(conf, "uidl", "import", user, write(bed, f"{user}.uidl", LEGACY))
    assert out == {"user": user, "entries": 5, "stored": 2, "by_message_id": 2, "by_header_hash": 0,
                   "unmatched": [
        {"line": 4, "uidl": "UID2-1103476231", "message_id": None, "reason": "no message-id and no header hash"},
        {"line": 5, "uidl": "UID3-1103476231", "message_id": "<dup@example.org>",
         "reason": "duplicate message-id", "other_line": 7},
        {"line": 7, "uidl": "UID4-1103476231", "message_id": "<dup@example.org>",
         "reason": "duplicate message-id", "other_line": 5}]}


def test_uidl_import_replaces_atomically(bed, conf, user):
    run(conf, "uidl", "import", user, write(bed, f"{user}.a", "A1 1 <a1@x>\nA2 2 <a2@x>\n"))
    r = run(conf, "uidl", "import", user, "-", stdin="B1 10 <b1@x>\n")
    assert r.returncode == OK, r.stderr
    assert hgetall(bed, f"pg1:{{{user}}}:uidl") == {"<b1@x>": "B1 10"}


def test_uidl_import_malformed_file_writes_nothing(bed, conf, user):
    run(conf, "uidl", "import", user, write(bed, f"{user}.ok", "KEEP 1 <keep@x>\n"))
    before = snapshot(bed, user)
    text = ("GOOD1 10 <g1@x>\n"                  # 1
            "only-two 12\n"                      # 2
            "# fine\n"                           # 3
            + "L" * 71 + " 1 <long@x>\n"         # 4
            "caf\u00e9 1 <c@x>\n"                # 5
            "SIZE 12k <s@x>\n"                   # 6
            "NEG -1 <n@x>\n"                     # 7
            "BIG 4294967296 <b@x>\n"             # 8
            "NOBRACKETS 1 id@x\n"                # 9
            "GOOD1 11 <g2@x>\n"                  # 10: duplicate uidl
            "SPACE 1 <a b@x>\n"                  # 11: four fields: <a is no hash
            "EMPTYID 1 <>\n")                    # 12
    path = write(bed, f"{user}.bad", text)
    r = run(conf, "uidl", "import", user, path)
    assert_usage(r)
    expected = [
        f"{path}:2: expected four fields: <uidl> <size> <header-hash> <message-id>",
        f"{path}:4: uidl longer than 70 characters",
        f"{path}:5: uidl holds a character outside 0x21..0x7E",
        f"{path}:6: size is not a decimal number of octets up to 4294967295",
        f"{path}:7: size is not a decimal number of octets up to 4294967295",
        f"{path}:8: size is not a decimal number of octets up to 4294967295",
        f"{path}:9: message-id must be %XX-encoded (three fields: <...> of 0x21..0x7E), or - when the message has none",
        f"{path}:10: duplicate uidl (first on line 1)",
        f"{path}:11: header-hash must be 32 lower-case hex digits, or -",
        f"{path}:12: message-id must be %XX-encoded (three fields: <...> of 0x21..0x7E), or - when the message has none",
    ]
    lines = r.stderr.splitlines()
    assert lines[:len(expected)] == expected
    assert f"{path}: 10 bad lines, nothing stored" in lines[-1]
    assert snapshot(bed, user) == before

    # Also when the user had nothing stored before.
    fresh = f"{user}new"
    assert run(conf, "uidl", "import", fresh, path).returncode == USAGE
    assert snapshot(bed, fresh) == {}


def test_uidl_import_empty_or_missing_file(bed, conf, user):
    assert_usage(run(conf, "uidl", "import", user, write(bed, f"{user}.empty", "# nothing\n\n")),
                 "no entries, nothing stored")
    assert_usage(run(conf, "uidl", "import", user, "-", stdin=""), "stdin: no entries")
    assert_usage(run(conf, "uidl", "import", user, os.path.join(bed.dir, "missing.uidl")),
                 "No such file or directory")
    assert snapshot(bed, user) == {}


def test_uidl_export_and_del_unknown_user(bed, conf, user):
    for args in (["uidl", "export", user], ["uidl", "del", user]):
        r = run(conf, *args)
        assert r.returncode == NOT_FOUND and f"no legacy UIDLs stored for user {user}" in r.stderr
    run(conf, "uidl", "import", user, "-", stdin="X 1 <x@y>\nY 2 <y@y>\n")
    assert run_json(conf, "uidl", "del", user) == {"user": user, "removed": 2}
    assert redis_cli(bed, "EXISTS", f"pg1:{{{user}}}:uidl") == ["0"]


def test_uidl_export_skips_foreign_entries(bed, conf, user):
    key = f"pg1:{{{user}}}:uidl"
    redis_cli(bed, "HSET", key, "<ok@x>", "OK1 5", " bad value", "X 1", "<v@x>", "no size")
    r = run(conf, "uidl", "export", user)
    assert r.returncode == OK
    assert r.stdout == "OK1 5 - <ok@x>\n"
    assert r.stderr.count("skipping a malformed entry") == 2


# ---- stats -----------------------------------------------------------------------

def test_stats_sums_nodes(bed):
    # Database 3 holds only these nodes (and tests SELECT).
    conf3 = write_config(bed, "db3", {"address": f"127.0.0.1:{bed.ports['redis']}", "database": 3})
    redis_cli(bed, "FLUSHDB", db=3)
    out = run_json(conf3, "stats")
    assert out == {"nodes": [], "totals": {"nodes": 0, "sessions_active": 0, "sessions_total": 0,
                                           "logins_ok": 0, "logins_failed": 0}}
    r = run(conf3, "stats")
    assert r.returncode == OK and "no popgate node" in r.stdout

    for node, started, n in (("gw1:100", 1700000000, 1), ("gw2:200", 1700000100, 10)):
        redis_cli(bed, "HSET", f"pg1:node:{node}", "node", node, "started", str(started),
                  "updated", str(started + 60), "sessions_active", str(n), "sessions_total", str(2 * n),
                  "logins_ok", str(3 * n), "logins_failed", str(4 * n), db=3)
    out = run_json(conf3, "stats")
    assert out["nodes"] == [
        {"node": "gw1:100", "started": "2023-11-14T22:13:20Z", "updated": "2023-11-14T22:14:20Z",
         "sessions_active": 1, "sessions_total": 2, "logins_ok": 3, "logins_failed": 4},
        {"node": "gw2:200", "started": "2023-11-14T22:15:00Z", "updated": "2023-11-14T22:16:00Z",
         "sessions_active": 10, "sessions_total": 20, "logins_ok": 30, "logins_failed": 40}]
    assert out["totals"] == {"nodes": 2, "sessions_active": 11, "sessions_total": 22, "logins_ok": 33,
                             "logins_failed": 44}
    rows = [ln.split() for ln in run(conf3, "stats").stdout.splitlines()]
    assert rows[0] == ["NODE", "STARTED", "UPDATED", "ACTIVE", "SESSIONS", "LOGINS_OK", "LOGINS_FAILED"]
    assert rows[1] == ["gw1:100", "2023-11-14T22:13:20Z", "2023-11-14T22:14:20Z", "1", "2", "3", "4"]
    assert rows[3] == ["total", "2", "nodes", "11", "22", "33", "44"]
    redis_cli(bed, "FLUSHDB", db=3)


def test_stats_of_a_running_popgate(bed, conf, popgate, user):
    bed.add_user(user, PASSWORD)
    assert count(popgate, user, "phone") == 0

    def mine():
        nodes = run_json(conf, "stats")["nodes"]
        return [n for n in nodes if n["node"].endswith(f":{popgate.pid}") and n["logins_ok"] >= 1]
    # popgate publishes every 5 s.
    deadline = time.monotonic() + 15
    while not mine() and time.monotonic() < deadline:
        time.sleep(0.5)
    node = mine()
    assert node, "popgate's node never appeared in stats"
    assert node[0]["sessions_total"] >= 1 and ISO.match(node[0]["started"])


# ---- Redis connection settings ------------------------------------------------

@pytest.fixture
def private_redis(bed):
    """A Redis with a password, for AUTH."""
    port = testbed.free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--requirepass", "adminpw"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    testbed.wait_for_ports([("127.0.0.1", port)], proc, testbed.START_TIMEOUT, "redis-server")
    yield port
    testbed.stop_process(proc)


def test_auth_and_select(bed, private_redis, user):
    good = write_config(bed, "auth", {"address": f"127.0.0.1:{private_redis}", "password": "adminpw",
                                      "database": 2})
    assert run(good, "map", "set", user, "view=all").returncode == OK
    stored = subprocess.run(["redis-cli", "-p", str(private_redis), "-a", "adminpw", "--no-auth-warning",
                             "-n", "2", "--raw", "HGET", f"pg1:map:{user}", "view"],
                            capture_output=True, text=True, timeout=30).stdout.strip()
    assert stored == "all"
    bad = write_config(bed, "badauth", {"address": f"127.0.0.1:{private_redis}", "password": "wrong"})
    r = run(bad, "map", "get", user)
    assert r.returncode == UNAVAILABLE and "AUTH" in r.stderr
    none = write_config(bed, "noauth", {"address": f"127.0.0.1:{private_redis}"})
    r = run(none, "map", "get", user)
    assert r.returncode == UNAVAILABLE and "NOAUTH" in r.stderr


class FakeSentinel(socketserver.ThreadingTCPServer):
    """Answers SENTINEL get-master-addr-by-name with a fixed address, as a
    sentinel whose view lags a failover would."""
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, master_port):
        self.master_port = master_port
        super().__init__(("127.0.0.1", 0), FakeSentinelHandler)


class FakeSentinelHandler(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            line = self.rfile.readline()
            if not line.startswith(b"*"):
                return
            args = []
            for _ in range(int(line[1:])):
                size = int(self.rfile.readline()[1:])
                args.append(self.rfile.read(size + 2)[:-2])
            if [a.lower() for a in args[:2]] == [b"sentinel", b"get-master-addr-by-name"]:
                port = str(self.server.master_port).encode()
                self.wfile.write(b"*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%s\r\n" % (len(port), port))
            else:
                self.wfile.write(b"-ERR unknown command\r\n")


def test_sentinel_finds_the_master(bed, tmp_path, user):
    port = testbed.free_port()
    conf_file = tmp_path / "sentinel.conf"
    conf_file.write_text(f"port {port}\nbind 127.0.0.1\n"
                         f"sentinel monitor pgadmin 127.0.0.1 {bed.ports['redis']} 1\n")
    proc = subprocess.Popen(["redis-server", str(conf_file), "--sentinel"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        testbed.wait_for_ports([("127.0.0.1", port)], proc, testbed.START_TIMEOUT, "redis-sentinel")
        dead = testbed.free_port()
        conf_path = write_config(bed, "sentinel", {
            "sentinels": f"127.0.0.1:{dead}, 127.0.0.1:{port}", "master_name": "pgadmin", "timeout": 1})
        r = run(conf_path, "map", "set", user, "view=new")
        assert r.returncode == OK, r.stderr
        # The first sentinel was down: said so, and the next one answered.
        assert f"sentinel 127.0.0.1:{dead}" in r.stderr
        assert hgetall(bed, f"pg1:map:{user}") == {"view": "new"}

        unknown = write_config(bed, "sentinel2", {"sentinels": f"127.0.0.1:{port}", "master_name": "other"})
        r = run(unknown, "map", "get", user)
        assert r.returncode == UNAVAILABLE and "no sentinel named the master other" in r.stderr
    finally:
        testbed.stop_process(proc)


def test_sentinel_naming_a_replica_is_refused(bed, tmp_path, user):
    port = testbed.free_port()
    replica = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--replicaof", "127.0.0.1", str(bed.ports["redis"])],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    sentinel = FakeSentinel(port)
    thread = threading.Thread(target=sentinel.serve_forever, daemon=True)
    thread.start()
    try:
        testbed.wait_for_ports([("127.0.0.1", port)], replica, testbed.START_TIMEOUT, "redis replica")
        conf_path = write_config(bed, "lagging", {"sentinels": f"127.0.0.1:{sentinel.server_address[1]}"})
        r = run(conf_path, "map", "set", user, "view=new")
        assert r.returncode == UNAVAILABLE
        assert f"redis 127.0.0.1:{port}: not the master" in r.stderr
        assert snapshot(bed, user) == {}
    finally:
        sentinel.shutdown()
        sentinel.server_close()
        testbed.stop_process(replica)
