"""Hosted providers and capability fallbacks (issue 12, items 3 and 4),
against the scriptable fake IMAP server, since Gmail, Office 365 and Yahoo
cannot be reached from here (README "Hosted providers").

- Throttle answers ([THROTTLED], [LIMIT], Office 365's "Request is
  throttled. Suggested Backoff Time: N milliseconds", as NO, BAD or BYE) give
  -ERR [SYS/TEMP] at once, start a per-user backoff in Redis (the suggested
  time up to upstream_backoff_max) during which logins are refused without
  contacting the upstream, and end when it has passed. Mid-session, RETR
  answers -ERR [SYS/TEMP] and sends nothing upstream until the backoff ends.
- [INUSE] is -ERR [IN-USE]; [UNAVAILABLE] is -ERR [SYS/TEMP] with no backoff.
- Gmail (X-GM-EXT-1): X-GM-MSGID is the state id, so a UIDVALIDITY change
  keeps what each device retrieved; on_dele = expunge sends exactly UID STORE
  \\Deleted + UID EXPUNGE on INBOX (Gmail then removes the Inbox label).
- Without MOVE: COPY + \\Deleted + UID EXPUNGE; without UIDPLUS never an
  EXPUNGE of any kind. (LOGIN without AUTH=PLAIN, AUTHENTICATE without
  SASL-IR and synchronising literals are test_limits.py's credential tests.)
"""
import os
import re
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "deploy", "dev"))
sys.path.insert(0, os.path.dirname(__file__))
import testbed  # noqa: E402
from fake_imap import FakeImap  # noqa: E402
from pop3client import POP3, is_ok  # noqa: E402

PASSWORD = "provpw"
COMMAND_TIMEOUT = 2        # upstream connect_timeout and command_timeout, seconds
BACKOFF = 2                # upstream_backoff: seconds when the server suggests none
BACKOFF_MAX = 3            # upstream_backoff_max: the cap on a suggested time
QUICK = 1.5                # a reply that does not wait for any timeout comes within this
MESSAGES = [b"From: a@example.org\r\nSubject: message %d\r\n\r\nbody %d\r\n" % (i, i) for i in (1, 2, 3)]
GMAIL_CAPS = ("AUTH=PLAIN", "SASL-IR", "UIDPLUS", "MOVE", "SPECIAL-USE", "X-GM-EXT-1")
# Every command that changes a mailbox, as the fake records its verb.
MUTATING = {"UID STORE", "UID EXPUNGE", "UID MOVE", "UID COPY", "STORE", "EXPUNGE", "CLOSE",
            "COPY", "MOVE", "APPEND", "DELETE"}


@pytest.fixture(scope="module")
def bed():
    with testbed.Testbed(name="pgprov") as tb:
        yield tb


@pytest.fixture
def user(request):
    """A user of its own per test: Redis state and backoffs do not leak."""
    return "p" + re.sub(r"[^a-z0-9]", "", request.node.name.lower())[-40:]


@pytest.fixture
def fake(user):
    f = FakeImap(messages=MESSAGES, user=user.encode(), password=PASSWORD.encode())
    yield f
    f.stop()


@pytest.fixture
def start(bed, fake):
    started = []

    def run(policy=None):
        pg = testbed.Popgate(
            bed,
            server={"allow_plaintext_auth": "yes", "log_level": "debug",
                    "upstream_backoff": BACKOFF, "upstream_backoff_max": BACKOFF_MAX},
            upstream={"host": "127.0.0.1", "port": fake.port, "tls": "none",
                      "connect_timeout": COMMAND_TIMEOUT, "command_timeout": COMMAND_TIMEOUT},
            extra_sections={"policy": {"view": "all", "on_retr": "seen", "on_dele": "hide", **(policy or {})}})
        pg.start()
        started.append(pg)
        return pg
    yield run
    for pg in started:
        assert pg.running(), "popgate died" + testbed.log_tail(pg.log_path)
        pg.stop()  # checks the exit status and sanitizer reports


def redis(bed, *args):
    out = subprocess.run(["redis-cli", "-p", str(bed.ports["redis"]), "--raw", *args],
                         check=True, capture_output=True, timeout=10)
    return out.stdout.decode().strip()


def backoff_left(bed, user):
    """Milliseconds the user's upstream backoff still runs; -2 when none."""
    return int(redis(bed, "PTTL", f"pg1:{{{user}}}:backoff"))


def connect(pg):
    return POP3("127.0.0.1", pg.port, timeout=15)


