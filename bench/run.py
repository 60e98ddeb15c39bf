#!/usr/bin/env python3
"""popgate benchmark: popgate beside Dovecot's native POP3, Dovecot POP3 over
imapc and perdition, in one run on this machine and the same mailboxes.

    python3 bench/run.py            # full run (make bench), ~17 min on 2 cores
    python3 bench/run.py --smoke    # seconds-long version for CI (make bench-smoke)

Workloads (issue 6): (a) login, STAT, UIDL, QUIT on 100-message mailboxes with
200 concurrent clients; (b) RETR of every message, 1 KB, 100 KB and 10 MB
messages; (c) UIDL on a 100,000-message mailbox, first and repeated session;
(d) idle connections, 10,000 before login and 1,000 logged in; (e) TLS
handshakes on the implicit-TLS port. Dovecot runs with its default process
settings (issue 17), then (a), (b) and (e) again with Dovecot A tuned for the
"Dovecot tuned" table; a full run also profiles (a) and (b) with perf.
bench/README.md says what each figure means and each deviation from
Dovecot's defaults. Results: bench/results.md, bench/results.json, bench/chart.png.

Everything runs on loopback, in one temporary directory, and is stopped at the
end, also on failure or Ctrl-C. A peer that fails to start or to serve is
reported as failed; the others are still measured.
"""

import argparse
import json
import os
import resource
import select
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mailboxes  # noqa: E402
import perfsum  # noqa: E402
import procstat  # noqa: E402
import report  # noqa: E402
import stack  # noqa: E402

REPO = os.path.dirname(HERE)

FULL = dict(duration=10.0, a_concurrency=200, b_concurrency=8,
            b_sizes="1k:1024:100,100k:102400:100,10m:10485760:10",
            c_messages=100000, c_repeats=3, c_size=2048,
            d_preauth=10000, d_auth=1000, e_concurrency=32, warmup=True,
            # (c): Dovecot says nothing while it indexes 100,000 files for the
            # first session (about 15 s through imapc on 2 cores); a server
            # silent for eight times that has stalled.
            c_timeout=120.0,
            # The "Dovecot tuned" table: the workloads again with Dovecot A
            # tuned, native and popgate only, shorter runs (time budget).
            tuned="a,b,e", tuned_duration=6.0,
            perf=os.path.join(REPO, "build", "bench-perf"), perf_duration=5.0)
SMOKE = dict(duration=1.0, a_concurrency=4, b_concurrency=2,
             b_sizes="1k:1024:10,100k:102400:5,10m:1048576:2",
             # Big enough that a UIDL listing (~75 KB) outgrows one socket
             # buffer: a server must resume a listing it had to pause.
             c_messages=3000, c_repeats=1, c_size=1024,
             d_preauth=20, d_auth=4, e_concurrency=2, warmup=False, c_timeout=20.0,
             tuned="a,b,e", tuned_duration=1.0, perf=None, perf_duration=1.0)
