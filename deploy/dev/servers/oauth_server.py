#!/usr/bin/env python3
"""A small OAuth 2.0 authorization server on loopback, for tests: the
provider's side of popgate's upstream OAuth2 login (issue 15).

It speaks the grants popgate uses, shaped like the two providers' documented
answers, on three families of paths (one server serves all three):

  Microsoft identity platform    /<tenant>/oauth2/v2.0/devicecode
                                 /<tenant>/oauth2/v2.0/token
  Google                         /device/code   /token   /revoke
  generic (RFC wording)          /oauth2/device_authorization
                                 /oauth2/token  /oauth2/revoke

Grants: device code (RFC 8628: authorization_pending until approve(),
slow_down when polled faster than the interval, expired_token, access
denied), refresh_token with rotation (RFC 6749 6; reuse detection per the
OAuth security BCP), client_credentials (client secret in the body or HTTP
Basic), jwt-bearer (RFC 7523: RS256 signature checked with the `openssl` CLI
against the key registered for the issuer; iss, sub, aud, iat and exp
checked), revocation (RFC 7009). The dialects differ where the providers do:
Microsoft answers errors with 400 (401 for invalid_client), an AADSTS text
and error_codes, and
issues a refresh token only for the offline_access scope; Google answers
authorization_pending with 428 and slow_down with 403, says
verification_url, and its refresh answers carry no new refresh token unless
rotation is on (set rotate=False to play Google exactly).

Given a certificate (tls_cert, tls_key) the token side also listens in
HTTPS, at https://localhost:<tls_port> (tls_urls), as the real endpoints do.

A second listener, the control port, is the resource side and the test's
handle: token introspection (RFC 7662, POST token=...; what Dovecot's
`passdb oauth2` asks with introspection_mode = post) and /control/<verb>
(POST JSON) for everything the Python API below does, so a server run as a
separate process (`python3 oauth_server.py`) can be driven with curl. Faults
(set_mode) affect only the token listener, so Dovecot keeps validating
tokens while the token endpoint is down; set_introspection_mode() fails the
introspection instead.

    srv = OAuthServer().start()
    srv.register_client("popgate-test", secret="s3cret")
    status, code, _ = post_form(srv.urls["generic"]["device"],
                                {"client_id": "popgate-test", "client_secret": "s3cret",
                                 "scope": "offline_access"})
    srv.approve(code["user_code"], "alice@example.test")
    ... srv.counts()["refresh_token"] ...
    srv.stop()

Tokens are random strings with recognisable prefixes (pgat. access, pgrt.
refresh) so tests can grep logs for leaks. Everything is kept in memory;
every method is thread-safe (one lock).
"""

import argparse
import base64
import collections
import http.server
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
HOST = "127.0.0.1"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# The Google audience a service account's assertion names (accepted besides
# this server's own token URLs).
GOOGLE_TOKEN_AUD = "https://oauth2.googleapis.com/token"
MAX_BODY = 64 * 1024        # bytes of a request body we read; more is refused
MAX_JWT_LIFETIME = 3600     # Google: "Token must be a short-lived token (60 minutes)"
CLOCK_SKEW = 60             # seconds of iat in the future we accept
CONNECTION_TIMEOUT = 120    # seconds an idle client connection is kept

# Defaults of the adjustable settings (settings(), reset()).
DEFAULTS = {
    "access_lifetime": 3600,     # seconds an access token lives
    "refresh_lifetime": 90 * 86400,  # seconds a refresh token lives unused
    # Microsoft rotates and keeps the old refresh token working (play it with
    # a refresh_grace as long as refresh_lifetime); Google does not rotate
    # (rotate=False); the OAuth security BCP rotates and treats reuse of an
    # old token as theft (the default here: grace 0, reuse revokes).
    "rotate": True,              # refresh answers carry a new refresh token
    "refresh_grace": 0,          # seconds a rotated-away refresh token still works
    "reuse_revokes": True,       # a rotated-away token used after the grace revokes the grant
    "device_interval": 1,        # polling interval the device endpoint asks for
    "device_expires": 900,       # seconds a device code lives
    "slow_down_tolerance": 0.2,  # seconds a poll may come early without slow_down
}


class OAuthError(Exception):
    """An RFC 6749 5.2 error answer: error code, description, and the
    Microsoft AADSTS number (or None) for its dialect."""

    def __init__(self, error, description, aadsts=None, status=400, google_status=None):
        super().__init__(error)
        self.error = error
        self.description = description
        self.aadsts = aadsts
        self.status = status
        self.google_status = google_status or status


def _b64url_decode(s):
    s = s.encode() if isinstance(s, str) else s
    return base64.urlsafe_b64decode(s + b"=" * (-len(s) % 4))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rs256_verify(public_key_pem, signing_input, signature):
    """True if signature is a valid RS256 (RSASSA-PKCS1-v1_5, SHA-256)
    signature of signing_input by the key, checked by the openssl CLI."""
    with tempfile.TemporaryDirectory(prefix="oauth-jwt-") as d:
        key = os.path.join(d, "pub.pem")
        sig = os.path.join(d, "sig")
        with open(key, "w") as f:
            f.write(public_key_pem)
        with open(sig, "wb") as f:
            f.write(signature)
        r = subprocess.run([OPENSSL, "dgst", "-sha256", "-verify", key, "-signature", sig],
                           input=signing_input, capture_output=True, timeout=30)
        return r.returncode == 0


