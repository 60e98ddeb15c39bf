"""Benchmark mailboxes, written straight into Maildir (fast, exact bytes).

Each size class has one pool of message files; a user's Maildir holds hard
links to them, so 1,000 users with 100 messages cost 100 files of disk and
page cache, and every peer reads the same bytes. Files go into cur/ with an
empty flag list (as mail that a delivery agent put there and nobody read), and
their names carry S= (size) and W= (size with CRLF line ends) the way
Dovecot's own delivery writes them, so Dovecot need not stat or read a file to
learn its size. Names start with a counter: Dovecot assigns UIDs in name
order, so message N of the pool is UID N in every mailbox.
"""

import os

# A line of body text: 71 printable characters and LF, like wrapped prose.
_WORDS = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod "
          "tempor incididunt ut labore et dolore magna aliqua enim ad minim veniam "
          "quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo").split()


def _body_block(lines=1024):
    """About 72 KB of text lines; every 50th starts with a dot, so RETR has
    dot-stuffing to do, as it has in real mail (quoted signatures, '...')."""
    out = []
    w = 0
    for i in range(lines):
        words = []
        length = 0
        while length < 64:
            word = _WORDS[w % len(_WORDS)]
            w += 7
            words.append(word)
            length += len(word) + 1
        line = " ".join(words)[:71]
        if i % 50 == 49:
            line = "." + line[1:]
        out.append(line + "\n")
    return "".join(out).encode()


_BLOCK = _body_block()


def make_message(size, n, tag):
    """An RFC 5322 message of exactly size bytes (LF line ends, final LF)."""
    head = (f"Return-Path: <sender{n}@example.net>\n"
            f"From: Sender {n} <sender{n}@example.net>\n"
            f"To: Bench User <user@example.org>\n"
            f"Subject: {tag} benchmark message {n}\n"
            f"Date: Mon, 2 Feb 2026 10:{n // 60 % 60:02d}:{n % 60:02d} +0000\n"
            f"Message-ID: <{tag}.{n}@bench.example.net>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=us-ascii\n"
            "\n").encode()
    need = size - len(head)
    if need <= 1:
        return (head + b"\n")[:max(size, 1)]
    if need - 1 <= len(_BLOCK):
        body = _BLOCK[:need - 1] + b"\n"
    else:
        body = (_BLOCK * (need // len(_BLOCK) + 1))[:need - 1] + b"\n"
    return head + body


class Pool:
    """count messages of size bytes, written once under root/pool-<tag>."""

    def __init__(self, root, tag, size, count, chown):
        self.tag = tag
        self.size = size
        self.dir = os.path.join(root, f"pool-{tag}")
        os.makedirs(self.dir, exist_ok=True)
        self.names = []
        pid = os.getpid()
        for i in range(1, count + 1):
            data = make_message(size, i, tag)
            vsize = len(data) + data.count(b"\n")
            name = f"{1700000000 + i}.M{i}P{pid}.bench{tag},S={len(data)},W={vsize}:2,"
            path = os.path.join(self.dir, name)
            with open(path, "wb") as f:
                f.write(data)
            chown(path)
            self.names.append(name)

    @property
    def count(self):
        return len(self.names)


def fill_maildir(mail_root, user, pool, chown, count=None):
    """Give user a Maildir INBOX holding the first count messages of pool
    (all by default), as hard links."""
    home = os.path.join(mail_root, user)
    md = os.path.join(home, "Maildir")
    for d in (home, md, *(os.path.join(md, s) for s in ("tmp", "new", "cur"))):
        os.makedirs(d, mode=0o700, exist_ok=True)
        chown(d)
    cur = os.path.join(md, "cur")
    for name in pool.names[:count]:
        os.link(os.path.join(pool.dir, name), os.path.join(cur, name))
    return md
