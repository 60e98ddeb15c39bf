"""results.md, results.json and chart.png from one benchmark run, and the
headline lines printed at the end.

Every ratio is popgate's figure divided by the peer's, from the same run. For
rates (sessions/s, MB/s, handshakes/s) above 1 means popgate is faster; for
costs (latency, CPU, memory, time) below 1 means popgate spends less.
"""

import datetime
import json
import os
import platform
import shutil
import subprocess
import tempfile

KiB = 1024.0



def _run(argv):
    try:
        r = subprocess.run(argv, capture_output=True, timeout=10, text=True)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def machine(repo):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    osname = "unknown"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem / KiB ** 3, 1),
        "kernel": platform.release(),
        "os": osname,
        "dovecot": _run(["dovecot", "--version"]),
        "perdition": _run(["dpkg-query", "-W", "-f", "${Version}", "perdition"]),
        "redis": _run(["redis-server", "--version"]).split(" sha=")[0],
        "openssl": _run(["openssl", "version"]).split(" (")[0],
        "popgate": _run(["git", "-C", repo, "describe", "--always", "--dirty"]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": round(os.getloadavg()[0], 2),
    }


# A 1-minute load average above this before the run means other work shared
# the cores: the figures are then not clean (the run itself only starts).
QUIET_LOAD = 1.0


def noisy(doc):
    return doc["machine"].get("load_start", 0) > QUIET_LOAD


# ---- derived figures ------------------------------------------------------

def _ok(r):
    return r is not None and "failed" not in r


def cpu_per_1000(r, field="cpu_total"):
    return r[field] / r["sessions"] * 1000 if _ok(r) and r.get("sessions") else None


def cpu_per_gb(r, field="cpu_total"):
    return r[field] / (r["bytes"] / 1e9) if _ok(r) and r.get("bytes") else None


def idle_kib(r, peer):
    """Memory per idle connection that the targets speak of: popgate's own RSS;
    for the multi-process peers the private memory (USS) of their process tree."""
    if not _ok(r):
        return None
    key = "rss_self_per_conn" if peer == "popgate" and "rss_self_per_conn" in r else "uss_own_per_conn"
    return r.get(key, 0) / KiB


def _get(doc, key, peer):
    return doc["results"].get(key, {}).get(peer)


def _val(doc, key, peer, fn):
    r = _get(doc, key, peer)
    return fn(r) if _ok(r) else None


def _rate(field):
    return lambda r: r.get(field)


def _elapsed_ms(r):
    return r["elapsed"] * 1000


def b_keys(doc):
    return [f"b_{s['tag']}" for s in doc["params"]["b_sizes"]]


def metrics(doc):
    """(label, key, fn, higher_is_better) for the ratio table and chart."""
    out = [("(a) sessions/s", "a", _rate("sessions_per_s"), True),
           ("(a) p99 session latency", "a", _rate("p99_ms"), False),
           ("(a) CPU per 1,000 sessions (gateway + backend)", "a", cpu_per_1000, False)]
    for key, size in zip(b_keys(doc), doc["params"]["b_sizes"]):
        out.append((f"(b) RETR MB/s, {size['tag']} messages", key, _rate("mb_per_s"), True))
        out.append((f"(b) CPU per GB, {size['tag']} (gateway + backend)", key, cpu_per_gb, False))
    out += [("(c) UIDL 100k-mailbox, first session (time)", "c_first", _elapsed_ms, False),
            ("(c) UIDL 100k-mailbox, repeated session (time)", "c_repeat", _elapsed_ms, False),
            ("(d) memory per idle pre-auth connection", "d_preauth", None, False),
            ("(d) memory per idle logged-in connection", "d_auth", None, False),
            ("(e) TLS handshakes/s", "e", _rate("sessions_per_s"), True)]
    return out


def _metric_value(doc, key, fn, peer):
    if fn is None:
        r = _get(doc, key, peer)
        return idle_kib(r, peer)
    return _val(doc, key, peer, fn)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt(v, digits=1):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.{digits}f}"


def fmt_ratio(v):
    if v is None:
        return "—"
    return f"{v:.3f}×" if abs(v) < 0.1 else f"{v:.2f}×"


# ---- targets ----------------------------------------------------------------

