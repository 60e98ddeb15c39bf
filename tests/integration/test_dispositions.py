"""Conditions a retry cannot change, and sizes every node agrees on (issue 12).

- A server without a Trash mailbox (no special-use folders) and on_dele =
  trash: DELE answers -ERR [SYS/PERM] at once, QUIT commits everything else,
  the problem is logged once per session with what to configure. Never a
  QUIT that fails at every poll.
- trash_folder names the folder where the server has no special use; a
  trash_folder the server refuses (it does not exist) makes the deleted
  messages hidden from the device instead, and QUIT still succeeds.
- An exact size learned while streaming (a message without a final newline)
  is kept in Redis: another node lists it before it ever streamed the message.
"""

import re
import subprocess
import time

import pytest

from pop3client import POP3, is_ok

MSGS = [b"Subject: m%d\r\nMessage-ID: <m%d@example.org>\r\n\r\nbody %d\r\n" % (i, i, i) for i in (1, 2, 3)]
NO_FINAL_NEWLINE = b"Subject: cut\r\n\r\nno newline at the end"


@pytest.fixture(scope="module")
def notrash_bed(make_testbed):
    """A Dovecot without special-use folders (and its own Redis)."""
    return make_testbed(name="pgnotrash", trash=False)


@pytest.fixture
def notrash_popgate(notrash_bed):
    """start(policy=..., upstream=...) -> a popgate on notrash_bed."""
    started = []

    def start(policy=None, upstream=None):
        pol = {"view": "all", "on_retr": "seen", "on_dele": "trash"}
        pol.update(policy or {})
        pg = notrash_bed.popgate(upstream=upstream, extra_sections={"policy": pol})
        started.append(pg)
        return pg.start()

    yield start
    for pg in started:
        pg.stop(check=True)


_users = iter(range(1, 1000))


@pytest.fixture
def nt_user(notrash_bed):
    name = f"nt{next(_users)}"
    notrash_bed.add_user(name, "pw-" + name)
    notrash_bed.seed(name, MSGS)
    return name


@pytest.fixture
def nt_login(notrash_bed):
    """nt_login(pg, user, device="phone") -> POP3 over TLS, closed at teardown."""
    conns = []

    def login(pg, name, device="phone"):
        c = POP3("127.0.0.1", pg.tls_port, tls=True, cafile=notrash_bed.cert)
        conns.append(c)
        c.login(f"{name}#{device}", "pw-" + name)
        return c

    yield login
    for c in conns:
        c.close()


def folder_state(bed, user, folder="INBOX"):
    """{subject: flags} of a folder, read-only."""
    conn = bed.imap(user, "pw-" + user)
    try:
        typ, _ = conn.select(f'"{folder}"', readonly=True)
        if typ != "OK":
            return None
        typ, data = conn.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        out = {}
        for item in data:
            if isinstance(item, tuple):
                flags = set(re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).decode().split()) - {"\\Recent"}
                subject = item[1].decode().split(":", 1)[1].strip()
                out[subject] = flags
        return out
    finally:
        conn.logout()


def warnings_in(pg, event):
    return len(re.findall(rf"event={event}\b", pg.log()))


def test_no_trash_refuses_dele_and_quit_commits_the_rest(notrash_bed, notrash_popgate, nt_user, nt_login):
    pg = notrash_popgate()
    c = nt_login(pg, nt_user)
    c.retr(1)
    reply = c.cmd("DELE 1")
    assert reply.startswith(b"-ERR [SYS/PERM]"), reply
    assert c.cmd("DELE 2").startswith(b"-ERR [SYS/PERM]")
    assert c.cmd("NOOP").startswith(b"+OK"), "the session goes on after a refused DELE"
    assert is_ok(c.quit())
    state = folder_state(notrash_bed, nt_user)
    assert set(state) == {"m1", "m2", "m3"}, "nothing was removed"
    assert "\\Seen" in state["m1"], "the rest of the session committed"
    assert not any("\\Deleted" in f for f in state.values())
    assert warnings_in(pg, "trash-unavailable") == 1, "logged once per session"
    assert "trash_folder" in pg.log()

    # The next poll is not stuck: the same again, and QUIT succeeds again.
    c = nt_login(pg, nt_user)
    assert c.stat()[0] == 3
    assert c.cmd("DELE 3").startswith(b"-ERR [SYS/PERM]")
    assert is_ok(c.quit())


