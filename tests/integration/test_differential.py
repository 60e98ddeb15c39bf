"""popgate against each upstream server's own POP3 daemon on the same mailbox
(TESTBED.md: "The same mailbox through Dovecot's own POP3 = an oracle"), for
every server in conftest.UPSTREAMS.

Both POP3 servers read the difficult messages of messages.py (those the
server can store). STAT, LIST and UIDL must be equal; RETR and TOP must be
byte for byte equal, on the wire (dot-stuffed) and after unstuffing, except
where popgate is meant to differ. Each intended difference is listed here per
server, asserted explicitly below, and backed by the independent model in
messages.expected_retr().

Dovecot (its pop3 on the Maildir the corpus was written into):
D1. NUL (nul_bytes): Dovecot sends NUL; popgate, with nul_bytes = replace (the
    default), sends 0x80 as Dovecot's IMAP BODY[] does. With nul_bytes = pass
    popgate sends what IMAP delivers, which through Dovecot is 0x80 too
    (test_nul_bytes_pass_sends_what_imap_delivers).
D2. The 0-octet message (empty): Dovecot says "0 octets" and sends one empty
    line; popgate sends nothing, so RETR agrees with LIST 0.
D3. A message whose first line is "." (only_dot): Dovecot does not dot-stuff
    the very first line, so its reply ends early and the "." line it meant to
    send arrives as a stray line after it; popgate stuffs it ("..").
D4. LIST for a message without a final line ending (no_final_newline,
    dot_lines, ends_with_cr, empty): Dovecot's LIST is 2 less than what its
    RETR sends (it adds a CRLF it does not count). popgate reports the same
    LIST as Dovecot before it has streamed the message (both come from the
    upstream size), and exactly what its RETR sent once it has: LIST after RETR
    in the same session equals the RETR length, for every message.

Cyrus 3.6 (its pop3d on the mailbox the corpus was APPENDed to):
C0. Not a popgate difference: Cyrus refuses to store bare_lf, mixed_endings,
    dot_lf (bare LF), nul_bytes (NUL), empty (0 octets) and only_dot (no
    header line); test_unstorable_messages pins each refusal, and the other
    tests run on the rest plus cr_crlf_lines (the CR cases without a bare LF).
    (conftest.UNSTORABLE)
C1. UIDL: Cyrus's pop3d says "<uidvalidity>.<uid>"; popgate's UIDLs never
    depend on the upstream's POP3 server: "%08x%08x" of UID and UIDVALIDITY,
    as on Dovecot. Same numbering, both unique.
C2. LIST for a message without a final line ending (no_final_newline,
    dot_lines, ends_with_cr): as D4, Cyrus's LIST is the stored size, 2 less
    than its RETR sends; popgate's LIST after RETR is what RETR sent.

Courier-IMAP 5.0 (its courierpop3d on the Maildir the corpus was written into):
K0. Not a popgate difference: Courier serves every stored LF as CRLF (IMAP
    BODY[] and RFC822.SIZE, and its POP3 alike), so the corpus' CRLF files are
    served with CR CR LF line ends; popgate passes CR CR LF unchanged, so its
    RETR is Courier's POP3 byte for byte. messages.served() is the model.
K1. UIDL: Courier's pop3d says "UID<n>-<t>" (its own numbering and a time
    stamp it keeps, not IMAP's UIDVALIDITY); popgate's is "%08x%08x".
K2. TOP: Courier's POP3 finds no blank line in a CRLF file (the line is served
    as "\r\r\n"), so its TOP n sends the whole message. popgate sends what
    RFC 1939 asks for: the header as Courier's own IMAP delimits it
    (BODY[HEADER], which ends with that blank line), the blank line and n
    body lines, a prefix of its RETR. (Identical where the blank line is a
    stored bare LF, bare_lf and dot_lf, and where the body has at most n
    lines.)
K3. only_dot: like Dovecot (D3), Courier's POP3 does not dot-stuff the first
    line; its ".\r\r\n" is not the terminator but reads as "\r\r\n".
    popgate stuffs it.
K4. ends_with_cr: Courier's IMAP drops the bare CR that ends the file
    (BODY[] and RFC822.SIZE end at "last line"), its POP3 keeps it and adds
    CRLF ("last line\r\r\n", 3 more than its LIST). popgate sends what IMAP
    delivers and the CRLF: "last line\r\n"; LIST before RETR is Courier's.
K5. eight_bit (8-bit header): Courier's POP3 sends a "Cannot display Unicode
    content" notice instead of the message (a client that did not say UTF8),
    of another size than its LIST; Courier's IMAP delivers the message and
    popgate sends it.
K6. NUL (nul_bytes): Courier's IMAP and POP3 send the NUL; popgate, with
    nul_bytes = replace (the default), sends 0x80; with nul_bytes = pass its
    RETR is Courier's POP3's.
K7. empty and LIST for a message without a final line ending: as D2 and D4.

Everything else is identical on every server, including bare LF (Dovecot),
bare CR and CR CR LF (both pass as stored, a message ending in a bare CR gets
"\r\r\n" after it), 8-bit, long lines, '.' lines, headers only, From_ lines,
malformed MIME (TOP too: Cyrus's IMAP answers BODY[TEXT] "" for it, so popgate
reads the text from BODY[]), and the 20 MB message.

Sessions here end without QUIT so that nothing changes upstream: the mailbox
is shared by every test of one server in this module, and only the RETR test
of a message retrieves it (popgate keeps the sizes it learns per user). Each test logs in as its
own device (user#dN), so that no test waits for the device lock of the one
before.
"""

