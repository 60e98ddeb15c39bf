"""Fixtures for the OAuth2 tests (issue 15), imported by conftest.py: the
test authorization server (deploy/dev/servers/oauth_server.py), a Dovecot
that accepts its bearer tokens (deploy/dev/servers/oauth_dovecot.py), and
the credential files a popgate config names.

Everything is started once per test run, on first use, and stopped at the
end. Per test, `oauth_server` resets the server's settings, fault mode and
counters (clients, keys, users and tokens stay): tests use their own user
names (`oauth_user`).

  oauth_server          OAuthServer: .urls["generic"|"microsoft"|"google"]
                        {"device","token"[,"revoke"]} (http://127.0.0.1:P),
                        .tls_urls the same over HTTPS (https://localhost:P2,
                        certificate .tls_cert, self-signed, names localhost
                        and 127.0.0.1), .microsoft_urls(tenant, tls=False),
                        .introspection_url, .control_url; pending(client_id),
                        wait_pending(client_id, timeout) (the newest device
                        authorization waiting: user_code, scope, ...),
                        approve(user_code, user), deny(user_code),
                        revoke_user(user), expire_refresh_tokens(user),
                        issue(user), token_info(tok), settings(access_lifetime=,
                        refresh_lifetime=, rotate=, refresh_grace=,
                        reuse_revokes=, device_interval=, device_expires=),
                        set_access_lifetime(s), set_mode("ok"|"down"|"close"|
                        "slow"|"error"|"throttle", status=, delay=, times=),
                        set_introspection_mode("ok"|"error"|"slow", delay=)
                        (Dovecot then answers NO [UNAVAILABLE]),
                        count(key), counts(), requests (list of dicts),
                        register_client(), register_jwt_key().
  oauth_server_session  the same server without the per-test reset (for
                        fixtures wider than a test).
  oauth_dovecot         OAuthDovecot (a testbed.Testbed): host, ports["imap"]
                        (STARTTLS, cert for "localhost"), popgate_upstream(),
                        seed(user, messages), imap_xoauth2(user, token),
                        imap_oauthbearer(user, token), add_user(name, pw) for
                        a PLAIN user, log_tail().
  oauth_client          the confidential client "popgate-test": client_id,
                        secret, secret_file (0600, the secret and a newline),
                        may open every mailbox with client_credentials tokens;
                        public_client_id "popgate-public" (no secret: device
                        flow as Microsoft's public clients).
  oauth_service_account a Google-style service account: client_email,
                        key_file (the JSON key file, 0600, token_uri = this
                        server's /token), private_key_path (PEM),
                        private_key_id; its public key is registered, any
                        subject may be impersonated.
  oauth_user            a fresh user on the bed, a conftest.Mailbox: name
                        (== user), seed(messages), upstream(), uidvalidity(),
                        token() (a fresh access token), imap(token=None)
                        (XOAUTH2 login).
"""

import itertools
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(_REPO / "deploy" / "dev" / "servers"))

import oauth_dovecot as oauth_dovecot_mod  # noqa: E402
import oauth_server as oauth_server_mod  # noqa: E402
import testbed as _testbed  # noqa: E402
# conftest imports this module at its end, when Mailbox is defined.
from conftest import Mailbox  # noqa: E402

OAUTH_CLIENT_ID = "popgate-test"
OAUTH_PUBLIC_CLIENT_ID = "popgate-public"
OAUTH_DOMAIN = "example.test"

_oauth_user_ids = itertools.count(1)


@pytest.fixture(scope="session")
def oauth_server_session(oauth_files):
    cert, key = str(oauth_files / "oauth-cert.pem"), str(oauth_files / "oauth-key.pem")
    subprocess.run(
        [_testbed.OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True, timeout=60)
    srv = oauth_server_mod.OAuthServer(tls_cert=cert, tls_key=key).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def oauth_server(oauth_server_session):
    """The run's OAuthServer with default settings, mode ok and zeroed
    counters for this test (reset again at teardown)."""
    oauth_server_session.reset()
    yield oauth_server_session
    oauth_server_session.reset()


@pytest.fixture(scope="session")
def oauth_dovecot(request, oauth_server_session):
    bed = oauth_dovecot_mod.OAuthDovecot(oauth_server_session)
    bed.start()
    try:
        yield bed
    finally:
        if request.session.testsfailed:
            print(bed.log_tail(60))
        bed.stop()


@pytest.fixture(scope="session")
def oauth_files(tmp_path_factory):
    """A private directory (0700) for credential files."""
    d = tmp_path_factory.mktemp("oauth-files")
    os.chmod(d, 0o700)
    return d


def _write_private(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return str(path)


@pytest.fixture(scope="session")
def oauth_client(oauth_server_session, oauth_files):
    secret = "pgcs." + os.urandom(18).hex()
    oauth_server_session.register_client(OAUTH_CLIENT_ID, secret=secret, app_mailboxes="*")
    oauth_server_session.register_client(OAUTH_PUBLIC_CLIENT_ID)
    return types.SimpleNamespace(
        client_id=OAUTH_CLIENT_ID, secret=secret,
        secret_file=_write_private(oauth_files / "client-secret", secret + "\n"),
        public_client_id=OAUTH_PUBLIC_CLIENT_ID)


@pytest.fixture(scope="session")
def oauth_service_account(oauth_server_session, oauth_files):
    priv, pub = oauth_server_mod.generate_rsa_key(str(oauth_files), "service-account")
    email = f"popgate@popgate-test.iam.{OAUTH_DOMAIN}"
    key_id = os.urandom(20).hex()
    with open(priv) as f:
        pem = f.read()
    oauth_server_session.register_jwt_key(email, pub, kid=key_id)
    # The fields of a Google service account JSON key file.
    key = {"type": "service_account", "project_id": "popgate-test",
           "private_key_id": key_id, "private_key": pem, "client_email": email,
           "client_id": "100000000000000000001",
           "auth_uri": f"{oauth_server_session.base_url}/o/oauth2/auth",
           "token_uri": oauth_server_session.urls["google"]["token"],
           "auth_provider_x509_cert_url": "", "client_x509_cert_url": ""}
    return types.SimpleNamespace(
        client_email=email, private_key_path=priv, private_key_id=key_id, public_key=pub,
        key_file=_write_private(oauth_files / "service-account.json", json.dumps(key, indent=2)))


class OAuthUser(Mailbox):
    """A user of the OAuth Dovecot bed (lower-case e-mail-like name): a
    conftest.Mailbox (seed, upstream, uidvalidity) whose IMAP logins use
    XOAUTH2 with a fresh token. name == user; bed == testbed."""

    def __init__(self, server, bed, name):
        super().__init__(bed, name, None)
        self.server = server
        self.bed = bed
        self.name = name

    def token(self, **kw):
        """A fresh access token for this user (no flow; see OAuthServer.issue)."""
        return self.server.issue(self.name, **kw)["access_token"]

    def imap(self, token=None):
        return self.bed.imap_xoauth2(self.name, token or self.token())


@pytest.fixture
def oauth_user(oauth_server, oauth_dovecot):
    return OAuthUser(oauth_server, oauth_dovecot,
                     f"oauser{next(_oauth_user_ids)}@{OAUTH_DOMAIN}")


# Re-exported for tests: helpers of the bed's modules.
post_form = oauth_server_mod.post_form
make_jwt = oauth_server_mod.make_jwt
generate_rsa_key = oauth_server_mod.generate_rsa_key
log_tail = _testbed.log_tail