def timed_login(pg, user):
    c = connect(pg)
    t0 = time.monotonic()
    reply = c.user_pass(user, PASSWORD)
    return c, reply, time.monotonic() - t0


def mutations(fake):
    return [(c.verb, bytes(c.args)) for c in fake.all_commands() if c.verb in MUTATING]


# ---- hooks ---------------------------------------------------------------------

def answer(text, then_close=False):
    """A hook that answers the command with text ("{tag}" is its tag)."""
    def hook(conn, tag, cmd):
        conn.send(text.replace("{tag}", tag or "*").encode())
        if then_close:
            time.sleep(0.1)
            conn.close()
    return hook


THROTTLES = {
    # point, hook, the backoff expected: "default" (upstream_backoff) or ms
    "gmail": ("login", answer("{tag} NO [THROTTLED] Account exceeded command or bandwidth limits.\r\n"),
              "default"),
    "gmail-bye": ("greeting", answer("* BYE [THROTTLED] Too many simultaneous connections.\r\n", True),
                  "default"),
    "yahoo": ("login", answer("{tag} NO [LIMIT] Rate limit hit.\r\n"), "default"),
    "o365": ("login", answer("{tag} NO Request is throttled. Suggested Backoff Time: 1500 milliseconds\r\n"),
             1500),
    # As seen from Office 365: BAD, then BYE, then the connection closes; the
    # suggested five minutes are capped at upstream_backoff_max.
    "o365-bad-bye": ("login", answer("{tag} BAD Request is throttled. Suggested Backoff Time: 299961 "
                                     "milliseconds\r\n* BYE Connection closed. 14\r\n", True),
                     BACKOFF_MAX * 1000),
}


# ---- throttles at login ------------------------------------------------------------

@pytest.mark.parametrize("provider", list(THROTTLES))
def test_throttle_at_login_backs_off_then_recovers(bed, fake, start, user, provider):
    point, hook, expected = THROTTLES[provider]
    pg = start()
    fake.hooks[point] = hook
    c, reply, took = timed_login(pg, user)
    c.close()
    assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
    assert took < QUICK, f"the throttle answer took {took:.1f}s to reach the client"
    left = backoff_left(bed, user)
    want = BACKOFF * 1000 if expected == "default" else expected
    assert want - 1000 < left <= want, (left, want)
    assert len(fake.connections) == 1

    # During the backoff no node contacts the upstream for this user.
    fake.hooks = {}
    c, reply, took = timed_login(pg, user)
    c.close()
    assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
    assert took < QUICK
    assert len(fake.connections) == 1, "popgate contacted the throttling upstream during the backoff"
    assert "reason=upstream-backoff" in pg.log()
    assert "event=upstream-throttled" in pg.log()

    # Afterwards it does again, and the login works.
    time.sleep(max(0, backoff_left(bed, user)) / 1000 + 0.2)
    c, reply, _ = timed_login(pg, user)
    assert is_ok(reply), reply
    assert is_ok(c.quit())
    assert len(fake.connections) == 2
    assert fake.violations() == []


@pytest.mark.parametrize("code,prefix", [
    ("INUSE", b"-ERR [IN-USE]"),
    ("UNAVAILABLE", b"-ERR [SYS/TEMP]"),
])
def test_inuse_and_unavailable_at_login(bed, fake, start, user, code, prefix):
    pg = start()
    fake.hooks["login"] = answer("{tag} NO [%s] Try again later.\r\n" % code)
    c, reply, took = timed_login(pg, user)
    c.close()
    assert reply.startswith(prefix), reply
    assert took < QUICK
    # Not a throttle: no backoff, the next login asks the upstream again.
    assert backoff_left(bed, user) == -2
    c, reply, _ = timed_login(pg, user)
    c.close()
    assert reply.startswith(prefix), reply
    assert len(fake.connections) == 2


# ---- throttles in the middle of a session ----------------------------------------

def body_fetches(fake):
    return [c for c in fake.all_commands() if c.verb == "UID FETCH" and c.uid is not None]


