"""The OAuth2 test bed itself (deploy/dev/servers/oauth_server.py and
oauth_dovecot.py): the authorization server follows RFC 6749, 8628, 7523,
7009 and 7662 in the providers' dialects, and the Dovecot behind it logs in
exactly the tokens the server vouches for. popgate's own OAuth stories
build on these."""

import http.client
import imaplib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from oauth_fixtures import OAUTH_DOMAIN, generate_rsa_key, make_jwt, post_form

SERVERS = Path(__file__).resolve().parents[2] / "deploy" / "dev" / "servers"

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
JWT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAIL = [b"Subject: first\r\nMessage-ID: <1@bed>\r\n\r\nhello\r\n",
        b"Subject: second\r\nMessage-ID: <2@bed>\r\n\r\nworld\r\n"]


def poll(url, client_id, device_code):
    return post_form(url, {"grant_type": DEVICE, "client_id": client_id,
                           "device_code": device_code})


def start_device_flow(urls, client_id, scope="https://mail.google.com/"):
    status, body, _ = post_form(urls["device"], {"client_id": client_id, "scope": scope})
    assert status == 200, body
    return body


def refresh(url, client_id, rt):
    return post_form(url, {"grant_type": "refresh_token", "client_id": client_id,
                           "refresh_token": rt})


def inbox_subjects(conn):
    typ, _ = conn.select("INBOX", readonly=True)
    assert typ == "OK"
    typ, data = conn.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert typ == "OK"
    return [item[1].strip() for item in data if isinstance(item, tuple)]


# -- device authorization grant (RFC 8628) ---------------------------------

def test_device_flow_pending_slow_down_then_tokens_once(oauth_server, oauth_client):
    urls = oauth_server.urls["generic"]
    # An interval a loaded machine cannot overrun between two quick polls.
    oauth_server.settings(device_interval=3)
    dev = start_device_flow(urls, oauth_client.public_client_id)
    assert set(dev) >= {"device_code", "user_code", "verification_uri", "expires_in", "interval"}
    assert dev["interval"] == 3 and dev["expires_in"] > 0
    status, body, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert (status, body["error"]) == (400, "authorization_pending")
    # At once again: faster than the interval.
    status, body, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert (status, body["error"]) == (400, "slow_down")
    time.sleep(3.1)
    status, body, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert body["error"] == "authorization_pending"
    user = f"devuser@{OAUTH_DOMAIN}"
    oauth_server.approve(dev["user_code"], user)
    time.sleep(3.1)
    status, tok, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert status == 200, tok
    assert tok["token_type"] == "Bearer" and tok["expires_in"] == 3600
    assert tok["access_token"] and tok["refresh_token"]
    assert oauth_server.token_info(tok["access_token"])["username"] == user
    # A device code gives tokens once.
    status, body, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert (status, body["error"]) == (400, "invalid_grant")
    c = oauth_server.counts()
    assert c["device_authorization"] == 1
    assert c["device_code:authorization_pending"] == 2
    assert c["device_code:slow_down"] == 1
    assert c["device_code:ok"] == 1


def test_device_code_expires_and_denial_stops_polling(oauth_server, oauth_client):
    urls = oauth_server.urls["generic"]
    oauth_server.settings(device_expires=1)
    dev = start_device_flow(urls, oauth_client.public_client_id)
    time.sleep(1.2)
    status, body, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert (status, body["error"]) == (400, "expired_token")
    oauth_server.settings(device_expires=900)
    dev = start_device_flow(urls, oauth_client.public_client_id)
    oauth_server.deny(dev["user_code"])
    status, body, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert (status, body["error"]) == (400, "access_denied")


