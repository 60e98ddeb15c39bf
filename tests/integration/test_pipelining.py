"""Fewer round trips per login (issue 17, item 2): the listing's UID FETCH
goes out in the same write as its SELECT where the server is known to take
it (backends/imap_client.c imap_greeting_pipelines_select: Dovecot, Cyrus,
Courier), and one command at a time everywhere else.

Each test runs against each real server of the suite's shared beds. popgate
reaches the server through a loopback relay (upstream TLS off, so the relay
sees the commands) that records every chunk popgate writes. A second relay
can disguise the server: it rewrites the greeting's server name, so popgate
takes the server for an unknown one and waits for each reply, which is
today's behaviour without pipelining and the oracle for the failure paths:
a missing folder and a bad password must give the same POP3 reply and the
same login log line either way, and no password in the log.
"""
import poplib
import re
import time

import pytest

from conftest import UPSTREAMS, maildrop, new_mailbox
from loopback_relay import LoopbackRelay

CONDSTORE = {"dovecot", "cyrus"}
by_server = pytest.mark.parametrize("upstream", UPSTREAMS, indirect=True)
condstore_servers = pytest.mark.parametrize("upstream", sorted(CONDSTORE), indirect=True)
SERVER_NAMES = (b"Dovecot", b"Cyrus IMAP", b"Courier-IMAP")


class ImapRelay(LoopbackRelay):
    """A loopback TCP relay in front of an IMAP server that records what the
    client writes, one entry per recv(), per connection. disguise: the
    greeting's server name becomes "Mail", an unknown server."""

    def __init__(self, port, disguise=False):
        self.disguise = disguise
        self.connections = []   # per connection: list of chunks from the client
        super().__init__(port)

    def new_connection(self):
        chunks = []
        self.connections.append(chunks)
        return chunks

    def client_to_server(self, src, dst, chunks):
        while data := src.recv(65536):
            chunks.append(data)
            dst.sendall(data)

    def server_to_client(self, src, dst, state):
        greeting = self.disguise
        pending = b""
        while data := src.recv(65536):
            if greeting:
                pending += data
                if b"\r\n" not in pending:
                    continue
                for name in SERVER_NAMES:
                    pending = pending.replace(name, b"Mail")
                data, pending, greeting = pending, b"", False
            dst.sendall(data)

    def chunk_with(self, conn, word):
        """The first chunk of connection conn holding word."""
        return next((c for c in self.connections[conn] if word in c), None)


@pytest.fixture
def relays(upstream):
    made = []

    def make(disguise=False):
        r = ImapRelay(upstream.popgate_upstream()["port"], disguise)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def start(start_popgate, upstream, relay, folder="INBOX", cache=True):
    up = dict(upstream.popgate_upstream(), port=relay.port, tls="none", mailbox=folder)
    for key in ("ca_file", "verify", "verify_name"):
        up.pop(key, None)
    server = {"allow_plaintext_auth": "yes"}
    if not cache:
        server["listing_cache_mb"] = 0
    policy = {"view": "all", "on_retr": "keep", "on_dele": "hide"}
    return start_popgate(server=server, upstream=up, extra_sections={"policy": policy})


def message(i):
    return (b"From: sender@example.org\r\nTo: user@example.org\r\n"
            b"Subject: message %d\r\nMessage-ID: <pl%d@example.org>\r\n\r\nbody of %d\r\n" % (i, i, i))


def login_reply(pg, user, password):
    """The server's answer to PASS (the error text, or +OK)."""
    p = poplib.POP3("127.0.0.1", pg.port, timeout=30)
    try:
        p.user(user)
        try:
            return p.pass_(password)
        except poplib.error_proto as e:
            return e.args[0]
    finally:
        p.close()


def login_events(pg, user):
    """Login events of user with what differs between any two runs (time,
    session id, Dovecot's command timing) taken out."""
    out = []
    for ln in pg.log().splitlines():
        if "event=login " not in ln or f"user={user} " not in ln:
            continue
        ln = re.sub(r"^\S*\s*", "", ln) if not ln.startswith(("level=", "event=")) else ln
        ln = re.sub(r"\b(ts|time|session|sid|id)=\S+\s*", "", ln)
        out.append(re.sub(r"\s*\([0-9.]+ \+ [0-9.]+ (\+ [0-9.]+ )?secs\)", "", ln))
    return out


def sources(pg, user):
    return re.findall(rf"event=listing user={re.escape(user)} .*?source=(\w+)", pg.log())


@by_server
def test_listing_goes_out_with_select_and_lists_the_same(start_popgate, upstream, relays):
    mb = new_mailbox(upstream)
    mb.seed([message(i) for i in range(1, 4)])
    piped, waited = relays(), relays(disguise=True)
    pg, oracle = start(start_popgate, upstream, piped), start(start_popgate, upstream, waited)
    got = maildrop(pg, mb)
    assert got == maildrop(oracle, mb, device="oracle") and len(got[0]) == 3
    select = piped.chunk_with(0, b" SELECT ")
    assert select is not None and b"UID FETCH 1:* (UID FLAGS RFC822.SIZE" in select
    assert select.index(b" SELECT ") < select.index(b"UID FETCH")
    # The unknown server: the SELECT alone, its reply awaited.
    assert b"UID FETCH" not in waited.chunk_with(0, b" SELECT ")
    assert sources(pg, mb.user) == sources(oracle, mb.user) == ["full"]


