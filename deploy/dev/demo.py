#!/usr/bin/env python3
"""`make demo`: popgate in front of a throwaway Dovecot, ready for a real client.

Starts, in one temporary directory: Dovecot serving IMAP only (to popgate),
Redis, and ./popgate (or POPGATE_BIN) on 127.0.0.1 with a POP3 port (STLS) and
a POP3S port. User demo, password demo, about 20 messages in the INBOX,
including a 5 MB one and one with attachments. Prints how to connect with curl,
fetchmail and Thunderbird. Ctrl-C (or SIGTERM) stops everything and removes
the directory.
"""

import base64
import os
import pwd
import signal
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


def write_fetchmailrc(tb, pop3_port):
    out = os.path.join(tb.dir, "fetchmail-out")
    os.mkdir(out)
    save = os.path.join(tb.dir, "fetchmail-save.sh")
    with open(save, "w") as f:
        f.write(FETCHMAIL_SAVE)
    os.chmod(save, 0o755)
    rc = os.path.join(tb.dir, "fetchmailrc")
    local_user = pwd.getpwuid(os.getuid()).pw_name
    with open(rc, "w") as f:
        f.write("set no bouncemail\n"
                f"poll 127.0.0.1 service {pop3_port} protocol pop3 auth password\n"
                f'  user "{USER}" there with password "{PASSWORD}" is "{local_user}" here\n'
                f'  sslproto "tls1.2+" sslcertck sslcertfile "{tb.cert}" sslcommonname "localhost"\n'
                "  keep\n"
                f'  mda "{save} {out}"\n')
    # fetchmail refuses an rc file others can read.
    os.chmod(rc, 0o600)
    return rc, out


def instructions(tb, pg, count, rc, out):
    p, s = pg.port, pg.tls_port
    return f"""
popgate demo is running (state in {tb.dir}).

  POP3 with STARTTLS   127.0.0.1:{p}
  POP3S (implicit TLS) 127.0.0.1:{s}
  user {USER}, password {PASSWORD}; {count} messages, one of 5 MB, one with attachments
  popgate log: {pg.log_path}
  upstream Dovecot (IMAP only) 127.0.0.1:{tb.ports['imap']}, Redis 127.0.0.1:{tb.ports['redis']}

Policy: popgate's defaults. A device sees the messages that are unread
(not \\Seen upstream, not retrieved by any of the user's devices); a
session that retrieved messages and ended with QUIT marks them read, so
other devices stop seeing them. Name a device with a login suffix:
demo#phone, demo#desk (no suffix: device "default").

curl (-k accepts the self-signed certificate):
  curl -k pop3s://{USER}:{PASSWORD}@127.0.0.1:{s}/          # LIST
  curl -k pop3s://{USER}%23phone:{PASSWORD}@127.0.0.1:{s}/1 # RETR 1 as device "phone"
  curl -k -X UIDL pop3s://{USER}:{PASSWORD}@127.0.0.1:{s}/
  curl -k -X 'TOP 5 0' pop3s://{USER}:{PASSWORD}@127.0.0.1:{s}/
  curl --ssl-reqd -k pop3://{USER}:{PASSWORD}@127.0.0.1:{p}/2   # STLS on the POP3 port

fetchmail (STLS, certificate checked against {tb.cert}, messages kept on the server):
  fetchmail -f {rc} -N -v --nosyslog -i {tb.dir}/fetchids
  delivered messages land in {out}/

Thunderbird: New account → "Configure manually":
  Incoming: POP3, server 127.0.0.1, port {p} with STARTTLS, or port {s} with SSL/TLS
  Authentication: Normal password; username {USER}, password {PASSWORD}
  Outgoing: any (not used). When Thunderbird warns about the certificate,
  confirm the security exception (it is self-signed, for localhost/127.0.0.1).

Press Ctrl-C to stop everything and remove {tb.dir}.
"""


def main():
    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

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
        rc, out = write_fetchmailrc(tb, pg.port)
        print(instructions(tb, pg, len(msgs), rc, out), flush=True)
        while pg.running():
            time.sleep(0.5)
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