def targets(doc):
    """(description, measured text, verdict) for each target of issue 6."""
    rows = []

    def check(desc, value, limit, higher_is_better, shown):
        if value is None:
            rows.append((desc, "not measured", "n/a"))
            return
        ok = value >= limit if higher_is_better else value <= limit
        rows.append((desc, shown, "met" if ok else "MISSED"))

    for key, size in zip(b_keys(doc), doc["params"]["b_sizes"]):
        pg = _val(doc, key, "popgate", _rate("mb_per_s"))
        for peer, limit in (("dovecot", 0.8), ("imapc", 1.5)):
            r = ratio(pg, _val(doc, key, peer, _rate("mb_per_s")))
            check(f"RETR MB/s {size['tag']} ≥ {limit}× {doc['peers'].get(peer, peer)}", r, limit,
                  True, fmt_ratio(r))
    r = ratio(_val(doc, "a", "popgate", _rate("sessions_per_s")),
              _val(doc, "a", "imapc", _rate("sessions_per_s")))
    check("sessions/s (a) ≥ 1.5× Dovecot POP3 over imapc", r, 1.5, True, fmt_ratio(r))
    for key, limit, what in (("d_preauth", 8, "pre-auth, no TLS"), ("d_auth", 32, "logged in")):
        v = idle_kib(_get(doc, key, "popgate"), "popgate")
        check(f"popgate RSS per idle connection ({what}) ≤ {limit} KiB", v, limit, False,
              f"{fmt(v, 2)} KiB")
    for key, what in (("c_first", "first"), ("c_repeat", "repeated")):
        r = ratio(_val(doc, key, "popgate", _elapsed_ms), _val(doc, key, "dovecot", _elapsed_ms))
        check(f"UIDL on the big mailbox, {what} session, ≤ 2× Dovecot native time", r, 2.0, False,
              fmt_ratio(r))
    return rows


def any_failed(doc):
    if doc["failures"] or doc["dead"]:
        return True
    tuned = doc.get("tuned") or {}
    if tuned.get("dead") or tuned.get("failures"):
        return True
    sets = [doc["results"], tuned.get("results", {})]
    return any("failed" in r for res in sets for per_peer in res.values() for r in per_peer.values())


# ---- issue 17: targets with Dovecot's defaults, and no regression -----------

# A ratio popgate ÷ native that moves by more than this against the previous
# run, the wrong way, is flagged: figures of single 10 s runs on this 2-core
# machine move by about ±15 % between runs (results.md, "Profile").
NOISE = 0.15

# What "nothing else regresses" compares (issue 17): label prefixes of
# metrics(). (c) is one session at a time and (d) runs its login services in
# high-performance mode in both Dovecot modes, so their ratios compare across
# modes; the others only with the same Dovecot settings.
REGRESSION = (("(b) RETR MB/s, ", "b", False), ("(c) UIDL", "c", True),
              ("(d) memory", "d", True), ("(e) TLS", "e", False))
REGRESSION_SKIP = ("(b) RETR MB/s, 1k",)  # a target of its own


# The parameters a workload's figures depend on: runs that differ in them
# are not compared.
WORKLOAD_PARAMS = {"a": ("a_concurrency", "a_messages", "pipeline"),
                   "b": ("b_concurrency", "b_sizes", "pipeline"),
                   "c": ("c_messages", "c_size"),
                   "d": ("d_preauth", "d_auth"),
                   "e": ("e_concurrency",)}


def _workload_params(doc):
    p = doc["params"]
    return {w: [p.get(k) for k in keys] for w, keys in WORKLOAD_PARAMS.items()}


def _subdoc(doc, results):
    return {"results": results, "params": doc["params"], "peers": doc["peers"]}


def mode_results(doc):
    """{Dovecot mode: results} of a run: the main pass in its mode (runs before
    issue 17 were all tuned) and the tuned table's pass."""
    out = {doc.get("dovecot_mode", "tuned"): doc["results"]}
    tuned = doc.get("tuned")
    if tuned and tuned.get("results"):
        out.setdefault("tuned", tuned["results"])
    return out


def ratio_snapshot(doc):
    """popgate ÷ native Dovecot for every metric, per Dovecot mode, with what
    is needed to say which run it was."""
    ratios = {}
    for mode, results in mode_results(doc).items():
        sub = _subdoc(doc, results)
        ratios[mode] = {}
        for label, key, fn, _higher in metrics(doc):
            pg = _metric_value(sub, key, fn, "popgate")
            r = ratio(pg, _metric_value(sub, key, fn, "dovecot"))
            if r is not None:
                ratios[mode][label] = {"ratio": r, "popgate": pg}
    return {"date": doc["machine"].get("date"), "popgate": doc["machine"].get("popgate"),
            "run": doc["params"].get("mode"), "main_mode": doc.get("dovecot_mode", "tuned"),
            "workload_params": _workload_params(doc), "ratios": ratios}


