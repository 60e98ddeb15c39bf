"""The soak run's clients: POP3 devices that behave as real ones do, mail
delivered over LMTP, and webmail-like IMAP clients. Each records what it did
in the ledger (ledger.py); none of them raises out of its loop: faults are the
point of the run, and a failed attempt is tried again later."""

import imaplib
import random
import re
import smtplib
import socket
import ssl
import threading
import time

from pop3client import POP3, Pop3Error, is_ok
from ledger import now

MSGID = re.compile(rb"^Message-ID: <(soak-[0-9]+)@soak\.test>\r?$", re.M | re.I)


def message_bytes(msgid, user, size_class):
    """A message whose body ends in a line naming it: a RETR that returns it
    whole contains the tail. Sizes: a few hundred octets, a few KiB, ~60 KiB."""
    body_lines = {0: 3, 1: 60, 2: 900}[size_class]
    lines = [b"line %d of %s, some text to make it longer ..........." % (i, msgid.encode())
             for i in range(body_lines)]
    lines.insert(body_lines // 2, b".a line that starts with a dot")
    head = (f"From: sender@soak.test\r\nTo: {user}@soak.test\r\nSubject: soak {msgid}\r\n"
            f"Message-ID: <{msgid}@soak.test>\r\n\r\n").encode()
    return head + b"\r\n".join(lines) + b"\r\n" + tail_of(msgid)


def tail_of(msgid):
    return b"end of " + msgid.encode() + b"\r\n"


class DevicePool:
    """Worker threads that run device sessions through HAProxy, one session
    per device at a time, each device polling every few seconds."""

    def __init__(self, ledger, devices, users, ports, cafile, workers, think=(1.0, 4.0), timeout=30.0):
        self.ledger = ledger
        self.devices = devices
        self.users = users            # user -> password
        self.ports = ports            # {"pop3": port, "pop3s": port} (HAProxy)
        self.cafile = cafile
        self.workers = workers
        self.think = think
        self.timeout = timeout
        self.stop_flag = threading.Event()
        self.pick_lock = threading.Lock()
        self.threads = []
        self.sessions = 0

    # -- scheduling ----------------------------------------------------------
    def _pick(self):
        with self.pick_lock:
            t = time.monotonic()
            ready = [d for d in self.devices if not d.busy and d.next_due <= t]
            if not ready:
                return None
            d = random.choice(ready)
            d.busy = True
            return d

    def _worker(self):
        while not self.stop_flag.is_set():
            d = self._pick()
            if d is None:
                time.sleep(0.05)
                continue
            try:
                self.session(d)
            finally:
                with self.pick_lock:
                    d.busy = False
                    d.next_due = time.monotonic() + random.uniform(*self.think)

    def start(self):
        for i in range(self.workers):
            t = threading.Thread(target=self._worker, name=f"device-worker-{i}", daemon=True)
            t.start()
            self.threads.append(t)

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(self.timeout + 30)

    # -- one session -----------------------------------------------------------
    def connect(self, d):
        if d.tls == "pop3s":
            c = POP3("127.0.0.1", self.ports["pop3s"], tls=True, cafile=self.cafile, timeout=self.timeout)
        else:
            c = POP3("127.0.0.1", self.ports["pop3"], cafile=self.cafile, timeout=self.timeout)
            c.stls()
        if not is_ok(c.greeting):
            raise Pop3Error(f"greeting {c.greeting!r}")
        return c

    def session(self, d, final=False):
        """One poll of device d. final: read everything, never drop, no DELE.
        Returns the outcome (ok, err, noreply, drop, or login-failed)."""
        led = self.ledger
        retr, dele = set(), set()
        outcome = "drop"
        c = None
        quit_time = None
        try:
            c = self.connect(d)
            login_time = now()
            pw = self.users[d.user]
            if d.auth == "plain":
                r = c.auth_plain(d.login, pw)
            else:
                r = c.user_pass(d.login, pw)
            if not is_ok(r):
                outcome = "login-failed"
                led.count("login-refused " + r.split(b"]")[0].decode("ascii", "replace") + "]")
                return "login-failed"
            self.sessions += 1
            listing = c.uidl()
            listed_time = now()
            with led.lock:
                led.check_offer(d, [u for _, u in listing], login_time, listed_time)
            led.count("offered", len(listing))
            if not d.reads:
                want = []
            elif d.group == "all":
                # A leave-on-server client fetches what its UIDL cache lacks.
                want = [(n, u) for n, u in listing
                        if led.msgid_of(d.user, u) not in d.retrieved_any]
            else:
                want = list(listing)
            if not final and random.random() < 0.2:
                want = want[:random.randint(0, len(want))]
            drop_at = None
            if not final and d.drops and random.random() < 0.15:
                drop_at = random.randint(0, len(want))
            got = self._retrieve(c, d, want, drop_at)
            retr |= set(got)
            if drop_at is not None:
                return "drop"
            if not final and d.reads and got and random.random() < d.dele_rate:
                victims = random.sample(sorted(got.items()), k=random.randint(1, min(3, len(got))))
                for m, n in victims:
                    if is_ok(c.cmd(f"DELE {n}")):
                        dele.add(m)
            if random.random() < 0.3:
                c.ok("NOOP")
            c.send("QUIT")
            outcome = "noreply"
            r = c.read_line()
            quit_time = now()
            outcome = "ok" if is_ok(r) else "err"
            if outcome == "err":
                led.count("quit-err " + r.decode("ascii", "replace")[:40])
            return outcome
        except (OSError, Pop3Error, ssl.SSLError, AssertionError, ValueError) as e:
            led.count(f"session-error {type(e).__name__}")
            return outcome
        finally:
            if c is not None:
                c.close()
            if outcome != "login-failed" and (c is not None):
                led.session_end(d, outcome, retr, dele, quit_time or now())

    def _retrieve(self, c, d, want, drop_at):
        """RETR the messages in want (pipelined for a pipelining device);
        returns {msgid: number} of those received whole. Stops before item
        drop_at."""
        led = self.ledger
        got = {}
        cut = want[drop_at] if drop_at is not None and drop_at < len(want) else None
        want = want if drop_at is None else want[:drop_at]
        batch = 8 if d.pipelining else 1
        for i in range(0, len(want), batch):
            chunk = want[i:i + batch]
            c.send_raw(b"".join(b"RETR %d\r\n" % n for n, _ in chunk))
            for n, uidl in chunk:
                r = c.read_line()
                if not is_ok(r):
                    led.count("retr-err")      # expunged upstream since the listing
                    continue
                body = c.read_multi()
                m = MSGID.search(body)
                if not m:
                    led.violation("C3", f"{d.login} RETR {n} ({uidl}): no soak Message-ID")
                    continue
                msgid = m.group(1).decode()
                if not body.endswith(tail_of(msgid)):
                    led.violation("C3", f"{d.login} RETR {n} of {msgid}: body does not end as sent")
                led.learn(d.user, uidl, msgid)
                got[msgid] = n
        if cut is not None:
            # Gone in the middle of a message: the status line and no more.
            c.send(f"RETR {cut[0]}")
            c.read_line()
        return got


class Deliverer:
    """Delivers new mail over LMTP at about `rate` messages a second."""

    def __init__(self, ledger, users, lmtp_port, rate):
        self.ledger = ledger
        self.users = list(users)
        self.port = lmtp_port
        self.rate = rate
        self.stop_flag = threading.Event()
        self.n = 0
        self.thread = threading.Thread(target=self._run, name="lmtp", daemon=True)

    def deliver_one(self, user):
        self.n += 1
        msgid = f"soak-{self.n}"
        data = message_bytes(msgid, user, random.choices((0, 1, 2), (70, 25, 5))[0])
        led = self.ledger
        with led.lock:
            led.unsure[msgid] = user
        try:
            with smtplib.LMTP("127.0.0.1", self.port, timeout=20) as s:
                s.sendmail("sender@soak.test", [user], data)
            with led.lock:
                del led.unsure[msgid]
                led.delivered[msgid] = user
            led.count("delivered")
        except (OSError, smtplib.SMTPException):
            led.count("delivery-failed")

    def _run(self):
        while not self.stop_flag.is_set():
            self.deliver_one(random.choice(self.users))
            self.stop_flag.wait(random.expovariate(self.rate))

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_flag.set()
        self.thread.join(60)


class Webmail:
    """Logs in to Dovecot directly as a random user every `period` seconds
    and does what webmail does: flags a message, marks one read, and now and
    then deletes one with UID STORE \\Deleted + UID EXPUNGE (never plain
    EXPUNGE, which would remove what others marked)."""

    def __init__(self, ledger, users, imap_port, period, expunge_share=0.15, seen_share=0.3):
        self.ledger = ledger
        self.users = users
        self.port = imap_port
        self.period = period
        self.expunge_share = expunge_share
        self.seen_share = seen_share
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, name="webmail", daemon=True)

    def act(self, user):
        led = self.ledger
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=20)
        try:
            conn.login(user, self.users[user])
            typ, _ = conn.select("INBOX")
            if typ != "OK":
                return
            typ, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            uids = {}
            for item in data or []:
                if isinstance(item, tuple):
                    u = re.search(rb"UID (\d+)", item[0])
                    m = re.search(rb"<(soak-[0-9]+)@soak\.test>", item[1])
                    if u and m:
                        uids[int(u.group(1))] = m.group(1).decode()
            if not uids:
                return
            uid, msgid = random.choice(sorted(uids.items()))
            roll = random.random()
            if roll < self.expunge_share:
                # Before the STORE: from here on the message may vanish.
                with led.lock:
                    led.webmail_expunged.setdefault(msgid, now())
                conn.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")
                conn.uid("EXPUNGE", str(uid))
                led.count("webmail-expunge")
            elif roll < self.expunge_share + self.seen_share:
                typ, _ = conn.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Seen)")
                if typ == "OK":
                    # Rule U1 holds from the moment the server said OK.
                    with led.lock:
                        led.webmail_seen.setdefault(msgid, now())
                    led.count("webmail-seen")
            else:
                conn.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Flagged)")
                led.count("webmail-flag")
        finally:
            try:
                conn.logout()
            except (OSError, imaplib.IMAP4.error):
                pass

    def _run(self):
        names = sorted(self.users)
        while not self.stop_flag.wait(random.expovariate(1.0 / self.period)):
            try:
                self.act(random.choice(names))
            except (OSError, imaplib.IMAP4.error, socket.timeout):
                self.ledger.count("webmail-failed")

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_flag.set()
        self.thread.join(60)


def upstream_state(imap_port, users):
    """user -> {msgid: set of flags} for every soak message in each INBOX."""
    out = {}
    for user, pw in users.items():
        conn = imaplib.IMAP4("127.0.0.1", imap_port, timeout=30)
        try:
            conn.login(user, pw)
            conn.select("INBOX", readonly=True)
            typ, data = conn.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            box = {}
            for item in data or []:
                if isinstance(item, tuple):
                    f = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                    m = re.search(rb"<(soak-[0-9]+)@soak\.test>", item[1])
                    if f and m:
                        box[m.group(1).decode()] = set(f.group(1).decode().split())
            out[user] = box
        finally:
            conn.logout()
    return out