import itertools
import re

import pytest

from conftest import UNSTORABLE, UPSTREAMS, new_mailbox
from messages import Message, corpus, dot_stuff, expected_retr, expected_top_on, served
from pop3client import POP3, unstuff

# Bare CR and CR CR LF without any bare LF, so that Cyrus stores them (C0).
CR_CRLF = Message("cr_crlf_lines",
                  b"Subject: cr crlf lines\r\n\r\ncrlf\r\ncr\rcrcrlf\r\r\n\r\r\nend\r\n",
                  "bare CR and CR CR LF line ends, no bare LF")
FULL_CORPUS = corpus() + [CR_CRLF]

# D4, C2, K7: LIST is the stored size, RETR sends 2 more (the CRLF added at the end).
LIST_SHORT_BY_2 = {
    "dovecot": {"no_final_newline", "dot_lines", "ends_with_cr", "empty"},
    "cyrus": {"no_final_newline", "dot_lines", "ends_with_cr"},
    "courier": {"no_final_newline", "dot_lines", "empty"},
}
# D1-D3, K3-K7.
NUL = {"nul_bytes"}
EMPTY = {"empty"}
UNSTUFFED_FIRST_LINE = {"only_dot"}
FINAL_CR = {"ends_with_cr"}
EIGHT_BIT_HEADER = {"eight_bit"}
DIFFERENT_BYTES = {"dovecot": NUL | EMPTY | UNSTUFFED_FIRST_LINE, "cyrus": set(),
                   "courier": NUL | EMPTY | UNSTUFFED_FIRST_LINE | FINAL_CR | EIGHT_BIT_HEADER}
# K2: the messages whose blank line Courier's POP3 TOP finds (stored as a bare
# LF, served as CRLF); in all others it sends the whole message.
COURIER_TOP_FINDS_HEADER = {"bare_lf", "dot_lf"}
TOP_LINES = (0, 5)


def stored_corpus(server):
    """The corpus as seeded on server: message n is stored_corpus()[n-1]."""
    return [m for m in FULL_CORPUS if m.name not in UNSTORABLE[server]]


# Every (server, message) pair; module scope, so each server's mailbox is
# seeded once for the whole module.
by_message = pytest.mark.parametrize(
    ("upstream", "name"),
    [(server, m.name) for server in UPSTREAMS for m in stored_corpus(server)],
    indirect=["upstream"], scope="module")
# The servers that store a NUL (Cyrus refuses it, C0).
nul_storing = pytest.mark.parametrize("upstream", ["dovecot", "courier"], indirect=True)