def rs256_sign(private_key_path, signing_input):
    r = subprocess.run([OPENSSL, "dgst", "-sha256", "-sign", private_key_path],
                       input=signing_input, capture_output=True, timeout=30, check=True)
    return r.stdout


def make_jwt(private_key_path, claims, kid=None):
    """An RS256-signed JWT (compact form) of claims, as a service account's
    assertion; for tests (popgate signs its own with OpenSSL)."""
    header = {"alg": "RS256", "typ": "JWT"}
    if kid:
        header["kid"] = kid
    signing_input = (b64url(json.dumps(header).encode()) + "."
                     + b64url(json.dumps(claims).encode())).encode()
    return signing_input.decode() + "." + b64url(rs256_sign(private_key_path, signing_input))


def generate_rsa_key(directory, name="sa-key"):
    """A fresh RSA-2048 key pair made with `openssl genpkey`: returns (path
    of the PKCS#8 private key PEM, mode 0600; public key PEM text)."""
    priv = os.path.join(directory, f"{name}.pem")
    subprocess.run([OPENSSL, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", priv], check=True, capture_output=True, timeout=60)
    os.chmod(priv, 0o600)
    pub = subprocess.run([OPENSSL, "pkey", "-in", priv, "-pubout"], check=True,
                         capture_output=True, timeout=60).stdout.decode()
    return priv, pub


def post_form(url, fields, basic=None, timeout=10, cafile=None):
    """POST fields (dict) form-encoded to url, as a token client does; basic:
    (client_id, secret) for HTTP Basic client authentication; cafile: the CA
    an https URL's certificate is verified against. Returns (status, JSON
    body or None, headers). Connection errors raise OSError."""
    req = urllib.request.Request(url, data=urllib.parse.urlencode(fields).encode(),
                                 headers={"Content-Type": "application/x-www-form-urlencoded",
                                          "Accept": "application/json"})
    if basic:
        cred = f"{urllib.parse.quote_plus(basic[0])}:{urllib.parse.quote_plus(basic[1])}"
        req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
    try:
        ctx = ssl.create_default_context(cafile=cafile) if cafile else None
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            status, headers, data = r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        status, headers, data = e.code, dict(e.headers), e.read()
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = None
    return status, body, headers


class OAuthServer:
    """The authorization server. start() binds free loopback ports (or
    token_port / control_port / tls_port) and serves them from daemon
    threads: the token side in plain HTTP and, given tls_cert and tls_key
    (PEM files; the certificate should name "localhost"), also in HTTPS on
    tls_port; the control side in plain HTTP."""

    def __init__(self, token_port=0, control_port=0, issuer=None, tls_cert=None, tls_key=None,
                 tls_port=0):
        self._lock = threading.RLock()
        self._want_ports = (token_port, control_port, tls_port)
        self.token_port = self.control_port = self.tls_port = None
        self.tls_cert = tls_cert
        self._tls_ctx = None
        if tls_cert:
            self._tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls_ctx.load_cert_chain(tls_cert, tls_key)
        self._token_httpds = []
        self._control_httpd = None
        self._threads = []
        self.issuer = issuer
        self.clients = {}      # client_id -> {"secret", "app_mailboxes"}
        self.jwt_keys = {}     # iss -> {"public_key", "subjects" (None: any), "kid"}
        self.devices = {}      # device_code -> record
        self.user_codes = {}   # user_code -> device_code
        self.grants = {}       # grant id -> {"user", "client_id", "scope", "revoked"}
        self.access = {}       # access token -> record
        self.refresh = {}      # refresh token -> record
        self.requests = []     # one dict a request: path, grant_type, client_id, status
        self._counts = collections.Counter()
        self.reset()

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        self._control_httpd = self._serve(self._want_ports[1], _ControlHandler)
        self.control_port = self._control_httpd.server_address[1]
        self._start_token_listeners()
        if self.issuer is None:
            self.issuer = f"http://{HOST}:{self.token_port}"
        return self

    def stop(self):
        self._stop_token_listeners()
        if self._control_httpd is not None:
            self._control_httpd.shutdown()
            self._control_httpd.server_close()
            self._control_httpd.close_connections()
        self._control_httpd = None
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _serve(self, port, handler, tls_ctx=None):
        httpd = _HTTPServer((HOST, port), handler, tls_ctx)
        httpd.oauth = self
        t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1},
                             name=f"oauth-{handler.__name__}", daemon=True)
        t.start()
        self._threads.append(t)
        return httpd

    def _start_token_listeners(self):
        """The token side's listeners, on the ports they had before if any
        (clients keep their configured URLs across a "down")."""
        plain = self._serve(self.token_port or self._want_ports[0], _TokenHandler)
        self.token_port = plain.server_address[1]
        httpds = [plain]
        if self._tls_ctx is not None:
            tls = self._serve(self.tls_port or self._want_ports[2], _TokenHandler, self._tls_ctx)
            self.tls_port = tls.server_address[1]
            httpds.append(tls)
        self._token_httpds = httpds

    def _stop_token_listeners(self):
        """Close the listeners and every open connection (a client's
        keep-alive connection would otherwise still be answered)."""
        with self._lock:
            httpds, self._token_httpds = self._token_httpds, []
        for httpd in httpds:
            httpd.shutdown()
            httpd.server_close()
            httpd.close_connections()

    # -- URLs --------------------------------------------------------------
    @property
    def base_url(self):
        return f"http://{HOST}:{self.token_port}"

    @property
    def tls_base_url(self):
        """https://localhost:<tls_port> (None without tls_cert)."""
        return f"https://localhost:{self.tls_port}" if self.tls_port else None

    @property
    def control_url(self):
        return f"http://{HOST}:{self.control_port}"

    @property
    def introspection_url(self):
        return f"{self.control_url}/introspect"

    def microsoft_urls(self, tenant="common", tls=False):
        base = f"{self.tls_base_url if tls else self.base_url}/{tenant}/oauth2/v2.0"
        return {"device": f"{base}/devicecode", "token": f"{base}/token"}

    @property
    def urls(self):
        """{"generic"|"microsoft"|"google": {"device", "token"[, "revoke"]}},
        plus "introspect" and "control"; plain HTTP."""
        return self._urls(self.base_url, False)

    @property
    def tls_urls(self):
        """The same over HTTPS (token side only; None without tls_cert)."""
        return self._urls(self.tls_base_url, True) if self.tls_port else None

    def _urls(self, b, tls):
        return {
            "generic": {"device": f"{b}/oauth2/device_authorization",
                        "token": f"{b}/oauth2/token", "revoke": f"{b}/oauth2/revoke"},
            "microsoft": self.microsoft_urls(tls=tls),
            "google": {"device": f"{b}/device/code", "token": f"{b}/token",
                       "revoke": f"{b}/revoke"},
            "introspect": self.introspection_url,
            "control": f"{self.control_url}/control",
        }

    # -- registration ------------------------------------------------------
    def register_client(self, client_id, secret=None, app_mailboxes=None):
        """A client. secret None: a public client (device and refresh grants
        need no secret). app_mailboxes: the mailboxes a client_credentials
        token of this app may open over IMAP (Exchange's service principal
        with mailbox permissions): a list, or "*" for all."""
        with self._lock:
            self.clients[client_id] = {
                "secret": secret,
                "app_mailboxes": app_mailboxes if app_mailboxes in (None, "*")
                else set(app_mailboxes)}
        return client_id

    def register_jwt_key(self, iss, public_key_pem, subjects=None, kid=None):
        """The public key that checks the assertions of issuer iss (a
        service account's client_email). subjects: the users it may act as
        (domain-wide delegation), None for any."""
        with self._lock:
            self.jwt_keys[iss] = {"public_key": public_key_pem, "kid": kid,
                                  "subjects": None if subjects is None else set(subjects)}

    # -- settings, faults, counters ---------------------------------------
    def reset(self):
        """Settings back to DEFAULTS, mode ok, counters and request log
        emptied, device authorizations still waiting for the user dropped
        (pending() starts empty). Clients, keys and tokens stay."""
        with self._lock:
            for d in self.devices.values():
                if d["state"] == "pending":
                    d["expires"] = 0
            self.config = dict(DEFAULTS)
            self.mode = {"mode": "ok", "status": None, "delay": None, "times": None}
            self.introspection_mode = {"mode": "ok", "delay": None}
            self._counts.clear()
            self.requests.clear()
        if not self._token_httpds and self.token_port is not None:
            self._start_token_listeners()

    def settings(self, **kw):
        """Change settings (names of DEFAULTS); returns the new settings."""
        with self._lock:
            for k, v in kw.items():
                if k not in DEFAULTS:
                    raise ValueError(f"unknown setting {k}")
                self.config[k] = v
            return dict(self.config)

    def set_access_lifetime(self, seconds):
        self.settings(access_lifetime=seconds)

    def set_mode(self, mode, status=None, delay=None, times=None):
        """Faults of the token listener (device, token, revoke paths):
        "ok"; "down" (listeners and open connections closed: connections
        refused); "close"
        (connection closed without an answer); "slow" (answer after delay
        seconds, default 60); "error" (HTTP status, default 503, JSON
        temporarily_unavailable); "throttle" (429 with Retry-After: delay,
        default 1). times: the fault applies to that many requests, then
        the mode is ok again (not for "down")."""
        if mode not in ("ok", "down", "close", "slow", "error", "throttle"):
            raise ValueError(f"unknown mode {mode}")
        with self._lock:
            self.mode = {"mode": mode, "status": status, "delay": delay, "times": times}
        if mode == "down":
            self._stop_token_listeners()
        elif not self._token_httpds:
            self._start_token_listeners()

    def set_introspection_mode(self, mode, delay=None):
        """Faults of the introspection endpoint (what Dovecot asks at each
        login): "ok"; "error" (HTTP 503); "slow" (answer after delay
        seconds, default 30: longer than the bed's Dovecot waits)."""
        if mode not in ("ok", "error", "slow"):
            raise ValueError(f"unknown introspection mode {mode}")
        with self._lock:
            self.introspection_mode = {"mode": mode, "delay": delay}

    def _take_fault(self):
        """The fault to apply to this request (or None), counting down times."""
        with self._lock:
            m = dict(self.mode)
            if m["mode"] in ("ok", "down"):
                return None
            if m["times"] is not None:
                self.mode["times"] -= 1
                if self.mode["times"] <= 0:
                    self.mode = {"mode": "ok", "status": None, "delay": None, "times": None}
            return m

    def count(self, key):
        with self._lock:
            return self._counts[key]

    def counts(self):
        """Counters: one per endpoint or grant ("device_authorization",
        "device_code", "refresh_token", "client_credentials", "jwt_bearer",
        "revoke", "introspect", "fault"), and one per outcome ("<grant>:ok",
        "<grant>:<error>", "refresh_reuse")."""
        with self._lock:
            return dict(self._counts)

    def _bump(self, *keys):
        with self._lock:
            for k in keys:
                self._counts[k] += 1

    # -- users' side -------------------------------------------------------
    def approve(self, user_code, user):
        """The user signs in at the verification URL, enters user_code and
        consents: the next poll of its device code gets tokens for user."""
        with self._lock:
            dc = self.user_codes.get(user_code.strip().upper())
            if dc is None:
                raise KeyError(f"no such user code {user_code!r}")
            self.devices[dc]["approved_user"] = user
            self.devices[dc]["state"] = "approved"

    def pending(self, client_id=None):
        """Device authorizations waiting for the user, oldest first: dicts
        with user_code, client_id, scope, dialect (what a person would see)."""
        with self._lock:
            now = time.time()
            return [{"user_code": d["user_code"], "client_id": d["client_id"],
                     "scope": d["scope"], "dialect": d["dialect"]}
                    for d in sorted(self.devices.values(), key=lambda d: d["created"])
                    if d["state"] == "pending" and d["expires"] > now
                    and (client_id is None or d["client_id"] == client_id)]

    def wait_pending(self, client_id=None, timeout=30):
        """The newest pending device authorization (see pending()), waiting
        up to timeout seconds for one to appear: a test approves what
        `popgate-admin oauth authorize` started without parsing its output."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.pending(client_id)
            if p:
                return p[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no device authorization pending within {timeout}s")
            time.sleep(0.05)

    def deny(self, user_code):
        with self._lock:
            dc = self.user_codes[user_code.strip().upper()]
            self.devices[dc]["state"] = "denied"

    def revoke_user(self, user, keep_access=False):
        """The user (or the tenant admin) revokes every grant of user: their
        refresh tokens answer invalid_grant, and (unless keep_access) their
        access tokens are no longer active for introspection."""
        with self._lock:
            n = 0
            for g in self.grants.values():
                if g["user"] == user and not g["revoked"]:
                    g["revoked"] = True
                    n += 1
            if not keep_access:
                for rec in self.access.values():
                    if rec["user"] == user:
                        rec["revoked"] = True
            return n

    def expire_refresh_tokens(self, user):
        """Refresh tokens of user expire (consent expired / inactivity)."""
        with self._lock:
            for rec in self.refresh.values():
                if rec["user"] == user:
                    rec["expires"] = 0

    def issue(self, user, client_id="direct", scope="", refresh=True):
        """Tokens for user without a flow (as a token response dict)."""
        with self._lock:
            return self._issue(user, client_id, scope, refresh=refresh)

    def token_info(self, token):
        """The introspection answer (RFC 7662) for token, as a dict."""
        return self._introspect({"token": [token]})

    # -- token machinery (lock held) ---------------------------------------
    def _new_grant(self, user, client_id, scope):
        gid = uuid.uuid4().hex
        self.grants[gid] = {"user": user, "client_id": client_id, "scope": scope,
                            "revoked": False}
        return gid

    def _issue(self, user, client_id, scope, refresh=True, grant=None, kind="user",
               dialect="generic"):
        now = time.time()
        if grant is None:
            grant = self._new_grant(user, client_id, scope)
        lifetime = self.config["access_lifetime"]
        at = "pgat." + secrets.token_urlsafe(32)
        self.access[at] = {"user": user, "client_id": client_id, "scope": scope,
                           "grant": grant, "iat": int(now), "exp": now + lifetime,
                           "kind": kind, "revoked": False}
        out = {"access_token": at, "token_type": "Bearer", "expires_in": int(lifetime),
               "scope": scope}
        if dialect == "microsoft":
            out["ext_expires_in"] = int(lifetime)
        if refresh:
            rt = "pgrt." + secrets.token_urlsafe(48)
            self.refresh[rt] = {"user": user, "client_id": client_id, "scope": scope,
                                "grant": grant, "state": "active", "rotated_at": None,
                                "expires": now + self.config["refresh_lifetime"]}
            out["refresh_token"] = rt
        return out

    def _introspect(self, form):
        token = _one(form, "token")
        mailbox = _one(form, "mailbox")
        with self._lock:
            self._bump("introspect")
            rec = self.access.get(token or "")
            if rec is None or rec["revoked"] or rec["exp"] <= time.time() \
                    or self.grants[rec["grant"]]["revoked"]:
                return {"active": False}
            info = {"active": True, "scope": rec["scope"], "client_id": rec["client_id"],
                    "token_type": "Bearer", "exp": int(rec["exp"]), "iat": rec["iat"],
                    "iss": self.issuer}
            # idtyp as in Microsoft's access tokens: "app" for app-only ones.
            if rec["kind"] == "app":
                # An app-only token names no user: it is active for a mailbox
                # only when asked with one the app may open (Dovecot's
                # checkpassword passdb in oauth_dovecot.py asks so).
                allowed = self.clients.get(rec["client_id"], {}).get("app_mailboxes")
                if mailbox is None or allowed is None or \
                        (allowed != "*" and mailbox not in allowed):
                    return {"active": False}
                info.update(username=mailbox, sub=mailbox, idtyp="app")
            else:
                info.update(username=rec["user"], sub=rec["user"], idtyp="user")
            return info

    # -- request handling ---------------------------------------------------
    def handle_token_side(self, path, form, headers, tls=False):
        """(status, headers dict, JSON object) for a request to the token
        listener. Raises nothing: errors become OAuth error answers."""
        dialect, endpoint, tenant = _route(path)
        grant_type = _one(form, "grant_type")
        # What the client sent, without secrets: tests assert on it.
        basic = _basic_credentials(headers)
        client_auth = ("basic" if basic else "body" if _one(form, "client_secret") is not None
                       else "none")
        entry = {"path": path, "endpoint": endpoint, "dialect": dialect, "tenant": tenant,
                 "grant_type": grant_type,
                 "client_id": basic[0] if basic else _one(form, "client_id"),
                 "scope": _one(form, "scope"), "client_auth": client_auth,
                 "time": time.time()}
        try:
            if endpoint is None:
                status, body = 404, {"error": "not_found"}
            elif endpoint == "device":
                self._bump("device_authorization")
                status, body = 200, self._device_authorization(form, headers, dialect)
            elif endpoint == "revoke":
                self._bump("revoke")
                status, body = self._revoke(form, dialect)
            else:
                # The URL as the client named it (Host header): an
                # assertion's audience is the token URL it was configured with.
                scheme = "https" if tls else "http"
                host = headers.get("Host") or urllib.parse.urlsplit(
                    self.tls_base_url if tls else self.base_url).netloc
                url = f"{scheme}://{host}{urllib.parse.urlsplit(path).path}"
                status, body = 200, self._token(form, headers, dialect, grant_type, url)
        except OAuthError as e:
            status, body = self._error_body(e, dialect)
        extra = {}
        if status == 401 and basic:
            # RFC 6749 5.2: a client that tried Basic is told the scheme.
            extra["WWW-Authenticate"] = 'Basic realm="token"'
        entry["status"] = status
        entry["error"] = body.get("error") if isinstance(body, dict) else None
        with self._lock:
            self.requests.append(entry)
        return status, extra, body

    def _error_body(self, e, dialect):
        if dialect == "microsoft":
            ts = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
            trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
            desc = e.description
            if e.aadsts:
                desc = f"AADSTS{e.aadsts}: {desc}"
            body = {"error": e.error,
                    "error_description": f"{desc}\r\nTrace ID: {trace}\r\n"
                                         f"Correlation ID: {corr}\r\nTimestamp: {ts}",
                    "error_codes": [e.aadsts] if e.aadsts else [],
                    "timestamp": ts, "trace_id": trace, "correlation_id": corr}
            if e.aadsts:
                body["error_uri"] = f"https://login.microsoftonline.com/error?code={e.aadsts}"
            return (401 if e.status == 401 else 400), body
        if dialect == "google":
            return e.google_status, {"error": e.error, "error_description": e.description}
        return e.status, {"error": e.error, "error_description": e.description}

    def _client(self, form, headers, public_ok):
        """The authenticated client id (RFC 6749 2.3.1: Basic or body). A
        confidential client (registered with a secret) must authenticate
        in every grant (3.2.1); a public one only where public_ok."""
        client_id = _one(form, "client_id")
        secret = _one(form, "client_secret")
        if headers.get("Authorization", "").startswith("Basic "):
            basic = _basic_credentials(headers)
            if basic is None:
                raise OAuthError("invalid_client", "Malformed Basic credentials.", 7000216,
                                 status=401)
            client_id, secret = basic
        if not client_id:
            raise OAuthError("invalid_request", "The request body must contain the following "
                             "parameter: 'client_id'.", 900144)
        with self._lock:
            client = self.clients.get(client_id)
        if client is None:
            raise OAuthError("invalid_client", f"Application with identifier '{client_id}' "
                             "was not found in the directory.", 700016, status=401,
                             google_status=401)
        if client["secret"] is not None:
            if secret is None:
                raise OAuthError("invalid_client", "The request body must contain the "
                                 "following parameter: 'client_assertion' or "
                                 "'client_secret'.", 7000218, status=401)
            if not secrets.compare_digest(secret.encode(), client["secret"].encode()):
                raise OAuthError("invalid_client", "Invalid client secret provided.",
                                 7000215, status=401)
        elif not public_ok:
            raise OAuthError("unauthorized_client", "The client is public and cannot use "
                             "this grant.", 700025)
        return client_id

    def _device_authorization(self, form, headers, dialect):
        client_id = self._client(form, headers, public_ok=True)
        scope = _one(form, "scope") or ""
        if not scope:
            raise OAuthError("invalid_scope", "The provided value for the input parameter "
                             "'scope' is not valid.", 70011)
        with self._lock:
            dc = secrets.token_urlsafe(48)
            while True:
                uc = "".join(secrets.choice("BCDFGHJKLMNPQRSTVWXZ") for _ in range(8))
                if uc not in self.user_codes:
                    break
            now = time.time()
            self.devices[dc] = {"client_id": client_id, "scope": scope, "user_code": uc,
                                "created": now, "expires": now + self.config["device_expires"],
                                "interval": self.config["device_interval"],
                                "last_poll": None, "state": "pending", "approved_user": None,
                                "dialect": dialect}
            self.user_codes[uc] = dc
            expires, interval = int(self.config["device_expires"]), self.config["device_interval"]
        verify = f"{self.base_url}/device"
        if dialect == "google":
            return {"device_code": dc, "user_code": uc, "verification_url": verify,
                    "expires_in": expires, "interval": interval}
        out = {"user_code": uc, "device_code": dc, "verification_uri": verify,
               "expires_in": expires, "interval": interval}
        if dialect == "microsoft":
            out["message"] = (f"To sign in, use a web browser to open the page {verify} "
                              f"and enter the code {uc} to authenticate.")
        else:
            out["verification_uri_complete"] = f"{verify}?user_code={uc}"
        return out

    def _token(self, form, headers, dialect, grant_type, url):
        kinds = {DEVICE_GRANT: "device_code", "refresh_token": "refresh_token",
                 "client_credentials": "client_credentials", JWT_GRANT: "jwt_bearer"}
        kind = kinds.get(grant_type)
        if kind is None:
            self._bump("unsupported_grant_type")
            raise OAuthError("unsupported_grant_type", "The provided value for the input "
                             "parameter 'grant_type' is not valid.", 70003)
        self._bump(kind)
        try:
            out = getattr(self, "_grant_" + kind)(form, headers, dialect, url)
        except OAuthError as e:
            self._bump(f"{kind}:{e.error}")
            raise
        self._bump(f"{kind}:ok")
        return out

    def _grant_device_code(self, form, headers, dialect, url):
        client_id = self._client(form, headers, public_ok=True)
        dc = _one(form, "device_code") or ""
        now = time.time()
        with self._lock:
            d = self.devices.get(dc)
            if d is None or d["client_id"] != client_id or d["state"] == "used":
                if dialect == "microsoft":
                    raise OAuthError("bad_verification_code", "The provided value for the "
                                     "input parameter 'device_code' is not valid.", 70000)
                raise OAuthError("invalid_grant", "Bad Request")
            if now >= d["expires"]:
                raise OAuthError("expired_token", "The provided value for the input parameter "
                                 "'device_code' is not valid. This device code has expired.",
                                 70020)
            last, d["last_poll"] = d["last_poll"], now
            if d["state"] == "denied":
                if dialect == "microsoft":
                    raise OAuthError("authorization_declined", "The user declined the "
                                     "authorization request.", 70000)
                raise OAuthError("access_denied", "Forbidden", google_status=403)
            if last is not None and now - last < d["interval"] - self.config["slow_down_tolerance"]:
                raise OAuthError("slow_down", "The client is polling too quickly and should "
                                 "back off.", None, google_status=403)
            if d["state"] == "pending":
                raise OAuthError("authorization_pending", "OAuth 2.0 device flow error. "
                                 "Authorization is pending. Continue polling.", 70016,
                                 google_status=428)
            d["state"] = "used"
            scope = d["scope"]
            refresh = dialect != "microsoft" or "offline_access" in scope.split()
            return self._issue(d["approved_user"], client_id, scope, refresh=refresh,
                               dialect=dialect)

    def _grant_refresh_token(self, form, headers, dialect, url):
        client_id = self._client(form, headers, public_ok=True)
        rt = _one(form, "refresh_token") or ""
        now = time.time()
        with self._lock:
            rec = self.refresh.get(rt)
            if rec is None or rec["client_id"] != client_id:
                raise OAuthError("invalid_grant", "Malformed or unknown refresh token.", 9002313,
                                 google_status=400)
            grant = self.grants[rec["grant"]]
            if grant["revoked"]:
                raise OAuthError("invalid_grant", "The provided grant has expired due to it "
                                 "being revoked, a fresh auth token is needed. The user might "
                                 "have changed or reset their password. " if dialect != "google"
                                 else "Token has been expired or revoked.", 50173)
            if now >= rec["expires"]:
                raise OAuthError("invalid_grant", "The refresh token has expired due to "
                                 "inactivity." if dialect != "google"
                                 else "Token has been expired or revoked.", 700082)
            if rec["state"] == "rotated" and now - rec["rotated_at"] > self.config["refresh_grace"]:
                self._bump("refresh_reuse")
                if self.config["reuse_revokes"]:
                    grant["revoked"] = True
                raise OAuthError("invalid_grant", "The refresh token was already used "
                                 "(rotated away)." if dialect != "google"
                                 else "Token has been expired or revoked.", 70008)
            scope = _one(form, "scope") or rec["scope"]
            rotate = self.config["rotate"]
            out = self._issue(rec["user"], client_id, scope, refresh=rotate,
                              grant=rec["grant"], dialect=dialect)
            if rotate and rec["state"] == "active":
                rec["state"], rec["rotated_at"] = "rotated", now
            else:
                rec["expires"] = now + self.config["refresh_lifetime"]
            return out

    def _grant_client_credentials(self, form, headers, dialect, url):
        client_id = self._client(form, headers, public_ok=False)
        scope = _one(form, "scope") or ""
        if dialect == "microsoft" and not scope.endswith("/.default"):
            raise OAuthError("invalid_scope", f"The provided value for scope {scope} is not "
                             "valid. Client credential flows must have a scope value with "
                             "/.default suffixed to the resource identifier "
                             "(application ID URI).", 1002012)
        with self._lock:
            return self._issue(None, client_id, scope, refresh=False, kind="app",
                               dialect=dialect)

    def _grant_jwt_bearer(self, form, headers, dialect, url):
        """RFC 7523 2.1; the audience is Google's token URL or the URL the
        assertion was posted to."""
        assertion = _one(form, "assertion") or ""
        parts = assertion.split(".")
        if len(parts) != 3:
            raise OAuthError("invalid_grant", "Invalid JWT: malformed assertion.")
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except ValueError:
            raise OAuthError("invalid_grant", "Invalid JWT: not base64url JSON.")
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise OAuthError("invalid_grant", "Invalid JWT: not base64url JSON.")
        if header.get("alg") != "RS256":
            raise OAuthError("invalid_grant", "Invalid JWT: alg must be RS256.")
        iss = claims.get("iss")
        with self._lock:
            key = self.jwt_keys.get(iss)
        if key is None:
            raise OAuthError("invalid_client", "The OAuth client was not found.", status=401)
        if not rs256_verify(key["public_key"], f"{parts[0]}.{parts[1]}".encode(), signature):
            raise OAuthError("invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") not in (GOOGLE_TOKEN_AUD, url):
            raise OAuthError("invalid_grant", "Invalid JWT: aud must be the token endpoint.")
        now = time.time()
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, (int, float)) or not isinstance(exp, (int, float)) \
                or exp <= now or iat > now + CLOCK_SKEW or exp - iat > MAX_JWT_LIFETIME:
            raise OAuthError("invalid_grant", "Invalid JWT: Token must be a short-lived token "
                             "(60 minutes) and in a reasonable timeframe. Check your iat and "
                             "exp values in the JWT claim.")
        sub = claims.get("sub") or iss
        if key["subjects"] is not None and sub not in key["subjects"]:
            raise OAuthError("unauthorized_client", "Client is unauthorized to retrieve access "
                             "tokens using this method, or client not authorized for any of "
                             "the scopes requested.", google_status=401)
        scope = claims.get("scope") or ""
        with self._lock:
            return self._issue(sub, iss, scope, refresh=False, dialect=dialect)

    def _revoke(self, form, dialect):
        token = _one(form, "token") or ""
        with self._lock:
            found = False
            if token in self.refresh:
                self.grants[self.refresh[token]["grant"]]["revoked"] = True
                found = True
            elif token in self.access:
                rec = self.access[token]
                rec["revoked"] = True
                if dialect == "google":
                    # Google: revoking an access token revokes its refresh token too.
                    self.grants[rec["grant"]]["revoked"] = True
                found = True
        self._bump("revoke:ok" if found else "revoke:unknown")
        if dialect == "google" and not found:
            return 400, {"error": "invalid_token", "error_description": "Bad Request"}
        # RFC 7009 2.2: 200 whether or not the token was known.
        return 200, {}

    # -- control -----------------------------------------------------------
    def control(self, verb, args):
        """The control path's verbs, each the method of the same name."""
        verbs = {
            "client": lambda a: self.register_client(**a),
            "jwt_key": lambda a: self.register_jwt_key(**a),
            "approve": lambda a: self.approve(**a),
            "deny": lambda a: self.deny(**a),
            "revoke_user": lambda a: self.revoke_user(**a),
            "expire_refresh_tokens": lambda a: self.expire_refresh_tokens(**a),
            "settings": lambda a: self.settings(**a),
            "mode": lambda a: self.set_mode(**a),
            "introspection_mode": lambda a: self.set_introspection_mode(**a),
            "issue": lambda a: self.issue(**a),
            "counters": lambda a: self.counts(),
            "requests": lambda a: list(self.requests),
            "reset": lambda a: self.reset(),
        }
        if verb not in verbs:
            raise KeyError(verb)
        return verbs[verb](args)


