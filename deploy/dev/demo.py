#!/usr/bin/env python3
"""`make demo`: popgate in front of a throwaway Dovecot, ready for a real client.

Starts, in one temporary directory: Dovecot serving IMAP only (to popgate),
Redis, and ./popgate (or POPGATE_BIN) on 127.0.0.1 with a POP3 port (STLS) and
a POP3S port. User demo, password demo, 20 messages in the INBOX, including
a 5 MB one and one with attachments.

Prints the device story: what a phone (demo#phone) and a desk (demo#desk) each
see after the other downloaded, told with fetchmail, mpop, curl and
popgate-admin command lines that work as printed; Thunderbird settings; and how
to start again (Enter, or SIGUSR1: every message unread, no device state).
Ctrl-C (or SIGTERM) stops everything and removes the directory.
"""

import base64
import os
import pwd
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import testbed  # noqa: E402

USER = "demo"
PASSWORD = "demo"
# Ports that are easy to type, used when free; random free ports otherwise.
PREFERRED_POP3 = 11110
PREFERRED_POP3S = 11995
LARGE_SIZE = 5 * 1024 * 1024
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def pick_port(preferred):
    return preferred if testbed.port_free(preferred) else testbed.free_port()


def message(n, subject, body, sender="Alice Example <alice@example.org>",
            content_type="Content-Type: text/plain; charset=utf-8\r\n"):
    return (f"From: {sender}\r\n"
            f"To: Demo User <demo@example.org>\r\n"
            f"Date: Mon, {1 + n % 28} Jan 2024 {8 + n % 10:02d}:{(7 * n) % 60:02d}:00 +0000\r\n"
            f"Message-ID: <demo-{n}@popgate.example>\r\n"
            f"Subject: {subject}\r\n"
            f"MIME-Version: 1.0\r\n"
            f"{content_type}"
            f"\r\n{body}").encode("utf-8")


