"""The soak run's ledger: what every device was offered, retrieved and deleted,
how each of its sessions ended, what was delivered and what webmail did; and
the rules it must satisfy, checked as sessions happen and once more at the end.

The rules follow README.md ("Configuration reference", [policy]) and the
commit semantics of popgate (QUIT answers +OK only after the upstream changes
and the Redis step succeeded; a session that ends without QUIT changes nothing):

  view = new (group "new", on_dele = hide)
    N1  a message a device retrieved in a session whose QUIT answered +OK is
        never offered to that device again (no duplicate);
    N2  a message a device deleted (hide) in a +OK session is never offered to
        it again;
    N3  a session that ended without QUIT (dropped by the client, cut by a
        restart) changed nothing: what it retrieved or deleted is offered
        again at the device's next session (unless webmail expunged it);
    N4  a QUIT that answered -ERR, or never answered, committed all of the
        session or none of it, never a part (README `replicas_ack`: a QUIT
        refused because WAIT found too few replicas may still have recorded
        its state, atomically); either way the client still holds the mail;
    N5  at the end every delivered message that webmail did not expunge was
        retrieved by every reading device, and each was retrieved once plus
        at most one more time per session of that device that did not end
        with +OK (the duplicates a refused QUIT allows).
  view = unread (group "unread", on_dele = hide)
    U1  a session that logged in after a +OK QUIT of any device of the user
        that retrieved a message, or after webmail set \\Seen on it, is not
        offered that message;
    U2  at the end every delivered message was retrieved by some device of the
        user, or was flagged \\Seen or expunged by webmail.
  view = all (group "all", on_dele = expunge)
    A1  a message a device deleted in a +OK session is not offered to any
        session that logged in after that QUIT;
    A2  at the end every message still upstream was retrieved by every
        reading device; every delivered message is still upstream unless a
        device deleted it or webmail expunged it.
  every group
    C1  upstream, at the end: a message retrieved in a +OK session and still
        there carries \\Seen (on_retr = seen); one deleted in a +OK session of
        group "all" is gone;
    C2  in Redis, at the end: each device's got/hide id lists hold at least the
        messages its +OK sessions retrieved/hid that are still upstream;
    C3  every RETR that answered +OK delivered the whole message (terminating
        "." after the bytes delivered by LMTP).
"""

import threading
import time
from collections import defaultdict


class Device:
    def __init__(self, user, name, group, reads):
        self.user = user
        self.name = name
        self.group = group
        self.reads = reads             # False: a device that only polls
        self.committed = set()         # msgids retrieved in +OK sessions (or commits found later)
        self.hidden = set()            # msgids deleted in +OK sessions
        self.retrieved_any = set()     # msgids retrieved at all
        self.pending = []              # uncommitted sessions not yet checked: (kind, retr, dele)
        self.downloads = defaultdict(list)   # msgid -> outcomes of the sessions that retrieved it
        self.busy = False
        self.next_due = 0.0

    @property
    def login(self):
        return f"{self.user}#{self.name}"


