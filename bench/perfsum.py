"""System-wide CPU profiles of benchmark runs with linux-perf (`run.py --perf`).

`perf record -a -g` samples every CPU at a fixed rate (the software cpu-clock
event: this VM offers no hardware counters) while one extra, unmeasured run of
a workload goes against one peer; the figures of the measured runs stay clean.
`summarize` turns a recording into the share of samples per process group
(popgate, Dovecot's imap and pop3 processes, its login/auth/master processes,
Redis, the load generator, the rest of the machine) and the top symbols of
each, by self time (`perf report --no-children`).
"""

import os
import shutil
import signal
import subprocess
import time

PERF = shutil.which("perf")
FREQ = 997  # Hz per CPU: about 10,000 samples per 5 s run on 2 cores

# perf's command name -> the group results.md shows. The popgate binary runs as
# a private copy named popgate.bin (stack.Stack._popgate_copy), which tells it
# from any other popgate on the machine. Dovecot's processes cannot be told
# apart from another Dovecot's by name: profile on a quiet machine.
GROUPS = (
    ("popgate", ("popgate.bin",)),
    ("Dovecot imap", ("imap",)),
    ("Dovecot pop3", ("pop3",)),
    ("Dovecot login, auth, master", ("imap-login", "pop3-login", "auth", "dovecot", "anvil",
                                     "log", "config", "stats")),
    ("Redis", ("redis-server",)),
    ("pop3load", ("pop3load",)),
    ("idle", ("swapper",)),
)
OTHER = "everything else"
TOP = 8


def group_of(comm):
    for name, comms in GROUPS:
        if comm in comms:
            return name
    return OTHER


def check():
    """None if `perf record -a` works here, else why not."""
    if PERF is None:
        return "perf is not installed (Debian: linux-perf)"
    try:
        r = subprocess.run([PERF, "record", "-a", "-F", str(FREQ), "-o", "/dev/null", "--",
                            "true"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"perf record failed: {e}"
    if r.returncode != 0:
        return "perf record -a failed: " + (r.stderr.strip().splitlines() or ["?"])[-1]
    return None


class Recording:
    """perf record -a -g into path from start() until stop()."""

    def __init__(self, path):
        self.path = path
        self.proc = None
        self.log = path + ".log"

    def start(self):
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([PERF, "record", "-a", "-g", "-F", str(FREQ),
                                          "-o", self.path], stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT)
        time.sleep(1.0)  # perf opens its events on every CPU before the load starts
        return self

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def summarize(path, top=TOP, only_pids=None):
    """{"samples": N, "groups": [{"group", "share", "symbols": [(sym, dso,
    share of group, share of all)]}]} from a recording, or {"error": text}.
    only_pids: {group: set of PIDs}: a process of that group's name with
    another PID (another test's Redis) counts as everything else."""
    only_pids = only_pids or {}
    try:
        r = subprocess.run([PERF, "report", "-i", path, "--no-children", "-g", "none",
                            "--sort", "pid,dso,sym", "--stdio", "--percent-limit", "0",
                            # Sample counts: shares rounded to 0.01 % lose a
                            # third of the samples over thousands of small rows.
                            "--show-nr-samples", "-t", "\t"],
                           capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        return {"error": f"perf report: {e}"}
    if r.returncode != 0:
        return {"error": "perf report: " + (r.stderr.strip().splitlines() or ["?"])[-1]}
    rows = []
    for line in r.stdout.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) < 5:
            continue
        try:
            rows.append((int(parts[1].strip()), parts[2].strip(), parts[3].strip(),
                         parts[4].strip()))
        except ValueError:
            continue
    samples = sum(n for n, _, _, _ in rows)
    if samples == 0:
        return {"error": "perf report: no samples"}
    groups = {}
    for n, pid_comm, dso, sym in rows:
        share = n * 100.0 / samples
        # "1234:redis-server"
        pid, _, comm = pid_comm.partition(":")
        group = group_of(comm)
        if group in only_pids and pid.isdigit() and int(pid) not in only_pids[group]:
            group = OTHER
        # "[k] name" / "[.] name": keep the name, say kernel in the dso column.
        if sym.startswith("[") and "] " in sym:
            sym = sym.split("] ", 1)[1]
        g = groups.setdefault(group, {"share": 0.0, "symbols": {}})
        g["share"] += share
        key = (sym, "kernel" if dso == "[kernel.kallsyms]" else dso)
        g["symbols"][key] = g["symbols"].get(key, 0.0) + share
    out = []
    for name in [n for n, _ in GROUPS] + [OTHER]:
        g = groups.get(name)
        if not g or g["share"] < 0.05:
            continue
        syms = sorted(g["symbols"].items(), key=lambda kv: -kv[1])[:top]
        out.append({"group": name, "share": round(g["share"], 2),
                    "symbols": [(s, d, round(v / g["share"] * 100, 1), round(v, 2))
                                for (s, d), v in syms]})
    return {"samples": samples, "groups": out, "file": os.path.basename(path)}
