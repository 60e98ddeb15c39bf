"""Upstream login with OAuth 2.0 (issue 15, README "Microsoft 365 and Google
Workspace"): popgate in front of a Dovecot that accepts only bearer tokens
(passdb oauth2, introspection against the loopback authorization server of
deploy/dev/servers/oauth_server.py), its devices logging in with app
passwords, the tokens in the test bed's Redis.

Every story asserts what the provider saw (the server's counters) and what
the POP3 client saw; every popgate and popgate-admin run is checked for the
tokens, secrets and app passwords it handled (no_secrets).
"""

import json
import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import popgate_binary
from testbed import free_ports, wait_for

REPO = Path(__file__).resolve().parents[2]

OK, USAGE, NOT_FOUND, UNAVAILABLE = 0, 1, 2, 3
MAIL = [b"From: a@example.test\r\nSubject: first\r\n\r\nscan one\r\n",
        b"From: b@example.test\r\nSubject: second\r\n\r\nscan two\r\n"]
APP_PASSWORD = re.compile(r"^[a-z2-7]{4}(-[a-z2-7]{4}){7}$", re.M)
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def admin_binary():
    if os.environ.get("POPGATE_ADMIN_BIN"):
        return os.path.abspath(os.environ["POPGATE_ADMIN_BIN"])
    beside = Path(popgate_binary()).with_name("popgate-admin")
    return str(beside if beside.exists() else REPO / "popgate-admin")


class Secrets:
    """Everything secret a test handled, to grep logs and outputs for."""

    def __init__(self, server):
        self.server = server
        self.values = set()

    def add(self, *values):
        self.values.update(v for v in values if v)

    def all(self):
        with self.server._lock:
            tokens = set(self.server.access) | set(self.server.refresh)
        return self.values | tokens

    def check(self, text, where):
        for v in self.all():
            assert v not in text, f"a secret ({v[:5]}...) appears in {where}"


@pytest.fixture
def secrets_seen(oauth_server, oauth_client):
    s = Secrets(oauth_server)
    s.add(oauth_client.secret)
    return s


@pytest.fixture
def gate(testbed, start_popgate, oauth_dovecot, oauth_server, oauth_client, secrets_seen):
    """gate(**oauth_keys) -> a popgate whose [upstream] is the OAuth Dovecot
    with auth = oauth2 (generic provider at the loopback server, device
    grant of the public client unless overridden), debug logging and
    metrics. Its log is checked for secrets at teardown."""
    started = []

    def start(upstream=None, server=None, **kw):
        up = dict(oauth_dovecot.popgate_upstream())
        up.update({
            "auth": "oauth2", "oauth2_provider": "generic",
            "oauth2_client_id": oauth_client.public_client_id,
            "oauth2_token_url": oauth_server.urls["generic"]["token"],
            "oauth2_device_url": oauth_server.urls["generic"]["device"],
            "oauth2_revoke_url": oauth_server.urls["generic"]["revoke"],
            "oauth2_scope": "imap offline_access",
            "command_timeout": 10,
        })
        up.update(upstream or {})
        mport = free_ports(1)[0]
        srv = {"log_level": "debug"}
        srv.update(server or {})
        pg = start_popgate(upstream=up, server=srv,
                           extra_sections={"metrics": {"listen": f"127.0.0.1:{mport}"}}, **kw)
        pg.metrics_port = mport
        started.append(pg)
        return pg

    yield start
    for pg in started:
        secrets_seen.check(pg.log(), f"{pg.name}'s log")


@pytest.fixture
def admin(secrets_seen):
    """admin(pg, *args, stdin=None) -> CompletedProcess of popgate-admin
    with pg's config. Its stderr is checked for secrets; stdout too, except
    the app password a command shows on purpose."""
    def run(pg, *args, stdin=None, timeout=60):
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        cmd = [admin_binary(), "-c", pg.config_path] + [str(a) for a in args]
        r = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout, env=env)
        assert not [ln for ln in r.stderr.splitlines() if any(m in ln for m in SANITIZER_MARKS)], r.stderr
        secrets_seen.check(r.stderr, f"stderr of {args}")
        secrets_seen.check(APP_PASSWORD.sub("", r.stdout), f"stdout of {args}")
        return r
    return run


def shown_password(r):
    m = APP_PASSWORD.search(r.stdout)
    assert m, f"no app password in {r.stdout!r} / {r.stderr!r}"
    return m.group(0)