WORKLOADS = ("a", "b", "c", "d", "e")
SESSION_TIMEOUT = 60.0


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny counts, a few seconds per peer")
    ap.add_argument("--popgate", default=os.path.join(REPO, "popgate"), help="popgate binary")
    ap.add_argument("--pop3load", default=os.path.join(HERE, "pop3load"), help="load generator")
    ap.add_argument("--out", default=HERE, help="directory for results.md, results.json, chart.png")
    ap.add_argument("--peers", default=",".join(stack.PEERS),
                    help="comma list of " + ", ".join(stack.PEERS))
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list of a,b,c,d,e")
    ap.add_argument("--duration", type=float, help="seconds per measured run of (a), (b), (e)")
    ap.add_argument("--a-concurrency", type=int, help="(a) concurrent clients (= users)")
    ap.add_argument("--b-concurrency", type=int, help="(b) concurrent clients per size")
    ap.add_argument("--b-sizes", help="(b) TAG:BYTES:MESSAGES,... per mailbox")
    ap.add_argument("--c-messages", type=int, help="(c) messages in the big mailbox")
    ap.add_argument("--c-repeats", type=int, help="(c) repeated sessions after the first")
    ap.add_argument("--c-size", type=int, help="(c) bytes per message in the big mailbox")
    ap.add_argument("--c-timeout", type=float, help="(c) seconds without progress that fail a session")
    ap.add_argument("--d-preauth", type=int, help="(d) idle connections before login")
    ap.add_argument("--d-auth", type=int, help="(d) idle logged-in connections (= users)")
    ap.add_argument("--e-concurrency", type=int, help="(e) concurrent handshakes")
    ap.add_argument("--pipeline", type=int, default=1,
                    help="commands in flight after login (1 = a client that waits for each reply)")
    ap.add_argument("--no-warmup", action="store_true",
                    help="skip the unmeasured pass that builds indexes before (a) and (b)")
    ap.add_argument("--popgate-set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="extra popgate setting (repeatable)")
    ap.add_argument("--dovecot", choices=stack.DOVECOT_MODES, default="default",
                    help="Dovecot's process settings for the main run (default: Dovecot's own "
                         "defaults, as issue 17's targets say; tuned: process reuse and "
                         "high-performance login, the baseline before issue 17)")
    ap.add_argument("--tuned", metavar="WORKLOADS",
                    help="workloads measured again with Dovecot A tuned, native Dovecot and "
                         "popgate only, for the 'Dovecot tuned' table (default a,b,e; "
                         "'none' skips it)")
    ap.add_argument("--tuned-duration", type=float, help="seconds per run of the tuned table")
    ap.add_argument("--perf", metavar="DIR",
                    help="profile extra, unmeasured runs of (a) and the smallest (b) size "
                         "against native Dovecot and popgate with perf record -a -g, keep "
                         "the recordings in DIR and summarise them in results.md (full run "
                         "default: build/bench-perf)")
    ap.add_argument("--no-perf", action="store_true", help="no profiling")
    ap.add_argument("--perf-duration", type=float, help="seconds per profiled run")
    ap.add_argument("--previous", metavar="FILE",
                    help="results.json of the run to compare for regressions (default: the "
                         "one in --out, read before it is overwritten)")
    ap.add_argument("--hold", action="store_true",
                    help="measure nothing: seed the mailboxes of the chosen workloads, start the "
                         "peers, print their ports and PIDs as JSON and keep them running until "
                         "stdin closes (for profiling with perf, strace and bench/pop3load by hand)")
    args = ap.parse_args(argv)
    base = SMOKE if args.smoke else FULL
    for key, value in base.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.no_warmup:
        args.warmup = False
    if args.no_perf:
        args.perf = None
    args.tuned = [] if args.tuned in ("", "none") else [w for w in args.tuned.split(",") if w]
    for w in args.tuned:
        if w not in ("a", "b", "e"):
            ap.error(f"--tuned takes a, b and e, not {w}")
    args.peers = [p for p in args.peers.split(",") if p]
    for p in args.peers:
        if p not in stack.PEERS:
            ap.error(f"unknown peer {p}")
    if "dovecot" not in args.peers:
        args.peers.insert(0, "dovecot")  # the reference every ratio needs
    args.workloads = [w for w in args.workloads.split(",") if w]
    for w in args.workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w}")
    sizes = []
    for item in args.b_sizes.split(","):
        tag, size, count = item.split(":")
        sizes.append((tag, int(size), int(count)))
    args.b_sizes = sizes
    return args