def test_microsoft_dialect(oauth_server, oauth_client):
    urls = oauth_server.microsoft_urls("contoso.example")
    scope = "https://outlook.office.com/IMAP.AccessAsUser.All"
    dev = start_device_flow(urls, oauth_client.public_client_id, scope)
    assert "verification_uri" in dev and dev["user_code"] in dev["message"]
    status, body, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert status == 400 and body["error"] == "authorization_pending"
    assert body["error_codes"] == [70016]
    assert body["error_description"].startswith("AADSTS70016:")
    assert "Trace ID:" in body["error_description"]
    assert oauth_server.requests[-1]["tenant"] == "contoso.example"
    # Without offline_access Microsoft gives no refresh token.
    oauth_server.approve(dev["user_code"], f"msuser@{OAUTH_DOMAIN}")
    time.sleep(1.1)
    status, tok, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert status == 200 and "refresh_token" not in tok and tok["ext_expires_in"] > 0
    dev = start_device_flow(urls, oauth_client.public_client_id, "offline_access " + scope)
    oauth_server.approve(dev["user_code"], f"msuser@{OAUTH_DOMAIN}")
    status, tok, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert status == 200 and tok["refresh_token"]
    # Unknown application: AADSTS700016.
    status, body, _ = post_form(urls["device"], {"client_id": "nobody", "scope": scope})
    assert status == 401 and body["error"] == "invalid_client"
    assert body["error_codes"] == [700016]
    # A confidential client authenticates in every grant (RFC 6749 3.2.1).
    status, body, _ = post_form(urls["device"], {"client_id": oauth_client.client_id,
                                                 "scope": scope})
    assert status == 401 and body["error_codes"] == [7000218]
    status, dev, _ = post_form(urls["device"], {"client_id": oauth_client.client_id,
                                                "client_secret": oauth_client.secret,
                                                "scope": scope})
    assert status == 200


def test_wait_pending_finds_the_code_to_approve(oauth_server, oauth_client):
    """How a story approves the code `popgate-admin oauth authorize` prints."""
    urls = oauth_server.urls["generic"]
    dev = start_device_flow(urls, oauth_client.public_client_id, "scope-a")
    seen = oauth_server.wait_pending(oauth_client.public_client_id, timeout=2)
    assert seen == {"user_code": dev["user_code"], "client_id": oauth_client.public_client_id,
                    "scope": "scope-a", "dialect": "generic"}
    oauth_server.approve(seen["user_code"], f"pend@{OAUTH_DOMAIN}")
    assert oauth_server.pending(oauth_client.public_client_id) == []
    with pytest.raises(AssertionError):
        oauth_server.wait_pending(oauth_client.public_client_id, timeout=0.2)


def test_google_dialect(oauth_server, oauth_client):
    urls = oauth_server.urls["google"]
    oauth_server.settings(device_interval=3)
    dev = start_device_flow(urls, oauth_client.public_client_id)
    assert "verification_url" in dev and "verification_uri" not in dev
    status, body, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert (status, body["error"]) == (428, "authorization_pending")
    status, body, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert (status, body["error"]) == (403, "slow_down")


# -- refresh with rotation -------------------------------------------------

def _device_tokens(srv, client_id, user):
    urls = srv.urls["generic"]
    dev = start_device_flow(urls, client_id)
    srv.approve(dev["user_code"], user)
    status, tok, _ = poll(urls["token"], client_id, dev["device_code"])
    assert status == 200, tok
    return tok


