"""popgate against Dovecot's own POP3 on the same Maildir (TESTBED.md: "The
same mailbox through Dovecot's own POP3 = an oracle").

Both servers read the difficult messages of messages.py. STAT, LIST and UIDL
must be equal; RETR and TOP must be byte for byte equal, on the wire (dot-
stuffed) and after unstuffing, except where popgate is meant to differ. Each
intended difference is listed here, asserted explicitly below, and backed by
the independent model in messages.expected_retr():

1. NUL (nul_bytes): Dovecot sends NUL; popgate, with nul_bytes = replace (the
   default), sends 0x80 as Dovecot's IMAP BODY[] does. With nul_bytes = pass
   popgate sends what IMAP delivers, which through Dovecot is 0x80 too
   (test_nul_bytes_pass_sends_what_imap_delivers).
2. The 0-octet message (empty): Dovecot says "0 octets" and sends one empty
   line; popgate sends nothing, so RETR agrees with LIST 0.
3. A message whose first line is "." (only_dot): Dovecot does not dot-stuff
   the very first line, so its reply ends early and the "." line it meant to
   send arrives as a stray line after it; popgate stuffs it ("..").
4. LIST for a message without a final line ending (no_final_newline,
   dot_lines, ends_with_cr, empty): Dovecot's LIST is 2 less than what its
   RETR sends (it adds a CRLF it does not count). popgate reports the same
   LIST as Dovecot before it has streamed the message (both come from the
   upstream size), and exactly what its RETR sent once it has: LIST after RETR
   in the same session equals the RETR length, for every message.
Everything else, including bare LF, bare CR and CR CR LF (both pass as
stored, a message ending in a bare CR gets "\r\r\n" as from Dovecot), 8-bit, long lines, '.' lines, headers
only, From_ lines, malformed MIME and the 20 MB message, is identical.

Sessions here end without QUIT so that nothing changes upstream: the mailbox
is shared by every test in this module. Each test logs in as its own device
(user#dN), so that no test waits for the device lock of the one before.
"""

import itertools

import pytest

from messages import corpus, dot_stuff, expected_retr, expected_top
from pop3client import POP3, unstuff

CORPUS = corpus()
NAMES = [m.name for m in CORPUS]
BY_NAME = {m.name: (n, m) for n, m in enumerate(CORPUS, 1)}

NUL = {"nul_bytes"}                                          # difference 1
EMPTY = {"empty"}                                            # difference 2
DOVECOT_UNSTUFFED_FIRST_LINE = {"only_dot"}                  # difference 3
DOVECOT_LIST_SHORT_BY_2 = {"no_final_newline", "dot_lines", "ends_with_cr", "empty"}  # 4
DIFFERENT_BYTES = NUL | EMPTY | DOVECOT_UNSTUFFED_FIRST_LINE
TOP_LINES = (0, 5)


_devices = itertools.count(1)


@pytest.fixture
def corpus_session(corpus_box, session):
    """corpus_session(pg) -> a session on the corpus mailbox as a new device."""
    return lambda pg: session(pg, corpus_box, device=f"d{next(_devices)}")


def dovecot_to_popgate(name, body):
    """Turn what Dovecot sent (unstuffed) into what popgate must send, one
    rule per intended difference; identity for every other message."""
    if name in NUL:
        body = body.replace(b"\x00", b"\x80")
    if name in EMPTY:
        assert body == b"\r\n"
        body = b""
    return body


class Oracle:
    """What Dovecot's POP3 says about the corpus mailbox: for RETR and TOP the
    body as sent on the wire (raw) and as meant (body, dot-stuffing undone)."""

    def __init__(self, testbed, mb):
        c = POP3("127.0.0.1", testbed.ports["pop3"], cafile=testbed.cert, timeout=60)
        try:
            c.login(mb.user, mb.password)
            self.stat = c.stat()
            self.list = c.list()
            self.uidl = c.uidl()
            self.retr = {}
            self.top = {}
            for name in NAMES:
                n, _ = BY_NAME[name]
                self.retr[name] = self._read(c, f"RETR {n}", name)
                for lines in TOP_LINES:
                    self.top[name, lines] = self._read(c, f"TOP {n} {lines}", name)
        finally:
            # No QUIT. Dovecot sets \Seen for RETR even so; the popgates here
            # use view = all, which offers seen messages too.
            c.close()

    @staticmethod
    def _read(c, cmd, name):
        """(raw, body) of one multi-line reply."""
        status = c.cmd(cmd)
        assert status.startswith(b"+OK"), (cmd, status)
        raw = c.read_multi_raw()
        if name in DOVECOT_UNSTUFFED_FIRST_LINE:
            # Difference 3, pinned so a fixed Dovecot shows up here: the
            # unstuffed "." ended the reply at once, and the terminator Dovecot
            # meant follows as a stray line. On the wire Dovecot sent ".\r\n"
            # as the body; it meant the line ".".
            assert raw == b"", raw
            assert c.read_line() == b"."
            return b".\r\n", b".\r\n"
        return raw, unstuff(raw)