def load_previous(path):
    """The ratio snapshot of the results.json at path, or None."""
    try:
        with open(path) as f:
            prev = json.load(f)
        return ratio_snapshot(prev)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def regressions(doc):
    """(label, mode now, mode before, ratio now, ratio before, popgate now,
    popgate before, change, higher_is_better, verdict) per compared figure."""
    prev = doc.get("previous")
    rows = []
    now = ratio_snapshot(doc)
    for label, _key, _fn, higher in metrics(doc):
        spec = next((sp for sp in REGRESSION if label.startswith(sp[0])), None)
        if spec is None or label.startswith(REGRESSION_SKIP):
            continue
        across = spec[2]
        pairs = []
        same_counts = (prev and prev.get("workload_params", {}).get(spec[1])
                       == now["workload_params"][spec[1]])
        # Smoke figures mean nothing: only full runs are compared, and only
        # runs of a workload with the same counts.
        if prev and prev.get("run") == doc["params"]["mode"] == "full" and same_counts:
            if across:
                pairs = [(now["main_mode"], prev["main_mode"])]
            else:
                pairs = [(m, m) for m in ("default", "tuned")
                         if m in now["ratios"] and m in prev["ratios"]]
        done = False
        for m_now, m_prev in pairs:
            a = now["ratios"].get(m_now, {}).get(label)
            b = prev["ratios"].get(m_prev, {}).get(label)
            if a is None or b is None:
                continue
            change = a["ratio"] / b["ratio"] - 1 if b["ratio"] else None
            worse = change is not None and (change < -NOISE if higher else change > NOISE)
            rows.append((label, m_now, m_prev, a["ratio"], b["ratio"], a["popgate"],
                         b["popgate"], change, higher, "REGRESSED" if worse else "met"))
            done = True
        if not done:
            measured = any(label in r for r in now["ratios"].values())
            rows.append((label, None, None, None, None, None, None, None, higher,
                         "n/a" if measured else "not measured"))
    return rows


def targets17(doc):
    """(description, measured text, verdict) for issue 17's targets."""
    rows = []
    mode = doc.get("dovecot_mode", "tuned")
    words = "Dovecot's defaults" if mode == "default" else "Dovecot tuned"
    p = doc["params"]
    first = b_keys(doc)[0] if b_keys(doc) else None
    for desc, key, field in (
            (f"RETR MB/s {p['b_sizes'][0]['tag'] if first else '1k'} ≥ 0.8× Dovecot POP3 (native), "
             f"{p['b_concurrency']} clients, {words}", first, "mb_per_s"),
            (f"sessions/s (a) ≥ 0.8× Dovecot POP3 (native), {p['a_concurrency']} clients, {words}",
             "a", "sessions_per_s")):
        r = ratio(_val(doc, key, "popgate", _rate(field)), _val(doc, key, "dovecot", _rate(field)))
        if r is None:
            rows.append((desc, "not measured", "n/a"))
        else:
            rows.append((desc, fmt_ratio(r), "met" if r >= 0.8 else "MISSED"))
    prev = doc.get("previous")
    for (label, m_now, m_prev, now, before, pg_now, pg_before, change, higher,
         verdict) in regressions(doc):
        desc = f"no regression: {label}, popgate ÷ native"
        if verdict == "not measured":
            rows.append((desc, "not measured in this run", "n/a"))
            continue
        if verdict == "n/a":
            why = ("no previous run to compare" if not prev else
                   "smoke runs are not compared" if doc["params"]["mode"] != "full" else
                   "previous run was a " + str(prev.get("run")) + " run"
                   if prev.get("run") != doc["params"]["mode"] else
                   "the previous run used other counts for this workload"
                   if prev.get("workload_params", {}).get(label[1]) !=
                   _workload_params(doc)[label[1]] else
                   "not measured with the same Dovecot settings in both runs")
            rows.append((desc, why, "n/a"))
            continue
        modes = f"Dovecot {m_now}" if m_now == m_prev else f"Dovecot {m_now} now, {m_prev} before"
        shown = (f"{fmt_ratio(now)} now, {fmt_ratio(before)} before ({change * 100:+.0f} %; "
                 f"{modes}; popgate {fmt(pg_now, 2)} now, {fmt(pg_before, 2)} before)")
        rows.append((desc, shown, verdict))
    return rows


# ---- markdown ---------------------------------------------------------------

def _table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def _failed_row(doc, key, peer, width):
    r = _get(doc, key, peer)
    if r is None:
        return None
    if "failed" in r:
        reason = r["failed"].replace("|", "/")[:160]
        return [doc["peers"][peer], f"failed: {reason}"] + [""] * (width - 2)
    return None


def _section_rows(doc, key, width, row_fn):
    rows = []
    for peer in doc["peers"]:
        if _get(doc, key, peer) is None:
            continue
        failed = _failed_row(doc, key, peer, width)
        rows.append(failed if failed else [doc["peers"][peer]] + row_fn(_get(doc, key, peer), peer))
    return rows


