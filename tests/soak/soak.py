#!/usr/bin/env python3
"""Endurance under faults (`make soak`, README "Soak run").

Two popgate nodes behind HAProxy (PROXY v2, /health checks), Redis master +
replica + three Sentinels (replicas_ack = 1), Dovecot (IMAP, LMTP), all on
loopback in one temp dir. Devices of three user groups (view new, unread,
all) poll as real clients do while mail arrives over LMTP and webmail flags
and expunges; on a schedule the Redis master is restarted (Sentinel
failover), Dovecot is restarted, a node gets SIGHUP, a node is stopped with
SIGTERM and started again, and Dovecot's imap processes are stalled
(SIGSTOP/SIGCONT). At the end a final poll of every device, the ledger
(ledger.py) and the resource lines (resources.py) decide. Exit 0 when all
held, 1 otherwise; everything is stopped in any case (Ctrl-C included).

    python3 tests/soak/soak.py --minutes 10 [--out build/soak]
"""

import argparse
import os
import random
import shutil
import signal
import sys
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(HERE), str(REPO / "tests" / "integration"), str(REPO / "deploy" / "dev")]

import testbed  # noqa: E402
from ha_beds import HAProxy, RedisSentinels, redis_cli  # noqa: E402
from clients import Deliverer, DevicePool, Webmail, upstream_state  # noqa: E402
from ledger import Device, Ledger  # noqa: E402
import resources  # noqa: E402
from redis_resp import Redis, decode_ids  # noqa: E402

MAX_MINUTES = 720          # SOAK_MINUTES is bounded: 12 hours at most
LOCK_TTL = 10              # seconds; a lock a failover lost frees itself this fast
COMMAND_TIMEOUT = 8        # upstream command timeout: the stall outlasts it
STALL_SECONDS = 10
GROUPS = (("new", 16), ("unread", 8), ("all", 6))   # users per group
DEVICES_PER_USER = 8
WORKERS = 12
DELIVERY_RATE = 2.0        # messages a second
WEBMAIL_PERIOD = 1.5       # seconds between webmail actions


def log(msg):
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Stack:
    """Everything the run starts, stopped in stop() whatever happened."""

    def __init__(self, binary):
        self.binary = binary
        self.tb = None
        self.redis = None
        self.nodes = []
        self.haproxy = None
        self.stopped_pids = []

    def start(self, users):
        self.tb = testbed.Testbed(name="pgsoak", redis=False).start()
        for u, pw in users.items():
            self.tb.add_user(u, pw)
        self.redis = RedisSentinels(self.tb.dir).start()
        by_group = {}
        for u in users:
            by_group.setdefault(u.split("-")[0], []).append(u)
        for i in range(2):
            mport = testbed.free_port()
            pg = testbed.Popgate(
                self.tb, binary=self.binary, name=f"node{i + 1}",
                # A sanitizer build keeps freed memory in quarantine (256 MiB
                # by default): a small one keeps its RSS lines readable.
                env={"ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1:quarantine_size_mb=16"},
                server={"proxy_trusted": "127.0.0.1/32", "max_connections_per_addr": 0,
                        "shutdown_timeout": 5},
                upstream={"command_timeout": COMMAND_TIMEOUT, "connect_timeout": 5},
                extra_sections={
                    "redis": {"sentinels": self.redis.sentinels_setting(),
                              "master_name": self.redis.master_name, "replicas_ack": 1,
                              "wait_timeout": 1, "timeout": 2},
                    "state": {"lock_ttl": f"{LOCK_TTL}s"},
                    "metrics": {"listen": f"127.0.0.1:{mport}"},
                    "policy": {"view": "new", "on_retr": "seen", "on_dele": "hide"},
                    "mapping unread": {"users": ", ".join(by_group["unread"]), "view": "unread"},
                    "mapping all": {"users": ", ".join(by_group["all"]), "view": "all",
                                    "on_dele": "expunge"},
                })
            pg.metrics_port = mport
            pg.start()
            self.nodes.append(pg)
        for pg in self.nodes:
            testbed.wait_for(lambda pg=pg: resources.node_sessions(pg.metrics_port) is not None
                             and "redis-connected" in pg.log(), 30, f"{pg.name} ready")
        self.haproxy = HAProxy(self.tb.dir, ["pop3", "pop3s"],
                               [(pg.name, {"pop3": pg.port, "pop3s": pg.tls_port}, pg.metrics_port)
                                for pg in self.nodes]).start()
        time.sleep(1.0)   # both nodes checked healthy once

    def master_port(self):
        return self.redis.master_addr()[1]

    def keep_logs(self, dest):
        """Copy the nodes' and Dovecot's logs out of the temp dir."""
        if not self.tb or not os.path.isdir(self.tb.dir):
            return
        dest.mkdir(parents=True, exist_ok=True)
        for name in os.listdir(self.tb.dir):
            if name.endswith(".log"):
                shutil.copy(os.path.join(self.tb.dir, name), dest / name)

    def stop(self):
        for pid in self.stopped_pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if self.haproxy:
            self.haproxy.stop()
        for pg in self.nodes:
            pg.stop(check=False)
        if self.redis:
            self.redis.stop()
        if self.tb:
            self.tb.stop()