def _basic_credentials(headers):
    """(client_id, secret) from an HTTP Basic Authorization header, each
    form-urlencoded first (RFC 6749 2.3.1); None if absent or malformed."""
    auth = headers.get("Authorization", "")
    if not auth.startswith("Basic "):
        return None
    try:
        cid, sep, sec = base64.b64decode(auth[6:], validate=True).decode().partition(":")
    except ValueError:
        return None
    if not sep:
        return None
    return urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(sec)


def _one(form, key):
    v = form.get(key)
    return v[0] if v else None


def _route(path):
    """(dialect, endpoint, tenant) for a token-listener path."""
    path = urllib.parse.urlsplit(path).path
    generic = {"/oauth2/device_authorization": "device", "/oauth2/token": "token",
               "/oauth2/revoke": "revoke"}
    google = {"/device/code": "device", "/token": "token", "/revoke": "revoke"}
    if path in generic:
        return "generic", generic[path], None
    if path in google:
        return "google", google[path], None
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[1:3] == ["oauth2", "v2.0"] and parts[3] in ("devicecode", "token"):
        return "microsoft", "device" if parts[3] == "devicecode" else "token", parts[0]
    return None, None, None


class _HTTPServer(http.server.ThreadingHTTPServer):
    """One listener; keeps its open connections so "down" can cut them; with
    tls_ctx the TLS handshake runs in the connection's own thread."""
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, addr, handler, tls_ctx=None):
        self.tls_ctx = tls_ctx
        self._conns = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def finish_request(self, request, client_address):
        conn = request
        with self._conns_lock:
            self._conns.add(conn)
        try:
            request.settimeout(CONNECTION_TIMEOUT)
            if self.tls_ctx is not None:
                try:
                    conn = self.tls_ctx.wrap_socket(request, server_side=True)
                except OSError:
                    return
                with self._conns_lock:
                    self._conns.discard(request)
                    self._conns.add(conn)
            super().finish_request(conn, client_address)
        finally:
            with self._conns_lock:
                self._conns.discard(conn)
            if conn is not request:
                conn.close()

    def handle_error(self, request, client_address):
        # A client that gave up (timeout, "slow" mode) is no error of ours.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def close_connections(self):
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "popgate-test-oauth/1"

    def log_message(self, fmt, *args):  # quiet: tests read counters, not logs
        pass

    def _read_form(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        body = self.rfile.read(n) if n else b""
        ctype = self.headers.get("Content-Type", "")
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if "json" in ctype:
            return json.loads(body or b"{}"), query
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        for k, v in query.items():
            form.setdefault(k, v)
        return form, query

    def _send(self, status, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(data)


class _TokenHandler(_Handler):
    def do_POST(self):
        srv = self.server.oauth
        fault = srv._take_fault()
        if fault:
            srv._bump("fault")
        if fault and fault["mode"] == "slow":
            time.sleep(fault["delay"] if fault["delay"] is not None else 60)
        if fault and fault["mode"] == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        try:
            form, _ = self._read_form()
        except ValueError:
            self._send(400, {"error": "invalid_request"})
            return
        if fault and fault["mode"] == "error":
            self._send(fault["status"] or 503, {"error": "temporarily_unavailable",
                                                "error_description": "Service unavailable."})
            return
        if fault and fault["mode"] == "throttle":
            delay = fault["delay"] if fault["delay"] is not None else 1
            self._send(429, {"error": "temporarily_unavailable",
                             "error_description": "Too many requests."},
                       {"Retry-After": int(delay)})
            return
        status, headers, body = srv.handle_token_side(self.path, form, self.headers,
                                                      tls=self.server.tls_ctx is not None)
        self._send(status, body, headers)

    def do_GET(self):
        # The verification page a person would open (the tests call approve()).
        if urllib.parse.urlsplit(self.path).path == "/device":
            data = (b"<html><body><form method=post action=/device>Code: <input name=user_code>"
                    b" User: <input name=user><button>Allow</button></form></body></html>")
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._send(404, {"error": "not_found"})


class _ControlHandler(_Handler):
    def do_POST(self):
        srv = self.server.oauth
        path = urllib.parse.urlsplit(self.path).path
        try:
            form, query = self._read_form()
        except ValueError:
            self._send(400, {"error": "invalid_request"})
            return
        if path == "/introspect":
            with srv._lock:
                fault = dict(srv.introspection_mode)
            if fault["mode"] == "slow":
                time.sleep(fault["delay"] if fault["delay"] is not None else 30)
            if fault["mode"] == "error":
                srv._bump("introspect", "introspect:fault")
                self._send(503, {"error": "temporarily_unavailable"})
                return
            self._send(200, srv._introspect(form))
            return
        if path.startswith("/control/"):
            try:
                result = srv.control(path[len("/control/"):], form if isinstance(form, dict)
                                     and "json" in self.headers.get("Content-Type", "") else {})
            except KeyError as e:
                self._send(404, {"error": f"unknown {e}"})
                return
            except (TypeError, ValueError) as e:
                self._send(400, {"error": str(e)})
                return
            self._send(200, {"result": result})
            return
        self._send(404, {"error": "not_found"})

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path in ("/control/counters", "/control/requests"):
            self._send(200, {"result": self.server.oauth.control(path.rsplit("/", 1)[1], {})})
            return
        self._send(404, {"error": "not_found"})


def _main(argv=None):
    ap = argparse.ArgumentParser(description="Run the test OAuth 2.0 server on loopback.")
    ap.add_argument("--token-port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--tls-port", type=int, default=0)
    ap.add_argument("--tls-cert", help="PEM certificate: also serve the token side in HTTPS")
    ap.add_argument("--tls-key", help="PEM key of --tls-cert")
    ap.add_argument("--client", action="append", default=[], metavar="ID[:SECRET]",
                    help="register a client (repeatable); one with a secret may open "
                         "every mailbox with client_credentials tokens")
    args = ap.parse_args(argv)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    srv = OAuthServer(args.token_port, args.control_port, tls_cert=args.tls_cert,
                      tls_key=args.tls_key, tls_port=args.tls_port).start()
    for spec in args.client:
        cid, _, sec = spec.partition(":")
        srv.register_client(cid, sec or None, app_mailboxes="*" if sec else None)
    print(json.dumps({"urls": srv.urls, "tls_urls": srv.tls_urls}, indent=2), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
