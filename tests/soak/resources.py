"""Resource lines of the soak run: per node RSS, open file descriptors and
open sessions; Redis keys, memory and device locks held. Sampled on a timer,
judged for flatness, printed as a table and drawn with gnuplot."""

import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request

from ha_beds import redis_cli

GNUPLOT = shutil.which("gnuplot") or "/usr/bin/gnuplot"

# Flatness rules (README "Soak run"). RSS and Redis memory are judged by their
# least-squares slope over the second half of the loaded period, only when
# that half lasts at least SLOPE_MIN_WINDOW seconds (a one-minute run is too
# short to tell a slope from allocator noise: it reports the slope and
# judges the end state, which is exact).
SLOPE_MIN_WINDOW = 120.0
RSS_SLOPE_MAX_KIB_PER_MIN = 1024          # per node
REDIS_MEM_SLOPE_MAX_KIB_PER_MIN = 1024
WARMUP = 30.0                             # seconds after a node (re)starts, not judged
FD_END_MARGIN = 2                         # fds at rest vs. the node's fds before any load


def node_rss_fds(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, AttributeError):
        return None, None


def node_sessions(metrics_port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=3) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = re.search(r"^popgate_sessions_active (\d+)", text, re.M)
    return int(m.group(1)) if m else None


def redis_figures(port):
    """(keys, used memory KiB, device locks held) on the Redis at port."""
    keys = redis_cli(port, "DBSIZE")
    mem = re.search(r"used_memory:(\d+)", redis_cli(port, "INFO", "memory"))
    locks = redis_cli(port, "--scan", "--pattern", "pg1:*:lock:*")
    try:
        return (int(keys), int(mem.group(1)) // 1024 if mem else None,
                len([ln for ln in locks.splitlines() if ln]))
    except ValueError:
        return None, None, None


class Sampler:
    """Samples every `period` seconds into rows of
    (t, [(pid, rss KiB, fds, sessions) per node], keys, mem KiB, locks)."""

    def __init__(self, nodes, master_port, period):
        self.nodes = nodes                 # objects with .proc and .metrics_port
        self.master_port = master_port     # callable -> current master port
        self.period = period
        self.rows = []
        self.t0 = time.monotonic()
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sampler", daemon=True)

    def sample(self):
        per_node = []
        for n in self.nodes:
            pid = n.proc.pid if n.proc is not None and n.proc.poll() is None else None
            rss, fds = node_rss_fds(pid) if pid else (None, None)
            per_node.append((pid, rss, fds, node_sessions(n.metrics_port) if pid else None))
        try:
            keys, mem, locks = redis_figures(self.master_port())
        except RuntimeError:
            keys = mem = locks = None
        row = (time.monotonic() - self.t0, per_node, keys, mem, locks)
        self.rows.append(row)
        return row

    def _run(self):
        while not self.stop_flag.wait(self.period):
            self.sample()

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_flag.set()
        self.thread.join(30)


def slope_per_min(points):
    """Least-squares slope of [(t seconds, value)], in value per minute."""
    pts = [(t, v) for t, v in points if v is not None]
    if len(pts) < 3:
        return None
    n = len(pts)
    mt = sum(t for t, _ in pts) / n
    mv = sum(v for _, v in pts) / n
    den = sum((t - mt) ** 2 for t, _ in pts)
    if den == 0:
        return None
    return 60.0 * sum((t - mt) * (v - mv) for t, v in pts) / den


