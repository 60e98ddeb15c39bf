"""Logins that cost what changed (issue 16, part 3): popgate's node-wide
listing cache (proxy/session_listing.c) against real IMAP servers.

Every test runs two or more POP3 sessions of one user and changes the
mailbox between them with an ordinary IMAP client (imaplib), as webmail or
a phone would: new mail, \\Seen and \\Deleted set, an expunge, a folder
deleted and created again (a new UIDVALIDITY). After each change the next
session must show exactly what a session without any cache shows (a second
popgate with listing_cache_mb = 0 is the oracle), and popgate's log must say
how the listing was obtained: `source=cache` (nothing fetched), `changed`
(UID FETCH ... CHANGEDSINCE), or `full`.

Dovecot and Cyrus have CONDSTORE; Courier has not and must list in full
every time.
"""
import re
import time

import pytest

from conftest import UPSTREAMS, maildrop, new_mailbox

CONDSTORE = {"dovecot", "cyrus"}
by_server = pytest.mark.parametrize("upstream", UPSTREAMS, indirect=True)
condstore_servers = pytest.mark.parametrize("upstream", sorted(CONDSTORE), indirect=True)


def message(i):
    return (b"From: sender@example.org\r\nTo: user@example.org\r\n"
            b"Subject: message %d\r\nMessage-ID: <lc%d@example.org>\r\n\r\nbody of %d\r\n" % (i, i, i))


def start(start_popgate, upstream, cache=True, view="all", folder="INBOX", window=None):
    up = dict(upstream.popgate_upstream(), mailbox=folder)
    server = {"allow_plaintext_auth": "yes"}
    if not cache:
        server["listing_cache_mb"] = 0
    policy = {"view": view, "on_retr": "keep", "on_dele": "hide", **(window or {})}
    return start_popgate(server=server, upstream=up, extra_sections={"policy": policy})


def sources(pg, user):
    """The `source=` of every listing event for user, oldest first."""
    return re.findall(rf"event=listing user={re.escape(user)} .*?source=(\w+)", pg.log())


def listing_events(pg, user):
    return [ln for ln in pg.log().splitlines() if "event=listing " in ln and f"user={user} " in ln]


def imap_change(mb, *commands, folder="INBOX"):
    """Runs imaplib calls on the user's folder: each command is (method, args...)."""
    conn = mb.imap()
    try:
        typ, _ = conn.select(folder)
        assert typ == "OK"
        for name, *args in commands:
            typ, data = getattr(conn, name)(*args)
            assert typ == "OK", (name, args, data)
    finally:
        conn.logout()


@pytest.fixture
def pair(start_popgate, upstream):
    """(popgate with the cache, popgate without it as the oracle)."""
    return start(start_popgate, upstream), start(start_popgate, upstream, cache=False)


def same_as_oracle(pair, mb):
    cached, oracle = pair
    got = maildrop(cached, mb)
    assert got == maildrop(oracle, mb, device="oracle")
    return got


@by_server
def test_unchanged_mailbox_is_served_from_the_cache(pair, upstream):
    mb = new_mailbox(upstream)
    mb.seed([message(i) for i in range(1, 6)])
    first = same_as_oracle(pair, mb)
    second = same_as_oracle(pair, mb)
    assert first == second and len(first[0]) == 5
    want = ["full", "cache"] if upstream.kind in CONDSTORE else ["full", "full"]
    assert sources(pair[0], mb.user) == want
    assert sources(pair[1], mb.user) == ["full", "full"]
    if upstream.kind not in CONDSTORE:
        assert all("cached=no" in ln for ln in listing_events(pair[0], mb.user))


@condstore_servers
def test_new_mail_is_fetched_alone(pair, upstream):
    mb = new_mailbox(upstream)
    mb.seed([message(1), message(2)])
    same_as_oracle(pair, mb)
    mb.seed([message(3)])
    uidl, _ = same_as_oracle(pair, mb)
    assert len(uidl) == 3
    assert sources(pair[0], mb.user) == ["full", "changed"]
    assert "changed=0 new=1" in listing_events(pair[0], mb.user)[-1]
    same_as_oracle(pair, mb)
    assert sources(pair[0], mb.user)[-1] == "cache"


@condstore_servers
def test_seen_set_by_another_client_hides_the_message_in_the_unread_view(start_popgate, upstream):
    mb = new_mailbox(upstream)
    mb.seed([message(1), message(2), message(3)])
    pair = (start(start_popgate, upstream, view="unread"),
            start(start_popgate, upstream, cache=False, view="unread"))
    # The phone only looks (no RETR): nothing is recorded as retrieved.
    assert len(same_as_oracle(pair, mb)[0]) == 3
    imap_change(mb, ("store", "2", "+FLAGS", "(\\Seen)"))
    uidl, _ = same_as_oracle(pair, mb)
    assert len(uidl) == 2
    assert sources(pair[0], mb.user) == ["full", "changed"]
    assert "changed=1 new=0" in listing_events(pair[0], mb.user)[-1]
    # Unseen again (webmail's "mark as unread"): back in the maildrop.
    imap_change(mb, ("store", "2", "-FLAGS", "(\\Seen)"))
    assert len(same_as_oracle(pair, mb)[0]) == 3
    assert sources(pair[0], mb.user)[-1] == "changed"