def markdown(doc, logs):
    p, m = doc["params"], doc["machine"]
    L = ["# popgate benchmark results", "",
         f"Generated by `make {'bench-smoke' if p['mode'] == 'smoke' else 'bench'}` "
         f"(`bench/run.py`, {p['mode']} mode) on {m['date']} in {doc['wall_s'] / 60:.1f} minutes. "
         "How to run it and what each figure means: [README.md](README.md).", ""]
    if p["mode"] == "smoke":
        L += ["**Smoke run: tiny counts that only show the harness works. These are not "
              "benchmark figures.**", ""]
    L += ["## Machine", "",
          f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory_gib']} GiB",
          f"- {m['os']}, Linux {m['kernel']}",
          f"- Dovecot {m['dovecot']}, perdition {m['perdition']}, {m['redis']}, {m['openssl']}",
          f"- popgate at commit {m['popgate']}",
          "- Servers, the load generator (bench/pop3load) and Redis share these cores; "
          "all traffic is on loopback.",
          f"- Load average (1 min) when the run started: {m.get('load_start', '?')}, "
          f"when it ended: {doc.get('load_end', '?')}.", ""]
    if noisy(doc):
        L += [f"**The machine was busy when this run started (load average above {QUIET_LOAD:g}): "
              "other work shared the cores, so these figures and ratios are not clean. Run "
              "`make bench` again on an idle machine.**", ""]
    L += ["## Setup", "",
          f"- Peers: {'; '.join(doc['peers'].values())}. Dovecot A holds the mail (Maildir); "
          "Dovecot B (imapc), perdition and popgate all read it through Dovecot A, whose CPU is "
          "counted as their backend.",
          f"- (a) {p['a_concurrency']} concurrent clients, one user each, "
          f"{p['a_messages']}-message mailboxes; {p['duration_s']:g} s per peer.",
          f"- (b) {p['b_concurrency']} concurrent clients, one user each: "
          + ", ".join(f"{s['messages']} × {s['tag']}" for s in p["b_sizes"])
          + f"; {p['duration_s']:g} s per peer and size.",
          f"- (c) one {p['c_messages']:,}-message mailbox per peer ({p['c_size']} bytes each), "
          f"never opened before the first session; then {p['c_repeats']} repeated sessions "
          "(median shown).",
          f"- (d) {p['d_preauth']:,} idle connections before login, {p['d_auth']:,} logged in.",
          f"- (e) {p['e_concurrency']} concurrent TLS handshakes (connect, handshake, greeting, "
          f"close), no session resumption; {p['duration_s']:g} s per peer.",
          f"- Pipeline depth {p['pipeline']} (1: the client waits for each reply). "
          + ("An unmeasured session per user and peer ran first (index building)."
             if p["warmup"] else "No warm-up pass."),
          "- Dovecot A and B: " + (
              "Dovecot's default process settings (login processes in high-security mode, a "
              "new imap/pop3 process per session, none kept ready), as issue 17's targets say. "
              if doc.get("dovecot_mode", "tuned") == "default" else
              "tuned (process reuse, high-performance login), as before issue 17. ")
          + f"Exactly: {doc.get('dovecot_settings', 'not recorded')}."]
    if doc.get("dovecot_mode") == "default":
        L.append("- Deviations from Dovecot's defaults, each because a workload needs it: "
                 "default_process_limit and default_client_limit raised (the login services "
                 "take their process limit, and auth and anvil their client limit, from them; "
                 "(d) holds 10,000 connections); for (d) only, the login services run in "
                 "high-performance mode, since in high-security mode each pre-login "
                 "connection is a login process of about 1.1 MB (10,000 would take minutes and "
                 "over 10 GB).")
    if doc.get("tuned"):
        t = doc["tuned"]
        L.append(f"- Table \"Dovecot tuned\": Dovecot A restarted with {t['settings']}; "
                 f"workloads {', '.join('(' + w + ')' for w in t['workloads'])} again, "
                 f"{' and '.join(doc['peers'].get(x, x) for x in t['peers'])} only, "
                 f"{t['duration_s']:g} s per run (shorter than the main runs, to keep the "
                 "whole run under 20 minutes).")
    L.append("")
    failed_runs = [(key, peer, r["failed"]) for key, per_peer in doc["results"].items()
                   for peer, r in per_peer.items()
                   if "failed" in r and not r["failed"].startswith("skipped")]
    if doc["failures"] or doc["dead"] or doc.get("notes") or failed_runs:
        L += ["## Problems in this run", ""]
        for key, peer, why in failed_runs:
            L.append(f"- {doc['peers'].get(peer, peer)}, workload {key}: {why}")
        for name, why in doc["failures"].items():
            L.append(f"- {name} did not start: {why.splitlines()[0]}")
        for name, why in doc["dead"].items():
            L.append(f"- {name} stopped during the run: {why}")
        for note in doc.get("notes", []):
            L.append(f"- {note}")
        L.append("")
        for name, tail in logs.items():
            L += [f"Last lines of {name}:", "", "```", tail, "```", ""]

    L += ["## Targets (issue 17)", "",
          f"\"no regression\" compares each ratio popgate ÷ Dovecot POP3 (native) with the "
          "same ratio in the previous run's results.json"
          + (f" (run of {doc['previous']['date']}, popgate {doc['previous']['popgate']})"
             if doc.get("previous") else "")
          + f", with the same Dovecot settings where they matter; a ratio that moved more "
          f"than {NOISE * 100:.0f} % the wrong way (the noise between runs on this machine) "
          "counts as a regression.", ""]
    L += _table(["target", "measured", "result"], targets17(doc))
    rows = targets(doc)
    L += ["## Targets (issue 6)", ""] + _table(["target", "measured", "result"], rows)

    others = [pr for pr in doc["peers"] if pr != "popgate"]
    ratio_rows = []
    for label, key, fn, higher in metrics(doc):
        pg = _metric_value(doc, key, fn, "popgate")
        cells = [fmt_ratio(ratio(pg, _metric_value(doc, key, fn, pr))) for pr in others]
        ratio_rows.append([label + (" ↑" if higher else " ↓")] + cells)
    L += ["## Ratios: popgate ÷ peer", "",
          "↑ higher is better (above 1×: popgate is faster); ↓ lower is better "
          "(below 1×: popgate spends less).", ""]
    L += _table(["figure"] + [doc["peers"][pr] for pr in others], ratio_rows)

    L += ["## (a) login, STAT, UIDL, QUIT", ""]
    L += _table(["peer", "sessions/s", "p50 ms", "p99 ms", "errors",
                 "CPU s gateway", "CPU s backend", "CPU s / 1,000 sessions", "load gen CPU s"],
                _section_rows(doc, "a", 9, lambda r, peer: [
                    fmt(r["sessions_per_s"]), fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2), r["errors"],
                    fmt(r["cpu_own"], 2), fmt(r["cpu_backend"], 2), fmt(cpu_per_1000(r), 2),
                    fmt(r["cpu_load"], 2)]))

    L += ["## (b) RETR every message", ""]
    for key, size in zip(b_keys(doc), p["b_sizes"]):
        ref = _get(doc, key, "dovecot")
        ref_bpm = ref["bytes"] / ref["messages"] if _ok(ref) and ref.get("messages") else None

        def b_row(r, peer, ref_bpm=ref_bpm):
            bpm = r["bytes"] / r["messages"] if r.get("messages") else None
            same = "—" if bpm is None or ref_bpm is None else (
                "same" if abs(bpm - ref_bpm) <= 0.01 * ref_bpm else f"{bpm:,.0f} ≠ {ref_bpm:,.0f}")
            return [fmt(r["mb_per_s"]), fmt(r["sessions_per_s"], 2), r["messages"], same,
                    fmt(r["p50_ms"]), fmt(r["p99_ms"]), r["errors"],
                    fmt(cpu_per_gb(r), 2), fmt(cpu_per_gb(r, "cpu_own"), 2)]
        L += [f"### {size['messages']} × {size['tag']} ({size['bytes']:,} bytes each)", ""]
        L += _table(["peer", "MB/s", "sessions/s", "messages", "bytes/message vs Dovecot",
                     "p50 ms", "p99 ms", "errors", "CPU s/GB total", "CPU s/GB gateway"],
                    _section_rows(doc, key, 10, b_row))

    L += ["## (c) UIDL on the big mailbox", ""]

    def c_row(r, peer):
        rep = _get(doc, "c_repeat", peer)
        rep_ok = _ok(rep)
        return [fmt(_elapsed_ms(r)), fmt(_elapsed_ms(rep)) if rep_ok else "failed",
                f"{r['bytes']:,}", fmt(r["cpu_total"], 2), fmt(rep["cpu_total"], 2) if rep_ok else "—"]
    L += _table(["peer", "first session ms", "repeated session ms", "bytes",
                 "CPU s first", "CPU s repeated"], _section_rows(doc, "c_first", 6, c_row))

    L += ["## (d) idle connections", "",
          "Memory per connection is the growth while the connections are held, divided by "
          "their number. Target metric: popgate's own RSS (it is one process); for the others "
          "the private memory (USS) of their process tree, since RSS would count pages shared "
          "between forked processes once per process. USS gateway: the peer's own processes "
          "(popgate: popgate and Redis). Backend: Dovecot A's USS growth (the imap or pop3 "
          "processes it runs for the logged-in sessions).", ""]
    for key, what in (("d_preauth", "before login"), ("d_auth", "logged in")):
        L += [f"### {what}", ""]
        L += _table(["peer", "connections up", "seconds to open", "KiB/conn (target metric)",
                     "USS KiB/conn gateway", "USS KiB/conn backend", "gateway processes"],
                    _section_rows(doc, key, 7, lambda r, peer: [
                        f"{r.get('ready', 0):,}", fmt(r.get("ready_s"), 2),
                        fmt(idle_kib(r, peer), 2), fmt(r.get("uss_own_per_conn", 0) / KiB, 2),
                        fmt(r["uss_backend_per_conn"] / KiB, 2) if "uss_backend_per_conn" in r else "—",
                        f"{r.get('procs_own_after', 0):,}"]))

    L += ["## (e) TLS handshakes on the implicit-TLS port", ""]
    L += _table(["peer", "handshakes/s", "p50 ms", "p99 ms", "errors", "CPU ms / handshake"],
                _section_rows(doc, "e", 6, lambda r, peer: [
                    fmt(r["sessions_per_s"]), fmt(r["p50_ms"], 2), fmt(r["p99_ms"], 2), r["errors"],
                    fmt(r["cpu_total"] / r["sessions"] * 1000 if r["sessions"] else None, 2)]))
    L += tuned_section(doc)
    L += profile_section(doc)
    L += ["## Chart", "", "![benchmark chart](chart.png)", ""]
    return "\n".join(L)