@condstore_servers
def test_changes_since_the_cached_listing_go_out_with_select(start_popgate, upstream, relays):
    mb = new_mailbox(upstream)
    mb.seed([message(1), message(2)])
    relay = relays()
    pg = start(start_popgate, upstream, relay)
    oracle = start(start_popgate, upstream, relays(disguise=True), cache=False)
    maildrop(pg, mb)
    mb.seed([message(3)])
    got = maildrop(pg, mb)
    assert got == maildrop(oracle, mb, device="oracle") and len(got[0]) == 3
    select = relay.chunk_with(1, b" SELECT ")
    assert re.search(rb"UID FETCH 1:\* \([^)]*\) \(CHANGEDSINCE \d+\)", select)
    assert sources(pg, mb.user) == ["full", "changed"]
    # Unchanged: the pipelined CHANGEDSINCE finds nothing, the cache serves.
    assert maildrop(pg, mb) == got
    assert sources(pg, mb.user)[-1] == "cache"


def recreate(mb, folder, messages):
    """(Re)creates folder holding messages; a new UIDVALIDITY each time."""
    conn = mb.imap()
    try:
        if conn.select(folder)[0] == "OK":
            conn.close()
            assert conn.delete(folder)[0] == "OK"
            time.sleep(1.1)   # UIDVALIDITY is time-based on both servers
        assert conn.create(folder)[0] == "OK"
        for m in messages:
            assert conn.append(folder, None, None, m)[0] == "OK"
    finally:
        conn.logout()


@condstore_servers
def test_new_uidvalidity_lists_in_full_after_a_pipelined_changedsince(start_popgate, upstream, relays):
    mb = new_mailbox(upstream)
    folder = "Work" if upstream.kind == "dovecot" else "INBOX.Work"
    recreate(mb, folder, [message(1), message(2)])
    relay = relays()
    pg = start(start_popgate, upstream, relay, folder=folder)
    oracle = start(start_popgate, upstream, relays(disguise=True), folder=folder, cache=False)
    before = maildrop(pg, mb)
    recreate(mb, folder, [message(7)])
    got = maildrop(pg, mb)
    assert got == maildrop(oracle, mb, device="oracle") and len(got[0]) == 1
    assert got[0][0][8:16] != before[0][0][8:16]
    # Sent behind the SELECT, found stale by its UIDVALIDITY, listed again.
    assert b"CHANGEDSINCE" in relay.chunk_with(1, b" SELECT ")
    assert sum(c.count(b"UID FETCH 1:*") for c in relay.connections[1]) == 2
    assert sources(pg, mb.user) == ["full", "full"]


@by_server
def test_empty_folder(start_popgate, upstream, relays):
    mb = new_mailbox(upstream)
    relay = relays()
    pg = start(start_popgate, upstream, relay)
    assert maildrop(pg, mb) == ([], [])
    assert b"UID FETCH 1:*" in relay.chunk_with(0, b" SELECT ")


@by_server
def test_missing_folder_fails_as_without_pipelining(start_popgate, upstream, relays):
    mb = new_mailbox(upstream)
    piped, waited = relays(), relays(disguise=True)
    pg = start(start_popgate, upstream, piped, folder="NoSuchFolder")
    oracle = start(start_popgate, upstream, waited, folder="NoSuchFolder")
    reply = login_reply(pg, mb.user, mb.password)
    assert reply.startswith(b"-ERR")
    assert reply == login_reply(oracle, mb.user, mb.password)
    assert b"UID FETCH" in piped.chunk_with(0, b" SELECT ")
    events = login_events(pg, mb.user)
    assert len(events) == 1 and "result=failed" in events[0]
    assert events == login_events(oracle, mb.user)
    assert mb.password not in pg.log()


@by_server
def test_bad_password_fails_as_without_pipelining(start_popgate, upstream, relays):
    mb = new_mailbox(upstream)
    piped, waited = relays(), relays(disguise=True)
    pg, oracle = start(start_popgate, upstream, piped), start(start_popgate, upstream, waited)
    wrong = "wrong-" + mb.password
    reply = login_reply(pg, mb.user, wrong)
    assert reply.startswith(b"-ERR [AUTH]")
    assert reply == login_reply(oracle, mb.user, wrong)
    events = login_events(pg, mb.user)
    assert len(events) == 1 and events == login_events(oracle, mb.user)
    assert wrong not in pg.log() and mb.password not in pg.log()
    # Nothing went out behind the refused login.
    assert piped.chunk_with(0, b" SELECT ") is None