@condstore_servers
def test_deleted_flag_set_by_webmail_is_a_change(pair, upstream):
    mb = new_mailbox(upstream)
    mb.seed([message(1), message(2)])
    same_as_oracle(pair, mb)
    imap_change(mb, ("store", "1", "+FLAGS", "(\\Deleted)"))
    same_as_oracle(pair, mb)
    assert sources(pair[0], mb.user) == ["full", "changed"]
    assert "changed=1 new=0" in listing_events(pair[0], mb.user)[-1]


@condstore_servers
def test_expunge_by_another_client_is_never_served_from_the_cache(pair, upstream):
    mb = new_mailbox(upstream)
    mb.seed([message(i) for i in range(1, 5)])
    before, _ = same_as_oracle(pair, mb)
    imap_change(mb, ("store", "2", "+FLAGS", "(\\Deleted)"), ("expunge",))
    after, _ = same_as_oracle(pair, mb)
    assert after == [before[0]] + before[2:]
    # The merge does not add up to EXISTS: listed in full.
    assert sources(pair[0], mb.user) == ["full", "full"]
    # Expunge and new mail between two sessions: the count matches, the set does not.
    imap_change(mb, ("store", "1", "+FLAGS", "(\\Deleted)"), ("expunge",))
    mb.seed([message(9)])
    after2, _ = same_as_oracle(pair, mb)
    assert after2[:2] == after[1:] and len(after2) == 3
    assert sources(pair[0], mb.user)[-1] == "full"
    same_as_oracle(pair, mb)
    assert sources(pair[0], mb.user)[-1] == "cache"


@condstore_servers
def test_new_uidvalidity_is_never_served_from_the_cache(start_popgate, upstream):
    mb = new_mailbox(upstream)
    folder = "Work" if upstream.kind == "dovecot" else "INBOX.Work"
    conn = mb.imap()
    try:
        assert conn.create(folder)[0] == "OK"
        for i in (1, 2):
            assert conn.append(folder, None, None, message(i))[0] == "OK"
    finally:
        conn.logout()
    pair = (start(start_popgate, upstream, folder=folder),
            start(start_popgate, upstream, cache=False, folder=folder))
    before, _ = same_as_oracle(pair, mb)
    same_as_oracle(pair, mb)
    assert sources(pair[0], mb.user) == ["full", "cache"]
    conn = mb.imap()
    try:
        assert conn.delete(folder)[0] == "OK"
        time.sleep(1.1)   # UIDVALIDITY is time-based on both servers
        assert conn.create(folder)[0] == "OK"
        for i in (1, 2):
            assert conn.append(folder, None, None, message(i))[0] == "OK"
    finally:
        conn.logout()
    after, _ = same_as_oracle(pair, mb)
    assert len(after) == 2
    # Same UIDs, another UIDVALIDITY: Dovecot's UIDL format carries it.
    assert [u[8:16] for u in after] != [u[8:16] for u in before]
    assert sources(pair[0], mb.user)[-1] == "full"


@condstore_servers
def test_cache_off_and_bounds_by_config(start_popgate, upstream):
    mb = new_mailbox(upstream)
    mb.seed([message(i) for i in range(1, 4)])
    pg = start(start_popgate, upstream)
    maildrop(pg, mb)
    # 1 MiB per user holds 3 messages: what was cached stays, and serves.
    pg.sections["server"]["listing_cache_user_mb"] = 1
    assert pg.reload()
    maildrop(pg, mb)
    assert sources(pg, mb.user) == ["full", "cache"]
    pg.sections["server"]["listing_cache_mb"] = 0
    assert pg.reload()
    maildrop(pg, mb)
    assert sources(pg, mb.user)[-1] == "full"
    assert "cached=no" in listing_events(pg, mb.user)[-1]


@condstore_servers
def test_date_window_lists_and_caches_internaldate(start_popgate, upstream):
    """INTERNALDATE is fetched only for a view with a date window (a stat()
    per message on a Maildir); such a view gets it from the cache too."""
    mb = new_mailbox(upstream)
    mb.seed([message(1), message(2)])
    window = {"max_age": "3650d"}
    pair = (start(start_popgate, upstream, window=window),
            start(start_popgate, upstream, cache=False, window=window))
    assert len(same_as_oracle(pair, mb)[0]) == 2
    assert len(same_as_oracle(pair, mb)[0]) == 2
    mb.seed([message(3)])
    assert len(same_as_oracle(pair, mb)[0]) == 3
    assert sources(pair[0], mb.user) == ["full", "cache", "changed"]
    # A window that excludes everything: the dates are real, not zero.
    gone = {"since": "2999-01-01"}
    pair = (start(start_popgate, upstream, window=gone), start(start_popgate, upstream, cache=False, window=gone))
    assert same_as_oracle(pair, mb)[0] == []
