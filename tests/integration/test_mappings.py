"""Mapping rules (issue 5, item 1 and 2) against two real Dovecot instances,
a real Redis and the real popgate binary.

Config syntax under test (README "Configuration reference"):
  [upstream]  the default mapping's upstream, plus login = keep | strip-domain |
              add-domain D | template T (%u login without device, %n local
              part, %d domain, %% percent), folders = A, B (mailbox = one-folder
              alias), legacy_pop3 and its TLS options
  [policy]    default policy and limits (max_sessions_per_user, login_delay,
              expire besides the views)
  [mapping NAME]  users = ... and/or domains = ..., plus any [upstream] or
              [policy] key; unset keys inherit. Matching: exact user (case-
              insensitive, without #device), then domain, then the default.
  Redis override: popgate-admin map set USER mapping=NAME (next login).

What the upstream receives is checked two ways: the test bed's Dovecot has
users named exactly as a transform must produce (any other name fails auth),
and tests/integration/fake_imap.py records the LOGIN/AUTHENTICATE bytes.
"""

import itertools
import os
import poplib
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "dev"))
import testbed as testbed_mod  # noqa: E402
from fake_imap import FakeImap  # noqa: E402

PASSWORD = "map pw\"1"          # a space and a quote: LOGIN needs quoting
_ids = itertools.count(1)


def uniq(prefix):
    return f"{prefix}{next(_ids)}"


def upstream_of(tb, tls="starttls"):
    """[upstream]-style keys that reach test bed tb's IMAP server."""
    port = tb.ports["imaps"] if tls == "implicit" else tb.ports["imap"]
    return {"host": "127.0.0.1", "port": port, "tls": tls, "ca_file": tb.cert,
            "verify": "yes", "verify_name": "localhost"}


def message(subject, extra_headers=b""):
    mid = re.sub(r"[^A-Za-z0-9.]", ".", subject)
    return (b"From: sender@example.org\r\nTo: rcpt@example.org\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Message-ID: <" + mid.encode() + b"@mappings.test>\r\n" + extra_headers +
            b"\r\nbody of " + subject.encode() + b"\r\n")


def add(tb, user, subjects, flags=""):
    """A Dovecot user on tb (any name) holding one message per subject."""
    if user not in tb.users:
        tb.add_user(user, PASSWORD)
    tb.seed(user, [message(s) for s in subjects], flags)
    return user


def pop(pg, login, password=PASSWORD):
    p = poplib.POP3("127.0.0.1", pg.port, timeout=30)
    p.user(login)
    p.pass_(password)
    return p


def login_error(pg, login, password=PASSWORD):
    """The -ERR line popgate answered to a login (fails the test if +OK)."""
    p = poplib.POP3("127.0.0.1", pg.port, timeout=30)
    try:
        p.user(login)
        with pytest.raises(poplib.error_proto) as err:
            p.pass_(password)
        return err.value.args[0].decode("utf-8", "replace")
    finally:
        try:
            p.quit()
        except (poplib.error_proto, OSError, EOFError):
            pass


def subjects(p):
    """Subjects of the maildrop in order, via TOP n 0 (changes nothing)."""
    out = []
    for n in range(1, p.stat()[0] + 1):
        for line in p.top(n, 0)[1]:
            if line.lower().startswith(b"subject: "):
                out.append(line[9:].decode())
    return out


def seen_by(pg, login, password=PASSWORD):
    p = pop(pg, login, password)
    try:
        return subjects(p)
    finally:
        p.quit()


def sections(mappings=None, policy=None):
    extra = {}
    if policy is not None:
        extra["policy"] = policy
    for name, keys in (mappings or {}).items():
        extra[f"mapping {name}"] = keys
    return extra


def plain_server(**over):
    srv = {"allow_plaintext_auth": "yes"}
    srv.update(over)
    return srv


def log_context(pg):
    return testbed_mod.log_tail(pg.log_path, 40)


# -- admin ----------------------------------------------------------------------

def admin_binary():
    if os.environ.get("POPGATE_ADMIN_BIN"):
        return os.path.abspath(os.environ["POPGATE_ADMIN_BIN"])
    pg = Path(os.path.abspath(os.environ.get("POPGATE_BIN") or REPO / "popgate"))
    beside = pg.with_name("popgate-admin")
    return str(beside if beside.exists() else REPO / "popgate-admin")