class Faults:
    """Injects the faults in turn, one at a time, from `start` to `end`
    seconds into the run; records (t, what, seconds it took)."""

    KINDS = ("redis-master-restart", "dovecot-restart", "node-sighup", "node-sigterm-restart",
             "upstream-stall")

    def __init__(self, stack, t0, start, end, count, ledger):
        self.stack = stack
        self.t0 = t0
        self.times = [start + (end - start) * i / max(1, count - 1) for i in range(count)]
        self.end = end
        self.ledger = ledger
        self.done = []
        self.errors = []
        self.stop_flag = threading.Event()

    def inject(self, kind, i):
        st = self.stack
        node = st.nodes[i % len(st.nodes)]
        if kind == "redis-master-restart":
            st.redis.restart_master()
        elif kind == "dovecot-restart":
            st.tb.stop_dovecot()
            st.tb.start_dovecot()
        elif kind == "node-sighup":
            if not node.reload():
                raise RuntimeError(f"{node.name} refused the reload")
        elif kind == "node-sigterm-restart":
            node.stop(check=True)          # exits 0 after its drain
            node.start()
        elif kind == "upstream-stall":
            pids = [p for p in testbed._descendants(st.tb.dovecot.pid)
                    if b"/imap [" in _cmdline(p)]
            st.stopped_pids = pids
            for p in pids:
                os.kill(p, signal.SIGSTOP)
            self.stop_flag.wait(STALL_SECONDS)
            for p in pids:
                try:
                    os.kill(p, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            st.stopped_pids = []

    def run(self):
        """In the main thread: a process is started with PR_SET_PDEATHSIG,
        which fires when the thread that started it ends, so restarted
        servers must not be children of a short-lived thread."""
        for i, at in enumerate(self.times):
            while time.monotonic() - self.t0 < at:
                if self.stop_flag.wait(0.2):
                    return
            kind = self.KINDS[i % len(self.KINDS)]
            t = time.monotonic() - self.t0
            log(f"fault {i + 1}/{len(self.times)}: {kind}")
            try:
                self.inject(kind, i // len(self.KINDS))
                self.done.append((t, kind, time.monotonic() - self.t0 - t))
            except Exception as e:  # a fault that could not be injected fails the run
                self.errors.append(f"{kind} at {t:.0f}s: {e}")
                log(f"fault {kind} failed: {e}")



def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def make_users_and_devices():
    users, devices = {}, []
    rnd = random.Random(18)
    for group, n in GROUPS:
        for i in range(n):
            user = f"{group}-u{i + 1}"
            users[user] = f"pw-{user}-{rnd.randrange(10**6)}"
            for j in range(DEVICES_PER_USER):
                d = Device(user, f"d{j + 1}", group, reads=(j != 0 or group == "all") and rnd.random() < 0.9)
                d.tls = rnd.choice(("pop3s", "stls"))
                d.auth = rnd.choice(("user", "plain"))
                d.pipelining = rnd.random() < 0.5
                d.drops = rnd.random() < 0.3
                d.dele_rate = 0.3
                devices.append(d)
    return users, devices


def wait_at_rest(stack, sampler, timeout):
    """Until both nodes have no session and no lock is held (or timeout)."""
    deadline = time.monotonic() + timeout
    row = sampler.sample()
    while time.monotonic() < deadline:
        if all(n[3] == 0 for n in row[1]) and row[4] == 0:
            break
        time.sleep(1.0)
        row = sampler.sample()
    return row


def run(args):
    users, devices = make_users_and_devices()
    ledger = Ledger()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stack = Stack(args.binary)
    t_start = time.monotonic()
    report = []
    ok = True
    try:
        log(f"starting the stack ({len(users)} users, {len(devices)} devices)")
        stack.start(users)
        # A few messages in every mailbox before anyone polls.
        deliverer = Deliverer(ledger, users, stack.tb.ports["lmtp"], DELIVERY_RATE)
        for u in users:
            for _ in range(3):
                deliverer.deliver_one(u)
        sampler = resources.Sampler(stack.nodes, stack.master_port, period=max(2.0, args.minutes * 60 / 150))
        baseline = sampler.sample()
        baseline_fds = [n[2] for n in baseline[1]]
        pool = DevicePool(ledger, devices, users, stack.haproxy.ports, stack.tb.cert, WORKERS)
        webmail = Webmail(ledger, users, stack.tb.ports["imap"], WEBMAIL_PERIOD)
        load_s = args.minutes * 60
        load_start = sampler.rows[-1][0]
        n_faults = max(len(Faults.KINDS), len(Faults.KINDS) * round(args.minutes / 2.5))
        faults = Faults(stack, sampler.t0, load_start + min(5, load_s * 0.08),
                        load_start + load_s * 0.8, n_faults, ledger)
        log(f"load for {args.minutes} min, {n_faults} faults")
        sampler.start()
        pool.start()
        deliverer.start()
        webmail.start()
        faults.run()
        while time.monotonic() - sampler.t0 < load_start + load_s:
            time.sleep(1.0)
        deliverer.stop()
        webmail.stop()
        pool.stop()
        load_end = time.monotonic() - sampler.t0
        log("load over; final polls of every device")
        # Let HAProxy see both nodes and the replica catch up before the final polls.
        testbed.wait_for(lambda: all(resources.node_sessions(pg.metrics_port) is not None
                                     for pg in stack.nodes), 30, "nodes up")
        testbed.wait_for(lambda: stack.redis.replicas_in_sync() >= 1, 60, "the Redis replica")
        time.sleep(1.0)
        for final_pass in range(2):
            for d in devices:
                # Patient: a lock a failover lost frees itself after LOCK_TTL.
                deadline = time.monotonic() + LOCK_TTL + 20
                while pool.session(d, final=True) != "ok":
                    if time.monotonic() > deadline:
                        ledger.violation("final", f"{d.login}: no +OK QUIT in the final polls")
                        break
                    time.sleep(1.0)
        log("waiting for the nodes to be at rest")
        sampler.stop()
        end_row = wait_at_rest(stack, sampler, LOCK_TTL + 15)
        upstream = upstream_state(stack.tb.ports["imap"], users)
        mport = stack.master_port()
        redis_sets = {}
        state = Redis(mport)
        try:
            for d in devices:
                key = f"pg1:{{{d.user}}}"
                redis_sets[(d.user, d.name)] = tuple(
                    len(decode_ids(state.call("GET", f"{key}:{kind}:{d.name}") or b""))
                    for kind in ("got", "hide"))
        finally:
            state.close()
        violations = ledger.check_end(devices, upstream, redis_sets)
        problems, slopes, judged = resources.judge(sampler.rows, load_start, load_end,
                                                   baseline_fds, end_row)
        keys_bound = len(users) * (DEVICES_PER_USER * 6 + 6)
        if end_row[2] is None or end_row[2] > keys_bound:
            problems.append(f"Redis holds {end_row[2]} keys, bound {keys_bound}")
        csv = out / "samples.dat"
        png = out / "resources.png"
        resources.write_csv(sampler.rows, len(stack.nodes), csv)
        err = resources.plot(csv, png, len(stack.nodes), faults.done)
        if err:
            problems.append(f"gnuplot: {err}")

        # -- the report --------------------------------------------------------
        c = ledger.counts
        sessions = sum(v for k, v in c.items() if k.startswith("sessions-"))
        report += [
            f"popgate soak: {args.minutes} min of load, {time.monotonic() - t_start:.0f} s in all",
            f"users {len(users)} ({', '.join(f'{g} {n}' for g, n in GROUPS)}), devices {len(devices)}, "
            f"workers {WORKERS}; {sum(not d.reads for d in devices)} devices never read, "
            f"{sum(d.drops for d in devices)} drop some sessions",
            f"sessions {sessions}: QUIT +OK {c['sessions-ok']}, QUIT -ERR {c['sessions-err']}, "
            f"QUIT unanswered {c['sessions-noreply']}, dropped/cut {c['sessions-drop']}",
            f"messages delivered {c['delivered']} (LMTP failures {c['delivery-failed']}), "
            f"RETR {c['retr']}, DELE {c['dele']}, downloads again after a session without +OK "
            f"{c['downloads-allowed-again']}",
            f"webmail: seen {c['webmail-seen']}, flagged {c['webmail-flag']}, "
            f"expunged {c['webmail-expunge']}, failed {c['webmail-failed']}",
            f"refused QUITs that committed anyway (whole) {c['quit-err-committed'] + c['quit-noreply-committed']}, "
            f"left state unchanged {c['quit-err-unchanged'] + c['quit-noreply-unchanged']}",
            "faults injected: " + (", ".join(f"{k} @{t:.0f}s ({d:.1f}s)" for t, k, d in faults.done)
                                   or "none"),
            "other counts: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items())
                                         if k.startswith(("login-refused", "session-error", "quit-err ", "retr-err"))),
            "",
            resources.table(sampler.rows + [end_row], len(stack.nodes)),
            "",
            "slopes over the second half of the load (per minute): " +
            ", ".join(f"{k} {'-' if v is None else f'{v:.0f}'}" for k, v in slopes.items()) +
            ("" if judged else " (reported, not judged: window under "
             f"{resources.SLOPE_MIN_WINDOW:.0f} s)"),
            f"resource plot: {png}",
        ]
        # Stopped here, not in Stack.stop(): a sanitizer build reports leaks
        # at exit, and a node must drain and exit 0 on SIGTERM.
        for pg in stack.nodes:
            try:
                pg.stop(check=True)
            except AssertionError as e:
                problems.append(str(e).split("\n")[0])
        for e in faults.errors:
            problems.append(f"fault not injected: {e}")
        if len(faults.done) < len(Faults.KINDS):
            problems.append(f"only {len(faults.done)} faults injected")
        if violations or problems:
            ok = False
            report.append(f"FAILED: {len(violations)} ledger violations, {len(problems)} resource/fault problems")
            report += [f"  {v}" for v in violations[:40]] + [f"  {p}" for p in problems]
        else:
            report.append("HELD: no message lost or downloaded twice beyond refused QUITs, "
                          "no hidden message shown, every +OK QUIT in Redis and upstream, "
                          "resources flat, nothing left at rest")
        for pg in stack.nodes:
            reports = pg.sanitizer_reports()
            if reports:
                ok = False
                report.append(f"{pg.name} sanitizer: {reports[:3]}")
    except BaseException as e:
        ok = False
        report.append(f"soak aborted: {type(e).__name__}: {e}")
        if not isinstance(e, KeyboardInterrupt):
            report.append(traceback.format_exc())
        if stack.tb:
            for pg in stack.nodes:
                report.append(testbed.log_tail(pg.log_path, 20))
    finally:
        text = "\n".join(report)
        print(text, flush=True)
        try:
            (out / "report.txt").write_text(text + "\n")
        except OSError:
            pass
        stack.keep_logs(out / "logs")
        stack.stop()
    return 0 if ok else 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 10)))
    ap.add_argument("--out", default=str(REPO / "build" / "soak"))
    ap.add_argument("--binary", default=os.environ.get("POPGATE_BIN", str(REPO / "popgate")))
    args = ap.parse_args(argv)
    if not 0.5 <= args.minutes <= MAX_MINUTES:
        ap.error(f"--minutes / SOAK_MINUTES must be between 0.5 and {MAX_MINUTES}")

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