TUNED_FIGURES = (
    ("(a) sessions/s", "a", _rate("sessions_per_s"), True),
    ("(a) p99 session latency ms", "a", _rate("p99_ms"), False),
    ("(a) CPU s per 1,000 sessions (gateway + backend)", "a", cpu_per_1000, False),
    ("(e) TLS handshakes/s", "e", _rate("sessions_per_s"), True),
)


def tuned_section(doc):
    """The "Dovecot tuned" table: the same workloads with Dovecot A tuned, beside
    the main pass (Dovecot's defaults): what the settings change for native
    Dovecot and for popgate in front of it (issue 17, item 5)."""
    t = doc.get("tuned")
    if not t:
        return []
    main_mode = doc.get("dovecot_mode", "tuned")
    main = _subdoc(doc, doc["results"])
    tuned = _subdoc(doc, t["results"])
    figures = [f for f in TUNED_FIGURES if f[1] == "a"]
    for key, size in zip(b_keys(doc), doc["params"]["b_sizes"]):
        figures.append((f"(b) RETR MB/s, {size['tag']}", key, _rate("mb_per_s"), True))
        figures.append((f"(b) CPU s per GB, {size['tag']} (gateway + backend)", key, cpu_per_gb,
                        False))
    figures += [f for f in TUNED_FIGURES if f[1] == "e"]
    rows = []
    for label, key, fn, higher in figures:
        if key not in t["results"]:
            continue
        nd, nt = _val(main, key, "dovecot", fn), _val(tuned, key, "dovecot", fn)
        pd, pt = _val(main, key, "popgate", fn), _val(tuned, key, "popgate", fn)
        rows.append([label + (" ↑" if higher else " ↓"), fmt(nd), fmt(nt),
                     fmt_ratio(ratio(nt, nd)), fmt(pd), fmt(pt), fmt_ratio(ratio(pt, pd)),
                     fmt_ratio(ratio(pd, nd)), fmt_ratio(ratio(pt, nt))])
    L = ["## Dovecot tuned", "",
         f"The same workloads with Dovecot A restarted with: {t['settings']}. "
         f"Native Dovecot and popgate (in front of the tuned Dovecot A) only; "
         f"{t['duration_s']:g} s per run, against {doc['params']['duration_s']:g} s for the "
         f"main runs (\"{main_mode}\" columns). Not a target: what the settings are worth, "
         "for the recommendation in the top-level README.md.", ""]
    L += _table(["figure", f"native, Dovecot {main_mode}", "native, Dovecot tuned",
                 "native tuned ÷ " + main_mode, f"popgate, Dovecot {main_mode}",
                 "popgate, Dovecot tuned", "popgate tuned ÷ " + main_mode,
                 f"popgate ÷ native ({main_mode})", "popgate ÷ native (tuned)"], rows)
    problems = [f"{doc['peers'].get(peer, peer)}, workload {key}: {r['failed']}"
                for key, per_peer in t["results"].items() for peer, r in per_peer.items()
                if "failed" in r]
    problems += [f"{n} did not start: {w.splitlines()[0]}" for n, w in t.get("failures", {}).items()]
    problems += [f"{n} stopped: {w}" for n, w in t.get("dead", {}).items()]
    if problems:
        L += ["Problems in the tuned runs:", ""] + [f"- {x}" for x in problems] + [""]
    return L


