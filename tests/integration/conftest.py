"""Fixtures for the integration suite: one test bed (Dovecot + Redis) for the
whole run, a fresh mailbox (a new user) per test, and popgate processes started
per test with a config built from keyword overrides.

The popgate binary is POPGATE_BIN (`make integration` points it at the ASan
build), default ./popgate. A popgate that exits non-zero after SIGTERM, has to
be killed, or leaves a sanitizer report in its log fails the test that started
it (at teardown).
"""

import itertools
import os
import poplib
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "dev"))

import testbed as testbed_mod  # noqa: E402
import upstream_beds  # noqa: E402
from pop3client import POP3  # noqa: E402

# The IMAP servers the cross-server tests run against (upstream_beds.BEDS):
# adding one is one more name here, and its entry in UNSTORABLE.
UPSTREAMS = ["dovecot", "cyrus", "courier"]
# Corpus messages (messages.py) a server refuses to store, with the words of
# its refusal: its bed's seed() raises ValueError for them. Cyrus 3.6 APPEND
# (servers/cyrus_bed.py): bare LF, NUL, 0 octets, a first line that is no header.
UNSTORABLE = {
    "dovecot": {},
    "cyrus": {"bare_lf": "bare newlines", "mixed_endings": "bare newlines",
              "dot_lf": "bare newlines", "nul_bytes": "NUL characters",
              "empty": "Zero-length", "only_dot": "invalid header"},
    # Courier's bed writes Maildir files: it stores anything.
    "courier": {},
}


_user_ids = itertools.count(1)


class Mailbox:
    """One user of the test bed with an INBOX nobody else touches."""

    def __init__(self, testbed, user, password):
        self.testbed = testbed
        self.user = user
        self.password = password

    def seed(self, messages, flags=""):
        """messages: bytes or messages.Message objects, delivered in order."""
        data = [m if isinstance(m, (bytes, bytearray)) else m.data for m in messages]
        return self.testbed.seed(self.user, data, flags)

    def imap(self):
        return self.testbed.imap(self.user, self.password)

    def upstream(self):
        """{uid: (flags set without \\Recent, RFC822.SIZE)} of the INBOX, read
        over IMAP without changing anything (EXAMINE is read-only)."""
        conn = self.imap()
        try:
            typ, _ = conn.select("INBOX", readonly=True)
            assert typ == "OK"
            typ, data = conn.uid("FETCH", "1:*", "(UID FLAGS RFC822.SIZE)")
            assert typ == "OK"
            out = {}
            for item in data:
                if not item:
                    continue
                text = item.decode() if isinstance(item, bytes) else item[0].decode()
                m = re.search(r"UID (\d+)", text)
                if not m:
                    continue
                # \Recent only says which session saw the message first.
                flags = set(re.search(r"FLAGS \(([^)]*)\)", text).group(1).split()) - {"\\Recent"}
                size = int(re.search(r"RFC822\.SIZE (\d+)", text).group(1))
                out[int(m.group(1))] = (flags, size)
            return out
        finally:
            conn.logout()

    def uidvalidity(self):
        """From a read-write SELECT: Courier keeps UIDVALIDITY in the
        Maildir's courierimapuiddb, which only a read-write SELECT creates;
        until then STATUS and EXAMINE report a new time-based value each
        second. (popgate SELECTs read-write too, so after its first login the
        value is fixed.)"""
        conn = self.imap()
        try:
            typ, _ = conn.select("INBOX")
            assert typ == "OK"
            return int(conn.response("UIDVALIDITY")[1][0])
        finally:
            conn.logout()


@pytest.fixture(scope="session")
def testbed(request):
    tb = testbed_mod.Testbed()
    tb.start()
    try:
        yield tb
    finally:
        if request.session.testsfailed:
            # The directory goes away with stop(): keep Dovecot's view of the
            # failures in the test output.
            print(testbed_mod.log_tail(tb.dovecot_log, 60))
        tb.stop()


# The UIDL format of the second test bed's POP3 server: not popgate's
# lower-case %08Xu%08Xv, so it plays an old POP3 server a user migrates from.
SECOND_UIDL_FORMAT = "%v.%u"


@pytest.fixture(scope="session")
def make_testbed(request):
    """make_testbed(name=..., dovecot_settings=..., redis=...) -> a started,
    independent Testbed (own ports, mail root, Dovecot and, unless
    redis=False, Redis), stopped at the end of the run (or earlier with its
    own stop())."""
    made = []

    def make(**kwargs):
        tb = testbed_mod.Testbed(**kwargs)
        made.append(tb)
        return tb.start()

    yield make
    for tb in made:
        if request.session.testsfailed and tb.dir and os.path.isdir(tb.dir):
            print(testbed_mod.log_tail(tb.dovecot_log, 60))
        tb.stop()