def large_message(n):
    line = "This line is here to make the message large enough to test streaming. 0123456789\r\n"
    head = message(n, "A large message (5 MB)", "")
    body = (line * (LARGE_SIZE // len(line) + 1)).encode()
    return head + body[:LARGE_SIZE - len(head) - 2] + b"\r\n"


def multipart_message(n):
    boundary = "demo-boundary-42"
    attachment = bytes(range(256)) * 64          # 16 KiB of binary data
    b64 = base64.encodebytes(attachment).decode().replace("\n", "\r\n")
    notes = "Meeting notes\r\n- popgate demo\r\n- attachments survive the gateway\r\n"
    body = (f"This is a multi-part message in MIME format.\r\n"
            f"--{boundary}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Hello, two files are attached: a text file and some binary data.\r\n\r\n"
            f"--{boundary}\r\n"
            f"Content-Type: text/plain; charset=utf-8; name=\"notes.txt\"\r\n"
            f"Content-Disposition: attachment; filename=\"notes.txt\"\r\n\r\n"
            f"{notes}\r\n"
            f"--{boundary}\r\n"
            f"Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
            f"Content-Transfer-Encoding: base64\r\n"
            f"Content-Disposition: attachment; filename=\"data.bin\"\r\n\r\n"
            f"{b64}"
            f"--{boundary}--\r\n")
    return message(n, "Files attached", body,
                   content_type=f"Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n")


def sample_messages():
    msgs = [
        message(1, "Welcome to popgate", "Hello!\r\n\r\nThis mailbox lives on an IMAP server; "
                "you are reading it over POP3 through popgate.\r\n"),
        message(2, "Lunch on Friday?", "Are you free for lunch on Friday?\r\n\r\nBob\r\n",
                sender="Bob Example <bob@example.org>"),
        message(3, "Grüße aus München", "Schöne Grüße — UTF-8 survives the trip. ✓\r\n",
                content_type="Content-Type: text/plain; charset=utf-8\r\n"
                             "Content-Transfer-Encoding: 8bit\r\n"),
        message(4, "Lines starting with dots", ".\r\n..\r\n.hidden\r\nA POP3 server must "
                "dot-stuff these lines; your client must show them unchanged.\r\n"),
        multipart_message(5),
        message(6, "Invoice 2024-001", "Please find the amount due: 42.00 EUR.\r\n",
                sender="Billing <billing@example.com>"),
        message(7, "Unix line endings", "This message was stored with bare LF line ends.\n"
                "popgate sends CRLF.\n").replace(b"\r\n", b"\n"),
        large_message(8),
    ]
    topics = ["Team meeting moved", "Your parcel is on its way", "Weekly report",
              "Re: printer on floor 2", "Password policy reminder", "Newsletter: January",
              "Re: Lunch on Friday?", "Holiday schedule", "Server maintenance tonight",
              "Scanned document", "Re: Weekly report", "Photos from the trip"]
    for i, subject in enumerate(topics, start=9):
        msgs.append(message(i, subject, f"Message {i}: {subject}.\r\n\r\n"
                            + "Some ordinary text.\r\n" * (i % 5 + 1)))
    return msgs


FETCHMAIL_SAVE = """#!/bin/sh
# fetchmail mda for the demo: store each message as a numbered file in $1.
n=$(ls "$1" | wc -l)
exec cat > "$1/$(printf %04d $((n + 1)))"
"""


class Demo:
    """The running demo: the test bed, popgate, and the client files the
    printed steps use, all inside tb.dir."""

    def __init__(self, tb, pg, msgs, admin):
        self.tb, self.pg, self.msgs, self.admin = tb, pg, msgs, admin
        d = tb.dir
        self.phone_out = os.path.join(d, "phone")          # fetchmail delivers here
        self.desk_maildir = os.path.join(d, "desk")        # mpop delivers here
        self.fetchmailrc = os.path.join(d, "fetchmailrc")
        self.fetchids = os.path.join(d, "fetchids")
        self.mpoprc = os.path.join(d, "mpoprc")
        self.mpop_uidls = os.path.join(d, "mpop-uidls")
        self.write_client_files()

    # -- the clients' configuration ---------------------------------------
    def write_client_files(self):
        d, pg, tb = self.tb.dir, self.pg, self.tb
        os.makedirs(self.phone_out, exist_ok=True)
        for sub in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.desk_maildir, sub), exist_ok=True)
        save = os.path.join(d, "fetchmail-save.sh")
        with open(save, "w") as f:
            f.write(FETCHMAIL_SAVE)
        os.chmod(save, 0o755)
        local_user = pwd.getpwuid(os.getuid()).pw_name
        # fetchmail and mpop refuse a file others can read (it holds a password).
        with open(os.open(self.fetchmailrc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write("set no bouncemail\n"
                    f"poll 127.0.0.1 service {pg.port} protocol pop3 auth password timeout 30\n"
                    f'  user "{USER}#phone" there with password "{PASSWORD}" is "{local_user}" here\n'
                    f'  sslproto "tls1.2+" sslcertck sslcertfile "{tb.cert}" sslcommonname "localhost"\n'
                    "  keep\n"
                    f'  mda "{save} {self.phone_out}"\n')
        with open(os.open(self.mpoprc, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(self.mpop_settings())

    def mpop_settings(self):
        return ("account desk\n"
                "host 127.0.0.1\n"
                f"port {self.pg.port}\n"
                "tls on\n"
                "tls_starttls on\n"
                f"tls_trust_file {self.tb.cert}\n"
                "auth user\n"
                f"user {USER}#desk\n"
                f"password {PASSWORD}\n"
                "keep on\n"
                "only_new on\n"
                f"uidls_file {self.mpop_uidls}\n"
                f"delivery maildir {self.desk_maildir}\n"
                "received_header off\n"
                "timeout 30\n")

    # -- "start the story again" -------------------------------------------
    def reset(self):
        """Every message unread and back in the INBOX, no device state and no
        overrides in Redis, the clients' delivered mail and UIDL lists gone."""
        # Redis: every key of the user (they all carry {demo}) and the
        # override hash pg1:map:demo.
        script = ("local n = 0 "
                  "for _, p in ipairs(ARGV) do "
                  "for _, k in ipairs(redis.call('KEYS', p)) do redis.call('DEL', k); n = n + 1 end "
                  "end return n")
        r = subprocess.run([REDIS_CLI, "-h", self.tb.host, "-p", str(self.tb.ports["redis"]),
                            "EVAL", script, "0", f"pg1:{{{USER}}}:*", f"pg1:map:{USER}"],
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0 or not r.stdout.strip().isdigit():
            raise RuntimeError(f"redis-cli: {r.stdout}{r.stderr}".strip())
        # IMAP: clear the flags a client could have set, put back what was
        # expunged or moved (known by Message-ID).
        conn = self.tb.imap(USER, PASSWORD)
        try:
            typ, data = conn.select("INBOX")
            if typ != "OK":
                raise RuntimeError(f"IMAP SELECT INBOX: {data}")
            present = set()
            if int(data[0]) > 0:
                conn.store("1:*", "-FLAGS.SILENT", r"(\Seen \Deleted \Answered \Flagged)")
                typ, data = conn.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
                for item in data:
                    if isinstance(item, tuple):
                        present.update(re.findall(rb"<[^>]+>", item[1]))
        finally:
            conn.logout()
        missing = [m for m in self.msgs if message_id(m) not in present]
        self.tb.seed(USER, missing)
        # The clients: what they delivered, and the UIDLs they remember.
        for path in (self.fetchids, self.mpop_uidls):
            if os.path.exists(path):
                os.unlink(path)
        for d in (self.phone_out, os.path.join(self.desk_maildir, "new"),
                  os.path.join(self.desk_maildir, "cur")):
            for name in os.listdir(d):
                os.unlink(os.path.join(d, name))
        return len(missing)

    # -- what to print -----------------------------------------------------
    def instructions(self):
        tb, pg = self.tb, self.pg
        p, s, d = pg.port, pg.tls_port, tb.dir
        q = shlex.quote
        admin = f"{q(self.admin)} -c {q(pg.config_path)}"

        def lst(device):
            return f"curl -k pop3s://{USER}%23{device}:{PASSWORD}@127.0.0.1:{s}/"
        fetchmail = (f"fetchmail -f {q(self.fetchmailrc)} -N --nosyslog -i {q(self.fetchids)}"
                     f" --pidfile {q(os.path.join(d, 'fetchmail.pid'))}")
        mpop = f"mpop -C {q(self.mpoprc)} desk"
        n = len(self.msgs)
        missing = [c for c in ("curl", "fetchmail", "mpop") if not shutil.which(c)]
        note = (f"\n  (not installed here: {', '.join(missing)}; apt-get install --no-remove {' '.join(missing)})\n"
                if missing else "")
        admin_note = ("" if os.access(self.admin, os.X_OK) else
                      "\n  (popgate-admin is not built yet: make popgate-admin)\n")
        mpop_lines = "".join(f"      {ln}\n" for ln in self.mpop_settings().splitlines())
        return f"""
popgate demo is running (state in {d}).

  POP3 with STARTTLS   127.0.0.1:{p}
  POP3S (implicit TLS) 127.0.0.1:{s}
  password {PASSWORD}; {n} messages, one of 5 MB, one with attachments
  popgate log: {pg.log_path}
  upstream Dovecot (IMAP only) 127.0.0.1:{tb.ports['imap']}, Redis 127.0.0.1:{tb.ports['redis']}
{note}
One mailbox, two devices
------------------------
Each client names its device in its user name: the phone logs in as
{USER}#phone, the desk as {USER}#desk (curl writes # as %23). The mail stays on
the IMAP server; popgate keeps in Redis what each device downloaded. The view
is popgate's default, `unread`: a device is offered what is not \\Seen upstream
and not downloaded by any device yet, and a session that downloaded mail and
ended with QUIT marks that mail \\Seen. (-k: the certificate is self-signed.)

1. Both devices see all {n} messages (LIST):
    {lst("phone")}
    {lst("desk")}

2. The phone downloads everything with fetchmail (STLS, certificate checked,
   mail kept on the server); the messages land in {self.phone_out}/:
    {fetchmail}

3. The desk now sees none of them: mail read on one device is not new on
   another. The phone sees none either: it has them all.
    {lst("desk")}

4. To give every device each message once instead, switch {USER} to the view
   `new` (applies at the next login). The desk then sees all {n}, the phone
   still none. Download them with mpop as the desk (into {self.desk_maildir}/new/):
    {admin} map set {USER} view=new
    {lst("desk")}
    {mpop}
   mpop's settings ({self.mpoprc}):
{mpop_lines}
5. The phone lost its mail? Let it download its view again (all {n}), and look:
    {admin} device reset {USER} phone
    {lst("phone")}
    {admin} device list {USER}
    {admin} stats
{admin_note}
Start the story again (all mail unread, no device state, no override, the
delivered files removed): press Enter here, or
    kill -USR1 {os.getpid()}

More with curl: RETR 1, UIDL, TOP, and STARTTLS on the POP3 port:
    curl -k pop3s://{USER}%23phone:{PASSWORD}@127.0.0.1:{s}/1
    curl -k -X UIDL pop3s://{USER}:{PASSWORD}@127.0.0.1:{s}/
    curl -k -X 'TOP 5 0' pop3s://{USER}:{PASSWORD}@127.0.0.1:{s}/
    curl --ssl-reqd -k pop3://{USER}:{PASSWORD}@127.0.0.1:{p}/2

Thunderbird: New account, "Configure manually":
  Incoming: POP3, server 127.0.0.1, port {p} with STARTTLS, or port {s} with SSL/TLS
  Authentication: Normal password; username {USER}#laptop (a third device),
  password {PASSWORD}. It sees what its view leaves it: nothing new after the
  phone's download with `unread`, everything with `new`.
  Outgoing: any (not used). Confirm the security exception Thunderbird asks
  for (the certificate is self-signed, for localhost/127.0.0.1).

Press Ctrl-C to stop everything and remove {d}.
"""


def message_id(data):
    m = re.search(rb"^Message-ID: (<[^>]+>)", data, re.M | re.I)
    return m.group(1) if m else None


def admin_binary(popgate_binary):
    """POPGATE_ADMIN_BIN, else popgate-admin beside the popgate binary."""
    if os.environ.get("POPGATE_ADMIN_BIN"):
        return os.path.abspath(os.environ["POPGATE_ADMIN_BIN"])
    return os.path.join(os.path.dirname(popgate_binary), "popgate-admin")


def main():
    reset_asked = []

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGUSR1, lambda signum, frame: reset_asked.append(True))

    binary = os.path.abspath(testbed.default_popgate_binary())
    if not os.access(binary, os.X_OK):
        print(f"demo: no popgate binary at {binary}.\n"
              "      Build it with `make popgate` (`make demo` does that), or set POPGATE_BIN.",
              file=sys.stderr)
        return 1

    tb = testbed.Testbed(protocols=("imap",), name="pgdemo")
    try:
        print("demo: starting Dovecot and Redis ...", flush=True)
        tb.start()
        tb.add_user(USER, PASSWORD)
        msgs = sample_messages()
        tb.seed(USER, msgs)
        # A real client should feel the real delay after a wrong password.
        pg = tb.popgate(binary=binary, name="popgate", server={"auth_failure_delay": 2},
                        ports=(pick_port(PREFERRED_POP3), pick_port(PREFERRED_POP3S)))
        # The demo shows popgate as shipped: its own default view and
        # dispositions, not the test suite's leave-on-server policy.
        pg.sections.pop("policy", None)
        print("demo: starting popgate ...", flush=True)
        pg.start()
        demo = Demo(tb, pg, msgs, admin_binary(binary))
        print(demo.instructions(), flush=True)
        # Enter on a terminal (or a line on a pipe) asks for a reset too;
        # at end of input, only SIGUSR1 does.
        watch_stdin = True
        while pg.running():
            if watch_stdin:
                ready, _, _ = select.select([sys.stdin], [], [], 0.5)
                if ready:
                    if sys.stdin.readline():
                        reset_asked.append(True)
                    else:
                        watch_stdin = False
            else:
                time.sleep(0.5)
            if reset_asked:
                reset_asked.clear()
                restored = demo.reset()
                print(f"demo: reset: all {len(msgs)} messages unread"
                      + (f" ({restored} put back)" if restored else "")
                      + ", no device state, no override. Start again at step 1.", flush=True)
        print(f"demo: popgate exited with status {pg.proc.returncode}; see {pg.log_path}:\n"
              + pg.log()[-3000:], file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ndemo: stopping ...", flush=True)
        return 0
    except Exception as e:
        print(f"demo: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        tb.stop()
        print("demo: stopped, temporary state removed.", flush=True)


if __name__ == "__main__":
    sys.exit(main())