_devices = itertools.count(1)


class CorpusBox:
    """The corpus mailbox of one server: the Mailbox, the messages in order,
    and number_of[name]."""

    def __init__(self, server, mb):
        self.server = server
        self.mb = mb
        self.messages = stored_corpus(server)
        self.number_of = {m.name: n for n, m in enumerate(self.messages, 1)}

    def msg(self, name):
        n = self.number_of[name]
        return n, self.messages[n - 1]


@pytest.fixture(scope="module")
def corpus_box(upstream):
    box = CorpusBox(upstream.kind, new_mailbox(upstream))
    box.mb.seed(box.messages)
    return box


@pytest.fixture
def corpus_session(corpus_box, session):
    """corpus_session(pg) -> a session on the corpus mailbox as a new device."""
    return lambda pg: session(pg, corpus_box.mb, device=f"d{next(_devices)}")


def server_to_popgate(server, name, body, retr=True):
    """Turn what the server's POP3 sent (unstuffed) for RETR or TOP into what
    popgate must send, one rule per intended difference; identity for every
    other message."""
    if server in ("dovecot", "courier"):
        if name in NUL:
            body = body.replace(b"\x00", b"\x80")
        if name in EMPTY:
            assert body == b"\r\n"
            body = b""
    if server == "courier":
        if name in UNSTUFFED_FIRST_LINE:
            # K3: ".\r\r\n" unstuffed on the wire, so it means "\r\r\n".
            assert body == b"\r\r\n"
            body = b".\r\r\n"
        if name in FINAL_CR:
            # K4: Courier's POP3 keeps the final CR its IMAP drops.
            assert body.endswith(b"last line\r\r\n")
            body = body[:-3] + b"\r\n"
        if name in EIGHT_BIT_HEADER:
            # K5: a notice instead of the message; popgate sends the message.
            assert b"Cannot display Unicode content" in body
            body = None
    return body


class Oracle:
    """What the server's own POP3 says about the corpus mailbox: for RETR and
    TOP the body as sent on the wire (raw) and as meant (body, dot-stuffing
    undone)."""

    def __init__(self, bed, box):
        self.server = box.server
        c = POP3("127.0.0.1", bed.ports["pop3"], cafile=bed.cert, timeout=60)
        try:
            c.login(box.mb.user, box.mb.password)
            self.stat = c.stat()
            self.list = c.list()
            self.uidl = c.uidl()
            self.retr = {}
            self.top = {}
            for n, m in enumerate(box.messages, 1):
                self.retr[m.name] = self._read(c, f"RETR {n}", m.name)
                for lines in TOP_LINES:
                    self.top[m.name, lines] = self._read(c, f"TOP {n} {lines}", m.name)
        finally:
            # No QUIT. The servers set \Seen for RETR even so; the popgates
            # here use view = all, which offers seen messages too.
            c.close()

    def _read(self, c, cmd, name):
        """(raw, body) of one multi-line reply."""
        status = c.cmd(cmd)
        assert status.startswith(b"+OK"), (cmd, status)
        raw = c.read_multi_raw()
        if self.server == "dovecot" and name in UNSTUFFED_FIRST_LINE:
            # D3, pinned so a fixed Dovecot shows up here: the unstuffed "."
            # ended the reply at once, and the terminator Dovecot meant
            # follows as a stray line. On the wire Dovecot sent ".\r\n" as the
            # body; it meant the line ".".
            assert raw == b"", raw
            assert c.read_line() == b"."
            return b".\r\n", b".\r\n"
        return raw, unstuff(raw)


@pytest.fixture(scope="module")
def oracle(upstream, corpus_box):
    return Oracle(upstream, corpus_box)


def test_oracle_agrees_with_imap(corpus_box, oracle):
    """The corpus arrived whole and in order, and the server's POP3 LIST is
    the IMAP RFC822.SIZE popgate starts from (TESTBED.md)."""
    assert oracle.stat[0] == len(corpus_box.messages)
    upstream = corpus_box.mb.upstream()
    assert [size for _, (_, size) in sorted(upstream.items())] == [s for _, s in oracle.list]
    assert oracle.retr["plain"][1] == expected_retr(served(corpus_box.server,
                                                          corpus_box.msg("plain")[1].data))