@pytest.fixture(scope="session")
def second_testbed(make_testbed):
    """A second Dovecot (and Redis), independent of `testbed`: its own ports
    and mail root, POP3 UIDLs in SECOND_UIDL_FORMAT. A popgate of `testbed`
    reaches its IMAP at 127.0.0.1:second_testbed.ports["imap"] (STARTTLS,
    certificate second_testbed.cert, name "localhost")."""
    return make_testbed(name="pgtest2", dovecot_settings={"pop3_uidl_format": SECOND_UIDL_FORMAT})


def new_mailbox(testbed, password=None):
    n = next(_user_ids)
    user = f"user{n}"
    pw = password if password is not None else f"pw{n}secret"
    testbed.add_user(user, pw)
    return Mailbox(testbed, user, pw)


def maildrop(pg, mb, device="phone"):
    """(UIDL list, LIST list) of one session that ends with QUIT."""
    p = poplib.POP3("127.0.0.1", pg.port, timeout=30)
    try:
        p.user(f"{mb.user}#{device}")
        p.pass_(mb.password)
        uidl = [ln.split()[1].decode() for ln in p.uidl()[1]]
        sizes = [int(ln.split()[1]) for ln in p.list()[1]]
        p.quit()
    finally:
        p.close()
    return uidl, sizes


@pytest.fixture(scope="session")
def upstream_bed(request, testbed):
    """upstream_bed(kind) -> the started bed of that IMAP server, one per
    run (started on first use; "dovecot" is `testbed`), stopped at the end."""
    beds = {"dovecot": testbed}

    def get(kind):
        if kind not in beds:
            beds[kind] = upstream_beds.BEDS[kind]().start()
        return beds[kind]

    yield get
    for kind, bed in beds.items():
        if kind == "dovecot":
            continue
        if request.session.testsfailed:
            print(f"--- {kind} ---" + bed.log_tail(60))
        bed.stop()


@pytest.fixture(scope="session")
def cyrus_bed(upstream_bed):
    return upstream_bed("cyrus")


@pytest.fixture(scope="module", params=UPSTREAMS)
def upstream(request, upstream_bed):
    """Each IMAP server in turn (module scope: a module's tests run against
    one server, then the next). Popgates reach it with
    start_popgate(upstream=upstream.popgate_upstream())."""
    return upstream_bed(request.param)


@pytest.fixture
def up_mailbox(upstream):
    """A fresh, empty INBOX for a new user on `upstream`."""
    return new_mailbox(upstream)


@pytest.fixture
def up_popgate(start_popgate, upstream):
    """popgate with the default test config, in front of `upstream`."""
    return start_popgate(upstream=upstream.popgate_upstream())


@pytest.fixture(scope="session")
def new_user(testbed):
    """new_user(password=None) -> Mailbox; for fixtures wider than one test."""
    return lambda password=None: new_mailbox(testbed, password)


@pytest.fixture
def mailbox(testbed):
    """A fresh, empty INBOX for a new user."""
    return new_mailbox(testbed)


def popgate_binary():
    return os.path.abspath(os.environ.get("POPGATE_BIN", "./popgate"))


@pytest.fixture(scope="session")
def popgate_bin():
    """Path of the popgate binary under test (POPGATE_BIN, default ./popgate)."""
    return popgate_binary()


@pytest.fixture
def start_popgate(testbed):
    """start_popgate(server={...}, upstream={...}, binary=...) -> started Popgate.
    Every popgate started is stopped (and checked) at teardown."""
    started = []

    def start(**kwargs):
        kwargs.setdefault("binary", popgate_binary())
        pg = testbed.popgate(**kwargs)
        started.append(pg)
        return pg.start()

    yield start
    problems = []
    for pg in started:
        try:
            pg.stop(check=True)
        except AssertionError as e:
            problems.append(str(e))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def popgate(start_popgate):
    """popgate with the default test config (see testbed.Popgate)."""
    return start_popgate()


@pytest.fixture
def connect(testbed):
    """connect(port, tls=False, **kw) -> POP3 on 127.0.0.1, closed at teardown.
    TLS is verified against the test bed's certificate as "localhost"."""
    conns = []

    def conn(port, tls=False, host="127.0.0.1", **kw):
        c = POP3(host, port, tls=tls, cafile=testbed.cert, **kw)
        conns.append(c)
        return c

    yield conn
    for c in conns:
        c.close()


@pytest.fixture
def session(connect):
    """session(pg, mailbox, tls=True, device=None) -> POP3 logged in over
    implicit TLS (or STLS on the plain port with tls="stls"), as user#device
    when a device is named (DESIGN.md "Devices")."""
    def open_session(pg, mb, tls=True, device=None):
        if tls == "stls":
            c = connect(pg.port)
            c.stls()
        else:
            c = connect(pg.tls_port if tls else pg.port, tls=bool(tls))
        c.login(f"{mb.user}#{device}" if device else mb.user, mb.password)
        return c
    return open_session


# The OAuth2 bed (issue 15): authorization server, Dovecot with passdb
# oauth2, credential files; described in oauth_fixtures.py.
from oauth_fixtures import (  # noqa: E402,F401
    oauth_client, oauth_dovecot, oauth_files, oauth_server, oauth_server_session,
    oauth_service_account, oauth_user)
