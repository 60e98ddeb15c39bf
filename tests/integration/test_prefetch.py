"""RETR prefetch (issue 17, item 1; README "Prefetch"): a RETR of a small
message fetches the next small messages of its folder with it, in one
`UID FETCH <set> (UID BODY.PEEK[])`, and the RETRs that follow are served
from the bodies held, with no upstream command.

Against Dovecot, Cyrus and Courier (the run's shared beds), each test runs
the same POP3 conversation through a popgate with prefetch (the default
prefetch_kb = 64) and one with prefetch_kb = 0 (today's one fetch per RETR,
the oracle), on two mailboxes seeded alike, and compares the replies byte
for byte: status lines and the dot-stuffed wire bytes. Then what prefetch
must not do: set \\Seen upstream or record a message as retrieved in Redis
when the client never asked for it. The round trips are counted on the wire
by a loopback relay between popgate and Dovecot.
"""
import re

import pytest

from conftest import UNSTORABLE, new_mailbox
from loopback_relay import LoopbackRelay
from messages import big_message, corpus
from pop3client import POP3, is_ok

BUDGET_KB = 64
# A message above a quarter of the budget is never prefetched.
THRESHOLD = BUDGET_KB * 1024 // 4


def small(i, size=600):
    head = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: small %d\r\n"
            b"Message-ID: <pf%d@example.org>\r\n\r\n" % (i, i))
    body = b"line of message %d\r\n" % i
    return head + body * max(1, (size - len(head)) // len(body))


def sized(name, size):
    """A message of exactly size octets as stored (CRLF lines)."""
    head = b"From: a@example.org\r\nSubject: " + name + b"\r\n\r\n"
    line = b"z" * 70 + b"\r\n"
    body = line * ((size - len(head)) // len(line))
    rest = size - len(head) - len(body)
    tail = (b"t" * (rest - 2) + b"\r\n") if rest >= 2 else b"\r\n"[:rest]
    msg = head + body + tail
    assert len(msg) == size
    return msg


def mixed_mailbox(kind):
    """Small, borderline and large messages, with the corpus of difficult
    ones (bare CR/LF, NUL, no final newline, dot lines, empty) among them."""
    hard = [m.data for m in corpus(include_big=False) if m.name not in UNSTORABLE[kind]]
    return ([small(i) for i in range(1, 6)] + hard
            + [sized(b"border", THRESHOLD - 200), sized(b"border", THRESHOLD),
               sized(b"border", THRESHOLD + 1)]
            + [small(i) for i in range(6, 12)]
            + [big_message(200 * 1024, name=b"large")]
            + [small(i) for i in range(12, 40)])


def start(start_popgate, upstream, prefetch_kb=BUDGET_KB, policy=None, upstream_keys=None):
    server = {"allow_plaintext_auth": "yes", "prefetch_kb": prefetch_kb, "log_level": "debug"}
    sections = {"policy": policy} if policy else None
    return start_popgate(server=server, upstream=upstream_keys or upstream.popgate_upstream(),
                         extra_sections=sections)


def login(pg, mb, device="pc"):
    c = POP3("127.0.0.1", pg.port, timeout=60)
    c.login(f"{mb.user}#{device}", mb.password)
    return c


def reply(c, line):
    """(status line, raw dot-stuffed body or None) of one command already sent."""
    status = c.read_line()
    multi = line.split()[0] in ("RETR", "TOP") and is_ok(status)
    return status, c.read_multi_raw() if multi else None


def conversation(c, lines, pipelined=False):
    """The replies to lines, sent one at a time or all at once."""
    if pipelined:
        c.send_raw(b"".join(ln.encode() + b"\r\n" for ln in lines))
        return [reply(c, ln) for ln in lines]
    out = []
    for ln in lines:
        c.send(ln)
        out.append(reply(c, ln))
    return out


def held_counts(pg):
    return [int(m) for m in re.findall(r"event=prefetch .*?held=(\d+)", pg.log())]


@pytest.fixture
def pair(start_popgate, upstream):
    """(popgate with prefetch, popgate without) in front of upstream."""
    return start(start_popgate, upstream), start(start_popgate, upstream, prefetch_kb=0)


def twin_mailboxes(upstream, messages):
    a, b = new_mailbox(upstream), new_mailbox(upstream)
    a.seed(messages)
    b.seed(messages)
    return a, b


def compare(on, off, what):
    assert len(on) == len(off)
    for i, (x, y) in enumerate(zip(on, off)):
        assert x == y, f"{what}: reply {i + 1} differs with prefetch: {x[0]!r} vs {y[0]!r}"


def test_every_message_byte_exact_in_sequence_and_pipelined(upstream, pair):
    pg_on, pg_off = pair
    messages = mixed_mailbox(upstream.kind)
    mb_on, mb_off = twin_mailboxes(upstream, messages)
    n = len(messages)
    lines = [f"RETR {i}" for i in range(1, n + 1)]
    for pipelined in (False, True):
        got = {}
        for pg, mb in ((pg_on, mb_on), (pg_off, mb_off)):
            c = login(pg, mb)
            assert c.stat()[0] == n
            got[pg] = conversation(c, lines, pipelined)
            assert is_ok(c.quit())
        assert all(is_ok(s) for s, _ in got[pg_off]), "the oracle failed a RETR"
        compare(got[pg_on], got[pg_off], "pipelined" if pipelined else "in sequence")
    # Prefetch did happen, and only for small messages: the batches held
    # several bodies each, never more than the budget allows.
    held = held_counts(pg_on)
    assert held and max(held) > 5, pg_on.log()[-3000:]
    octets = [int(m) for m in re.findall(r"event=prefetch .*?octets=(\d+)", pg_on.log())]
    assert max(octets) <= BUDGET_KB * 1024
    assert "event=prefetch " not in pg_off.log()


def expunge(mb, uid):
    conn = mb.imap()
    try:
        assert conn.select("INBOX")[0] == "OK"
        assert conn.uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
        assert conn.expunge()[0] == "OK"
    finally:
        conn.logout()


def test_message_expunged_before_its_batch_is_reported_as_without_prefetch(upstream, pair):
    pg_on, pg_off = pair
    messages = [small(i) for i in range(1, 11)]
    mb_on, mb_off = twin_mailboxes(upstream, messages)
    # TOP 10 0 (not prefetched, one upstream command either way) lets the
    # server tell popgate's IMAP session of the expunge: Cyrus, until it
    # has, still serves the expunged message's body to that session.
    lines = ["TOP 10 0"] + [f"RETR {i}" for i in range(1, 11)]
    got = {}
    for pg, mb in ((pg_on, mb_on), (pg_off, mb_off)):
        c = login(pg, mb)
        assert c.stat()[0] == 10
        expunge(mb, 5)  # after the login's listing, before any RETR
        got[pg] = conversation(c, lines)
        assert is_ok(c.quit())
    compare(got[pg_on], got[pg_off], "expunged before the batch")
    if upstream.kind == "courier":
        # Courier serves a "message unavailable" notice for it instead.
        assert b"no longer available" in got[pg_off][5][1], got[pg_off][5]
    else:
        assert got[pg_off][5][0] == b"-ERR Message 5 expunged.", got[pg_off][5]
        assert sum(1 for s, _ in got[pg_on] if is_ok(s)) == 10
    # One batch: message 5 alone kept it (fetched alone, as without prefetch).
    assert held_counts(pg_on) == [10 if upstream.kind == "courier" else 9]


def test_message_expunged_after_it_was_prefetched_is_served_as_fetched(upstream, pair):
    pg_on, pg_off = pair
    messages = [small(i) for i in range(1, 11)]
    mb_on, mb_off = twin_mailboxes(upstream, messages)
    c = login(pg_off, mb_off)
    want = conversation(c, [f"RETR {i}" for i in range(1, 11)])
    assert is_ok(c.quit())
    c = login(pg_on, mb_on)
    first = conversation(c, ["RETR 1"])
    expunge(mb_on, 5)  # its body is held already: the batch was 1..10
    rest = conversation(c, [f"RETR {i}" for i in range(2, 11)])
    assert is_ok(c.quit())
    compare(first + rest, want, "expunged after the batch")
    assert held_counts(pg_on) == [10]


def test_prefetch_sets_no_flag_upstream_and_records_nothing_in_redis(upstream, start_popgate):
    pg = start(start_popgate, upstream, policy={"view": "new", "on_retr": "seen", "on_dele": "hide"})
    mb = new_mailbox(upstream)
    mb.seed([small(i) for i in range(1, 11)])
    before = mb.upstream()
    c = login(pg, mb, device="phone")
    assert c.stat()[0] == 10
    c.retr(1)
    assert is_ok(c.quit())
    assert held_counts(pg) == [10]  # 2..10 were fetched, never retrieved
    after = mb.upstream()
    uids = sorted(after)
    assert "\\Seen" in after[uids[0]][0]
    for uid in uids[1:]:
        assert after[uid] == before[uid], f"UID {uid} changed upstream by a prefetch"
    # The device retrieved message 1 only: a new session shows the other nine.
    c = login(pg, mb, device="phone")
    assert c.stat()[0] == 9
    subjects = [re.search(rb"Subject: small (\d+)", c.retr(i)).group(1) for i in range(1, 10)]
    assert subjects == [b"%d" % i for i in range(2, 11)]
    c.close()


def test_dele_of_a_prefetched_message(upstream, pair):
    pg_on, pg_off = pair
    messages = [small(i) for i in range(1, 11)]
    mb_on, mb_off = twin_mailboxes(upstream, messages)
    lines = ["RETR 1", "DELE 3", "RETR 3", "RETR 2", "RETR 4", "RSET", "RETR 3", "DELE 3", "RETR 5"]
    got = {}
    for pg, mb in ((pg_on, mb_on), (pg_off, mb_off)):
        c = login(pg, mb)
        got[pg] = conversation(c, lines)
        assert is_ok(c.quit())
    compare(got[pg_on], got[pg_off], "DELE")
    assert got[pg_on][2][0] == b"-ERR Message is deleted."
    # QUIT expunged message 3 (on_dele = expunge), and only it.
    for mb in (mb_on, mb_off):
        assert len(mb.upstream()) == 9
    c = login(pg_on, mb_on)
    subjects = [re.search(rb"Subject: small (\d+)", c.retr(i)).group(1) for i in range(1, 10)]
    assert b"3" not in subjects and len(subjects) == 9
    assert is_ok(c.quit())


def test_top_of_a_prefetched_message(upstream, pair):
    pg_on, pg_off = pair
    messages = [m.data for m in corpus(include_big=False) if m.name not in UNSTORABLE[upstream.kind]]
    mb_on, mb_off = twin_mailboxes(upstream, messages)
    n = len(messages)
    lines = ["RETR 1"] + [f"TOP {i} {k}" for i in range(2, n + 1) for k in (0, 2)] + \
            [f"RETR {i}" for i in range(2, n + 1)]
    got = {}
    for pg, mb in ((pg_on, mb_on), (pg_off, mb_off)):
        c = login(pg, mb)
        got[pg] = conversation(c, lines)
        assert is_ok(c.quit())
    compare(got[pg_on], got[pg_off], "TOP")
    assert held_counts(pg_on)


class CountingImapRelay(LoopbackRelay):
    """A loopback relay between popgate and Dovecot's plain IMAP port that
    counts the body fetches popgate sends (one per round trip it waits for)."""

    BODY_FETCH = re.compile(rb"^\S+ UID FETCH \S+ \((?:UID )?BODY\.PEEK\[\]")

    def __init__(self, port):
        self.body_fetches = 0
        super().__init__(port, backlog=4)

    def client_to_server(self, src, dst, state):
        f = src.makefile("rb")
        while line := f.readline():
            if self.BODY_FETCH.match(line):
                self.body_fetches += 1
            dst.sendall(line)


@pytest.mark.parametrize("upstream", ["dovecot"], indirect=True)
@pytest.mark.parametrize("prefetch_kb, most", [(BUDGET_KB, 4), (0, 100)])
def test_round_trips_for_100_small_messages(upstream, start_popgate, prefetch_kb, most):
    relay = CountingImapRelay(upstream.ports["imap"])
    try:
        keys = {"host": "127.0.0.1", "port": relay.port, "tls": "none", "ca_file": None,
                "verify_name": None}
        pg = start(start_popgate, upstream, prefetch_kb=prefetch_kb, upstream_keys=keys)
        mb = new_mailbox(upstream)
        mb.seed([small(i, size=1000) for i in range(1, 101)])
        c = login(pg, mb)
        for i in range(1, 101):
            assert re.search(rb"Subject: small (\d+)", c.retr(i)).group(1) == b"%d" % i
        assert is_ok(c.quit())
        print(f"\n[prefetch] prefetch_kb={prefetch_kb}: {relay.body_fetches} body fetches for 100 RETRs")
        assert relay.body_fetches <= most
        if prefetch_kb == 0:
            assert relay.body_fetches == 100
    finally:
        relay.close()