class Ledger:
    def __init__(self):
        self.lock = threading.RLock()  # rules record violations while holding it
        self.violations = []
        self.uidl_msgid = {}                       # (user, uidl) -> msgid
        self.delivered = {}                        # msgid -> user (LMTP answered 250)
        self.unsure = {}                           # msgid -> user (delivery outcome unknown)
        self.webmail_seen = {}                     # msgid -> monotonic time the STORE answered OK
        self.webmail_expunged = {}                 # msgid -> monotonic time the STORE \Deleted began
        self.user_commits = defaultdict(dict)      # user -> {msgid: time of the +OK QUIT} (group unread)
        self.user_deleted = defaultdict(dict)      # user -> {msgid: time of the +OK QUIT} (group all)
        self.user_deleted_any = defaultdict(set)   # user -> msgids some session DELEd (group all)
        self.counts = defaultdict(int)

    def violation(self, rule, text):
        with self.lock:
            self.violations.append(f"{rule}: {text}")

    def count(self, name, n=1):
        with self.lock:
            self.counts[name] += n

    # -- during the run ------------------------------------------------------
    def learn(self, user, uidl, msgid):
        key = (user, uidl)
        with self.lock:
            old = self.uidl_msgid.setdefault(key, msgid)
        if old != msgid:
            self.violation("C3", f"{user} UIDL {uidl} was {old}, now {msgid}")

    def msgid_of(self, user, uidl):
        return self.uidl_msgid.get((user, uidl))

    def check_offer(self, dev, listing, login_time, listed_time):
        """The UIDL listing of a session of dev that sent its login at
        login_time and got the listing at listed_time: rules N1-N4, U1, A1."""
        offered = {}
        for uidl in listing:
            m = self.msgid_of(dev.user, uidl)
            if m is not None:
                offered[m] = uidl
        if dev.group == "new":
            self._settle_pending(dev, offered, listed_time)
            for m in offered:
                if m in dev.committed:
                    self.violation("N1", f"{dev.login} offered {m} again after a +OK QUIT retrieved it")
                if m in dev.hidden:
                    self.violation("N2", f"{dev.login} offered {m} it had deleted (hide)")
        elif dev.group == "unread":
            dev.pending.clear()
            commits = self.user_commits[dev.user]
            for m in offered:
                t = commits.get(m)
                if t is not None and t < login_time:
                    self.violation("U1", f"{dev.login} offered {m}, retrieved by a +OK QUIT before login")
                t = self.webmail_seen.get(m)
                if t is not None and t < login_time:
                    self.violation("U1", f"{dev.login} offered {m}, flagged \\Seen by webmail before login")
        else:
            dev.pending.clear()
            deleted = self.user_deleted[dev.user]
            for m in offered:
                t = deleted.get(m)
                if t is not None and t < login_time:
                    self.violation("A1", f"{dev.login} offered {m}, deleted by a +OK QUIT before login")
        return offered

    def _settle_pending(self, dev, offered, listed_time):
        for kind, retr, dele in dev.pending:
            touched = {m for m in retr | dele
                       if not (m in self.webmail_expunged and self.webmail_expunged[m] < listed_time)}
            # What a later +OK session committed is settled already.
            touched -= dev.committed
            listed = {m for m in touched if m in offered}
            if kind == "drop":
                for m in touched - listed:
                    self.violation("N3", f"{dev.login}: {m}, touched by a session without QUIT, "
                                   "is no longer offered")
            else:
                if listed and listed != touched:
                    self.violation("N4", f"{dev.login}: after a {kind} QUIT {len(listed)} of "
                                   f"{len(touched)} touched messages are offered again (partial commit)")
                elif touched and not listed:
                    # The whole commit landed (the WAIT case): from now on, as +OK.
                    self.count(f"quit-{kind}-committed")
                    dev.committed |= retr
                    dev.hidden |= dele
                elif touched:
                    self.count(f"quit-{kind}-unchanged")
        dev.pending.clear()

    def session_end(self, dev, outcome, retr, dele, quit_time):
        """outcome: ok | err | noreply | drop. retr/dele: msgids."""
        for m in retr:
            dev.downloads[m].append(outcome)
        dev.retrieved_any |= retr
        self.count(f"sessions-{outcome}")
        self.count("retr", len(retr))
        self.count("dele", len(dele))
        if outcome == "ok":
            dev.committed |= retr
            dev.hidden |= dele
            with self.lock:
                if dev.group == "unread":
                    for m in retr:
                        self.user_commits[dev.user].setdefault(m, quit_time)
                if dev.group == "all":
                    for m in dele:
                        self.user_deleted[dev.user].setdefault(m, quit_time)
        elif retr or dele:
            dev.pending.append((outcome, set(retr), set(dele)))
        if dev.group == "all" and dele:
            with self.lock:
                self.user_deleted_any[dev.user] |= dele

    # -- at the end ----------------------------------------------------------
    def check_end(self, devices, upstream, redis_sets):
        """upstream: user -> {msgid: set of flags}; redis_sets: (user, device)
        -> (ids in got, ids in hide), the id lists decoded."""
        by_user = defaultdict(list)
        for d in devices:
            by_user[d.user].append(d)
        for user, devs in by_user.items():
            present = upstream.get(user, {})
            mine = {m for m, u in self.delivered.items() if u == user}
            seen_any = set(self.webmail_seen)
            expunged = set(self.webmail_expunged)
            group = devs[0].group
            for m in mine - expunged:
                if group != "all" and m not in present:
                    self.violation("N5/U2", f"{user}: delivered {m} is gone upstream")
            for d in devs:
                for m, outcomes in d.downloads.items():
                    if "ok" in outcomes[:-1]:
                        self.violation("N5", f"{d.login} retrieved {m} {len(outcomes)} times: "
                                       f"{outcomes} (again after a +OK QUIT)")
                    self.count("downloads", len(outcomes))
                    self.count("downloads-allowed-again", len(outcomes) - 1)
                if d.group == "new" and d.reads:
                    for m in mine - expunged - d.retrieved_any:
                        self.violation("N5", f"{d.login} never retrieved {m}")
                if d.group == "all" and d.reads:
                    for m in (set(present) & (mine | set(self.unsure))) - d.retrieved_any:
                        self.violation("A2", f"{d.login} never retrieved {m}, still upstream")
                for m in d.committed & set(present):
                    if "\\Seen" not in present[m]:
                        self.violation("C1", f"{d.login} retrieved {m} with +OK but it is not \\Seen")
                if d.group == "all":
                    for m in d.hidden & set(present):
                        self.violation("C1", f"{d.login} deleted {m} with +OK but it is still upstream")
                got, hide = redis_sets.get((user, d.name), (0, 0))
                want_got = len(d.committed & set(present))
                want_hide = len(d.hidden & set(present)) if d.group != "all" else 0
                if got < want_got or hide < want_hide:
                    self.violation("C2", f"{d.login}: Redis got/hide {got}/{hide}, "
                                   f"+OK sessions need at least {want_got}/{want_hide}")
            if group == "unread":
                got_by_someone = set().union(*(d.retrieved_any for d in devs))
                for m in mine - got_by_someone - seen_any - expunged:
                    self.violation("U2", f"{user}: {m} was never retrieved by any device")
            if group == "all":
                deleted = self.user_deleted_any[user]
                for m in mine - set(present) - deleted - expunged:
                    self.violation("A2", f"{user}: {m} is gone upstream, nobody deleted it")
        return self.violations


def now():
    return time.monotonic()