def authorize(admin, pg, server, user, device=None, stdin=None, approve=True, client_id=None):
    """popgate-admin oauth authorize USER [DEVICE] in the background, the
    user approving the code it printed; returns (CompletedProcess, stderr)."""
    result = {}
    args = ["oauth", "authorize", user] + ([device] if device else [])

    def go():
        result["r"] = admin(pg, *args, stdin=stdin, timeout=90)
    t = threading.Thread(target=go)
    t.start()
    pending = server.wait_pending(client_id, timeout=60)
    if approve:
        server.approve(pending["user_code"], user)
    else:
        server.deny(pending["user_code"])
    t.join(90)
    r = result["r"]
    assert pending["user_code"] in r.stderr, "the code is shown to the administrator"
    return r


def pop3_login(pg, login, password):
    """(POP3 connection, reply to PASS) over implicit TLS."""
    from pop3client import POP3
    c = POP3("127.0.0.1", pg.tls_port, tls=True, cafile=pg.testbed.cert)
    r = c.user_pass(login, password)
    return c, r.decode()


def metric(pg, name):
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{pg.metrics_port}/metrics", timeout=10) as f:
        text = f.read().decode()
    m = re.search(rf"^{re.escape(name)} (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


def consented_user(gate, admin, oauth_server, oauth_user, device="scanner"):
    pg = gate()
    r = authorize(admin, pg, oauth_server, oauth_user.name, device)
    assert r.returncode == OK, r.stderr
    return pg, shown_password(r)


# ---- config -------------------------------------------------------------------

def test_config_check_explains_oauth_mistakes(testbed, oauth_dovecot, oauth_server, oauth_client, oauth_files):
    base = dict(oauth_dovecot.popgate_upstream(), auth="oauth2")

    def check(**up):
        pg = testbed.popgate(upstream=dict(base, **up), binary=popgate_binary())
        return pg.check_config()

    status, out = check(oauth2_client_id="x")
    assert status != 0 and "needs oauth2_provider" in out
    status, out = check(oauth2_provider="generic", oauth2_client_id="x")
    assert status != 0 and "needs oauth2_token_url" in out
    status, out = check(oauth2_provider="microsoft365", oauth2_client_id="x", oauth2_grant="client_credentials",
                        oauth2_client_secret_file=oauth_client.secret_file)
    assert status != 0 and "needs oauth2_tenant" in out
    status, out = check(oauth2_provider="google", oauth2_client_id="x", oauth2_grant="jwt_bearer")
    assert status != 0 and "oauth2_key_file" in out
    status, out = check(oauth2_provider="generic", oauth2_client_id="x",
                        oauth2_token_url="http://mail.example.test/token", oauth2_grant="client_credentials",
                        oauth2_client_secret_file=oauth_client.secret_file)
    assert status != 0 and "https" in out
    open_file = oauth_files / "world-readable-secret"
    open_file.write_text("not so secret\n")
    os.chmod(open_file, 0o644)
    status, out = check(oauth2_provider="microsoft365", oauth2_client_id="x", oauth2_tenant="contoso.example",
                        oauth2_grant="client_credentials", oauth2_client_secret_file=str(open_file))
    assert status != 0 and "readable by others" in out and "not so secret" not in out
    status, out = check(oauth2_provider="microsoft365", oauth2_client_id="x", oauth2_tenant="contoso.example",
                        oauth2_grant="client_credentials", oauth2_client_secret_file=oauth_client.secret_file)
    assert status == 0, out
    assert oauth_client.secret not in out


# ---- device grant -------------------------------------------------------------

def test_consent_by_device_code_then_scanner_retrieves_mail(gate, admin, oauth_server, oauth_user):
    oauth_user.seed(MAIL)
    pg = gate()
    r = authorize(admin, pg, oauth_server, oauth_user.name, "scanner")
    assert r.returncode == OK, r.stderr
    name = oauth_user.name
    assert f"To authorise popgate for {name}, sign in as that user at\n  http://127.0.0.1:" in r.stderr
    assert r.stdout.startswith(f"authorised {name}\napp password for {name}#scanner (shown once"), r.stdout
    password = shown_password(r)
    assert oauth_server.count("device_code:ok") == 1
    c, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
    assert reply.startswith("+OK"), reply
    assert c.stat()[0] == 2
    assert b"scan two" in c.retr(2)
    c.ok("QUIT")
    # The consent's access token was cached: no refresh yet.
    assert oauth_server.count("refresh_token") == 0
    status = json.loads(admin(pg, "--json", "oauth", "status", oauth_user.name).stdout)
    row = status["users"][0]
    assert row["status"] == "ok" and row["grant"] == "device" and row["app_passwords"] == 1
    listed = json.loads(admin(pg, "--json", "app-password", "list", oauth_user.name).stdout)
    assert listed["devices"] == ["scanner"]


def test_denied_consent_stores_nothing(gate, admin, oauth_server, oauth_user, redis_keys):
    pg = gate()
    r = authorize(admin, pg, oauth_server, oauth_user.name, "scanner", approve=False)
    assert r.returncode == USAGE and "access_denied" in r.stderr, r.stderr
    assert not APP_PASSWORD.search(r.stdout)
    assert redis_keys.keys(f"pg1:{{{oauth_user.name}}}:*") == []


def test_reload_rereads_the_secret_file(gate, admin, oauth_server, oauth_client, oauth_files, oauth_user):
    secret = oauth_files / f"secret-{oauth_user.name}"
    secret.write_text(oauth_client.secret + "\n")
    os.chmod(secret, 0o600)
    pg = gate(upstream={"oauth2_grant": "client_credentials", "oauth2_client_id": oauth_client.client_id,
                        "oauth2_client_secret_file": str(secret), "oauth2_device_url": None})
    password = shown_password(admin(pg, "app-password", "add", oauth_user.name, "scanner"))
    os.chmod(secret, 0o644)
    assert pg.reload() is False, "a secret file others can read is refused at reload too"
    assert "readable by others" in pg.log()
    c, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
    assert reply.startswith("+OK"), "the old configuration keeps serving"
    c.ok("QUIT")
    os.chmod(secret, 0o600)
    assert pg.reload() is True


def test_wrong_app_password_is_auth_error_and_throttled(gate, admin, oauth_server, oauth_user, redis_keys):
    pg, password = consented_user(gate, admin, oauth_server, oauth_user)
    wrong = password[:-1] + ("a" if password[-1] != "a" else "b")
    _, reply = pop3_login(pg, f"{oauth_user.name}#scanner", wrong)
    assert reply.startswith("-ERR [AUTH]"), reply
    _, reply = pop3_login(pg, f"{oauth_user.name}#printer", password)
    assert reply.startswith("-ERR [AUTH]"), "another device's name does not take this password"
    assert redis_keys.get(f"pg1:{{{oauth_user.name}}}:authfail") == "2"
    assert oauth_server.count("refresh_token") == 0, "nothing reaches the provider"


def test_access_token_refreshed_mid_day_and_across_nodes(gate, admin, oauth_server, oauth_user, redis_keys):
    oauth_user.seed(MAIL[:1])
    # Usable for 5 s (half its life): long enough for a cached login on a
    # loaded machine, short enough to wait out.
    oauth_server.set_access_lifetime(10)
    pg, password = consented_user(gate, admin, oauth_server, oauth_user)
    login = f"{oauth_user.name}#scanner"

    def session(node):
        c, reply = pop3_login(node, login, password)
        assert reply.startswith("+OK"), reply
        assert c.stat()[0] == 1
        c.ok("QUIT")

    session(pg)
    assert oauth_server.count("refresh_token") == 0
    time.sleep(5.5)
    session(pg)                               # expired: refreshed, rotated
    assert oauth_server.count("refresh_token:ok") == 1
    session(pg)                               # the new access token, cached
    assert oauth_server.count("refresh_token") == 1
    time.sleep(5.5)
    other = gate()                            # a second node sharing Redis
    session(other)
    assert oauth_server.count("refresh_token:ok") == 2
    assert oauth_server.count("refresh_reuse") == 0, "the other node used the rotated refresh token"
    state = redis_keys.hgetall(f"pg1:{{{oauth_user.name}}}:oauth")
    assert state["rt_gen"] == "3" and state["refreshes"] == "2"


def test_two_sessions_refreshing_at_once_keep_the_rotation(gate, admin, oauth_server, oauth_user):
    oauth_server.set_access_lifetime(4)
    pg, password = consented_user(gate, admin, oauth_server, oauth_user)
    other = gate()
    time.sleep(2.5)
    oauth_server.set_mode("slow", delay=1, times=1)
    replies = []

    def login(node, device):
        c, reply = pop3_login(node, f"{oauth_user.name}#{device}", password if device == "scanner" else pw2)
        replies.append(reply)
        c.cmd("QUIT")
    pw2 = shown_password(admin(pg, "app-password", "add", oauth_user.name, "desk", stdin=password + "\n"))
    ts = [threading.Thread(target=login, args=(pg, "scanner")),
          threading.Thread(target=login, args=(other, "desk"))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert all(r.startswith("+OK") for r in replies), replies
    assert oauth_server.count("refresh_token") == 1, "one refresh for both, under the lock"
    assert oauth_server.count("refresh_reuse") == 0


def test_a_hash_outlasting_another_sessions_refresh_uses_the_rotated_token(gate, admin, oauth_server, oauth_user,
                                                                          tmp_path):
    """The race of commit 567d1b9, made certain: the desk's session loads
    the token state, then its app password's hash is held (the test
    build's hook, io/test_hold.h) until the scanner's session on another
    node has refreshed, rotated and saved the refresh token and released
    the lock. The desk then takes the lock: it must read the state again
    and use what the scanner saved, not refresh with the refresh token it
    loaded, rotated away meanwhile (a reuse: the provider revokes the
    grant)."""
    oauth_server.set_access_lifetime(4)
    pg, password = consented_user(gate, admin, oauth_server, oauth_user)
    pw2 = shown_password(admin(pg, "app-password", "add", oauth_user.name, "desk", stdin=password + "\n"))
    holds = tmp_path / "holds"
    holds.mkdir()
    other = gate(env={"POPGATE_TEST_HOLD_DIR": str(holds)})
    time.sleep(2.5)                           # the consent's access token is stale
    # The scanner's refresh gets a token both sessions can use from the cache.
    oauth_server.set_access_lifetime(600)
    hold = holds / "oauth-hash.desk.hold"
    hold.touch()
    desk = {}

    def desk_login():
        try:
            c, desk["reply"] = pop3_login(other, f"{oauth_user.name}#desk", pw2)
            c.cmd("QUIT")
        except Exception as e:                # noqa: BLE001 (reported below)
            desk["reply"] = repr(e)
    t = threading.Thread(target=desk_login)
    t.start()
    try:
        wait_for((holds / "oauth-hash.desk.held").exists, 20,
                 "the desk's hash to reach its hold (a build without POPGATE_TEST_HOOKS ignores it)")
        assert oauth_server.count("refresh_token") == 0, "the desk loaded the state before any refresh"
        c, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
        assert reply.startswith("+OK"), reply
        c.ok("QUIT")
        assert oauth_server.count("refresh_token:ok") == 1, "the scanner refreshed and rotated"
    finally:
        hold.unlink()
        t.join(30)
    assert oauth_server.count("refresh_reuse") == 0, ("the desk refreshed with the rotated-away token", desk)
    assert desk.get("reply", "").startswith("+OK"), desk
    assert oauth_server.count("refresh_token") == 1, "the desk used the access token the scanner saved"


def test_two_devices_with_their_own_app_passwords(gate, admin, oauth_server, oauth_user):
    oauth_user.seed(MAIL[:1])
    pg, scanner_pw = consented_user(gate, admin, oauth_server, oauth_user)
    r = admin(pg, "app-password", "add", oauth_user.name, "desk")
    assert r.returncode == USAGE and "give one of them on stdin" in r.stderr
    r = admin(pg, "app-password", "add", oauth_user.name, "desk", stdin="not-a-password\n")
    assert r.returncode == USAGE
    desk_pw = shown_password(admin(pg, "app-password", "add", oauth_user.name, "desk", stdin=scanner_pw + "\n"))
    assert desk_pw != scanner_pw
    for device, pw in (("scanner", scanner_pw), ("desk", desk_pw)):
        c, reply = pop3_login(pg, f"{oauth_user.name}#{device}", pw)
        assert reply.startswith("+OK"), (device, reply)
        c.ok("QUIT")
    _, reply = pop3_login(pg, f"{oauth_user.name}#desk", scanner_pw)
    assert reply.startswith("-ERR [AUTH]")
    assert json.loads(admin(pg, "--json", "app-password", "list", oauth_user.name).stdout)["devices"] == \
        ["desk", "scanner"]
    assert admin(pg, "app-password", "revoke", oauth_user.name, "desk").returncode == OK
    _, reply = pop3_login(pg, f"{oauth_user.name}#desk", desk_pw)
    assert reply.startswith("-ERR [AUTH]")
    c, reply = pop3_login(pg, f"{oauth_user.name}#scanner", scanner_pw)
    assert reply.startswith("+OK"), "the other device keeps working"
    c.ok("QUIT")


def test_revoked_grant_asks_for_reauthorisation(gate, admin, oauth_server, oauth_user, redis_keys):
    oauth_server.set_access_lifetime(4)
    pg, password = consented_user(gate, admin, oauth_server, oauth_user)
    time.sleep(2.5)
    oauth_server.revoke_user(oauth_user.name)
    _, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
    assert reply.startswith("-ERR [AUTH]") and "popgate-admin oauth authorize" in reply, reply
    assert metric(pg, "popgate_oauth_reauth_needed") == 1
    row = json.loads(admin(pg, "--json", "oauth", "status", oauth_user.name).stdout)["users"][0]
    assert row["status"] == "reauth-needed" and row["reason"]
    text = admin(pg, "oauth", "status").stdout
    assert oauth_user.name in text and "reauth-needed" in text
    # Re-consent with the device's own password: the device works again.
    r = authorize(admin, pg, oauth_server, oauth_user.name, stdin=password + "\n")
    assert r.returncode == OK, r.stderr
    c, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
    assert reply.startswith("+OK"), reply
    c.ok("QUIT")


def test_oauth_revoke_forgets_tokens_and_tells_the_provider(gate, admin, oauth_server, oauth_user, redis_keys):
    pg, password = consented_user(gate, admin, oauth_server, oauth_user)
    r = admin(pg, "--json", "oauth", "revoke", oauth_user.name, stdin=password + "\n")
    assert r.returncode == OK, r.stderr
    assert json.loads(r.stdout) == {"user": oauth_user.name, "forgotten": True, "provider_revoked": True}
    assert oauth_server.count("revoke") == 1
    assert redis_keys.hgetall(f"pg1:{{{oauth_user.name}}}:oauth") == {}
    _, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
    assert reply.startswith("-ERR [AUTH]") and "authorize" in reply, reply


def test_token_endpoint_down_or_slow_is_temporary(gate, admin, oauth_server, oauth_user):
    oauth_server.set_access_lifetime(4)
    pg, password = consented_user(gate, admin, oauth_server, oauth_user)
    pg.stop()
    pg = gate(upstream={"command_timeout": 3})
    time.sleep(2.5)
    oauth_server.set_mode("down")
    started = time.monotonic()
    _, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
    assert reply.startswith("-ERR [SYS/TEMP]"), reply
    assert time.monotonic() - started < 3
    oauth_server.set_mode("slow", delay=30, times=1)
    started = time.monotonic()
    _, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
    elapsed = time.monotonic() - started
    assert reply.startswith("-ERR [SYS/TEMP]"), reply
    assert 2.5 < elapsed < 6, f"answered after {elapsed:.1f}s with command_timeout = 3"
    oauth_server.set_mode("ok")
    c, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
    assert reply.startswith("+OK"), "the stored grant survived the outage"
    c.ok("QUIT")


# ---- app grants -----------------------------------------------------------------

def test_client_credentials_login(gate, admin, oauth_server, oauth_client, oauth_user):
    oauth_user.seed(MAIL)
    pg = gate(upstream={"oauth2_grant": "client_credentials", "oauth2_client_id": oauth_client.client_id,
                        "oauth2_client_secret_file": oauth_client.secret_file, "oauth2_device_url": None,
                        "oauth2_scope": "https://outlook.office365.com/.default"})
    password = shown_password(admin(pg, "app-password", "add", oauth_user.name, "ticketing"))
    c, reply = pop3_login(pg, f"{oauth_user.name}#ticketing", password)
    assert reply.startswith("+OK"), reply
    assert c.stat()[0] == 2
    c.ok("QUIT")
    assert oauth_server.count("client_credentials:ok") == 1
    c, reply = pop3_login(pg, f"{oauth_user.name}#ticketing", password)
    assert reply.startswith("+OK")
    c.ok("QUIT")
    assert oauth_server.count("client_credentials") == 1, "the app token is cached"


def test_jwt_bearer_login(gate, admin, oauth_server, oauth_service_account, oauth_user):
    oauth_user.seed(MAIL[:1])
    pg = gate(upstream={"oauth2_grant": "jwt_bearer", "oauth2_client_id": oauth_service_account.client_email,
                        "oauth2_key_file": oauth_service_account.key_file, "oauth2_device_url": None,
                        "oauth2_token_url": oauth_server.urls["google"]["token"],
                        "oauth2_scope": "https://mail.google.com/"})
    password = shown_password(admin(pg, "app-password", "add", oauth_user.name, "dmarc"))
    c, reply = pop3_login(pg, f"{oauth_user.name}#dmarc", password)
    assert reply.startswith("+OK"), reply
    assert c.stat()[0] == 1
    c.ok("QUIT")
    assert oauth_server.count("jwt_bearer:ok") == 1


# ---- the SASL mechanisms ----------------------------------------------------------

@pytest.mark.parametrize("caps,mech", [(("AUTH=XOAUTH2", "SASL-IR"), "XOAUTH2"),
                                       (("AUTH=OAUTHBEARER",), "OAUTHBEARER")])
def test_mechanism_by_capability_and_refused_cached_token(gate, admin, oauth_server, oauth_client, oauth_user,
                                                          redis_keys, caps, mech):
    """The mechanism the server offers (with SASL-IR only when offered); a
    refused token: the error challenge answered as the mechanism asks, [AUTH],
    and the cached token dropped so the next login asks the provider again."""
    from fake_imap import FakeImap
    fake = FakeImap(messages=MAIL, caps=caps)
    try:
        pg = gate(upstream={"host": "127.0.0.1", "port": fake.port, "tls": "none",
                            "oauth2_grant": "client_credentials", "oauth2_client_id": oauth_client.client_id,
                            "oauth2_client_secret_file": oauth_client.secret_file, "oauth2_device_url": None})
        password = shown_password(admin(pg, "app-password", "add", oauth_user.name, "scanner"))
        c, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
        assert reply.startswith("+OK"), reply
        assert c.stat()[0] == 2
        c.ok("QUIT")
        auth = [cmd for cmd in fake.all_commands() if cmd.verb == "AUTHENTICATE"][-1]
        assert auth.mech == mech and auth.user == oauth_user.name.encode()
        assert auth.token.startswith(b"pgat.")
        assert (b"AUTHENTICATE " + mech.encode() + b" ") in bytes(auth.raw) or "SASL-IR" not in caps
        assert fake.violations() == []
        fake.oauth_refuse = True
        _, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
        assert reply.startswith("-ERR [AUTH]"), reply
        auth = [cmd for cmd in fake.all_commands() if cmd.verb == "AUTHENTICATE"][-1]
        assert auth.error_reply == (b"" if mech == "XOAUTH2" else b"AQ==")
        assert "status=401" in pg.log()
        deadline = time.monotonic() + 5
        while "at" in redis_keys.hgetall(f"pg1:{{{oauth_user.name}}}:oauth") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "at" not in redis_keys.hgetall(f"pg1:{{{oauth_user.name}}}:oauth")
        assert oauth_server.count("client_credentials") == 1
        fake.oauth_refuse = False
        c, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
        assert reply.startswith("+OK"), reply
        c.ok("QUIT")
        assert oauth_server.count("client_credentials") == 2, "a new token after the refused one"
    finally:
        fake.stop()


# ---- secrets --------------------------------------------------------------------

def test_no_secret_in_redis_in_the_clear(gate, admin, oauth_server, oauth_user, redis_keys, secrets_seen):
    pg, password = consented_user(gate, admin, oauth_server, oauth_user)
    secrets_seen.add(password)
    c, reply = pop3_login(pg, f"{oauth_user.name}#scanner", password)
    assert reply.startswith("+OK")
    c.ok("QUIT")
    dump = json.dumps({k: redis_keys.dump(k) for k in redis_keys.keys(f"pg1:{{{oauth_user.name}}}:*")})
    secrets_seen.check(dump, "Redis")
    assert secrets_seen.all(), "the check saw tokens"


@pytest.fixture
def redis_keys(testbed):
    port = testbed.ports["redis"]

    def cli(*args):
        return subprocess.run(["redis-cli", "-p", str(port), "--raw", *args], capture_output=True, text=True,
                              timeout=30, check=True).stdout.splitlines()

    class R:
        @staticmethod
        def get(key):
            out = cli("GET", key)
            return out[0] if out else None

        @staticmethod
        def hgetall(key):
            flat = cli("HGETALL", key)
            return dict(zip(flat[::2], flat[1::2]))

        @staticmethod
        def keys(pattern):
            return cli("--scan", "--pattern", pattern)

        @staticmethod
        def dump(key):
            kind = cli("TYPE", key)[0]
            return R.hgetall(key) if kind == "hash" else cli("GET", key) if kind == "string" else kind
    return R
