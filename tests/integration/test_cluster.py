"""Redis Cluster under popgate (issue 16, parts 2 and 5): three masters with
one replica each, Debian's redis-server in cluster mode on loopback, started
once for this file and stopped at its end. popgate gets only seed nodes
([redis] cluster) and routes every command by its key's slot.

Stories: the device stories; IN-USE across two popgate nodes sharing the
cluster; the master that owns the user's slot fails over during a session
(QUIT commits or is refused, never half); the user's slot migrates while a
session runs (MOVED/ASK/TRYAGAIN followed, the commit lands, no lock broken);
the per-address throttle (a node-wide key) works; config errors."""
import json
import os
import poplib
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "dev"))
import testbed  # noqa: E402

PASSWORD = "Clu5ter-pw"
wait_for = testbed.wait_for


def redis_cli(port, *args, check=False):
    r = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=60)
    if check:
        assert r.returncode == 0, r.stderr
    return r.stdout.strip()


class Cluster:
    """Six redis-server processes in cluster mode: ports[i] with bus port
    bus[i] (cluster-port, so both come from the kernel's free ports)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = {}
        ports = testbed.free_ports(12)
        self.ports, self.bus = ports[:6], ports[6:]

    def start_node(self, i):
        port = self.ports[i]
        d = self.tmp / f"node-{port}"
        d.mkdir(exist_ok=True)
        log = open(d / "redis.log", "ab")
        self.procs[port] = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-port", str(self.bus[i]), "--cluster-config-file", str(d / "nodes.conf"),
             "--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no",
             "--enable-debug-command", "local"],
            stdout=log, stderr=subprocess.STDOUT, cwd=d,
            preexec_fn=testbed._die_with_parent)  # a killed run leaves no node behind
        wait_for(lambda: redis_cli(port, "PING") == "PONG", 10, f"redis on {port}")

    def start(self):
        for i in range(6):
            self.start_node(i)
        redis_cli(self.ports[0], "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
                  "--cluster-replicas", "1", "--cluster-yes", check=True)
        self.wait_ok()

    def wait_ok(self):
        """What an operator waits for after a failover or a reshard before
        the next change (redis-cli --cluster check): every node's state ok
        and every node giving the same masters the same slots; a node that
        has not heard of the change yet still sends commands the old way."""
        def ok():
            return all("cluster_state:ok" in redis_cli(p, "CLUSTER", "INFO")
                       for p in self.ports if self.procs[p].poll() is None)
        wait_for(lambda: ok() and self.agreed(), 30, "cluster_state:ok and one slot map on every node")

    def agreed(self):
        views = set()
        for port in self.ports:
            if self.procs[port].poll() is not None:
                continue
            view = []
            for line in redis_cli(port, "CLUSTER", "NODES").splitlines():
                f = line.split()
                if len(f) < 8:
                    return False    # an error, not a listing
                flags = f[2].split(",")
                if "master" in flags and "fail" not in flags:
                    view.append((f[0], tuple(s for s in f[8:] if not s.startswith("["))))
            views.add(tuple(sorted(view)))
        return len(views) == 1

    def stop(self):
        for p in self.procs.values():
            try:
                p.send_signal(signal.SIGCONT)
            except ProcessLookupError:
                pass
            testbed.stop_process(p)

    @property
    def seeds(self):
        return ", ".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def nodes(self):
        """[(id, port, role, master_id, slots)] as one live node sees them."""
        for port in self.ports:
            if self.procs[port].poll() is None:
                text = redis_cli(port, "CLUSTER", "NODES")
                if text:
                    break
        out = []
        for line in text.splitlines():
            f = line.split()
            flags = f[2].split(",")
            role = "failed" if "fail" in flags else "master" if "master" in flags else "replica"
            out.append((f[0], int(f[1].split("@")[0].rsplit(":", 1)[1]), role, f[3], f[8:]))
        return out

    def owner(self, key):
        """Port of the master serving key's slot, and the slot."""
        slot = int(redis_cli(self.ports[0], "CLUSTER", "KEYSLOT", key))
        for _, port, role, _, slots in self.nodes():
            if role != "master":
                continue
            for s in slots:
                if s.startswith("["):
                    continue
                a, _, b = s.partition("-")
                if int(a) <= slot <= int(b or a):
                    return port, slot
        raise AssertionError(f"no owner for slot {slot}")

    def node_id(self, port):
        return redis_cli(port, "CLUSTER", "MYID")

    def replica_of(self, port):
        mid = self.node_id(port)
        for _, p, role, master, _ in self.nodes():
            if role == "replica" and master == mid and self.procs[p].poll() is None:
                return p
        raise AssertionError(f"no replica of {port}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def bed():
    with testbed.Testbed(name="pgcluster") as tb:
        yield tb


_users = iter(range(1, 1000))


@pytest.fixture
def user(bed):
    name = f"cl{next(_users)}"
    bed.add_user(name, PASSWORD)
    return name


def msg(i):
    return b"Subject: m%d\r\nMessage-ID: <m%d@cluster>\r\n\r\nbody %d\r\n" % (i, i, i)


@pytest.fixture
def start_pg(bed, cluster):
    # Every test starts on a settled cluster, whatever the one before did
    # (or left half done when it failed).
    cluster.wait_ok()
    started = []

    def start(redis=None, server=None, state=None):
        r = {"cluster": cluster.seeds, "timeout": 2}
        r.update(redis or {})
        srv = {"allow_plaintext_auth": "yes"}
        srv.update(server or {})
        pg = testbed.Popgate(bed, server=srv, extra_sections={
            "redis": r, "policy": {"view": "new", "on_retr": "keep"},
            "state": state or {"lock_ttl": "5s"}})
        pg.start()
        started.append(pg)
        wait_for(lambda: "redis-cluster-map" in pg.log(), 10, "popgate to read the slot map")
        return pg

    yield start
    problems = []
    for pg in started:
        try:
            pg.stop(check=True)
        except AssertionError as e:
            problems.append(str(e))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


def login(pg, user, device):
    p = poplib.POP3("127.0.0.1", pg.port, timeout=20)
    p.user(f"{user}#{device}")
    p.pass_(PASSWORD)
    return p


def assert_in_use(pg, user, device):
    """A login of user#device on pg is refused: another session holds it."""
    p = poplib.POP3("127.0.0.1", pg.port, timeout=15)
    p.user(f"{user}#{device}")
    with pytest.raises(poplib.error_proto) as err:
        p.pass_(PASSWORD)
    assert err.value.args[0].startswith(b"-ERR [IN-USE]")
    p.quit()


def user_keys(cluster, port, user):
    return redis_cli(port, "--scan", "--pattern", f"pg1:{{{user}}}:*").split()


def test_device_stories_on_the_cluster(bed, cluster, user, start_pg):
    bed.seed(user, [msg(i) for i in range(1, 4)])
    pg = start_pg()
    phone = login(pg, user, "phone")
    assert phone.stat()[0] == 3
    for i in (1, 2, 3):
        phone.retr(i)
    assert phone.quit().startswith(b"+OK")
    # Retrieval state persists across sessions; the other device sees all.
    phone = login(pg, user, "phone")
    assert phone.stat()[0] == 0
    phone.quit()
    desk = login(pg, user, "desk")
    assert desk.stat()[0] == 3
    desk.retr(1)
    desk.quit()
    # New mail: each device sees it once.
    bed.seed(user, [msg(4)])
    for device, want in (("phone", 1), ("desk", 3)):
        p = login(pg, user, device)
        assert p.stat()[0] == want
        for i in range(1, want + 1):
            p.retr(i)
        assert p.quit().startswith(b"+OK")
    for device in ("phone", "desk"):
        p = login(pg, user, device)
        assert p.stat()[0] == 0
        p.quit()
    # The state lives on the master that serves the user's slot, only there.
    owner, _ = cluster.owner(f"pg1:{{{user}}}:read")
    assert len(user_keys(cluster, owner, user)) >= 3
    for _, port, role, _, _ in cluster.nodes():
        if role == "master" and port != owner:
            assert user_keys(cluster, port, user) == []


class Monitor:
    """MONITOR on every master: the commands popgate sends, wherever they go
    (not those a Lua script runs, nor the node's periodic stats)."""

    def __init__(self, cluster):
        self.lines = []
        self.procs = []
        for _, port, role, _, _ in cluster.nodes():
            if role != "master":
                continue
            p = subprocess.Popen(["redis-cli", "-p", str(port), "MONITOR"], stdout=subprocess.PIPE, text=True)
            assert p.stdout.readline().strip() == "OK"
            threading.Thread(target=self._read, args=(p,), daemon=True).start()
            self.procs.append(p)

    def _read(self, p):
        for line in p.stdout:
            if "lua]" not in line and "pg1:node:" not in line:
                self.lines.append(line.strip())

    def take(self):
        time.sleep(0.5)   # the fire-and-forget lock release
        out, self.lines = self.lines, []
        return out

    def close(self):
        for p in self.procs:
            p.terminate()
            p.wait(5)


def test_steady_state_sends_no_extra_command(bed, cluster, user, start_pg):
    """The cluster path costs no command: a session sends the six a single
    Redis sees for a session that changes nothing upstream (on_retr = keep,
    on_dele = hide: no precheck; test_scale.py names them), with no CLUSTER
    or ASKING among them."""
    bed.seed(user, [msg(i) for i in range(1, 6)])
    pg = start_pg()
    wait_for(lambda: pg.log().count("redis-connected") >= 3, 10, "connections to the three masters")
    mon = Monitor(cluster)
    try:
        counts = []
        for _ in range(2):
            p = login(pg, user, "phone")
            p.stat()
            p.retr(1)
            p.dele(2)
            assert p.quit().startswith(b"+OK")
            lines = mon.take()
            assert not [ln for ln in lines if '"CLUSTER"' in ln.upper() or '"ASKING"' in ln.upper()], lines
            counts.append(len(lines))
    finally:
        mon.close()
    assert counts == [6, 6], counts


def test_in_use_across_two_nodes(bed, user, start_pg):
    bed.seed(user, [msg(1)])
    a, b = start_pg(), start_pg()
    first = login(a, user, "phone")
    for pg in (a, b):
        assert_in_use(pg, user, "phone")
    desk = login(b, user, "desk")
    assert desk.stat()[0] == 1
    desk.quit()
    first.retr(1)
    assert first.quit().startswith(b"+OK")
    again = login(b, user, "phone")
    assert again.stat()[0] == 0
    again.quit()


def test_address_throttle_is_a_node_wide_key(bed, cluster, start_pg):
    pg = start_pg(server={"max_auth_failures_per_user": "100", "max_auth_failures_per_addr": "3"})
    for i in range(3):
        bed.add_user(f"thr{i}", PASSWORD)
        p = poplib.POP3("127.0.0.1", pg.port, timeout=15)
        p.user(f"thr{i}")
        with pytest.raises(poplib.error_proto) as err:
            p.pass_("wrong")
        assert err.value.args[0].startswith(b"-ERR [AUTH]")
        p.quit()
    bed.add_user("thr9", PASSWORD)
    p = poplib.POP3("127.0.0.1", pg.port, timeout=15)
    p.user("thr9")
    with pytest.raises(poplib.error_proto) as err:
        p.pass_(PASSWORD)
    assert b"Too many failed logins" in err.value.args[0]
    p.quit()
    # The counter sits on the master its own slot names, with its window.
    key = "pg1:authfail:addr:{127.0.0.1}"
    owner, _ = cluster.owner(key)
    assert 0 < int(redis_cli(owner, "TTL", key)) <= 15 * 60
    redis_cli(owner, "DEL", key)


def migrate_slot(cluster, slot, src, dst, between=None):
    """Moves slot from port src to port dst as redis-cli --cluster reshard
    does, one key at a time; between() runs while the slot is half moved."""
    src_id, dst_id = cluster.node_id(src), cluster.node_id(dst)
    redis_cli(dst, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", src_id, check=True)
    redis_cli(src, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", dst_id, check=True)
    keys = redis_cli(src, "CLUSTER", "GETKEYSINSLOT", str(slot), "1000").split()
    half = keys[: len(keys) // 2]
    for k in half:
        redis_cli(src, "MIGRATE", "127.0.0.1", str(dst), k, "0", "5000", check=True)
    if between:
        between()
    for k in redis_cli(src, "CLUSTER", "GETKEYSINSLOT", str(slot), "1000").split():
        redis_cli(src, "MIGRATE", "127.0.0.1", str(dst), k, "0", "5000", check=True)
    # The new owner first, then the old one, then the rest, as redis-cli does.
    others = [p for _, p, role, _, _ in cluster.nodes() if role == "master" and p not in (src, dst)]
    for port in [dst, src, *others]:
        redis_cli(port, "CLUSTER", "SETSLOT", str(slot), "NODE", dst_id)
    return len(keys)


def test_resharding_the_users_slot_during_sessions(bed, cluster, user, start_pg):
    bed.seed(user, [msg(i) for i in range(1, 6)])
    # The commit waits (TRYAGAIN) while this test moves the keys with one
    # redis-cli process each: give it time on a loaded machine.
    pg = start_pg(redis={"timeout": 8}, server={"log_level": "debug"})
    # State in the slot first, so there is something to move.
    p = login(pg, user, "phone")
    p.retr(1)
    assert p.quit().startswith(b"+OK")
    src, slot = cluster.owner(f"pg1:{{{user}}}:read")
    dst = next(port for _, port, role, _, _ in cluster.nodes() if role == "master" and port != src)

    phone = login(pg, user, "phone")       # holds the phone's lock
    assert phone.stat()[0] == 4
    phone.retr(1)
    phone.retr(2)
    outcome = {}

    def while_half_moved():
        # A multi-key script now meets some keys here and some there: the
        # source answers TRYAGAIN (or ASK); popgate retries until the slot
        # has moved, within its deadline. Finish the move shortly after.
        def quit_phone():
            try:
                outcome["quit"] = phone.quit()
            except poplib.error_proto as e:
                outcome["quit"] = e.args[0]
        t = threading.Thread(target=quit_phone)
        t.start()
        time.sleep(0.4)
        outcome["thread"] = t
        # The lock is not broken: the same device is still IN-USE elsewhere
        # or the commit already finished; never two sessions at once.
    moved = migrate_slot(cluster, slot, src, dst, between=while_half_moved)
    outcome["thread"].join(10)
    assert moved >= 3
    assert outcome["quit"].startswith(b"+OK"), (outcome["quit"], pg.log()[-6000:])
    wait_for(lambda: cluster.owner(f"pg1:{{{user}}}:read")[0] == dst, 10, "the cluster to agree on the move")
    assert user_keys(cluster, src, user) == []
    # The commit landed: the phone saw messages 2 and 3 of the four.
    p = login(pg, user, "phone")
    assert p.stat()[0] == 2
    # While it holds the lock, a second phone session is refused (on the new node).
    assert_in_use(pg, user, "phone")
    p.quit()
    log = pg.log()
    assert "redis-cross-slot" not in log
    # The commit met the half-moved slot (TRYAGAIN, or ASK once its keys had
    # all moved), and the next command the old owner's MOVED.
    assert "redis-cluster-retry" in log or "redis-cluster-ask" in log
    assert f"event=redis-cluster-moved slot={slot} address=127.0.0.1:{dst}" in log


def test_resharding_with_redis_cli_while_sessions_run(bed, cluster, user, start_pg):
    """redis-cli --cluster reshard moves the user's slot (with the slots
    before it) while sessions keep retrieving and committing."""
    bed.seed(user, [msg(i) for i in range(1, 41)])
    pg = start_pg(redis={"timeout": 5}, server={"log_level": "debug"})
    src, slot = cluster.owner(f"pg1:{{{user}}}:read")
    dst = next(port for _, port, role, _, _ in cluster.nodes() if role == "master" and port != src)
    first = min(int(s.partition("-")[0]) for _, port, role, _, slots in cluster.nodes()
                if port == src for s in slots if not s.startswith("["))
    count = slot - first + 1
    stop = threading.Event()
    errors, committed = [], [0]

    def sessions():
        while not stop.is_set() and committed[0] < 40:
            try:
                p = login(pg, user, "phone")
                n = p.stat()[0]
                if n:
                    p.retr(1)
                reply = p.quit()
                if n and reply.startswith(b"+OK"):
                    committed[0] += 1
            except (poplib.error_proto, OSError) as e:
                errors.append(repr(e))
                time.sleep(0.1)
    t = threading.Thread(target=sessions)
    t.start()
    try:
        redis_cli(cluster.ports[0], "--cluster", "reshard", f"127.0.0.1:{src}",
                  "--cluster-from", cluster.node_id(src), "--cluster-to", cluster.node_id(dst),
                  "--cluster-slots", str(count), "--cluster-yes", check=True)
    finally:
        time.sleep(0.5)
        stop.set()
        t.join(60)
    wait_for(lambda: cluster.owner(f"pg1:{{{user}}}:read")[0] == dst, 10, "the cluster to agree on the move")
    # Every +OK QUIT retrieved one more message, none lost, none twice.
    p = login(pg, user, "phone")
    assert p.stat()[0] == 40 - committed[0]
    p.quit()
    assert committed[0] > 0
    assert f"event=redis-cluster-moved slot={slot}" in pg.log()
    # Sessions refused during the move say so cleanly, never a broken lock.
    assert all("SYS/TEMP" in e or "IN-USE" in e for e in errors), errors
    cluster.wait_ok()


def test_planned_failover_during_a_session_commits(bed, cluster, user, start_pg):
    """CLUSTER FAILOVER (no FORCE) on the replica of the user's master while
    a session holds the device: the old master answers MOVED, popgate
    follows it, the lock (replicated with the rest) is still the session's,
    and QUIT commits on the new master."""
    bed.seed(user, [msg(i) for i in range(1, 6)])
    pg = start_pg()
    phone = login(pg, user, "phone")
    assert phone.stat()[0] == 5
    phone.retr(1)
    phone.retr(2)
    master, slot = cluster.owner(f"pg1:{{{user}}}:read")
    replica = cluster.replica_of(master)
    wait_for(lambda: "master_link_status:up" in redis_cli(replica, "INFO", "replication"), 15, "replica")
    redis_cli(replica, "CLUSTER", "FAILOVER", check=True)
    wait_for(lambda: redis_cli(replica, "ROLE").startswith("master")
             and redis_cli(master, "ROLE").startswith("slave"), 20, "the planned failover")
    # Meanwhile the phone is still IN-USE, on whichever master answers.
    assert_in_use(pg, user, "phone")
    assert phone.quit().startswith(b"+OK")
    assert f"event=redis-cluster-moved slot={slot} address=127.0.0.1:{replica}" in pg.log()
    p = login(pg, user, "phone")
    assert p.stat()[0] == 3
    p.quit()
    cluster.wait_ok()


def admin_binary():
    if os.environ.get("POPGATE_ADMIN_BIN"):
        return os.path.abspath(os.environ["POPGATE_ADMIN_BIN"])
    beside = os.path.join(os.path.dirname(os.path.abspath(os.environ.get("POPGATE_BIN", "./popgate"))),
                          "popgate-admin")
    return beside if os.path.exists(beside) else os.path.abspath("./popgate-admin")


def admin(conf, *args, stdin=None):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1")
    r = subprocess.run([admin_binary(), "-c", conf, *args], input=stdin, capture_output=True, text=True,
                       timeout=60, env=env)
    assert "Sanitizer" not in r.stderr and "runtime error:" not in r.stderr, r.stderr
    return r


def admin_conf(cluster, tmp_path):
    conf = tmp_path / "admin.conf"
    conf.write_text(testbed.format_ini({
        "server": {"listen": "127.0.0.1:1", "allow_plaintext_auth": "yes"},
        "upstream": {"host": "127.0.0.1", "tls": "none"},
        "redis": {"cluster": cluster.seeds, "timeout": 10}}))
    return str(conf)


def test_popgate_admin_against_the_cluster(bed, cluster, user, start_pg, tmp_path):
    conf = admin_conf(cluster, tmp_path)
    bed.seed(user, [msg(i) for i in range(1, 4)])
    pg = start_pg()
    p = login(pg, user, "phone")
    p.retr(1)
    p.retr(2)
    assert p.quit().startswith(b"+OK")
    # Another user whose slot is on another master: lists span the cluster.
    other = next(f"{user}x{i}" for i in range(100)
                 if cluster.owner(f"{user}x{i}")[0] != cluster.owner(user)[0])

    r = admin(conf, "--json", "device", "list", user)
    assert r.returncode == 0, r.stderr
    devices = {d["device"]: d for d in json.loads(r.stdout)["devices"]}
    assert devices["phone"]["retrieved"] == 2 and devices["phone"]["got"] == 2

    for u, view in ((user, "all"), (other, "unread")):
        assert admin(conf, "map", "set", u, f"view={view}").returncode == 0
    maps = {m["user"]: m["settings"] for m in json.loads(admin(conf, "--json", "map", "list").stdout)["maps"]}
    assert maps[user] == {"view": "all"} and maps[other] == {"view": "unread"}
    assert admin(conf, "map", "del", user).returncode == 0
    assert admin(conf, "map", "del", other).returncode == 0

    legacy = tmp_path / "legacy.uidl"
    legacy.write_text("UID1-1 1200 <one@example.org>\n")
    r = admin(conf, "uidl", "import", user, str(legacy))
    assert r.returncode == 0, r.stderr
    assert admin(conf, "uidl", "export", user).stdout == "UID1-1 1200 - <one@example.org>\n"

    assert admin(conf, "device", "reset", user, "phone").returncode == 0
    p = login(pg, user, "phone")
    assert p.stat()[0] == 3
    p.quit()

    def nodes():
        r = admin(conf, "--json", "stats")
        return r.returncode == 0 and any(n["node"].endswith(f":{pg.pid}") for n in json.loads(r.stdout)["nodes"])
    wait_for(nodes, 15, "popgate's node in popgate-admin stats")

    # After the slot moved, the admin finds the state on its new master.
    src, slot = cluster.owner(f"pg1:{{{user}}}:read")
    dst = next(port for _, port, role, _, _ in cluster.nodes() if role == "master" and port != src)
    migrate_slot(cluster, slot, src, dst)
    r = admin(conf, "--json", "device", "list", user)
    assert r.returncode == 0, r.stderr
    assert "phone" in {d["device"] for d in json.loads(r.stdout)["devices"]}


def half_move(cluster, user, first, sent_to_src):
    """Starts moving the user's slot to another master, moving only the
    keys first() picks from the user's keys; once sent_to_src() is true
    (popgate-admin's command reached the old owner, which refused it), the
    rest move and the slot changes hands. Returns (thread, the new owner)."""
    src, slot = cluster.owner(f"pg1:{{{user}}}:read")
    dst = next(port for _, port, role, _, _ in cluster.nodes() if role == "master" and port != src)
    redis_cli(dst, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", cluster.node_id(src), check=True)
    redis_cli(src, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", cluster.node_id(dst), check=True)
    for k in first(user_keys(cluster, src, user)):
        redis_cli(src, "MIGRATE", "127.0.0.1", str(dst), k, "0", "5000", check=True)

    def finish():
        wait_for(sent_to_src, 30, "popgate-admin's command on the slot's old owner")
        for k in redis_cli(src, "CLUSTER", "GETKEYSINSLOT", str(slot), "1000").split():
            redis_cli(src, "MIGRATE", "127.0.0.1", str(dst), k, "0", "5000", check=True)
        others = [p for _, p, role, _, _ in cluster.nodes() if role == "master" and p not in (src, dst)]
        for port in [dst, src, *others]:
            redis_cli(port, "CLUSTER", "SETSLOT", str(slot), "NODE", cluster.node_id(dst))
    t = threading.Thread(target=finish)
    t.start()
    return t, src, dst


def rejected(port, command):
    """How many times port refused command (a redirect, TRYAGAIN): MONITOR
    shows only the commands a node runs."""
    m = re.search(rf"^cmdstat_{command}:.*rejected_calls=(\d+)", redis_cli(port, "INFO", "commandstats"), re.M)
    return int(m.group(1)) if m else 0


def test_popgate_admin_while_the_users_slot_is_half_moved(bed, cluster, user, start_pg, tmp_path):
    """popgate-admin meets the user's slot half moved, as the daemon does
    (test_resharding_the_users_slot_during_sessions): a multi-key command
    finds some keys on the old owner and some on the new (TRYAGAIN), a
    transaction's first key is gone (ASK). It waits and sends again, and
    finishes once the move has, instead of failing at the first refusal.
    Each move finishes only after the admin's command reached the old owner
    (its refused calls counted), so the refusal is certain."""
    conf = admin_conf(cluster, tmp_path)
    bed.seed(user, [msg(i) for i in range(1, 4)])
    pg = start_pg()
    p = login(pg, user, "phone")
    p.retr(1)
    assert p.quit().startswith(b"+OK")

    # device reset: EXISTS dev got hide, with dev moved and got not yet.
    dev_key, got_key = f"pg1:{{{user}}}:dev:phone", f"pg1:{{{user}}}:got:phone"
    src = cluster.owner(f"pg1:{{{user}}}:read")[0]
    assert dev_key in user_keys(cluster, src, user) and got_key in user_keys(cluster, src, user)
    before = rejected(src, "exists")
    t, src, dst = half_move(cluster, user, lambda keys: [dev_key], lambda: rejected(src, "exists") > before)
    r = admin(conf, "device", "reset", user, "phone")
    t.join(60)
    assert r.returncode == 0, r.stderr
    assert "reset, 1 downloaded" in r.stdout, r.stdout
    cluster.wait_ok()

    # uidl import: MULTI, DEL uidl (a key on no node: the old owner answers
    # ASK, the transaction is discarded), sent again whole once moved.
    legacy = tmp_path / "legacy.uidl"
    legacy.write_text("UID1-1 1200 <one@example.org>\n")
    before = rejected(dst, "del")
    t, _, _ = half_move(cluster, user, lambda keys: keys[: len(keys) // 2], lambda: rejected(dst, "del") > before)
    r = admin(conf, "uidl", "import", user, str(legacy))
    t.join(60)
    assert r.returncode == 0, r.stderr
    assert admin(conf, "uidl", "export", user).stdout == "UID1-1 1200 - <one@example.org>\n"
    p = login(pg, user, "phone")
    assert p.stat()[0] == 3, "the reset held"
    p.quit()
    cluster.wait_ok()


def test_config_errors(bed, cluster):
    def check(redis):
        pg = testbed.Popgate(bed, server={"allow_plaintext_auth": "yes"}, extra_sections={"redis": redis})
        return pg.check_config()
    status, out = check({"cluster": cluster.seeds})
    assert status == 0, out
    status, out = check({"cluster": cluster.seeds, "address": "127.0.0.1:6379"})
    assert status == 1 and "[redis] cluster excludes address" in out
    status, out = check({"cluster": cluster.seeds, "sentinels": "127.0.0.1:26379"})
    assert status == 1 and "[redis] cluster excludes sentinels" in out
    status, out = check({"cluster": cluster.seeds, "database": "2"})
    assert status == 1 and "database 0" in out
    status, out = check({"cluster": "redis-a.example:6379"})
    assert status == 1 and "[redis] cluster" in out


# Last: it disturbs the shared cluster most.
def test_failover_of_the_users_master_during_a_session(bed, cluster, user, start_pg):
    bed.seed(user, [msg(i) for i in range(1, 6)])
    pg = start_pg()
    p = login(pg, user, "phone")
    p.retr(1)
    assert p.quit().startswith(b"+OK")
    master, _ = cluster.owner(f"pg1:{{{user}}}:read")
    replica = cluster.replica_of(master)
    wait_for(lambda: "master_link_status:up" in redis_cli(replica, "INFO", "replication"), 15, "replica")
    redis_cli(master, "WAIT", "1", "2000")

    phone = login(pg, user, "phone")
    assert phone.stat()[0] == 4
    phone.retr(1)
    phone.retr(2)
    # The master stops answering; its replica takes over.
    cluster.procs[master].send_signal(signal.SIGSTOP)
    try:
        redis_cli(replica, "CLUSTER", "FAILOVER", "FORCE", check=True)
        wait_for(lambda: redis_cli(replica, "ROLE").startswith("master"), 20, "the replica to take over")
        try:
            reply = phone.quit()
        except poplib.error_proto as e:
            reply = e.args[0]
        assert reply.startswith(b"+OK") or reply.startswith(b"-ERR [SYS/TEMP]"), reply
    finally:
        cluster.procs[master].send_signal(signal.SIGCONT)
    # The next session sees one state or the other, never half of a commit.
    want = 2 if reply.startswith(b"+OK") else 4

    def consistent():
        try:
            q = login(pg, user, "phone")
        except (poplib.error_proto, OSError):
            return False   # the lock of the refused session, until lock_ttl
        n = q.stat()[0]
        q.quit()
        assert n == want, (n, reply)
        return True
    wait_for(consistent, 30, "a session after the failover")
    # The old master comes back as a replica of the new one.
    wait_for(lambda: redis_cli(master, "ROLE").startswith("slave"), 30, "the old master to rejoin")
    cluster.wait_ok()