def test_throttled_retr_answers_at_once_and_sends_nothing_during_the_backoff(bed, fake, start, user):
    pg = start()
    c = connect(pg)
    c.login(user, PASSWORD)
    fake.hooks["body"] = answer("{tag} NO [THROTTLED] Account exceeded bandwidth limits.\r\n")
    t0 = time.monotonic()
    reply = c.cmd("RETR 1")
    assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
    assert time.monotonic() - t0 < QUICK
    assert len(body_fetches(fake)) == 1
    assert 0 < backoff_left(bed, user) <= BACKOFF * 1000
    # A client retrying at once gets the same answer without an upstream command.
    fake.hooks = {}
    for n in (1, 2):
        reply = c.cmd(f"RETR {n}")
        assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
    assert len(body_fetches(fake)) == 1, "RETR reached the upstream during its backoff"
    assert c.stat() == (3, sum(len(m) for m in MESSAGES))
    # The session survives the backoff and then reads normally.
    time.sleep(BACKOFF + 0.2)
    assert c.retr(1) == MESSAGES[0]
    assert is_ok(c.quit())
    assert [(v, a) for v, a in mutations(fake)] == [("UID STORE", b"1 +FLAGS.SILENT (\\Seen)")]


def test_office365_throttle_and_bye_during_retr_never_hangs(bed, fake, start, user):
    pg = start()
    c = connect(pg)
    c.login(user, PASSWORD)
    fake.hooks["body"] = answer("{tag} BAD Request is throttled. Suggested Backoff Time: 1000 milliseconds"
                                "\r\n* BYE Connection closed. 14\r\n", True)
    t0 = time.monotonic()
    reply = c.cmd("RETR 1")
    assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
    reply = c.cmd("RETR 2")
    assert reply.startswith(b"-ERR [SYS/TEMP]"), reply
    assert time.monotonic() - t0 < QUICK, "waited for a timeout instead of reading the throttle"
    assert 0 < backoff_left(bed, user) <= 1000
    # Nothing was retrieved: QUIT has nothing to change upstream and succeeds.
    assert is_ok(c.quit())
    assert mutations(fake) == []
    assert fake.wait_all_closed(5)


# ---- Gmail: X-GM-MSGID and a label store -------------------------------------------

@pytest.mark.parametrize("gmail", [True, False], ids=["x-gm-ext-1", "no-stable-id"])
def test_x_gm_msgid_carries_state_across_a_uidvalidity_change(bed, fake, start, user, gmail):
    fake.caps = list(GMAIL_CAPS if gmail else ("AUTH=PLAIN", "SASL-IR", "UIDPLUS", "MOVE"))
    pg = start(policy={"view": "new"})
    c = connect(pg)
    c.login(user, PASSWORD)
    assert c.retr(1) == MESSAGES[0]
    assert is_ok(c.quit())
    listing = [c for c in fake.all_commands() if c.verb == "UID FETCH" and c.args.startswith(b"1:*")]
    assert (b"X-GM-MSGID" in listing[0].args) == gmail, listing[0].args
    assert redis(bed, "HGET", f"pg1:{{{user}}}:dev:default", "idscheme") == ("gmmsgid" if gmail else "uid")

    fake.uidvalidity += 1
    c = connect(pg)
    c.login(user, PASSWORD)
    if gmail:
        # The ids did not change: only the message not yet retrieved is new.
        assert c.stat() == (2, len(MESSAGES[1]) + len(MESSAGES[2]))
        assert "uidvalidity-changed" not in pg.log()
    else:
        # UID-based ids: uidvalidity_policy (mark-all-downloaded) applies.
        assert c.stat() == (0, 0)
        assert "event=uidvalidity-changed" in pg.log()
    assert is_ok(c.quit())
    assert fake.violations() == []


def test_a_new_id_scheme_applies_the_uidvalidity_policy(bed, fake, start, user):
    # A device that used UID-based ids meets the same mailbox with
    # X-GM-EXT-1 (popgate upgraded in front of Gmail): its stored ids cannot
    # match, so the policy applies instead of a re-download of everything.
    fake.caps = ["AUTH=PLAIN", "SASL-IR", "UIDPLUS"]
    pg = start(policy={"view": "new"})
    c = connect(pg)
    c.login(user, PASSWORD)
    assert c.retr(1) == MESSAGES[0]
    assert is_ok(c.quit())
    fake.caps = list(GMAIL_CAPS)
    c = connect(pg)
    c.login(user, PASSWORD)
    assert c.stat() == (0, 0)
    assert is_ok(c.quit())
    assert "event=ids-scheme-changed" in pg.log()
    assert "old=uid new=gmmsgid" in pg.log()
    # From now on X-GM-MSGID ids: a new message is new, the rest stay known.
    fake.messages.append(b"Subject: four\r\n\r\nbody 4\r\n")
    c = connect(pg)
    c.login(user, PASSWORD)
    assert c.stat() == (1, len(fake.messages[3]))
    assert is_ok(c.quit())
    assert pg.log().count("event=ids-scheme-changed") == 1


