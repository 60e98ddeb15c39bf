"""Per-device download state (issue 4), each test a user's story, against a real
IMAP server, a real Redis and the real popgate binary.

The stories that only need an IMAP server run against every server of
conftest.UPSTREAMS (fixture `up`; popgate keeps its state in the module's
Dovecot test bed's Redis either way); the ones that stop Redis or rebuild a
Dovecot mailbox run against Dovecot. Every story runs on its own user so
stories do not see each other's state.
"""
import imaplib
import os
import poplib
import socket
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "dev"))
import testbed  # noqa: E402
from conftest import UPSTREAMS  # noqa: E402
from messages import native  # noqa: E402

PASSWORD = "s3cret"


def message(i, extra=b""):
    return (b"From: sender@example.org\r\nTo: user@example.org\r\n"
            b"Subject: message %d\r\nMessage-ID: <m%d@example.org>\r\n\r\nbody of %d\r\n" % (i, i, i)) + extra


def seed(up, user, msgs):
    """Store msgs as the server's own delivery would (messages.native():
    LF files on Courier, test_differential.py K0)."""
    up.seed(user, [native(up.kind, m) for m in msgs])


@pytest.fixture(scope="module")
def bed():
    tb = testbed.Testbed(name="pgdev")
    tb.start()
    yield tb
    tb.stop()


_users = iter(range(1, 1000))


@pytest.fixture(params=UPSTREAMS)
def up(request, bed, upstream_bed):
    """The IMAP server of the story: this module's Dovecot, or the run's bed
    of another server (upstream_beds.py)."""
    return bed if request.param == "dovecot" else upstream_bed(request.param)


dovecot_only = pytest.mark.parametrize("up", ["dovecot"], indirect=True)


@pytest.fixture
def user(up):
    name = f"dev{next(_users)}"
    up.add_user(name, PASSWORD)
    return name


def start_popgate(bed, policy=None, redis_port=None, upstream=None, upstream_keys=None,
                  **server):
    """A popgate with its state in bed's Redis, in front of upstream (a bed;
    default bed's Dovecot), with upstream_keys added to its [upstream]."""
    # DESIGN.md's defaults, which the test bed's Popgate does not use.
    full_policy = {"view": "unread", "on_retr": "seen", "on_dele": "hide"}
    full_policy.update(policy or {})
    sections = {"redis": {"address": f"127.0.0.1:{redis_port or bed.ports['redis']}", "timeout": 2},
                "state": {"lock_ttl": "30s"}, "policy": full_policy}
    srv = {"allow_plaintext_auth": "yes"}
    srv.update(server)
    pg = testbed.Popgate(bed, server=srv, extra_sections=sections,
                         upstream={**(upstream or bed).popgate_upstream(), **(upstream_keys or {})})
    pg.start()
    return pg


@pytest.fixture
def popgate(bed, up):
    pg = start_popgate(bed, upstream=up)
    yield pg
    pg.stop()


def login(pg, name, device=None):
    p = poplib.POP3("127.0.0.1", pg.port, timeout=15)
    p.user(f"{name}#{device}" if device else name)
    p.pass_(PASSWORD)
    return p


def uidls(p):
    return [line.split()[1].decode() for line in p.uidl()[1]]


def subjects(p):
    """Subject of every message in the maildrop, via TOP n 0 (changes nothing)."""
    out = []
    for n in range(1, p.stat()[0] + 1):
        for line in p.top(n, 0)[1]:
            if line.startswith(b"Subject: "):
                out.append(line[len(b"Subject: "):].decode())
    return out


def drop(p):
    """End the session without QUIT, as a crashed client would."""
    p.sock.shutdown(socket.SHUT_RDWR)
    p.sock.close()


def imap_flags(up, name):
    conn = up.imap(name, PASSWORD)
    try:
        conn.select("INBOX")
        typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
        result = {}
        for item in data:
            if not item:
                continue
            text = item.decode() if isinstance(item, bytes) else item[0].decode()
            uid = int(text.split("UID ")[1].split()[0].rstrip(")"))
            result[uid] = sorted(f for f in text.split("FLAGS (")[1].split(")")[0].split() if f != "\\Recent")
        return result
    finally:
        conn.logout()


def redis_cli(bed, *args, port=None):
    out = subprocess.run(["redis-cli", "-p", str(port or bed.ports["redis"]), "--raw", *args],
                         capture_output=True, text=True, timeout=10, check=True)
    return out.stdout.splitlines()