def test_no_trash_at_quit_by_expire_zero_hides_instead(notrash_bed, notrash_popgate, nt_user, nt_login):
    """EXPIRE 0 deletes at QUIT what was retrieved: with no trash it cannot,
    and QUIT must not fail because of it."""
    pg = notrash_popgate(policy={"expire": "0"})
    c = nt_login(pg, nt_user)
    c.retr(2)
    reply = c.quit()
    assert is_ok(reply), reply
    assert b"hidden" in reply
    assert set(folder_state(notrash_bed, nt_user)) == {"m1", "m2", "m3"}
    c = nt_login(pg, nt_user)
    assert [n for n, _ in c.list()] == [1, 2], "the device no longer sees what it could not delete"
    assert is_ok(c.quit())


def test_trash_folder_names_the_trash(notrash_bed, notrash_popgate, nt_user, nt_login):
    conn = notrash_bed.imap(nt_user, "pw-" + nt_user)
    assert conn.create('"Deleted Items"')[0] == "OK"
    conn.logout()
    pg = notrash_popgate(upstream={"trash_folder": "Deleted Items"})
    c = nt_login(pg, nt_user)
    assert is_ok(c.cmd("DELE 2"))
    assert is_ok(c.quit())
    assert set(folder_state(notrash_bed, nt_user)) == {"m1", "m3"}
    assert set(folder_state(notrash_bed, nt_user, "Deleted Items")) == {"m2"}
    assert warnings_in(pg, "trash-unavailable") == 0


def test_trash_folder_the_server_refuses_hides_instead(notrash_bed, notrash_popgate, nt_user, nt_login):
    pg = notrash_popgate(upstream={"trash_folder": "No Such Folder"})
    c = nt_login(pg, nt_user)
    c.retr(1)
    assert is_ok(c.cmd("DELE 1"))
    reply = c.quit()
    assert is_ok(reply), reply
    assert b"hidden" in reply
    state = folder_state(notrash_bed, nt_user)
    assert set(state) == {"m1", "m2", "m3"} and not any("\\Deleted" in f for f in state.values())
    assert warnings_in(pg, "trash-unavailable") == 1
    # This device does not get it again; another device still sees it.
    c = nt_login(pg, nt_user)
    assert c.stat()[0] == 2
    assert is_ok(c.quit())
    c = nt_login(pg, nt_user, device="desk")
    assert c.stat()[0] == 3
    assert is_ok(c.quit())


def test_config_refuses_a_trash_folder_it_cannot_send(testbed):
    pg = testbed.popgate(upstream={"trash_folder": "bad\x01name"})
    status, out = pg.check_config()
    assert status != 0
    assert "trash_folder" in out


# -- one size on every node -------------------------------------------------
def redis_cli(bed, *args):
    out = subprocess.run(["redis-cli", "-p", str(bed.ports["redis"]), "--raw", *args],
                         capture_output=True, text=True, timeout=10, check=True).stdout
    return [ln for ln in out.splitlines() if ln]


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_size_learned_on_one_node_is_listed_by_every_node(start_popgate, testbed, mailbox, session):
    mailbox.seed([MSGS[0], NO_FINAL_NEWLINE, MSGS[1]])
    node_a, node_b = start_popgate(), start_popgate()
    b = session(node_b, mailbox, device="b1")
    upstream_list = b.list()
    b.close()

    a = session(node_a, mailbox, device="a")
    body = a.retr(2)
    assert len(body) == upstream_list[1][1] + 2, "the CRLF popgate adds is not in RFC822.SIZE"
    a.close()  # no QUIT: a size is a fact, kept whether or not the session commits
    key = f"pg1:{{{mailbox.user}}}:size"
    assert wait_until(lambda: redis_cli(testbed, "HLEN", key) == ["1"])

    b = session(node_b, mailbox, device="b2")
    listed = b.list()
    assert listed[1] == (2, len(body)), "node B lists the exact size before it streamed the message"
    assert listed[0] == upstream_list[0] and listed[2] == upstream_list[2]
    assert b.stat() == (3, sum(size for _, size in listed))
    assert b.retr(2) == body
    b.close()
    assert redis_cli(testbed, "TTL", key) != ["-1"], "the size hash expires with the user's state"