@pytest.mark.parametrize("upstream", UPSTREAMS, indirect=True)
def test_unstorable_messages(upstream):
    """C0: each message listed as unstorable is refused by the server, with
    its own words, and nothing is stored; every other one is stored exactly."""
    mb = new_mailbox(upstream)
    for name, words in UNSTORABLE[upstream.kind].items():
        msg = next(m for m in FULL_CORPUS if m.name == name)
        with pytest.raises(ValueError, match=words):
            mb.seed([msg])
    assert mb.upstream() == {}


def test_stat_list_before_retr_match_server(up_popgate, corpus_box, oracle, corpus_session):
    c = corpus_session(up_popgate)
    assert c.stat() == oracle.stat
    assert c.list() == oracle.list
    for n, size in oracle.list:
        assert c.list_one(n) == (n, size)


def test_uidl(up_popgate, corpus_box, oracle, corpus_session):
    c = corpus_session(up_popgate)
    ours = c.uidl()
    if corpus_box.server == "dovecot":
        assert ours == oracle.uidl
        return
    # C1, K1: same numbering, the server's own format, popgate's own format.
    # (popgate's login SELECTed the mailbox read-write: Courier's UIDVALIDITY
    # is fixed from then on.)
    uidvalidity = corpus_box.mb.uidvalidity()
    uids = sorted(corpus_box.mb.upstream())
    if corpus_box.server == "cyrus":
        assert oracle.uidl == [(n, f"{uidvalidity}.{uid}") for n, uid in enumerate(uids, 1)]
    else:
        # "UID<n>-<t>": pop3d's own numbering of the seeded files and one time
        # stamp it keeps in courierpop3dsizelist (not IMAP's UIDVALIDITY).
        assert [(n, u.split("-")[0]) for n, u in oracle.uidl] == \
            [(n, f"UID{n}") for n in range(1, len(uids) + 1)]
        assert len({u.split("-")[1] for _, u in oracle.uidl}) == 1
        assert uids == list(range(1, len(uids) + 1))
    assert ours == [(n, f"{uid:08x}{uidvalidity:08x}") for n, uid in enumerate(uids, 1)]
    assert len({u for _, u in ours}) == len(ours)


@by_message
def test_retr_matches_server(up_popgate, corpus_box, oracle, corpus_session, upstream, name):
    server = corpus_box.server
    n, msg = corpus_box.msg(name)
    c = corpus_session(up_popgate)
    list_before = c.list_one(n)[1]
    raw = c.retr_raw(n)
    body = unstuff(raw)
    s_raw, s_body = oracle.retr[name]

    assert raw == dot_stuff(body), "dot-stuffing on the wire is wrong"
    assert body == expected_retr(served(server, msg.data)), "RETR differs from the model of DESIGN.md"
    assert body == server_to_popgate(server, name, s_body) or name in EIGHT_BIT_HEADER
    if name not in DIFFERENT_BYTES[server]:
        assert raw == s_raw, f"wire bytes differ from {server}'s"
    else:
        assert raw != s_raw, f"{name} is listed as an intended difference but is identical"

    # D4 / C2 and the rule behind it.
    s_list = dict(oracle.list)[n]
    assert list_before == s_list
    if name in LIST_SHORT_BY_2[server]:
        assert s_list == len(s_body) - 2
    elif server == "courier" and name in FINAL_CR:
        # K4: LIST is IMAP's size, without the CR; RETR sends it and a CRLF.
        assert s_list == len(s_body) - 3
    elif server == "courier" and name in EIGHT_BIT_HEADER:
        # K5: LIST is the message's size, RETR sends the notice.
        assert s_list == len(body) and len(s_body) != s_list
    elif not (server in ("dovecot", "courier") and name in UNSTUFFED_FIRST_LINE):
        assert s_list == len(s_body)
    assert c.list_one(n) == (n, len(body)), "LIST after RETR must equal the octets RETR sent"