HEX_OF_KEY = ("return (string.gsub(redis.call('GET', KEYS[1]), '.', "
              "function(c) return string.format('%02x', string.byte(c)) end))")


def redis_dump(bed, name):
    """Every key of a user with its full contents (not TTLs)."""
    dump = {}
    for key in redis_cli(bed, "--scan", "--pattern", f"pg1:{{{name}}}:*"):
        kind = redis_cli(bed, "TYPE", key)[0]
        if kind == "set":
            dump[key] = sorted(redis_cli(bed, "SMEMBERS", key))
        elif kind == "hash":
            dump[key] = redis_cli(bed, "HGETALL", key)
        else:
            # Id lists are binary strings (packed ids): dumped as hex.
            dump[key] = redis_cli(bed, "EVAL", HEX_OF_KEY, "1", key)
    return dump


def test_mail_read_on_one_device_is_not_new_on_another(up, user, popgate):
    seed(up, user, [message(i) for i in range(1, 6)])
    phone = login(popgate, user, "phone")
    assert phone.stat()[0] == 5
    for n in (1, 2, 3):
        phone.retr(n)
    assert phone.quit().startswith(b"+OK")

    desk = login(popgate, user, "desk")
    assert subjects(desk) == ["message 4", "message 5"]
    desk.quit()

    # Webmail (any IMAP client) reads message 4.
    conn = up.imap(user, PASSWORD)
    conn.select("INBOX")
    conn.uid("STORE", "4", "+FLAGS", "(\\Seen)")
    conn.logout()

    for device in ("desk", "phone"):
        p = login(popgate, user, device)
        assert subjects(p) == ["message 5"], device
        p.quit()
    # RETR on the phone set \Seen upstream too (on_retr = seen).
    flags = imap_flags(up, user)
    assert [uid for uid, f in sorted(flags.items()) if "\\Seen" in f] == [1, 2, 3, 4]


def test_view_new_gives_each_device_each_message_once(bed, up, user):
    pg = start_popgate(bed, policy={"view": "new", "on_retr": "keep"}, upstream=up)
    try:
        seed(up, user, [message(i) for i in range(1, 4)])
        for device in ("a", "b"):
            p = login(pg, user, device)
            assert subjects(p) == ["message 1", "message 2", "message 3"]
            for n in range(1, 4):
                p.retr(n)
            p.quit()
        seed(up, user, [message(4)])
        # Device a lost its UIDL file: it still gets only what it never retrieved.
        p = login(pg, user, "a")
        assert subjects(p) == ["message 4"]
        p.retr(1)
        p.quit()
        p = login(pg, user, "a")
        assert p.stat()[0] == 0
        p.quit()
        p = login(pg, user, "b")
        assert subjects(p) == ["message 4"]
        p.quit()
        assert all("\\Seen" not in f for f in imap_flags(up, user).values())  # on_retr = keep
    finally:
        pg.stop()


def test_dropped_connection_changes_nothing(bed, up, user, popgate):
    seed(up, user, [message(i) for i in range(1, 5)])
    p = login(popgate, user, "phone")
    p.retr(1)
    p.quit()
    before_redis, before_flags = redis_dump(bed, user), imap_flags(up, user)
    assert before_redis  # the first session left state behind

    p = login(popgate, user, "phone")
    assert p.stat()[0] == 3
    p.retr(1)
    p.retr(2)
    p.dele(3)
    drop(p)
    time.sleep(0.5)
    assert redis_dump(bed, user) == before_redis
    assert imap_flags(up, user) == before_flags
    # And the lock was released: the device can log in again at once.
    p = login(popgate, user, "phone")
    assert p.stat()[0] == 3
    p.quit()


def test_same_device_in_use_across_nodes_other_devices_work(bed, up, user, popgate):
    seed(up, user, [message(1)])
    other_node = start_popgate(bed, upstream=up)
    try:
        first = login(popgate, user, "phone")
        for pg in (popgate, other_node):
            p = poplib.POP3("127.0.0.1", pg.port, timeout=15)
            p.user(f"{user}#phone")
            with pytest.raises(poplib.error_proto) as err:
                p.pass_(PASSWORD)
            assert err.value.args[0].startswith(b"-ERR [IN-USE]")
            p.quit()
        desk = login(other_node, user, "desk")
        assert desk.stat()[0] == 1
        assert first.stat()[0] == 1
        desk.quit()
        first.quit()
        again = login(other_node, user, "phone")
        again.quit()
    finally:
        other_node.stop()