def test_gmail_on_dele_expunge_is_exactly_store_and_uid_expunge_on_inbox(bed, fake, start, user):
    # Gmail keeps a message expunged from INBOX in All Mail (it loses the
    # Inbox label), unless the account's IMAP settings say otherwise. popgate
    # sends just this and touches no other mailbox or label.
    fake.caps = list(GMAIL_CAPS)
    fake.mailboxes = [("\\HasNoChildren", "INBOX"), ("\\All \\HasNoChildren", "[Gmail]/All Mail"),
                      ("\\HasNoChildren \\Trash", "[Gmail]/Trash")]
    pg = start(policy={"on_dele": "expunge"})
    c = connect(pg)
    c.login(user, PASSWORD)
    assert is_ok(c.cmd("DELE 2"))
    assert is_ok(c.quit())
    assert mutations(fake) == [("UID STORE", b"2 +FLAGS.SILENT (\\Deleted)"), ("UID EXPUNGE", b"2")]
    selects = [bytes(c.args) for c in fake.all_commands() if c.verb == "SELECT"]
    assert selects and all(s == b'"INBOX"' for s in selects), selects
    sent = b"".join(bytes(conn.received) for conn in fake.connections)
    assert b"X-GM-LABELS" not in sent and b"[Gmail]" not in sent
    assert fake.violations() == []


# ---- capability fallbacks at QUIT ---------------------------------------------------

MAILBOXES = [("\\HasNoChildren", "INBOX"), ("\\HasNoChildren \\Trash", "Trash")]
STORE_DELETED = ("UID STORE", b"1 +FLAGS.SILENT (\\Deleted)")


@pytest.mark.parametrize("on_dele,caps,expected", [
    ("trash", ("UIDPLUS", "MOVE", "SPECIAL-USE"), [("UID MOVE", b'1 "Trash"')]),
    ("trash", ("UIDPLUS",), [("UID COPY", b'1 "Trash"'), STORE_DELETED, ("UID EXPUNGE", b"1")]),
    ("trash", (), [("UID COPY", b'1 "Trash"'), STORE_DELETED]),
    ("expunge", ("UIDPLUS",), [STORE_DELETED, ("UID EXPUNGE", b"1")]),
    ("expunge", (), [STORE_DELETED]),
], ids=["trash-move", "trash-no-move", "trash-no-move-no-uidplus", "expunge", "expunge-no-uidplus"])
def test_capability_fallbacks(bed, fake, start, user, on_dele, caps, expected):
    # Without UIDPLUS no EXPUNGE of any kind: a plain EXPUNGE or CLOSE would
    # also remove what other clients marked \Deleted. The message keeps
    # \Deleted upstream (hidden by most clients, removed by the next client
    # that expunges).
    fake.caps = ["AUTH=PLAIN", "SASL-IR", *caps]
    fake.mailboxes = MAILBOXES
    pg = start(policy={"on_dele": on_dele, "on_retr": "keep"})
    c = connect(pg)
    c.login(user, PASSWORD)
    assert is_ok(c.cmd("DELE 1"))
    assert is_ok(c.quit())
    assert mutations(fake) == expected
    assert fake.violations() == []


@pytest.mark.parametrize("verb", ["UID MOVE", "UID COPY"])
def test_overquota_at_quit_hides_instead_and_commits(bed, fake, start, user, verb):
    """[OVERQUOTA] on the move to Trash is permanent: QUIT commits the rest,
    the deleted message is hidden from the device instead, and the next
    session's QUIT is not refused again for it."""
    fake.caps = ["AUTH=PLAIN", "SASL-IR", "UIDPLUS", "SPECIAL-USE"] + (["MOVE"] if verb == "UID MOVE" else [])
    fake.mailboxes = MAILBOXES
    fake.hooks[verb] = answer("{tag} NO [OVERQUOTA] Quota exceeded.\r\n")
    pg = start(policy={"on_dele": "trash"})
    c = connect(pg)
    c.login(user, PASSWORD)
    c.retr(1)
    assert is_ok(c.cmd("DELE 2"))
    reply = c.quit()
    assert is_ok(reply), reply
    assert b"hidden" in reply
    verbs = [v for v, _ in mutations(fake)]
    assert verbs[0] == "UID STORE" and verb in verbs, verbs
    assert "UID EXPUNGE" not in verbs, "nothing is expunged that was not moved"
    c = connect(pg)
    c.login(user, PASSWORD)
    assert c.stat()[0] == len(fake.messages) - 1, "the device no longer sees the message it deleted"
    assert is_ok(c.quit())
    assert "event=commit-step-refused" in pg.log()