def profile_section(doc):
    """Generated from `run.py --perf`: where the CPU went in one extra run of
    (a) and of the smallest (b) size, per process group."""
    profiles = doc.get("profiles") or {}
    if not profiles and not doc.get("perf_error"):
        return []
    L = ["## Profile of this run (perf, generated)", ""]
    if doc.get("perf_error"):
        return L + [f"Not profiled: {doc['perf_error']}.", ""]
    L += [f"`perf record -a -g -F 997` (cpu-clock: this VM has no hardware counters) during one "
          f"more run of each workload, {doc['params'].get('perf_duration_s') or '?'} s, after "
          "the measured one (whose figures it does not touch). Share: of all samples on all "
          "cores in the recording (\"idle\": no process ran); symbols by self time, as a share "
          "of the group's samples. System-wide: any other work on the machine shows as "
          "\"everything else\", and a Dovecot outside the benchmark would count as Dovecot. "
          f"Recordings: `{doc.get('perf_dir')}` (`perf report -i FILE`).", ""]
    for key in sorted(profiles, key=lambda k: (k != "a", k)):
        for peer, prof in profiles[key].items():
            L += [f"### ({key.replace('_', ') ')}{')' if key == 'a' else ''} "
                  f"{doc['peers'].get(peer, peer)}", ""]
            if "error" in prof:
                L += [prof["error"], ""]
                continue
            n = prof.get("samples", "?")
            n = f"{n:,}" if isinstance(n, int) else n
            L += [f"Profiled run: {prof.get('run', '?')}; {n} samples "
                  f"(`{prof.get('file', '')}`).", ""]
            rows = [[g["group"], f"{g['share']:.1f} %",
                     "; ".join(f"{sym} ({dso}) {share:.1f} %" for sym, dso, share, _all
                               in g["symbols"][:6])]
                    for g in prof["groups"]]
            L += _table(["processes", "share of samples", "top symbols (self, share of group)"],
                        rows)
    return L