def raise_fd_limit(want=65536):
    """10,000 idle connections need that many descriptors in pop3load and in
    the server; children inherit this limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Bench:
    def __init__(self, args, st):
        self.args = args
        self.st = st
        self.results = {}   # results[workload_key][peer] = dict
        self.dead = {}      # peer -> why it stopped being measured
        self.no_login = {}  # peer -> why its probe session failed
        self.log = []
        self.profiles = {}  # profiles[workload_key][peer] = perfsum summary + run figures
        self.perf_error = perfsum.check() if args.perf else None
        self.duration = args.duration  # of the pass running now
        self.pass_name = "main"

    # -- running pop3load ---------------------------------------------------
    def _argv(self, peer, workload, *, user, users, concurrency, tls=False, sessions=None,
              duration=None, timeout=SESSION_TIMEOUT, first=1, hold=None):
        port = peer.tls_port if tls else peer.port
        argv = [self.args.pop3load, "-p", str(port), "-w", workload, "-u", user, "-P", "pw%d",
                "-U", str(users), "-F", str(first), "-c", str(concurrency),
                "-l", str(self.args.pipeline), "-t", str(timeout)]
        if tls:
            argv.append("-T")
        if sessions:
            argv += ["-n", str(sessions)]
        if duration:
            argv += ["-d", str(duration)]
        if hold is not None:
            argv += ["--hold", str(hold), "--hold-stdin"]
        limit = (duration or 0) + timeout * 2 + (hold or 0) + 60
        argv += ["--max-time", str(limit), "--max-errors", "0" if hold is not None else "1000"]
        return argv, limit

    def _cpu(self, peer):
        own = procstat.cpu_seconds(peer.own)
        backend = procstat.cpu_seconds(self.st.backend_pids()) if peer.uses_backend else 0.0
        return own, backend, procstat.self_children_cpu()

    def _alive(self, peer):
        for key, proc in self.st.procs.items():
            if proc.pid in peer.own and proc.poll() is not None:
                return f"{key} exited with status {proc.returncode}"
        if self.st.procs["dovecot_a"].poll() is not None:
            return "Dovecot A exited"
        return None

    def run_load(self, peer, workload, **kw):
        """One pop3load run with CPU accounting. Returns its JSON plus
        cpu_own, cpu_backend, cpu_total, cpu_load (seconds), or a failure."""
        argv, limit = self._argv(peer, workload, **kw)
        before = self._cpu(peer)
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=limit + 30)
        except subprocess.TimeoutExpired:
            return {"failed": f"pop3load did not finish within {limit + 30:.0f}s"}
        after = self._cpu(peer)
        return self._result(r.stdout, r.stderr, before, after, r.returncode)

    def _result(self, stdout, stderr, before, after, status=None):
        try:
            out = json.loads(stdout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            why = stderr.decode("utf-8", "replace").strip()[-300:]
            return {"failed": f"pop3load (exit status {status}): {why or 'no output'}"}
        out["cpu_own"] = after[0] - before[0]
        out["cpu_backend"] = after[1] - before[1]
        out["cpu_total"] = out["cpu_own"] + out["cpu_backend"]
        out["cpu_load"] = after[2] - before[2]
        if out["sessions"] == 0:
            out["failed"] = out.get("first_error") or "no session completed"
        return out

    def run_idle(self, peer, workload, **kw):
        """Open the connections, sample memory while they are held, close."""
        argv, limit = self._argv(peer, workload, hold=limit_hold(), **kw)
        mem_before = self._memory(peer)
        before = self._cpu(peer)
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        ready_line, err_text = None, b""
        deadline = time.monotonic() + limit
        try:
            while ready_line is None and time.monotonic() < deadline:
                rd, _, _ = select.select([proc.stderr], [], [], 1.0)
                if not rd:
                    if proc.poll() is not None:
                        break
                    continue
                line = proc.stderr.readline()
                if not line:
                    break
                if line.startswith(b"READY "):
                    ready_line = line
                else:
                    err_text += line
            mem_after = None
            if ready_line is not None:
                # Let the servers finish what the last logins started.
                time.sleep(1.0)
                mem_after = self._memory(peer)
            # Closing stdin ends the hold; communicate() must not touch it again.
            stdin, proc.stdin = proc.stdin, None
            try:
                stdin.close()
            except OSError:
                pass
            stdout, stderr = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return {"failed": "pop3load did not finish"}
        after = self._cpu(peer)
        out = self._result(stdout, err_text + stderr, before, after, proc.returncode)
        if "failed" in out or mem_after is None:
            out.setdefault("failed", "connections never all came up")
            return out
        n = max(out.get("ready", 0), 1)
        for key in mem_before:
            out[key + "_per_conn"] = (mem_after[key] - mem_before[key]) / n
            out[key + "_after"] = mem_after[key]
        if out.get("ready", 0) == 0:
            out["failed"] = out.get("first_error") or "no connection came up"
        return out

    def _memory(self, peer):
        mem = {"uss_own": procstat.uss_bytes(peer.own),
               "procs_own": procstat.process_count(peer.own)}
        if peer.rss_pid:
            mem["rss_self"] = procstat.rss_bytes(peer.rss_pid)
        if peer.uses_backend:
            mem["uss_backend"] = procstat.uss_bytes(self.st.backend_pids())
        return mem

    # -- helpers -------------------------------------------------------------
    def peers(self):
        return [self.st.peers[p] for p in self.args.peers if p in self.st.peers]

    def record(self, key, peer, res):
        why = self._alive(peer)
        if why:
            self.dead[peer.name] = why
            res.setdefault("failed", why)
        self.results.setdefault(key, {})[peer.name] = res
        status = f"FAILED: {res['failed']}" if "failed" in res else summary(key, res)
        tag = "" if self.pass_name == "main" else f"[{self.pass_name}] "
        line = f"  {tag}{key:<22} {peer.name:<10} {status}"
        print(line, flush=True)
        self.log.append(line)

    def usable(self, key, peer, needs_login=True):
        if peer.name in self.dead:
            self.results.setdefault(key, {})[peer.name] = {"failed": "skipped: " + self.dead[peer.name]}
            return False
        if needs_login and peer.name in self.no_login:
            self.results.setdefault(key, {})[peer.name] = {"failed": "skipped: " + self.no_login[peer.name]}
            return False
        return True

    # -- the workloads -------------------------------------------------------
    def probe(self):
        """One login per peer: a peer that cannot serve a session is skipped
        for the workloads that need one, with the reason."""
        for peer in self.peers():
            res = self.run_load(peer, "stat-uidl", user="u%d", users=1, concurrency=1,
                                sessions=1, timeout=30)
            if "failed" in res:
                self.no_login[peer.name] = res["failed"]
                print(f"  probe {peer.name}: {res['failed']}", flush=True)

    def warmup(self, user, users):
        """One unmeasured session per user and peer: Dovecot builds its index
        files and imapc its local cache on first access, which is not what (a)
        and (b) measure."""
        if not self.args.warmup:
            return
        for peer in self.peers():
            if peer.name in self.dead or peer.name in self.no_login:
                continue
            self.run_load(peer, "stat-uidl", user=user, users=users,
                          concurrency=min(users, 32), sessions=users)

    def profile(self, key, peer, workload, **kw):
        """--perf: one more run of the workload, unmeasured, under perf record
        -a -g, for native Dovecot and popgate in the main pass."""
        if (not self.args.perf or self.perf_error or self.pass_name != "main"
                or peer.name not in ("dovecot", "popgate") or peer.name in self.dead):
            return
        os.makedirs(self.args.perf, exist_ok=True)
        path = os.path.join(os.path.abspath(self.args.perf), f"{key}-{peer.name}.data")
        rec = perfsum.Recording(path).start()
        try:
            res = self.run_load(peer, workload, duration=self.args.perf_duration, **kw)
        finally:
            rec.stop()
        redis = self.st.procs.get("redis")
        prof = perfsum.summarize(path, only_pids={"Redis": {redis.pid}} if redis else None)
        prof["run"] = summary(key, res) if "failed" not in res else "failed: " + res["failed"]
        self.profiles.setdefault(key, {})[peer.name] = prof
        print(f"  perf {key:<17} {peer.name:<10} {prof.get('error') or path}", flush=True)

    def workload_a(self):
        n = self.args.a_concurrency
        self.warmup("u%d", n)
        for peer in self.peers():
            if self.usable("a", peer):
                self.record("a", peer, self.run_load(peer, "stat-uidl", user="u%d", users=n,
                                                     concurrency=n, duration=self.duration))
                self.profile("a", peer, "stat-uidl", user="u%d", users=n, concurrency=n)

    def workload_b(self):
        n = self.args.b_concurrency
        for i, (tag, _size, _count) in enumerate(self.args.b_sizes):
            self.warmup(f"r{tag}_%d", n)
            key = f"b_{tag}"
            for peer in self.peers():
                if self.usable(key, peer):
                    self.record(key, peer, self.run_load(
                        peer, "retr-all", user=f"r{tag}_%d", users=n, concurrency=n,
                        duration=self.duration, timeout=120))
                    if i == 0:  # the smallest size: where the round trips tell
                        self.profile(key, peer, "retr-all", user=f"r{tag}_%d", users=n,
                                     concurrency=n, timeout=120)

    def workload_c(self):
        for peer in self.peers():
            if not self.usable("c_first", peer) or not self.usable("c_repeat", peer):
                continue
            user = f"big{stack.PEERS.index(peer.name) + 1}"
            first = self.run_load(peer, "uidl", user=user, users=1, concurrency=1, sessions=1,
                                  timeout=self.args.c_timeout)
            self.record("c_first", peer, first)
            if "failed" in first:
                self.results.setdefault("c_repeat", {})[peer.name] = {"failed": "first session failed"}
                continue
            runs = [self.run_load(peer, "uidl", user=user, users=1, concurrency=1, sessions=1,
                                  timeout=self.args.c_timeout)
                    for _ in range(max(self.args.c_repeats, 1))]
            ok = [r for r in runs if "failed" not in r]
            if not ok:
                self.record("c_repeat", peer, runs[0])
                continue
            best = sorted(ok, key=lambda r: r["elapsed"])[len(ok) // 2]
            best = dict(best, repeats=len(ok),
                        elapsed_all=[round(r["elapsed"], 4) for r in ok],
                        elapsed_median=statistics.median(r["elapsed"] for r in ok))
            self.record("c_repeat", peer, best)

    def restart(self):
        """Fresh server processes before each idle measurement (see
        Stack.restart); a peer that does not come back is reported as dead."""
        before = set(self.st.peers)
        self.st.restart()
        for name in before - set(self.st.peers):
            self.dead[name] = "did not restart: " + self.st.failures.get(name, "unknown")

    def workload_d(self):
        # With Dovecot's default high-security login (a process per
        # connection) 10,000 pre-login connections are 10,000 processes of
        # about 1.1 MB each (2,000 took 92 s here): (d) runs Dovecot's login
        # services in high-performance mode, the one deviation it needs.
        self.st.login_high_performance = True
        self.restart()
        for peer in self.peers():
            if self.usable("d_preauth", peer, needs_login=False):
                self.record("d_preauth", peer, self.run_idle(
                    peer, "idle-preauth", user="u%d", users=1, concurrency=self.args.d_preauth))
            time.sleep(1.0)
        self.restart()
        for peer in self.peers():
            if self.usable("d_auth", peer):
                self.record("d_auth", peer, self.run_idle(
                    peer, "idle-auth", user="u%d", users=self.args.d_auth,
                    concurrency=self.args.d_auth))
            time.sleep(1.0)

    def workload_e(self):
        for peer in self.peers():
            if peer.tls_port is None:
                self.results.setdefault("e", {})[peer.name] = {"failed": "no implicit-TLS port"}
                continue
            if self.usable("e", peer, needs_login=False):
                self.record("e", peer, self.run_load(
                    peer, "tls-handshake", user="u%d", users=1, concurrency=self.args.e_concurrency,
                    tls=True, duration=self.duration))

    def run(self):
        print("probe: one session per peer", flush=True)
        self.probe()
        steps = {"a": self.workload_a, "b": self.workload_b, "c": self.workload_c,
                 "e": self.workload_e, "d": self.workload_d}
        # Idle connections last: they leave many server processes behind.
        for w in ("a", "b", "c", "e", "d"):
            if w in self.args.workloads:
                t0 = time.monotonic()
                print(f"workload ({w})", flush=True)
                steps[w]()
                print(f"workload ({w}) took {time.monotonic() - t0:.0f}s", flush=True)
        return self.results

    def run_tuned(self):
        """The "Dovecot tuned" table: Dovecot A restarted with process reuse
        and high-performance login (stack.py, mode "tuned") on the same
        Maildir and ports, then the chosen workloads against native Dovecot
        and popgate. Returns its results; the main ones stay in main."""
        self.main_state = (self.results, self.dead, self.no_login)
        self.results, self.dead, self.no_login = {}, {}, {}
        self.pass_name, self.duration = "tuned", self.args.tuned_duration
        self.st.dovecot_mode = "tuned"
        self.st.login_high_performance = False
        which = [p for p in ("dovecot", "popgate") if p in self.args.peers]
        before = set(self.st.peers) & set(which)
        self.st.restart(which)
        for name in before - set(self.st.peers):
            self.dead[name] = "did not restart: " + self.st.failures.get(name, "unknown")
        print("tuned: probe", flush=True)
        self.probe()
        steps = {"a": self.workload_a, "b": self.workload_b, "e": self.workload_e}
        for w in ("a", "b", "e"):
            if w in self.args.tuned:
                t0 = time.monotonic()
                print(f"tuned: workload ({w})", flush=True)
                steps[w]()
                print(f"tuned: workload ({w}) took {time.monotonic() - t0:.0f}s", flush=True)
        tuned = {"results": self.results, "dead": self.dead,
                 "failures": {k: v for k, v in self.st.failures.items() if k in which},
                 "settings": self.st.dovecot_settings(),
                 "duration_s": self.duration, "workloads": list(self.args.tuned),
                 "peers": which}
        self.results, self.dead, self.no_login = self.main_state
        return tuned


def limit_hold():
    """Idle runs hold their connections until the harness has sampled memory
    and closes pop3load's stdin; this is only the upper bound."""
    return 300