def admin(conf_path, *args):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    r = subprocess.run([admin_binary(), "-c", conf_path, *map(str, args)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert "Sanitizer" not in r.stderr and "runtime error:" not in r.stderr, r.stderr
    return r


# ---- (a) routing by domain and by user to two Dovecot instances ---------------

def test_users_in_two_domains_reach_two_dovecots(testbed, second_testbed, start_popgate):
    """The same user names exist on both instances with different mail, so
    what a user sees proves which instance popgate logged in to."""
    one, two = uniq("erin") + "@one.example", uniq("dana") + "@two.example"
    vip = uniq("gina") + "@two.example"
    for user in (one, two, vip):
        add(testbed, user, [f"main {user} 1", f"main {user} 2"])
        add(second_testbed, user, [f"second {user} 1"])
    mixed = uniq("MixedCase") + "@Two.Example"
    add(second_testbed, mixed.lower(), [f"second {mixed.lower()} only"])   # only on the second
    pg = start_popgate(server=plain_server(), extra_sections=sections({
        # by domain, over implicit TLS with the second bed's own CA
        "two": {"domains": "two.example, three.example", **upstream_of(second_testbed, "implicit")},
        # an exact user beats its domain's mapping
        "vip": {"users": f"{vip}, nobody@one.example", **upstream_of(testbed)},
        # matched case-insensitively; the upstream gets the login as typed
        "mixed": {"users": mixed, **upstream_of(second_testbed)},
    }))
    assert seen_by(pg, one) == [f"main {one} 1", f"main {one} 2"], log_context(pg)
    assert seen_by(pg, two) == [f"second {two} 1"], log_context(pg)
    assert seen_by(pg, f"{two}#phone") == [f"second {two} 1"], "the #device suffix broke matching"
    assert seen_by(pg, vip) == [f"main {vip} 1", f"main {vip} 2"], "user rule must beat domain rule"
    assert seen_by(pg, mixed.lower()) == [f"second {mixed.lower()} only"]
    # Both sessions open at once, each on its own instance.
    a, b = pop(pg, f"{one}#x"), pop(pg, f"{two}#x")
    try:
        assert a.stat()[0] == 2 and b.stat()[0] == 1
    finally:
        a.quit()
        b.quit()


def test_domain_match_is_case_insensitive(testbed, second_testbed, start_popgate):
    user = uniq("lena") + "@case.example"
    add(testbed, user, ["main"])
    add(second_testbed, user, ["second"])
    pg = start_popgate(server=plain_server(), extra_sections=sections({
        "case": {"domains": "CASE.Example", **upstream_of(second_testbed)}}))
    assert seen_by(pg, user) == ["second"], log_context(pg)


def test_mapping_uses_its_own_ca_file(testbed, second_testbed, start_popgate):
    """A mapping's ca_file is the one checked: the main bed's CA does not
    verify the second bed's certificate, so the login fails as SYS/TEMP."""
    user = uniq("ca") + "@wrongca.example"
    add(second_testbed, user, ["second"])
    pg = start_popgate(server=plain_server(), extra_sections=sections({
        "wrongca": {"domains": "wrongca.example", **upstream_of(second_testbed),
                    "ca_file": testbed.cert}}))
    err = login_error(pg, user)
    assert err.startswith("-ERR [SYS/TEMP]"), err


# ---- folders ---------------------------------------------------------------------

def imap_append(tb, user, folder, msgs):
    conn = tb.imap(user, PASSWORD)
    try:
        conn.create(folder)
        for m in msgs:
            typ, _ = conn.append(folder, None, None, m)
            assert typ == "OK"
    finally:
        conn.logout()


def test_folders_make_one_maildrop(testbed, start_popgate):
    both, inbox_only, archive_only = uniq("fold"), uniq("fold"), uniq("fold")
    for user in (both, inbox_only, archive_only):
        add(testbed, user, ["inbox 1", "inbox 2"])
        imap_append(testbed, user, "Archive", [message("archive 1"), message("archive 2")])
    pg = start_popgate(server=plain_server(), extra_sections=sections({
        "both": {"users": both, "folders": "INBOX, Archive"},
        "alias": {"users": archive_only, "mailbox": "Archive"},
    }))
    p = pop(pg, both)
    try:
        assert sorted(subjects(p)) == ["archive 1", "archive 2", "inbox 1", "inbox 2"], log_context(pg)
        uidls = [ln.split()[1] for ln in p.uidl()[1]]
        assert len(set(uidls)) == 4, f"UIDLs must be distinct across folders: {uidls}"
        for n in range(1, 5):
            body = b"\r\n".join(p.retr(n)[1])
            assert b"body of " in body
    finally:
        p.quit()
    assert seen_by(pg, inbox_only) == ["inbox 1", "inbox 2"]
    assert seen_by(pg, archive_only) == ["archive 1", "archive 2"]


# ---- (b) login transforms, checked by what Dovecot accepts ---------------------

@pytest.fixture(scope="module")
def transforms(testbed):
    """One popgate whose mappings transform logins; Dovecot users exist only
    under the transformed names."""
    n = next(_ids)
    users = {
        "strip": (f"carol{n}@strip.example", f"carol{n}"),
        "add": (f"henry{n}", f"henry{n}@new.example"),
        "template": (f"ivan{n}@tmpl.example#phone", f"ivan{n}@new.example"),
        "default": (f"jack{n}@dflt.example", f"jack{n}@dflt.example"),
    }
    for kind, (_, upstream_user) in users.items():
        add(testbed, upstream_user, [f"{kind} mail"])
    # For the wrong transforms: only the stripped name exists.
    kate = f"kate{n}"
    add(testbed, kate, ["kate mail"])
    pg = testbed_mod.Popgate(testbed, server=plain_server(), extra_sections=sections({
        "strip": {"domains": "strip.example", "login": "strip-domain"},
        "add": {"users": f"henry{n}", "login": "add-domain new.example"},
        "template": {"domains": "tmpl.example", "login": "template %n@new.example"},
        "keep": {"domains": "keep.example", "login": "keep"},
        "wrongtemplate": {"domains": "wrong.example", "login": "template %n@other.example"},
    }))
    pg.start()
    pg.users = users
    pg.kate = kate
    yield pg
    pg.stop(check=True)


@pytest.mark.parametrize("kind", ["strip", "add", "template", "default"])
def test_login_transform_reaches_dovecot_user(transforms, kind):
    login, upstream_user = transforms.users[kind]
    assert seen_by(transforms, login) == [f"{kind} mail"], \
        f"{login} should log in upstream as {upstream_user}" + log_context(transforms)


@pytest.mark.parametrize("domain", ["keep.example", "wrong.example"])
def test_wrong_transform_fails_auth(transforms, domain):
    """Dovecot has kate, not kate@keep.example (keep) or kate@other.example
    (the template): the login must fail as bad credentials, nothing else."""
    err = login_error(transforms, f"{transforms.kate}@{domain}")
    assert err.startswith("-ERR [AUTH]"), err
    # The same user through strip-domain works.
    assert seen_by(transforms, f"{transforms.kate}@strip.example") == ["kate mail"]


# ---- (b) the exact upstream login string, recorded by a fake IMAP server ------

FAKE_PASSWORD = 'p w"\\x'


def accept_any(conn, tag, cmd):
    conn.line(f"{tag} OK Logged in")


@pytest.fixture(scope="module")
def fake_pg(testbed):
    fake = FakeImap(messages=[message("fake 1")])
    pg = testbed_mod.Popgate(
        testbed, server=plain_server(),
        upstream={"host": "127.0.0.1", "port": fake.port, "tls": "none", "ca_file": None,
                  "verify_name": None},
        extra_sections=sections({
            "strip": {"domains": "strip.example", "login": "strip-domain"},
            "add": {"users": "plainuser", "login": "add-domain example.com"},
            "template": {"users": "solo", "domains": "tmpl.example",
                         "login": "template %n@new.example"},
            "every": {"domains": "all.example", "login": "template %d/%n/%u/%%"},
        }, policy={"view": "all", "on_retr": "keep", "on_dele": "hide"}))
    pg.start()
    try:
        yield fake, pg
    finally:
        fake.stop()
        pg.stop(check=True)


@pytest.mark.parametrize("login,expected", [
    ("Alice@Example.ORG#phone", "Alice@Example.ORG"),      # default: keep, device removed
    ("someone@strip.example#desk", "someone"),
    ("someone@STRIP.example", "someone"),                    # domain matched case-insensitively
    ("plainuser", "plainuser@example.com"),
    ("bob@tmpl.example", "bob@new.example"),
    ("solo#dev", "solo@new.example"),                        # users and domains in one mapping
    ("bob@all.example#x", "all.example/bob/bob@all.example/%"),
])
def test_exact_upstream_login(fake_pg, login, expected):
    fake, pg = fake_pg
    fake.reset()
    fake.hooks["login"] = accept_any
    p = pop(pg, login, FAKE_PASSWORD)
    assert p.stat()[0] == 1
    assert p.quit().startswith(b"+OK")
    logins = [c for c in fake.all_commands() if c.user is not None]
    assert [c.user.decode("utf-8", "replace") for c in logins] == [expected], \
        [bytes(c.raw) for c in logins]
    assert logins[0].password == FAKE_PASSWORD.encode(), "the password must pass unchanged"
    assert fake.violations() == []


def test_user_match_is_case_insensitive(fake_pg):
    fake, pg = fake_pg
    fake.reset()
    fake.hooks["login"] = accept_any
    pop(pg, "PlainUser#phone", FAKE_PASSWORD).quit()
    logins = [c.user.decode() for c in fake.all_commands() if c.user is not None]
    assert len(logins) == 1 and logins[0].lower() == "plainuser@example.com", logins


# ---- (c) per-mapping policy and limits -----------------------------------------

DEFAULT_POLICY = {"view": "unread", "on_retr": "seen", "on_dele": "hide"}


def test_mapping_view_all_default_unread(testbed, start_popgate):
    everything, unread = uniq("pall"), uniq("punread")
    for user in (everything, unread):
        add(testbed, user, ["read before"], flags="S")
        add(testbed, user, ["new 1", "new 2"])
    pg = start_popgate(server=plain_server(), extra_sections=sections(
        {"allview": {"users": everything, "view": "all"}}, policy=DEFAULT_POLICY))
    assert seen_by(pg, everything) == ["read before", "new 1", "new 2"], log_context(pg)
    assert seen_by(pg, unread) == ["new 1", "new 2"]
    # Keys the mapping does not set come from [policy]: on_retr = seen.
    p = pop(pg, f"{everything}#phone")
    p.retr(2)
    assert p.quit().startswith(b"+OK")
    conn = testbed.imap(everything, PASSWORD)
    try:
        conn.select("INBOX", readonly=True)
        typ, data = conn.fetch("2", "(FLAGS)")
        assert b"\\Seen" in data[0], data
    finally:
        conn.logout()


def post_login_capa(p):
    resp = p._longcmd("CAPA")
    return [ln.decode() for ln in resp[1]]


def test_mapping_limits_advertised_and_enforced(testbed, start_popgate):
    delayed, capped, free = uniq("delay"), uniq("cap"), uniq("free")
    for user in (delayed, capped, free):
        add(testbed, user, ["m"])
    pg = start_popgate(server=plain_server(), extra_sections=sections(
        {"delayed": {"users": delayed, "login_delay": "15m", "expire": "30d"},
         "capped": {"users": capped, "max_sessions_per_user": 1}},
        policy=dict(DEFAULT_POLICY, view="all")))
    # RFC 2449: after login CAPA gives this user's values.
    p = pop(pg, f"{delayed}#a")
    capa = post_login_capa(p)
    assert "LOGIN-DELAY 900" in capa, capa
    assert "EXPIRE 30" in capa, capa
    assert p.quit().startswith(b"+OK")
    # LOGIN-DELAY: the same device's next login within 15 minutes is refused
    # with its code; each device (each client) has its own delay.
    err = login_error(pg, f"{delayed}#a")
    assert err.startswith("-ERR [LOGIN-DELAY]"), err
    pop(pg, f"{delayed}#b").quit()

    # max_sessions_per_user = 1: a second session of the user (another
    # device) is refused while the first is open, allowed after its QUIT.
    first = pop(pg, f"{capped}#a")
    err = login_error(pg, f"{capped}#b")
    assert err.startswith("-ERR [IN-USE]"), err         # README: max_sessions_per_user
    assert first.stat()[0] == 1, "the refused login disturbed the open session"
    assert first.quit().startswith(b"+OK")
    pop(pg, f"{capped}#b").quit()

    # The default has none of these limits.
    a, b = pop(pg, f"{free}#a"), pop(pg, f"{free}#b")
    capa = post_login_capa(a)
    assert not any(c.startswith("LOGIN-DELAY") for c in capa), capa
    assert not any(c.startswith("EXPIRE") and c != "EXPIRE NEVER" for c in capa), capa
    a.quit()
    b.quit()
    pop(pg, f"{free}#a").quit()


# ---- (d) Redis override: map set USER mapping=NAME -----------------------------

def test_redis_override_routes_user_at_next_login(testbed, second_testbed, start_popgate):
    user = uniq("olga")
    add(testbed, user, ["main"])
    add(second_testbed, user, ["second"])
    # Dovecot folds user names to lower case (auth_username_format = %Lu), so
    # OLGA#phone is the same Dovecot user; popgate must find the override.
    pg = start_popgate(server=plain_server(), extra_sections=sections({
        "second": {"domains": "second.example", **upstream_of(second_testbed)}}))
    assert seen_by(pg, user) == ["main"]
    open_before = pop(pg, f"{user}#early")
    r = admin(pg.config_path, "map", "set", user, "mapping=second")
    assert r.returncode == 0, r.stderr
    try:
        # The next login uses the override, with no restart or reload.
        assert seen_by(pg, user) == ["second"], log_context(pg)
        assert seen_by(pg, f"{user.upper()}#phone") == ["second"]
        # A session opened before keeps its upstream.
        assert subjects(open_before) == ["main"]
        assert open_before.quit().startswith(b"+OK")
    finally:
        r = admin(pg.config_path, "map", "del", user)
    assert r.returncode == 0, r.stderr
    assert seen_by(pg, user) == ["main"]


def test_override_naming_unknown_mapping_refused(testbed, start_popgate):
    user = uniq("pat")
    pg = start_popgate(server=plain_server(), extra_sections=sections({
        "known": {"domains": "known.example"}}))
    r = admin(pg.config_path, "map", "set", user, "mapping=nosuch")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "nosuch" in r.stderr
    assert admin(pg.config_path, "map", "get", user).returncode == 2


# ---- (e) SIGHUP changes a rule while a session stays up ------------------------

def test_sighup_changes_rule_session_survives(testbed, second_testbed, start_popgate):
    user = uniq("hugo") + "@hup.example"
    add(testbed, user, ["main 1", "main 2"])
    add(second_testbed, user, ["second 1"])
    pg = start_popgate(server=plain_server())
    early = pop(pg, f"{user}#early")
    assert early.stat()[0] == 2

    pg.sections["mapping hup"] = {"domains": "hup.example", **upstream_of(second_testbed)}
    assert pg.reload(), "reload failed" + log_context(pg)

    # The running session is untouched: same maildrop, RETR streams from the
    # old upstream, QUIT commits there.
    assert early.stat()[0] == 2
    assert b"Subject: main 1" in b"\r\n".join(early.retr(1)[1])
    assert early.noop().startswith(b"+OK")
    assert early.quit().startswith(b"+OK")
    conn = testbed.imap(user, PASSWORD)
    try:
        conn.select("INBOX", readonly=True)
        typ, data = conn.fetch("1", "(FLAGS)")
        assert b"\\Seen" in data[0], "the QUIT after the reload did not commit upstream"
    finally:
        conn.logout()
    # The next login uses the new rule.
    assert seen_by(pg, user) == ["second 1"], log_context(pg)

    # A broken config is refused and the last good one stays in force.
    pg.sections["mapping clash"] = {"users": user}
    pg.sections["mapping hup"]["users"] = user
    assert pg.reload() is False, "a user in two mappings was accepted on reload"
    assert seen_by(pg, user) == ["second 1"]

    # Removing the rule routes the user back to the default.
    del pg.sections["mapping clash"]
    del pg.sections["mapping hup"]
    assert pg.reload()
    assert seen_by(pg, user) == ["main 1", "main 2"]
    assert pg.running()


# ---- (f) config errors: popgate -t names the problem ---------------------------

def check(testbed, mappings, policy=None, upstream=None):
    pg = testbed_mod.Popgate(testbed, upstream=upstream, extra_sections=sections(mappings, policy))
    return pg.check_config()


def test_good_mapping_config_accepted(testbed, second_testbed):
    status, out = check(testbed, {
        "two": {"domains": "two.example, three.example", **upstream_of(second_testbed, "implicit"),
                "connect_timeout": 5, "command_timeout": 30,
                "folders": "INBOX, Archive", "login": "template %n@new.example",
                "view": "new", "since": "2026-01-31", "max_messages": 100, "on_retr": "keep",
                "on_dele": "trash", "max_sessions_per_user": 3, "login_delay": "5m",
                "expire": "never"},
        "vip": {"users": "a@x.org, b@x.org", "login": "strip-domain", "view": "all",
                "from_first_login": "yes", "max_age": "30d", "expire": "30d"},
        "add": {"users": "plain", "login": "add-domain example.com", "expire": 0},
        "legacy": {"domains": "old.example", "legacy_pop3": f"127.0.0.1:{second_testbed.ports['pop3']}",
                   "legacy_tls": "starttls", "legacy_ca_file": second_testbed.cert,
                   "legacy_verify": "yes", "legacy_verify_name": "localhost", "legacy_timeout": 10},
    }, policy={"view": "unread", "max_sessions_per_user": 0, "login_delay": 0, "expire": "never"},
        upstream={"login": "keep", "mailbox": None, "folders": "INBOX"})
    assert status == 0, out


@pytest.mark.parametrize("mappings,fragments", [
    # a user in two mappings (case-insensitively the same): named by the
    # user or by the mapping it is in first
    ({"first": {"users": "x@y.org"}, "other": {"users": "z@y.org, X@Y.org"}},
     [("x@y.org", "first")]),
    # a domain in two mappings
    ({"first": {"domains": "y.org"}, "other": {"domains": "Y.org"}}, [("y.org", "first")]),
    # an unknown key
    ({"a": {"users": "x@y.org", "colour": "blue"}}, ["colour"]),
    # neither users nor domains
    ({"lonely": {"view": "all"}}, [("lonely", "users")]),
    # bad login settings
    ({"a": {"users": "x@y.org", "login": "template %q@new.example"}}, ["login"]),
    ({"a": {"users": "x@y.org", "login": "template "}}, ["login"]),
    ({"a": {"users": "x@y.org", "login": "add-domain"}}, ["login"]),
    ({"a": {"users": "x@y.org", "login": "frobnicate"}}, ["login"]),
    # bad values of inherited keys, in a mapping
    ({"a": {"users": "x@y.org", "view": "sometimes"}}, ["view"]),
    ({"a": {"users": "x@y.org", "tls": "sometimes"}}, ["tls"]),
    ({"a": {"users": "x@y.org", "expire": "soon"}}, ["expire"]),
    ({"a": {"users": "x@y.org", "login_delay": "later"}}, ["login_delay"]),
    ({"a": {"users": "x@y.org", "max_sessions_per_user": "-1"}}, ["max_sessions_per_user"]),
    ({"a": {"users": "x@y.org", "folders": ""}}, ["folders"]),
    ({"a": {"users": "x@y.org", "legacy_pop3": "not-an-address"}}, ["legacy_pop3"]),
    ({"a": {"users": "x@y.org", "legacy_tls": "sometimes"}}, ["legacy_tls"]),
    ({"a": {"users": "x@y.org", "ca_file": "/nonexistent/ca.pem"}},
     [("ca_file", "/nonexistent/ca.pem")]),
], ids=["user-in-two", "domain-in-two", "unknown-key", "no-users-no-domains",
        "template-bad-escape", "template-empty", "add-domain-without-domain", "login-unknown",
        "view", "tls", "expire", "login-delay", "max-sessions", "folders-empty",
        "legacy-pop3-address", "legacy-tls", "ca-file-missing"])
def test_bad_mapping_config_rejected(testbed, mappings, fragments):
    status, out = check(testbed, mappings)
    assert status != 0, f"accepted: {mappings}\n{out}"
    for fragment in fragments:
        alternatives = fragment if isinstance(fragment, tuple) else (fragment,)
        assert any(a.lower() in out.lower() for a in alternatives), \
            f"the message does not name {' or '.join(alternatives)}: {out}"


@pytest.mark.parametrize("policy,fragment", [
    ({"expire": "soon"}, "expire"),
    ({"login_delay": "-5"}, "login_delay"),
    ({"max_sessions_per_user": "many"}, "max_sessions_per_user"),
])
def test_bad_policy_limit_rejected(testbed, policy, fragment):
    status, out = check(testbed, {}, policy=dict(DEFAULT_POLICY, **policy))
    assert status != 0, out
    assert fragment in out, out


def test_bad_upstream_login_rejected(testbed):
    status, out = check(testbed, {}, upstream={"login": "template %n@%x"})
    assert status != 0, out
    assert "login" in out, out