# ---- chart ------------------------------------------------------------------

def _write_dat(path, header, rows):
    with open(path, "w") as f:
        f.write(" ".join(f'"{h}"' for h in header) + "\n")
        for label, values in rows:
            f.write(f'"{label}" ' + " ".join("NaN" if v is None else f"{v:.6g}" for v in values)
                    + "\n")


def chart(doc, path):
    """A 2×3 panel PNG; returns an error text or None."""
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        return "gnuplot is not installed"
    peers = list(doc["peers"])
    titles = [doc["peers"][p] for p in peers]
    tmp = tempfile.mkdtemp(prefix="popgate-chart-")
    try:
        def dat(name, rows):
            f = os.path.join(tmp, name)
            _write_dat(f, ["x"] + titles, rows)
            return f, any(v is not None for _label, values in rows for v in values)

        def row(label, key, fn, log=False):
            values = [_metric_value(doc, key, fn, p) for p in peers]
            if log:  # a log axis cannot show zero or a negative (noise) value
                values = [v if v is not None and v > 0 else None for v in values]
            return (label, values)

        panels = [
            ("(a) sessions/s (higher is better)", dat("a.dat", [row("login+STAT+UIDL+QUIT", "a", _rate("sessions_per_s"))]), False),
            ("(b) RETR MB/s (higher is better)", dat("b.dat", [row(s["tag"], k, _rate("mb_per_s"), True) for k, s in zip(b_keys(doc), doc["params"]["b_sizes"])]), True),
            ("(c) UIDL big mailbox, ms (lower is better)", dat("c.dat", [row("first", "c_first", _elapsed_ms, True), row("repeated", "c_repeat", _elapsed_ms, True)]), True),
            ("(d) KiB per idle connection (lower is better)", dat("d.dat", [row("pre-auth", "d_preauth", None, True), row("logged in", "d_auth", None, True)]), True),
            ("(e) TLS handshakes/s (higher is better)", dat("e.dat", [row("implicit TLS", "e", _rate("sessions_per_s"))]), False),
            ("(a) CPU s per 1,000 sessions (lower is better)", dat("cpu.dat", [row("gateway+backend", "a", cpu_per_1000)]), False),
        ]
        script = [
            "set terminal pngcairo size 1500,900 font 'sans,9'",
            f"set output '{path}'",
            "set style data histograms",
            "set style histogram clustered gap 1",
            "set style fill solid 0.85 border -1",
            "set boxwidth 0.9",
            "set key below font 'sans,8'",
            "set grid ytics",
            "set yrange [0:*]",
            "set datafile missing 'NaN'",
            f"set multiplot layout 2,3 title 'popgate benchmark, {doc['machine']['cpu']}, "
            f"{doc['machine']['cores']} cores ({doc['params']['mode']} run)'",
        ]
        for title, (f, has_data), log in panels:
            script.append(f"set title \"{title}\"")
            if not has_data:
                # gnuplot aborts the whole script on a plot without points.
                script += ["unset logscale y", "set label 1 'no data' at graph 0.5,0.5 center",
                           "plot [0:1][0:1] NaN notitle", "unset label 1"]
                continue
            if log:
                script += ["set logscale y", "set yrange [*:*]"]
            else:
                script += ["unset logscale y", "set yrange [0:*]"]
            script.append(f"plot for [i=2:{len(peers) + 1}] '{f}' using i:xtic(1) title columnheader(i)")
        script.append("unset multiplot")
        r = subprocess.run([gnuplot], input="\n".join(script) + "\n", capture_output=True,
                           text=True, timeout=60)
        if r.returncode != 0:
            return r.stderr.strip()[-500:]
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# Hand-written sections of results.md that a rerun keeps (they are dated and
# name their own builds): the profile of the targets a run missed (its heading
# line exactly: "## Profile of this run" is generated), and the figures of
# `make bench-login` (a heading that starts so), which follows the chart.
KEPT_HEADING = "## Profile"
KEPT_AFTER_CHART = "## Logins on a 100,000-message mailbox"