def test_redis_down_at_quit_fails_cleanly_and_recovers():
    # A private test bed: this story stops and restarts its Redis.
    tb_user = "redisstory"
    with testbed.Testbed(name="pgredis") as tb:
        tb.add_user(tb_user, PASSWORD)
        tb.seed(tb_user, [message(i) for i in range(1, 4)])
        pg = start_popgate(tb)
        p = login(pg, tb_user, "phone")
        p.retr(1)
        flags_before = imap_flags(tb, tb_user)
        testbed.stop_process(tb.redis)
        with pytest.raises(poplib.error_proto) as err:
            p.quit()
        assert err.value.args[0].startswith(b"-ERR [SYS/TEMP]")
        assert imap_flags(tb, tb_user) == flags_before  # nothing changed upstream
        # Logins fail closed while Redis is down.
        q = poplib.POP3("127.0.0.1", pg.port, timeout=15)
        q.user(f"{tb_user}#phone")
        with pytest.raises(poplib.error_proto) as err:
            q.pass_(PASSWORD)
        assert err.value.args[0].startswith(b"-ERR [SYS/TEMP]")
        q.quit()
        tb._start_redis()
        deadline = time.monotonic() + 15
        while True:
            try:
                p = login(pg, tb_user, "phone")
                break
            except poplib.error_proto:
                assert time.monotonic() < deadline, "popgate did not reconnect to Redis"
                time.sleep(0.3)
        assert p.stat()[0] == 3  # the failed QUIT recorded nothing
        p.retr(1)
        assert p.quit().startswith(b"+OK")
        pg.stop()


@pytest.mark.parametrize("on_dele", ["hide", "trash", "expunge"])
def test_on_dele(bed, up, user, on_dele):
    # A trash mailbox exists for every on_dele: expunge must leave it empty.
    # A server without SPECIAL-USE (Courier) has no \Trash to find: the
    # mapping names the folder (trash_folder).
    trash = up.create_trash(user)
    keys = {"trash_folder": trash} if "SPECIAL-USE" not in up.capabilities else {}
    pg = start_popgate(bed, policy={"on_dele": on_dele, "view": "all"}, upstream=up,
                       upstream_keys=keys)
    try:
        seed(up, user, [message(i) for i in range(1, 4)])
        # Another IMAP client marked message 3 \Deleted; it must survive our expunge.
        conn = up.imap(user, PASSWORD)
        conn.select("INBOX")
        conn.uid("STORE", "3", "+FLAGS", "(\\Deleted)")
        conn.logout()
        p = login(pg, user, "phone")
        p.dele(1)
        assert p.quit().startswith(b"+OK")
        flags = imap_flags(up, user)
        if on_dele == "hide":
            assert sorted(flags) == [1, 2, 3]
            p = login(pg, user, "phone")
            assert subjects(p) == ["message 2", "message 3"]
            p.quit()
            p = login(pg, user, "desk")
            assert subjects(p) == ["message 1", "message 2", "message 3"]
            p.quit()
        else:
            assert sorted(flags) == [2, 3]
            assert "\\Deleted" in flags[3]
            conn = up.imap(user, PASSWORD)
            typ, data = conn.select(trash)
            assert typ == "OK", data
            trash_count = int(data[0])
            conn.logout()
            assert trash_count == (1 if on_dele == "trash" else 0)
    finally:
        pg.stop()


@pytest.mark.parametrize("up", ["courier"], indirect=True)
def test_on_dele_trash_without_trash_folder_on_courier(bed, up, user):
    """Courier has no SPECIAL-USE: with on_dele = trash and no trash_folder
    there is nowhere to put deleted mail. A permanent condition: DELE is
    refused with [SYS/PERM], and QUIT still commits the rest (the retrieved
    message is \\Seen, the refused one untouched)."""
    assert "SPECIAL-USE" not in up.capabilities
    up.create_trash(user)     # exists, but nothing marks it \Trash
    pg = start_popgate(bed, policy={"on_dele": "trash", "view": "all"}, upstream=up)
    try:
        seed(up, user, [message(i) for i in range(1, 3)])
        p = login(pg, user, "phone")
        p.retr(2)
        with pytest.raises(poplib.error_proto) as err:
            p.dele(1)
        assert err.value.args[0].startswith(b"-ERR [SYS/PERM]")
        assert p.quit().startswith(b"+OK")
        assert imap_flags(up, user) == {1: [], 2: ["\\Seen"]}
        assert "trash-unavailable" in pg.log()
    finally:
        pg.stop()