def summary(key, r):
    if key.startswith("d_"):
        return (f"{r.get('ready', 0)} up in {r.get('ready_s', 0):.2f}s, "
                f"{r.get('uss_own_per_conn', 0) / 1024:.1f} KiB/conn (USS)")
    if key.startswith("c_"):
        return f"{r['elapsed'] * 1000:.0f} ms, {r['bytes']} bytes"
    return (f"{r['sessions_per_s']:.1f} sessions/s, {r['mb_per_s']:.1f} MB/s, "
            f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"CPU {r['cpu_total']:.2f}s, errors {r['errors']}")


def plan_users(args):
    """{name: password}: u1..uN for (a) and (d), r<tag>_1..M per (b) size,
    big1..4 (one per peer, so each first session is a cold one) for (c)."""
    users = {}
    n_small = max(args.a_concurrency, args.d_auth, 1)
    for i in range(1, n_small + 1):
        users[f"u{i}"] = f"pw{i}"
    for tag, _size, _count in args.b_sizes:
        for i in range(1, args.b_concurrency + 1):
            users[f"r{tag}_{i}"] = f"pw{i}"
    for i in range(1, len(stack.PEERS) + 1):
        users[f"big{i}"] = "pw1"
    return users


def seed(args, st, users):
    t0 = time.monotonic()
    small = mailboxes.Pool(st.dir, "1k", 1024, 100 if not args.smoke else 10, st.chown)
    pools = {"u": small}
    for tag, size, count in args.b_sizes:
        pools[f"r{tag}_"] = small if (size, count) == (small.size, small.count) else \
            mailboxes.Pool(st.dir, tag, size, count, st.chown)
    big = None
    if "c" in args.workloads:
        big = mailboxes.Pool(st.dir, "big", args.c_size, args.c_messages, st.chown)
    for name in users:
        if name.startswith("big"):
            if big is not None:
                mailboxes.fill_maildir(st.mail_root, name, big, st.chown)
            continue
        prefix = name[:name.rfind("_") + 1] if name.startswith("r") else "u"
        mailboxes.fill_maildir(st.mail_root, name, pools[prefix], st.chown)
    print(f"seeded {len(users)} mailboxes in {time.monotonic() - t0:.1f}s", flush=True)