def _kept_section(path, heading=KEPT_HEADING, prefix=False):
    """The section of an earlier results.md under heading (the whole heading
    line, or its start if prefix), up to the next "## " heading, or "" if
    there is none."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return ""
    start = text.find("\n" + heading + ("" if prefix else "\n"))
    if start < 0:
        return ""
    end = text.find("\n## ", start + 1)
    return text[start + 1:end + 1 if end >= 0 else len(text)].rstrip("\n") + "\n\n"


def write(doc, out_dir, logs):
    os.makedirs(out_dir, exist_ok=True)
    err = chart(doc, os.path.join(out_dir, "chart.png"))
    if err:
        doc.setdefault("notes", []).append(f"chart not drawn: {err}")
    path = os.path.join(out_dir, "results.md")
    text = markdown(doc, logs)
    kept = _kept_section(path)
    if kept:
        text = text.replace("## Chart\n", kept + "## Chart\n", 1)
    after = _kept_section(path, KEPT_AFTER_CHART, prefix=True)
    if after:
        text = text.rstrip("\n") + "\n\n" + after.rstrip("\n") + "\n"
    with open(path, "w") as f:
        f.write(text)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")


def headline(doc):
    m = doc["machine"]
    lines = [f"popgate benchmark ({doc['params']['mode']} run) on {m['cpu']}, {m['cores']} cores, "
             f"Linux {m['kernel']}:"]
    if noisy(doc):
        lines.append(f"  WARNING: load average {m['load_start']} when the run started: other work "
                     "shared the cores, the figures are not clean")
    for desc, shown, verdict in targets17(doc) + targets(doc):
        lines.append(f"  [{verdict:^6}] {desc}: {shown}")
    others = [p for p in doc["peers"] if p != "popgate"]
    for label, key, fn, _higher in metrics(doc):
        pg = _metric_value(doc, key, fn, "popgate")
        parts = [f"{fmt_ratio(ratio(pg, _metric_value(doc, key, fn, p)))} {p}" for p in others]
        lines.append(f"  {label}: popgate " + ", ".join(parts))
    t = doc.get("tuned")
    if t:
        main_mode = doc.get("dovecot_mode", "tuned")
        main, tuned = _subdoc(doc, doc["results"]), _subdoc(doc, t["results"])
        lines.append(f"  Dovecot tuned ({t['duration_s']:g} s runs), against Dovecot {main_mode}:")
        for label, key, fn, _higher in metrics(doc):
            if key not in t["results"] or "CPU" in label or "latency" in label:
                continue
            nd, nt = _val(main, key, "dovecot", fn), _val(tuned, key, "dovecot", fn)
            pd, pt = _val(main, key, "popgate", fn), _val(tuned, key, "popgate", fn)
            lines.append(f"    {label}: native {fmt(nd)} -> {fmt(nt)}, popgate {fmt(pd)} -> "
                         f"{fmt(pt)}; popgate ÷ native {fmt_ratio(ratio(pd, nd))} -> "
                         f"{fmt_ratio(ratio(pt, nt))}")
    return lines