@dovecot_only
def test_uidvalidity_change_does_not_redownload(bed, user, popgate):
    bed.seed(user, [message(i) for i in range(1, 4)])
    p = login(popgate, user, "phone")
    before = uidls(p)
    for n in (1, 2, 3):
        p.retr(n)
    p.quit()
    # Rebuild the mailbox: Dovecot assigns a new UIDVALIDITY (the time) and new UIDs.
    time.sleep(1.1)
    maildir = bed.maildir(user)
    for name in os.listdir(maildir):
        if name.startswith("dovecot"):
            path = os.path.join(maildir, name)
            if os.path.isfile(path):
                os.unlink(path)
    p = login(popgate, user, "phone")
    assert p.stat()[0] == 0, "the device would download everything again"
    p.quit()
    p = login(popgate, user, "desk")
    assert p.stat()[0] == 0
    p.quit()
    assert before


@dovecot_only
def test_scripts_flushed_mid_run_no_session_fails(bed, user, popgate):
    """Redis forgets popgate's Lua scripts (SCRIPT FLUSH; a restart or a
    failover to a replica that never loaded them does the same) while
    sessions run: every call that meets NOSCRIPT loads its script again and is
    sent once more, so logins, QUIT's commit and the lock release all work."""
    bed.seed(user, [message(i) for i in range(1, 4)])
    redis_cli(bed, "SCRIPT", "FLUSH")  # before the login: lock, legacy check, load
    p = login(popgate, user, "phone")
    assert p.stat()[0] == 3
    p.retr(1)
    redis_cli(bed, "SCRIPT", "FLUSH")  # before QUIT: lock check, commit (which releases the lock)
    assert p.quit().startswith(b"+OK")
    redis_cli(bed, "SCRIPT", "FLUSH")
    # The commit landed (view unread: message 1 is gone for the phone), and the
    # lock was released (else IN-USE until lock_ttl, 30 s).
    p = login(popgate, user, "phone")
    assert subjects(p) == ["message 2", "message 3"]
    assert p.quit().startswith(b"+OK")
    assert redis_cli(bed, "EXISTS", f"pg1:{{{user}}}:lock:phone") == ["0"]
    with open(popgate.log_path, encoding="utf-8", errors="replace") as f:
        log = f.readlines()
    # Loaded at connect, each with the SHA1 popgate computed for it.
    assert not [line for line in log if "redis-script-load-failed" in line]
    reloads = [line for line in log if "redis-script-reload" in line]
    scripts = {field.split("=", 1)[1] for line in reloads for field in line.split() if field.startswith("script=")}
    assert {"lock-acquire", "state-load", "lock-refresh", "state-commit"} <= scripts, reloads


def test_two_mpop_clients_as_two_devices(up, user, popgate, tmp_path):
    seed(up, user, [message(i) for i in range(1, 5)])

    def mpop(device):
        home = tmp_path / device
        home.mkdir(exist_ok=True)
        out = home / "mbox"
        conf = home / "mpoprc"
        conf.write_text(
            "defaults\n"
            f"host 127.0.0.1\nport {popgate.port}\ntls off\nauth user\n"
            f"user {user}#{device}\npassword {PASSWORD}\n"
            "keep on\nonly_new on\n"
            f"uidls_file {home}/uidls\n"
            f"delivery mbox {out}\n"
            "account default\n")
        conf.chmod(0o600)
        out.touch()
        subprocess.run(["mpop", "-C", str(conf), "-q"], check=True, timeout=60)
        return out.read_bytes().count(b"\nFrom ") + out.read_bytes().startswith(b"From ")

    assert mpop("phone") == 4
    assert mpop("phone") == 4          # nothing new: mbox unchanged
    assert mpop("laptop") == 0         # read on the phone: not new on the laptop
    seed(up, user, [message(5)])
    assert mpop("laptop") == 1         # new mail reaches the laptop ...
    assert mpop("phone") == 4          # ... and, read there, not the phone