def hold(st):
    """--hold: the stack stays up, with its mailboxes, until stdin closes."""
    info = {"dir": st.dir, "failures": st.failures,
            "ports": {name: peer.port for name, peer in st.peers.items()},
            "tls_ports": {name: peer.tls_port for name, peer in st.peers.items()},
            "pids": {key: proc.pid for key, proc in st.procs.items()}}
    print(json.dumps(info), flush=True)
    print("bench: holding the peers until stdin closes", file=sys.stderr, flush=True)
    sys.stdin.read()


def build_params(args):
    return {
        "mode": "smoke" if args.smoke else "full",
        "duration_s": args.duration,
        "a_concurrency": args.a_concurrency,
        "a_messages": 10 if args.smoke else 100,
        "b_concurrency": args.b_concurrency,
        "b_sizes": [{"tag": t, "bytes": s, "messages": c} for t, s, c in args.b_sizes],
        "c_messages": args.c_messages,
        "c_size": args.c_size,
        "c_repeats": args.c_repeats,
        "d_preauth": args.d_preauth,
        "d_auth": args.d_auth,
        "e_concurrency": args.e_concurrency,
        "pipeline": args.pipeline,
        "warmup": args.warmup,
        "dovecot_mode": args.dovecot,
        "perf_duration_s": args.perf_duration if args.perf else None,
    }