@pytest.fixture(scope="module")
def corpus_box(new_user):
    mb = new_user()
    mb.seed(CORPUS)
    return mb


@pytest.fixture(scope="module")
def oracle(testbed, corpus_box):
    return Oracle(testbed, corpus_box)


def test_oracle_agrees_with_imap(corpus_box, oracle):
    """The corpus arrived whole and in order, and Dovecot's POP3 LIST is the
    IMAP RFC822.SIZE popgate starts from (TESTBED.md)."""
    assert oracle.stat[0] == len(CORPUS)
    upstream = corpus_box.upstream()
    assert [size for _, (_, size) in sorted(upstream.items())] == [s for _, s in oracle.list]
    assert oracle.retr["plain"][1] == expected_retr(BY_NAME["plain"][1].data)


def test_stat_list_before_retr_match_dovecot(popgate, corpus_box, oracle, corpus_session):
    c = corpus_session(popgate)
    assert c.stat() == oracle.stat
    assert c.list() == oracle.list
    for n, size in oracle.list:
        assert c.list_one(n) == (n, size)


def test_uidl_matches_dovecot(popgate, corpus_box, oracle, corpus_session):
    c = corpus_session(popgate)
    assert c.uidl() == oracle.uidl


@pytest.mark.parametrize("name", NAMES)
def test_retr_matches_dovecot(popgate, corpus_box, oracle, corpus_session, name):
    n, msg = BY_NAME[name]
    c = corpus_session(popgate)
    list_before = c.list_one(n)[1]
    raw = c.retr_raw(n)
    body = unstuff(raw)
    d_raw, d_body = oracle.retr[name]

    assert raw == dot_stuff(body), "dot-stuffing on the wire is wrong"
    assert body == expected_retr(msg.data), "RETR differs from the model of DESIGN.md"
    assert body == dovecot_to_popgate(name, d_body)
    if name not in DIFFERENT_BYTES:
        assert raw == d_raw, "wire bytes differ from Dovecot's"
    else:
        assert raw != d_raw, f"{name} is listed as an intended difference but is identical"

    # Difference 4 and the rule behind it.
    d_list = dict(oracle.list)[n]
    assert list_before == d_list
    if name in DOVECOT_LIST_SHORT_BY_2:
        assert d_list == len(d_body) - 2
    elif name not in DOVECOT_UNSTUFFED_FIRST_LINE:
        assert d_list == len(d_body)
    assert c.list_one(n) == (n, len(body)), "LIST after RETR must equal the octets RETR sent"


@pytest.mark.parametrize("lines", TOP_LINES)
@pytest.mark.parametrize("name", NAMES)
def test_top_matches_dovecot(popgate, corpus_box, oracle, corpus_session, name, lines):
    n, msg = BY_NAME[name]
    c = corpus_session(popgate)
    status = c.cmd(f"TOP {n} {lines}")
    assert status.startswith(b"+OK"), status
    raw = c.read_multi_raw()
    body = unstuff(raw)
    d_raw, d_body = oracle.top[name, lines]
    assert raw == dot_stuff(body)
    assert body == expected_top(msg.data, lines)
    assert body == dovecot_to_popgate(name, d_body)
    if name not in DIFFERENT_BYTES:
        assert raw == d_raw


def test_nul_bytes_pass_sends_what_imap_delivers(start_popgate, corpus_box, oracle, corpus_session):
    """nul_bytes = pass changes nothing in what the upstream sends. Intended
    difference: Dovecot's IMAP BODY[] already turns NUL into 0x80 (TESTBED.md),
    so through Dovecot a NUL arrives as 0x80 either way, while Dovecot's own
    POP3 sends the NUL. (BINARY[] would keep it, but it also removes a
    single-part message's Content-Transfer-Encoding, so popgate never uses it.)"""
    pg = start_popgate(server={"nul_bytes": "pass"})
    n, msg = BY_NAME["nul_bytes"]
    c = corpus_session(pg)
    raw = c.retr_raw(n)
    assert b"\x00" in oracle.retr["nul_bytes"][0]
    assert raw == oracle.retr["nul_bytes"][0].replace(b"\x00", b"\x80")
    assert unstuff(raw) == expected_retr(msg.data.replace(b"\x00", b"\x80"), nul="pass")


def test_nul_bytes_replaced_by_default(popgate, corpus_box, corpus_session):
    n, msg = BY_NAME["nul_bytes"]
    body = corpus_session(popgate).retr(n)
    assert b"\x00" not in body
    assert body.count(b"\x80") == msg.data.count(b"\x00")


def test_whole_corpus_in_one_session(popgate, corpus_box, oracle, corpus_session):
    """Every message one after another on one connection, then every size
    learned: no state from one message leaks into the next."""
    c = corpus_session(popgate)
    sent = {}
    for name in NAMES:
        n, msg = BY_NAME[name]
        sent[n] = c.retr(n)
        assert sent[n] == expected_retr(msg.data), name
    assert c.list() == [(n, len(sent[n])) for n in sorted(sent)]
    assert c.stat() == (len(sent), sum(len(b) for b in sent.values()))