def test_sizes_of_messages_gone_upstream_are_pruned(start_popgate, testbed, mailbox, session):
    mailbox.seed([NO_FINAL_NEWLINE, MSGS[0]])
    pg = start_popgate()
    c = session(pg, mailbox, device="x")
    c.retr(1)
    assert is_ok(c.quit())
    key = f"pg1:{{{mailbox.user}}}:size"
    assert redis_cli(testbed, "HLEN", key) == ["1"]
    conn = mailbox.imap()
    conn.select("INBOX")
    conn.store("1", "+FLAGS", "(\\Deleted)")
    conn.expunge()
    conn.logout()
    c = session(pg, mailbox, device="x")
    assert c.stat()[0] == 1
    assert is_ok(c.quit())
    assert redis_cli(testbed, "HLEN", key) == ["0"]


# -- exact_sizes: servers whose RFC822.SIZE is an estimate --------------------
EXCHANGE_GREETING = "The Microsoft Exchange IMAP4 service is ready."
ESTIMATED = [b"Subject: e%d\r\n\r\n" % i + b"line of text\r\n" * (2000 * i) for i in (1, 2, 3)]
_fake_users = iter(range(1, 1000))


def estimate(data):
    """Exchange-like: near the size, never equal."""
    return len(data) + 100 + len(data) // 50


@pytest.fixture
def fake_upstream():
    """fake_upstream(greeting=...) -> (FakeImap serving ESTIMATED with estimated
    sizes, user, password); stopped at teardown."""
    from fake_imap import FakeImap
    fakes = []

    def make(greeting=EXCHANGE_GREETING):
        user = f"ex{next(_fake_users)}@example.com"
        fake = FakeImap(messages=ESTIMATED, user=user.encode(), password=b"expw", greeting=greeting,
                        reported_size=estimate)
        fakes.append(fake)
        return fake, user, "expw"

    yield make
    for f in fakes:
        f.stop()


def body_fetches(fake):
    return sum(1 for c in fake.all_commands() if c.verb == "UID FETCH" and c.uid is not None)


def fake_login(connect, pg, user, password, device):
    c = connect(pg.tls_port, tls=True)
    c.login(f"{user}#{device}", password)
    return c


def fake_popgate(start_popgate, fake, exact_sizes=None):
    up = {"host": "127.0.0.1", "port": fake.port, "tls": "none", "ca_file": None, "verify_name": None}
    if exact_sizes:
        up["exact_sizes"] = exact_sizes
    return start_popgate(upstream=up, server={"allow_plaintext_auth": "yes"})


@pytest.mark.parametrize("exact_sizes", [None, "yes"])
def test_estimated_sizes_measured_once_before_listing(start_popgate, fake_upstream, connect, exact_sizes):
    """exact_sizes = auto (the default) against Exchange, or yes: LIST and STAT
    are what RETR sends from the very first session, and each message is
    measured once, ever, whichever node sees it first."""
    fake, user, pw = fake_upstream()
    node_a = fake_popgate(start_popgate, fake, exact_sizes)
    c = fake_login(connect, node_a, user, pw, "phone")
    exact = [(n, len(m)) for n, m in enumerate(ESTIMATED, 1)]
    assert c.list() == exact
    assert c.stat() == (3, sum(len(m) for m in ESTIMATED))
    assert body_fetches(fake) == 3
    assert [len(c.retr(n)) for n in (1, 2, 3)] == [size for _, size in exact]
    c.close()

    fake.reset()
    node_b = fake_popgate(start_popgate, fake, exact_sizes)
    c = fake_login(connect, node_b, user, pw, "desk")
    assert c.list() == exact
    assert body_fetches(fake) == 0, "sizes measured by another node are not measured again"
    c.close()


@pytest.mark.parametrize("greeting, exact_sizes", [("fake IMAP ready", None), (EXCHANGE_GREETING, "no")])
def test_sizes_trusted_without_exact_sizes(start_popgate, fake_upstream, connect, greeting, exact_sizes):
    """auto trusts servers not known to estimate; no trusts even Exchange
    (for mailboxes where ImapEnableExactRFC822Size is on)."""
    fake, user, pw = fake_upstream(greeting)
    pg = fake_popgate(start_popgate, fake, exact_sizes)
    c = fake_login(connect, pg, user, pw, "phone")
    assert c.list() == [(n, estimate(m)) for n, m in enumerate(ESTIMATED, 1)]
    assert body_fetches(fake) == 0
    body = c.retr(2)
    assert c.list_one(2) == (2, len(body)), "corrected once streamed"
    c.close()