def judge(rows, load_start, load_end, baseline_fds, end_row):
    """Problems found in the resource lines (list of str) and the slopes
    measured (dict name -> KiB/min or None)."""
    problems, slopes = [], {}
    half = (load_start + load_end) / 2
    window = [r for r in rows if half <= r[0] <= load_end]
    judged = load_end - half >= SLOPE_MIN_WINDOW
    for i in range(len(baseline_fds)):
        # One incarnation of the node (a restart resets RSS): the one that
        # spans most of the window, without its first WARMUP seconds.
        segments = {}
        for r in rows:
            pid = r[1][i][0]
            if pid:
                segments.setdefault(pid, []).append(r)
        best = []
        for seg in segments.values():
            pts = [r for r in seg if r[0] >= seg[0][0] + WARMUP and half <= r[0] <= load_end]
            if len(pts) > len(best):
                best = pts
        s = slope_per_min([(r[0], r[1][i][1]) for r in best])
        slopes[f"node{i + 1} RSS"] = s
        if judged and s is not None and s > RSS_SLOPE_MAX_KIB_PER_MIN:
            problems.append(f"node{i + 1} RSS grows {s:.0f} KiB/min (allowed {RSS_SLOPE_MAX_KIB_PER_MIN})")
        _, _, fds, sessions = end_row[1][i]
        if sessions != 0:
            problems.append(f"node{i + 1} holds {sessions} sessions at rest")
        if fds is None or fds > baseline_fds[i] + FD_END_MARGIN:
            problems.append(f"node{i + 1} holds {fds} fds at rest, {baseline_fds[i]} before the load")
    s = slope_per_min([(r[0], r[3]) for r in window])
    slopes["Redis memory"] = s
    if judged and s is not None and s > REDIS_MEM_SLOPE_MAX_KIB_PER_MIN:
        problems.append(f"Redis memory grows {s:.0f} KiB/min (allowed {REDIS_MEM_SLOPE_MAX_KIB_PER_MIN})")
    slopes["Redis keys"] = slope_per_min([(r[0], r[2]) for r in window])
    if end_row[4] != 0:
        problems.append(f"{end_row[4]} device locks held at rest")
    return problems, slopes, judged


def table(rows, n_nodes, max_rows=14):
    """The samples as a small fixed-width table (evenly thinned)."""
    if not rows:
        return "(no samples)"
    step = max(1, len(rows) // (max_rows - 1))
    pick = rows[::step]
    if pick[-1] is not rows[-1]:
        pick.append(rows[-1])
    head = ["t(s)"]
    for i in range(n_nodes):
        head += [f"n{i + 1} RSS KiB", f"n{i + 1} fds", f"n{i + 1} sess"]
    head += ["redis keys", "redis KiB", "locks"]
    lines = [head]
    for t, nodes, keys, mem, locks in pick:
        line = [f"{t:.0f}"]
        for _, rss, fds, sess in nodes:
            line += [str(v) if v is not None else "-" for v in (rss, fds, sess)]
        line += [str(v) if v is not None else "-" for v in (keys, mem, locks)]
        lines.append(line)
    widths = [max(len(ln[c]) for ln in lines) for c in range(len(head))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(ln, widths)) for ln in lines)


def write_csv(rows, n_nodes, path):
    with open(path, "w") as f:
        cols = ["t"] + [f"n{i + 1}_{k}" for i in range(n_nodes) for k in ("rss_kib", "fds", "sessions")]
        f.write("# " + " ".join(cols + ["redis_keys", "redis_kib", "locks"]) + "\n")
        for t, nodes, keys, mem, locks in rows:
            vals = [f"{t:.1f}"] + [("NaN" if v is None else str(v))
                                   for _, rss, fds, sess in nodes for v in (rss, fds, sess)]
            vals += ["NaN" if v is None else str(v) for v in (keys, mem, locks)]
            f.write(" ".join(vals) + "\n")


def plot(csv_path, png_path, n_nodes, faults):
    """A 2x2 gnuplot PNG: RSS, fds, sessions and locks, Redis keys and memory,
    with a grey line at each fault. Returns gnuplot's error text or ""."""
    col = lambda i, k: 2 + 3 * i + k  # noqa: E731
    rk = 2 + 3 * n_nodes
    arrows = "\n".join(f'set arrow from {t:.0f}, graph 0 to {t:.0f}, graph 1 nohead lc rgb "#bbbbbb"'
                       for t, *_ in faults)
    def lines(k, what):
        return ", ".join(f'"{csv_path}" using 1:{col(i, k)} with lines title "node{i + 1} {what}"'
                         for i in range(n_nodes))
    script = f"""
set terminal png size 1200,800
set output "{png_path}"
set multiplot layout 2,2 title "popgate soak: resources over time (grey: faults)"
set xlabel "seconds"
set key top left
{arrows}
set title "RSS (KiB)"
plot {lines(0, "RSS")}
set title "open file descriptors"
plot {lines(1, "fds")}
set title "sessions open, device locks held"
plot {lines(2, "sessions")}, "{csv_path}" using 1:{rk + 2} with lines title "locks"
set title "Redis keys (left) and memory in KiB (right)"
set y2tics
plot "{csv_path}" using 1:{rk} with lines title "keys", "{csv_path}" using 1:{rk + 1} axes x1y2 with lines title "KiB"
unset multiplot
"""
    r = subprocess.run([GNUPLOT], input=script, capture_output=True, text=True, timeout=60)
    return r.stderr.strip() if r.returncode != 0 else ""