def main(argv=None):
    args = parse_args(argv)
    if not os.access(args.pop3load, os.X_OK):
        print(f"bench: {args.pop3load} is missing (make bench/pop3load)", file=sys.stderr)
        return 2

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    raise_fd_limit()

    started = time.time()
    machine = report.machine(REPO)  # the commit and build the run starts with
    # The run to compare with, read before this one overwrites it.
    previous = report.load_previous(args.previous or os.path.join(args.out, "results.json"))
    st = stack.Stack(args.popgate, popgate_set=args.popgate_set, dovecot_mode=args.dovecot)
    bench = None
    main_failures = None
    try:
        users = plan_users(args)
        st.prepare(users)
        seed(args, st, users)
        st.start(args.peers)
        for name, why in st.failures.items():
            print(f"bench: {name} did not start: {why}", file=sys.stderr)
        if args.hold:
            hold(st)
            return 0
        settings = st.dovecot_settings()
        bench = Bench(args, st)
        results = bench.run()
        main_failures = dict(st.failures)
        tuned = None
        if args.tuned and "popgate" in args.peers and args.dovecot != "tuned":
            tuned = bench.run_tuned()
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        failures = main_failures if main_failures is not None else dict(st.failures)
        dead = dict(bench.dead) if bench else {}
        logs = {}
        for name in ("popgate.log", "dovecot-a.log", "dovecot-b.log"):
            tail = st.log_tail(name, 15)
            if tail:
                logs[name] = tail
        notes = list(st.popgate_notes)
        st.stop()

    doc = {
        "dovecot_mode": args.dovecot,
        "dovecot_settings": settings,
        "tuned": tuned,
        "profiles": bench.profiles if bench else {},
        "perf_error": bench.perf_error if bench else None,
        "perf_dir": os.path.abspath(args.perf) if args.perf else None,
        "previous": previous,
        "params": build_params(args),
        "machine": machine,
        "peers": {p: stack.PEER_TITLES[p] for p in args.peers},
        "failures": failures,
        "dead": dead,
        "notes": notes,
        "results": results,
        "wall_s": time.time() - started,
        "load_end": round(os.getloadavg()[0], 2),
    }
    report.write(doc, args.out, logs if (failures or dead) else {})
    print()
    for line in report.headline(doc):
        print(line)
    print(f"\nwrote {os.path.join(args.out, 'results.md')} ({doc['wall_s'] / 60:.1f} min)")
    # The smoke run guards the harness in CI: any peer or run that failed
    # fails it. A full run reports failures in results.md instead.
    if args.smoke and report.any_failed(doc):
        print("bench-smoke: some peers or runs failed (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