@by_message
@pytest.mark.parametrize("lines", TOP_LINES)
def test_top_matches_server(up_popgate, corpus_box, oracle, corpus_session, upstream, name, lines):
    server = corpus_box.server
    n, msg = corpus_box.msg(name)
    c = corpus_session(up_popgate)
    status = c.cmd(f"TOP {n} {lines}")
    assert status.startswith(b"+OK"), status
    raw = c.read_multi_raw()
    body = unstuff(raw)
    s_raw, s_body = oracle.top[name, lines]
    assert raw == dot_stuff(body)
    assert body == expected_top_on(server, msg.data, lines)
    if server == "courier" and name in EIGHT_BIT_HEADER:
        # K5: Courier's TOP is cut from its notice (whose blank line it finds).
        assert s_body.startswith(b"From: Mail Delivery Subsystem")
        assert oracle.retr[name][1].startswith(s_body) and s_body != oracle.retr[name][1]
        return
    if server == "courier" and name not in COURIER_TOP_FINDS_HEADER:
        # K2: Courier's TOP sent exactly what its RETR sends; popgate sent the
        # header (as Courier's BODY[HEADER] delimits it) and n lines: a
        # prefix of its RETR, all of it when the body has at most n lines.
        assert s_raw == oracle.retr[name][0]
        assert expected_retr(served(server, msg.data)).startswith(body)
        return
    assert body == server_to_popgate(server, name, s_body)
    if name not in DIFFERENT_BYTES[server]:
        assert raw == s_raw


@nul_storing
def test_nul_bytes_pass_sends_what_imap_delivers(start_popgate, upstream, corpus_box, oracle,
                                                 corpus_session):
    """nul_bytes = pass changes nothing in what the upstream sends. Intended
    difference: Dovecot's IMAP BODY[] already turns NUL into 0x80 (TESTBED.md),
    so through Dovecot a NUL arrives as 0x80 either way, while Dovecot's own
    POP3 sends the NUL. (BINARY[] would keep it, but it also removes a
    single-part message's Content-Transfer-Encoding, so popgate never uses it.)
    Courier's IMAP delivers the NUL: with pass, popgate's RETR is its POP3's
    (K6). Cyrus refuses to store a NUL (C0)."""
    pg = start_popgate(server={"nul_bytes": "pass"}, upstream=upstream.popgate_upstream())
    n, msg = corpus_box.msg("nul_bytes")
    c = corpus_session(pg)
    raw = c.retr_raw(n)
    assert b"\x00" in oracle.retr["nul_bytes"][0]
    if upstream.kind == "courier":
        assert raw == oracle.retr["nul_bytes"][0]
        assert unstuff(raw) == expected_retr(served("courier", msg.data), nul="pass")
        return
    assert raw == oracle.retr["nul_bytes"][0].replace(b"\x00", b"\x80")
    assert unstuff(raw) == expected_retr(msg.data.replace(b"\x00", b"\x80"), nul="pass")


@nul_storing
def test_nul_bytes_replaced_by_default(up_popgate, upstream, corpus_box, corpus_session):
    n, msg = corpus_box.msg("nul_bytes")
    body = corpus_session(up_popgate).retr(n)
    assert b"\x00" not in body
    assert body.count(b"\x80") == msg.data.count(b"\x00")


def test_whole_corpus_in_one_session(up_popgate, upstream, session):
    """Every message one after another on one connection, then every size
    learned: no state from one message leaks into the next. On a mailbox of
    its own: the sizes popgate learns are kept for the user (in Redis), and
    the other tests here need the corpus mailbox's LIST before any RETR."""
    box = CorpusBox(upstream.kind, new_mailbox(upstream))
    box.mb.seed(box.messages)
    c = session(up_popgate, box.mb, device="whole")
    sent = {}
    for n, msg in enumerate(box.messages, 1):
        sent[n] = c.retr(n)
        assert sent[n] == expected_retr(served(upstream.kind, msg.data)), msg.name
    assert c.list() == [(n, len(sent[n])) for n in sorted(sent)]
    assert c.stat() == (len(sent), sum(len(b) for b in sent.values()))
