#!/usr/bin/env python3
"""Logins on a big mailbox (issue 16, part 3): popgate beside Dovecot's own
POP3, in one run, on the same 100,000-message Maildir content.

    python3 bench/login.py            # make bench-login, about 3 minutes
    python3 bench/login.py --smoke    # 3,000 messages, seconds

Each session is login, UIDL, QUIT (pop3load -w uidl), one client. Rounds
alternate the peers so that both see the same machine load:

- first: the first session on a mailbox nobody opened before (Dovecot builds
  its index: for popgate through IMAP, for Dovecot POP3 its own);
- first, index warm: popgate's first session on a mailbox Dovecot already
  indexed (popgate's listing cache empty), beside a repeated Dovecot POP3
  session: what popgate's own full listing costs;
- repeated: the same user again; popgate serves the folder from its listing
  cache (SELECT says nothing changed);
- after new mail: one message delivered into both mailboxes before the
  session; popgate fetches the change (CHANGEDSINCE) only.

Results: bench/results-login.md and .json (--out to change). Everything runs
on loopback in a temporary directory and is stopped at the end.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mailboxes  # noqa: E402
import report  # noqa: E402
import stack  # noqa: E402

REPO = os.path.dirname(HERE)
TARGETS = {"repeat": 1.0, "first": 1.5}


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="3,000 messages, one repeat")
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--size", type=int, default=2048, help="bytes per message")
    ap.add_argument("--repeats", type=int, default=7, help="repeated sessions per peer")
    ap.add_argument("--popgate", default=os.path.join(REPO, "popgate"))
    ap.add_argument("--pop3load", default=os.path.join(HERE, "pop3load"))
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--popgate-set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="extra popgate config, e.g. metrics.log_level=debug")
    args = ap.parse_args(argv)
    if args.smoke:
        args.messages, args.repeats = 3000, 1
    return args


def session(args, peer, user, timeout=180):
    """One login + UIDL + QUIT: elapsed seconds, or raises."""
    argv = [args.pop3load, "-p", str(peer.port), "-w", "uidl", "-u", user, "-P", "pw1",
            "-U", "1", "-F", "1", "-c", "1", "-n", "1", "-l", "1", "-t", str(timeout),
            "--max-time", str(timeout * 2), "--max-errors", "0"]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout * 3)
    try:
        out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"pop3load failed: {r.stderr.decode(errors='replace')[-300:]}")
    if out.get("sessions") != 1 or out.get("errors"):
        raise RuntimeError(f"{peer.name} session failed: {out.get('first_error')}")
    return out["elapsed"]


def deliver(st, user, pool, n):
    """One more message into user's Maildir (new/), as a delivery agent would."""
    data = mailboxes.make_message(pool.size, n, "new")
    vsize = len(data) + data.count(b"\n")
    name = f"{1800000000 + n}.M{n}P{os.getpid()}.benchnew,S={len(data)},W={vsize}"
    path = os.path.join(st.mail_root, user, "Maildir", "new", name)
    with open(path, "wb") as f:
        f.write(data)
    st.chown(path)


def main(argv=None):
    args = parse_args(argv)
    if not os.access(args.pop3load, os.X_OK):
        print(f"bench-login: {args.pop3load} is missing (make bench/pop3load)", file=sys.stderr)
        return 2
    started = time.time()
    machine = report.machine(REPO)
    users = {"native": "pw1", "popgate": "pw1", "warm": "pw1"}
    os.makedirs(args.out, exist_ok=True)
    st = stack.Stack(args.popgate, popgate_set=args.popgate_set)
    res = {}
    try:
        st.prepare(users)
        big = mailboxes.Pool(st.dir, "big", args.size, args.messages, st.chown)
        for u in users:
            mailboxes.fill_maildir(st.mail_root, u, big, st.chown)
        st.start(["dovecot", "popgate"])
        if st.failures:
            raise RuntimeError(f"peers failed to start: {st.failures}")
        native, pg = st.peers["dovecot"], st.peers["popgate"]
        print(f"{args.messages} messages of {args.size} bytes; peers up", flush=True)
        res["first"] = {"dovecot": session(args, native, "native"),
                        "popgate": session(args, pg, "popgate")}
        # Dovecot's own POP3 indexes "warm" once; popgate then lists it for
        # the first time beside a repeated Dovecot POP3 session.
        session(args, native, "warm")
        res["first_warm"] = {"dovecot": session(args, native, "native"),
                             "popgate": session(args, pg, "warm")}
        reps = {"dovecot": [], "popgate": []}
        for _ in range(args.repeats):
            reps["dovecot"].append(session(args, native, "native"))
            reps["popgate"].append(session(args, pg, "popgate"))
        res["repeat"] = {p: statistics.median(v) for p, v in reps.items()}
        res["repeat_all"] = reps
        deliver(st, "native", big, 1)
        deliver(st, "popgate", big, 1)
        res["new_mail"] = {"dovecot": session(args, native, "native"),
                           "popgate": session(args, pg, "popgate")}
        log = open(os.path.join(st.dir, "popgate.log"), encoding="utf-8", errors="replace").read()
        res["popgate_sources"] = [ln.split("source=")[1].split()[0]
                                  for ln in log.splitlines() if "event=listing " in ln]
    finally:
        if os.path.exists(os.path.join(st.dir, "popgate.log")):
            shutil.copy(os.path.join(st.dir, "popgate.log"), os.path.join(args.out, "login-popgate.log"))
        st.stop()
    write(args, machine, res, time.time() - started)
    return 0


ROWS = (("first", "first session, mailbox never opened"),
        ("first_warm", "first popgate session, Dovecot index warm (cache empty)"),
        ("repeat", "repeated session (median)"),
        ("new_mail", "after one new message"))


def write(args, machine, res, wall):
    lines = ["# popgate login benchmark (issue 16)", "",
             f"Generated by `make bench-login` (`bench/login.py`) on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in {wall:.0f} s: one client, "
             f"login + UIDL + QUIT on a {args.messages:,}-message mailbox ({args.size} bytes each), "
             f"Dovecot POP3 and popgate → Dovecot IMAP on the same Maildir content, rounds alternating.", "",
             f"- {machine.get('cpu', '')}; popgate at commit {machine.get('popgate', '?')}",
             f"- load average (1 min) at the end: {os.getloadavg()[0]:.2f}", "",
             "| session | Dovecot POP3 | popgate | popgate ÷ Dovecot | target |",
             "| --- | --- | --- | --- | --- |"]
    for key, title in ROWS:
        d, p = res[key]["dovecot"], res[key]["popgate"]
        target = TARGETS.get(key)
        verdict = ""
        if target:
            verdict = f"≤ {target:.1f}×: {'met' if p / d <= target else 'MISSED'}"
        lines.append(f"| {title} | {d * 1000:.0f} ms | {p * 1000:.0f} ms | {p / d:.2f}× | {verdict} |")
    lines += ["", "Repeated sessions, every run (ms): Dovecot "
              + ", ".join(f"{x * 1000:.0f}" for x in res["repeat_all"]["dovecot"])
              + "; popgate " + ", ".join(f"{x * 1000:.0f}" for x in res["repeat_all"]["popgate"]) + ".",
              "", "popgate's listing per session, in order (its log, `event=listing source=`): "
              + ", ".join(res["popgate_sources"]) + "."]
    name = "results-login"
    with open(os.path.join(args.out, name + ".md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, name + ".json"), "w") as f:
        json.dump({"params": vars(args) | {"smoke": args.smoke}, "machine": machine, "results": res},
                  f, indent=1, default=str)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