def test_refresh_rotates_and_reuse_revokes_the_grant(oauth_server, oauth_client):
    url = oauth_server.urls["generic"]["token"]
    cid = oauth_client.public_client_id
    tok = _device_tokens(oauth_server, cid, f"rot@{OAUTH_DOMAIN}")
    status, t2, _ = refresh(url, cid, tok["refresh_token"])
    assert status == 200 and t2["refresh_token"] != tok["refresh_token"]
    assert t2["access_token"] != tok["access_token"]
    status, t3, _ = refresh(url, cid, t2["refresh_token"])
    assert status == 200
    # The first token again, after its rotation: reuse, the grant is revoked.
    status, body, _ = refresh(url, cid, tok["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    assert oauth_server.count("refresh_reuse") == 1
    status, body, _ = refresh(url, cid, t3["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    assert not oauth_server.token_info(t3["access_token"])["active"]
    assert oauth_server.count("refresh_token:ok") == 2
    assert oauth_server.count("refresh_token:invalid_grant") == 2


def test_refresh_grace_and_no_rotation(oauth_server, oauth_client):
    url = oauth_server.urls["generic"]["token"]
    cid = oauth_client.public_client_id
    oauth_server.settings(refresh_grace=3, reuse_revokes=False)
    tok = _device_tokens(oauth_server, cid, f"grace@{OAUTH_DOMAIN}")
    assert refresh(url, cid, tok["refresh_token"])[0] == 200
    # Within the grace the rotated-away token still works...
    status, t2, _ = refresh(url, cid, tok["refresh_token"])
    assert status == 200
    time.sleep(3.2)
    # ...after it, not; without reuse_revokes the newest token still does.
    assert refresh(url, cid, tok["refresh_token"])[1]["error"] == "invalid_grant"
    assert refresh(url, cid, t2["refresh_token"])[0] == 200
    # Google's way: no new refresh token, the old one keeps working.
    oauth_server.settings(rotate=False)
    tok = _device_tokens(oauth_server, cid, f"norot@{OAUTH_DOMAIN}")
    for _ in range(2):
        status, t, _ = refresh(url, cid, tok["refresh_token"])
        assert status == 200 and "refresh_token" not in t


def test_access_lifetime_and_expired_refresh(oauth_server, oauth_client):
    oauth_server.set_access_lifetime(2)
    tok = _device_tokens(oauth_server, oauth_client.public_client_id, f"life@{OAUTH_DOMAIN}")
    assert tok["expires_in"] == 2
    assert oauth_server.token_info(tok["access_token"])["active"]
    time.sleep(2.2)
    assert oauth_server.token_info(tok["access_token"]) == {"active": False}
    oauth_server.expire_refresh_tokens(f"life@{OAUTH_DOMAIN}")
    status, body, _ = refresh(oauth_server.urls["generic"]["token"],
                              oauth_client.public_client_id, tok["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")


# -- client credentials and JWT bearer ------------------------------------

def test_client_credentials(oauth_server, oauth_client):
    url = oauth_server.microsoft_urls("contoso.example")["token"]
    scope = "https://outlook.office365.com/.default"
    form = {"grant_type": "client_credentials", "client_id": oauth_client.client_id,
            "client_secret": oauth_client.secret, "scope": scope}
    status, tok, _ = post_form(url, form)
    assert status == 200 and tok["access_token"] and "refresh_token" not in tok
    # HTTP Basic client authentication (RFC 6749 2.3.1) works the same.
    status, tok2, _ = post_form(url, {"grant_type": "client_credentials", "scope": scope},
                                basic=(oauth_client.client_id, oauth_client.secret))
    assert status == 200
    status, body, _ = post_form(url, dict(form, client_secret="wrong"))
    assert status == 401 and body["error"] == "invalid_client"
    assert body["error_codes"] == [7000215]
    generic = oauth_server.urls["generic"]["token"]
    status, body, headers = post_form(generic, {"grant_type": "client_credentials"},
                                      basic=(oauth_client.client_id, "wrong"))
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
    status, body, _ = post_form(url, dict(form, scope="https://outlook.office365.com/IMAP.AccessAsApp"))
    assert (status, body["error"]) == (400, "invalid_scope")
    status, body, _ = post_form(url, dict(form, client_id=oauth_client.public_client_id))
    assert body["error"] == "unauthorized_client"
    assert oauth_server.count("client_credentials") == 6
    assert oauth_server.count("client_credentials:ok") == 2
    assert [r["client_auth"] for r in oauth_server.requests] == \
        ["body", "basic", "body", "basic", "body", "body"]
    assert oauth_server.requests[1]["client_id"] == oauth_client.client_id
    assert oauth_server.requests[0]["tenant"] == "contoso.example"
    with open(oauth_client.secret_file) as f:
        assert f.read().strip() == oauth_client.secret


def _assertion(sa, key_path=None, **over):
    now = int(time.time())
    claims = {"iss": sa.client_email, "sub": f"jwtuser@{OAUTH_DOMAIN}",
              "scope": "https://mail.google.com/",
              "aud": "https://oauth2.googleapis.com/token", "iat": now, "exp": now + 3600}
    claims.update(over)
    return make_jwt(key_path or sa.private_key_path, claims, kid=sa.private_key_id)


def test_jwt_bearer_signature_and_claims_checked(oauth_server, oauth_service_account,
                                                 oauth_files):
    sa = oauth_service_account
    with open(sa.key_file) as f:
        key = json.load(f)
    assert key["type"] == "service_account" and key["client_email"] == sa.client_email
    assert key["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    url = key["token_uri"]
    status, tok, _ = post_form(url, {"grant_type": JWT, "assertion": _assertion(sa)})
    assert status == 200, tok
    assert oauth_server.token_info(tok["access_token"])["username"] == f"jwtuser@{OAUTH_DOMAIN}"
    other, _ = generate_rsa_key(str(oauth_files), "not-the-registered-key")
    status, body, _ = post_form(url, {"grant_type": JWT,
                                      "assertion": _assertion(sa, key_path=other)})
    assert (status, body["error"]) == (400, "invalid_grant")
    assert body["error_description"] == "Invalid JWT Signature."
    now = int(time.time())
    for bad in ({"exp": now - 10, "iat": now - 100}, {"exp": now + 7200},
                {"aud": "https://elsewhere.example/token"}):
        status, body, _ = post_form(url, {"grant_type": JWT, "assertion": _assertion(sa, **bad)})
        assert (status, body["error"]) == (400, "invalid_grant"), bad
    # A tampered payload fails the signature.
    head, payload, sig = _assertion(sa).split(".")
    forged = _assertion(sa, sub=f"boss@{OAUTH_DOMAIN}").split(".")[1]
    status, body, _ = post_form(url, {"grant_type": JWT, "assertion": f"{head}.{forged}.{sig}"})
    assert body["error"] == "invalid_grant"
    # The audience may also be the URL the assertion is posted to.
    generic = oauth_server.urls["generic"]["token"]
    assert post_form(generic, {"grant_type": JWT,
                               "assertion": _assertion(sa, aud=generic)})[0] == 200
    assert post_form(url, {"grant_type": JWT,
                           "assertion": _assertion(sa, aud=generic)})[0] == 400
    # Over HTTPS by the name localhost: the audience is that URL.
    tls = oauth_server.tls_urls["google"]["token"]
    assert post_form(tls, {"grant_type": JWT, "assertion": _assertion(sa, aud=tls)},
                     cafile=oauth_server.tls_cert)[0] == 200
    assert oauth_server.count("jwt_bearer:ok") == 3
    assert oauth_server.count("jwt_bearer:invalid_grant") == 6


# -- revocation (RFC 7009) -------------------------------------------------

def test_revocation_endpoint_and_admin_revoke(oauth_server, oauth_client):
    cid = oauth_client.public_client_id
    urls = oauth_server.urls["generic"]
    tok = _device_tokens(oauth_server, cid, f"rev1@{OAUTH_DOMAIN}")
    status, _, _ = post_form(urls["revoke"], {"token": tok["refresh_token"],
                                              "token_type_hint": "refresh_token"})
    assert status == 200
    assert refresh(urls["token"], cid, tok["refresh_token"])[1]["error"] == "invalid_grant"
    assert not oauth_server.token_info(tok["access_token"])["active"]
    # RFC 7009 2.2: an unknown token is no error.
    assert post_form(urls["revoke"], {"token": "no-such-token"})[0] == 200
    user = f"rev2@{OAUTH_DOMAIN}"
    tok = _device_tokens(oauth_server, cid, user)
    assert oauth_server.revoke_user(user) == 1
    status, body, _ = refresh(urls["token"], cid, tok["refresh_token"])
    assert (status, body["error"]) == (400, "invalid_grant")
    ms = oauth_server.microsoft_urls()["token"]
    status, body, _ = refresh(ms, cid, tok["refresh_token"])
    assert body["error_codes"] == [50173]


# -- faults ------------------------------------------------------------------

def test_faults_of_the_token_endpoint(oauth_server, oauth_client):
    url = oauth_server.urls["generic"]["token"]
    form = {"grant_type": "client_credentials", "client_id": oauth_client.client_id,
            "client_secret": oauth_client.secret, "scope": "x"}
    oauth_server.set_mode("down")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", oauth_server.token_port), timeout=2).close()
    # Introspection (the control listener) stays up.
    assert oauth_server.token_info("nothing") == {"active": False}
    assert post_form(oauth_server.introspection_url, {"token": "x"})[1] == {"active": False}
    oauth_server.set_mode("ok")
    assert post_form(url, form)[0] == 200
    oauth_server.set_mode("close", times=1)
    with pytest.raises(OSError):
        post_form(url, form)
    assert post_form(url, form)[0] == 200
    oauth_server.set_mode("slow", delay=5, times=1)
    t0 = time.monotonic()
    with pytest.raises(OSError):     # socket.timeout is an OSError
        post_form(url, form, timeout=0.5)
    assert time.monotonic() - t0 < 4
    oauth_server.set_mode("error", status=502)
    status, body, _ = post_form(url, form)
    assert (status, body["error"]) == (502, "temporarily_unavailable")
    oauth_server.set_mode("throttle", delay=7)
    status, body, headers = post_form(url, form)
    assert status == 429 and headers["Retry-After"] == "7"
    assert oauth_server.count("fault") == 4
    assert oauth_server.count("client_credentials") == 2


def test_down_cuts_kept_alive_connections_and_tls_listener(oauth_server, oauth_client):
    """A client that keeps its connection (libcurl does) sees the endpoint go
    down too; the HTTPS listener goes down and comes back with the plain one."""
    form = urllib.parse.urlencode({"grant_type": "client_credentials", "scope": "x",
                                   "client_id": oauth_client.client_id,
                                   "client_secret": oauth_client.secret})
    hdrs = {"Content-Type": "application/x-www-form-urlencoded"}
    conn = http.client.HTTPConnection("127.0.0.1", oauth_server.token_port, timeout=10)
    for _ in range(2):      # the same connection, kept alive
        conn.request("POST", "/oauth2/token", form, hdrs)
        r = conn.getresponse()
        assert r.status == 200 and r.read()
    tls_url = oauth_server.tls_urls["generic"]["token"]
    assert tls_url.startswith("https://localhost:")
    assert post_form(tls_url, dict(urllib.parse.parse_qsl(form)),
                     cafile=oauth_server.tls_cert)[0] == 200
    oauth_server.set_mode("down")
    with pytest.raises((OSError, http.client.HTTPException)):
        conn.request("POST", "/oauth2/token", form, hdrs)
        conn.getresponse().read()
    conn.close()
    with pytest.raises(OSError):
        post_form(tls_url, {}, cafile=oauth_server.tls_cert)
    oauth_server.set_mode("ok")
    status, tok, _ = post_form(tls_url, dict(urllib.parse.parse_qsl(form)),
                               cafile=oauth_server.tls_cert)
    assert status == 200
    assert oauth_server.count("client_credentials:ok") == 4


def test_control_path_over_http(oauth_server, oauth_client):
    """A server run as its own process is driven through /control/<verb>."""
    urls = oauth_server.urls["generic"]
    dev = start_device_flow(urls, oauth_client.public_client_id)

    def control(verb, args):
        req = urllib.request.Request(f"{oauth_server.control_url}/control/{verb}",
                                     data=json.dumps(args).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)["result"]

    control("approve", {"user_code": dev["user_code"], "user": f"ctl@{OAUTH_DOMAIN}"})
    status, tok, _ = poll(urls["token"], oauth_client.public_client_id, dev["device_code"])
    assert status == 200
    control("settings", {"access_lifetime": 5})
    assert control("counters", {})["device_code:ok"] == 1
    assert oauth_server.config["access_lifetime"] == 5


# -- the Dovecot behind it ---------------------------------------------------

def test_dovecot_logs_in_by_xoauth2_and_oauthbearer(oauth_user, oauth_server):
    oauth_user.seed(MAIL)
    assert [size for _, size in oauth_user.upstream().values()] == [len(m) for m in MAIL]
    tok = _device_tokens(oauth_server, "popgate-public", oauth_user.name)["access_token"]
    for login in (oauth_user.bed.imap_xoauth2, oauth_user.bed.imap_oauthbearer):
        before = oauth_server.count("introspect")
        conn = login(oauth_user.name, tok)
        try:
            assert inbox_subjects(conn) == [b"Subject: first", b"Subject: second"]
        finally:
            conn.logout()
        # One introspection: passdb oauth2 took the token (no cache, no
        # fallback to the app-token passdb).
        assert oauth_server.count("introspect") == before + 1
    # Password users of the same bed still log in with PLAIN.
    assert "IMAP4REV1" in oauth_user.bed.capabilities


@pytest.mark.usefixtures("oauth_client")
def test_dovecot_refuses_expired_revoked_and_foreign_tokens(oauth_user, oauth_server):
    oauth_user.seed(MAIL[:1])
    other = oauth_server.issue(f"someone-else@{OAUTH_DOMAIN}")["access_token"]
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        oauth_user.imap(other)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        oauth_user.bed.imap_oauthbearer(oauth_user.name, "pgat.not-a-token")
    oauth_server.set_access_lifetime(3)   # time enough for one login on a loaded machine
    short = oauth_user.token()
    oauth_user.imap(short).logout()
    time.sleep(3.2)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        oauth_user.imap(short)
    oauth_server.set_access_lifetime(3600)
    tok = oauth_user.token()
    oauth_user.imap(tok).logout()
    # Revocation is seen by the very next login (no auth cache).
    oauth_server.revoke_user(oauth_user.name)
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        oauth_user.imap(tok)
    # An introspection endpoint that fails is a temporary failure.
    oauth_server.set_introspection_mode("error")
    with pytest.raises(imaplib.IMAP4.error, match="UNAVAILABLE"):
        oauth_user.imap()
    oauth_server.set_introspection_mode("ok")
    oauth_user.imap().logout()


def test_dovecot_app_token_opens_granted_mailboxes(oauth_server, oauth_dovecot, oauth_client):
    """client_credentials (Microsoft's IMAP.AccessAsApp): one token, any
    mailbox the app was given."""
    user = f"shared-scanner@{OAUTH_DOMAIN}"
    oauth_dovecot.seed(user, MAIL)
    status, tok, _ = post_form(oauth_server.microsoft_urls("contoso.example")["token"],
                               {"grant_type": "client_credentials",
                                "client_id": oauth_client.client_id,
                                "client_secret": oauth_client.secret,
                                "scope": "https://outlook.office365.com/.default"})
    assert status == 200
    conn = oauth_dovecot.imap_xoauth2(user, tok["access_token"])
    try:
        assert len(inbox_subjects(conn)) == 2
    finally:
        conn.logout()
    oauth_server.register_client("narrow-app", secret="narrow-secret",
                                 app_mailboxes=[f"only-this@{OAUTH_DOMAIN}"])
    status, app, _ = post_form(oauth_server.urls["generic"]["token"],
                               {"grant_type": "client_credentials", "client_id": "narrow-app",
                                "client_secret": "narrow-secret", "scope": "imap"})
    assert status == 200
    oauth_dovecot.imap_oauthbearer(f"only-this@{OAUTH_DOMAIN}", app["access_token"]).logout()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        oauth_dovecot.imap_xoauth2(user, app["access_token"])


def test_jwt_bearer_token_logs_in_as_its_subject(oauth_server, oauth_dovecot,
                                                 oauth_service_account):
    user = f"delegated@{OAUTH_DOMAIN}"
    oauth_dovecot.seed(user, MAIL[:1])
    status, tok, _ = post_form(oauth_server.urls["google"]["token"],
                               {"grant_type": JWT,
                                "assertion": _assertion(oauth_service_account, sub=user)})
    assert status == 200
    conn = oauth_dovecot.imap_xoauth2(user, tok["access_token"])
    try:
        assert inbox_subjects(conn) == [b"Subject: first"]
    finally:
        conn.logout()


# -- the bed's own lifecycle ---------------------------------------------------

def test_standalone_server_process_is_driven_over_http():
    """`python3 oauth_server.py` (for a test that needs the server in its
    own process): URLs on stdout, control over HTTP, gone after SIGTERM."""
    proc = subprocess.Popen([sys.executable, str(SERVERS / "oauth_server.py"),
                             "--client", "cli-app:cli-secret"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or lines[-1].rstrip() != "}":
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(line)
        urls = json.loads("".join(lines))["urls"]
        status, tok, _ = post_form(urls["generic"]["token"],
                                   {"grant_type": "client_credentials", "scope": "x",
                                    "client_id": "cli-app", "client_secret": "cli-secret"})
        assert status == 200
        req = urllib.request.Request(urls["control"] + "/counters")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert json.load(r)["result"]["client_credentials:ok"] == 1
        status, info, _ = post_form(urls["introspect"], {"token": tok["access_token"],
                                                         "mailbox": "any@example.test"})
        assert info["active"] and info["username"] == "any@example.test"
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
    with pytest.raises(OSError):
        post_form(urls["generic"]["token"], {}, timeout=2)


def test_bed_stops_without_leftovers():
    from oauth_dovecot import OAuthDovecot
    from oauth_server import OAuthServer
    from testbed import _pid_alive
    srv = OAuthServer().start()
    bed = OAuthDovecot(srv)   # in /tmp: Dovecot's socket paths must be short
    try:
        bed.start()
        pid, d = bed.dovecot.pid, bed.dir
        user = f"leftover@{OAUTH_DOMAIN}"
        bed.seed(user, MAIL[:1])
        bed.imap_oauthbearer(user, srv.issue(user)["access_token"]).logout()
    finally:
        bed.stop()
        srv.stop()
    assert not _pid_alive(pid) and not os.path.exists(d)
    for port in (bed.ports["imap"], srv.token_port, srv.control_port):
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
