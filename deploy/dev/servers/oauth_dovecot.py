"""A throwaway Dovecot that logs IMAP users in by OAuth2 bearer tokens
(SASL XOAUTH2 and OAUTHBEARER, RFC 7628) validated against the test
authorization server (oauth_server.py): the upstream of popgate's
`auth = oauth2` mappings in tests.

    srv = OAuthServer().start()
    with OAuthDovecot(srv) as bed:
        tok = srv.issue("alice@example.test")["access_token"]
        bed.seed("alice@example.test", [b"Subject: x\\r\\n\\r\\nbody\\r\\n"])
        conn = bed.imap_xoauth2("alice@example.test", tok)

It is testbed.Testbed (same temp dir, free ports, certificate, Maildirs,
stop by PID) with its authentication changed:

  auth_mechanisms = plain login xoauth2 oauthbearer
  passdb oauth2         (mechanisms xoauth2 oauthbearer) asks the server's
                        RFC 7662 introspection endpoint (POST token=...) and
                        accepts the token when "active" is true and
                        "username" is the login name: user tokens (device,
                        refresh and jwt-bearer grants).
  passdb checkpassword  (mechanisms xoauth2 oauthbearer) for app-only tokens
                        (client_credentials, Microsoft's IMAP.AccessAsApp):
                        such a token names no user, so this small script asks
                        the introspection endpoint with mailbox=<login name>;
                        the server answers active only for mailboxes the app
                        was given (register_client(app_mailboxes=...)), and
                        the script takes only tokens marked idtyp "app", so
                        user tokens are checked by passdb oauth2 alone.
                        Either asks at most 5 s; a failed or slow
                        introspection is a temporary failure
                        (NO [UNAVAILABLE]).
  passdb passwd-file    Testbed's, for add_user() password users (PLAIN).
  auth_cache_size = 0   every login asks the server again, so a revoked or
                        expired token is refused at once (Dovecot's default
                        is 0 too; it is written out so nobody turns the cache
                        on without seeing this line).

Any user name logs in once the server vouches for its token: the userdb is
static, mail lives in <dir>/mail/<user>/Maildir (seed() delivers there).
Only the imap and lmtp protocols run; no Redis (popgates use the main test
bed's).
"""

import argparse
import imaplib
import json
import os
import stat
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))   # deploy/dev: testbed

import testbed as _tb  # noqa: E402
from oauth_server import OAuthServer  # noqa: E402

# The checkpassword program for app-only tokens (Dovecot's checkpassword
# protocol: "user\0password\0" on fd 3; exec argv[1] on success, exit 1 on
# a wrong password, 111 on a temporary failure).
_APP_CHECK = r'''#!/usr/bin/python3
import json, os, sys, urllib.parse, urllib.request
INTROSPECT = %(url)r
data = os.read(3, 65536)
user, token = data.split(b"\0")[:2]
body = urllib.parse.urlencode({"token": token.decode(), "mailbox": user.decode()}).encode()
try:
    with urllib.request.urlopen(INTROSPECT, data=body, timeout=5) as r:
        info = json.load(r)
except Exception:
    sys.exit(111)
if info.get("active") is True and info.get("idtyp") == "app" \
        and info.get("username") == user.decode():
    os.execv(sys.argv[1], sys.argv[1:])
sys.exit(1)
'''


def xoauth2_initial(user, token):
    """The SASL XOAUTH2 client response (Google's and Microsoft's format)."""
    return f"user={user}\x01auth=Bearer {token}\x01\x01".encode()


def oauthbearer_initial(user, token, host="127.0.0.1", port=143):
    """The SASL OAUTHBEARER client response (RFC 7628 3.1)."""
    return f"n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01".encode()


class OAuthDovecot(_tb.Testbed):
    """Dovecot accepting bearer tokens from oauth_server (an OAuthServer,
    already started: its introspection URL goes into the config)."""

    kind = "dovecot-oauth2"

    def __init__(self, oauth_server, parent_dir=None, name="pgoauth"):
        super().__init__(protocols=("imap", "lmtp"), parent_dir=parent_dir, name=name,
                         redis=False)
        self.oauth_server = oauth_server
        self.oauth2_conf = os.path.join(self.dir, "dovecot-oauth2.conf.ext")
        self.app_check = os.path.join(self.dir, "app-token-check")

    def _write_dovecot_conf(self):
        with open(self.oauth2_conf, "w") as f:
            f.write("\n".join([
                "introspection_mode = post",
                f"introspection_url = {self.oauth_server.introspection_url}",
                "force_introspection = yes",
                "username_attribute = username",
                "active_attribute = active",
                "active_value = true",
                "timeout_msecs = 5000",
            ]) + "\n")
        with open(self.app_check, "w") as f:
            f.write(_APP_CHECK % {"url": self.oauth_server.introspection_url})
        os.chmod(self.app_check, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP
                 | stat.S_IROTH | stat.S_IXOTH)
        super()._write_dovecot_conf()

    def _apply_dovecot_settings(self, lines):
        lines = super()._apply_dovecot_settings(lines)
        out = []
        for ln in lines:
            if ln.startswith("auth_mechanisms = "):
                out += ["auth_mechanisms = plain login xoauth2 oauthbearer",
                        "auth_cache_size = 0"]
                continue
            if ln == "passdb {" and not any(x.startswith("  driver = oauth2") for x in out):
                # Before Testbed's passwd-file: token logins never reach it.
                out += ["passdb {", "  driver = oauth2", "  mechanisms = xoauth2 oauthbearer",
                        f"  args = {self.oauth2_conf}", "}",
                        "passdb {", "  driver = checkpassword",
                        "  mechanisms = xoauth2 oauthbearer",
                        f"  args = {self.app_check}", "}"]
            out.append(ln)
        return out

    # -- clients -----------------------------------------------------------
    def _authenticate(self, mech, initial, user):
        conn = imaplib.IMAP4(self.host, self.ports["imap"], timeout=30)
        sent = []

        def respond(challenge):
            if not sent:
                sent.append(1)
                return initial
            # A failure comes as a challenge holding JSON status: the client
            # answers it with an empty response (XOAUTH2) or %x01 (RFC 7628).
            return b"\x01" if mech == "OAUTHBEARER" else b""
        try:
            conn.authenticate(mech, respond)
        except BaseException:
            try:
                conn.shutdown()
            except OSError:
                pass
            raise
        return conn

    def imap_xoauth2(self, user, token):
        """A logged-in imaplib connection (AUTHENTICATE XOAUTH2); raises
        imaplib.IMAP4.error when Dovecot refuses the token."""
        return self._authenticate("XOAUTH2", xoauth2_initial(user, token), user)

    def imap_oauthbearer(self, user, token):
        return self._authenticate(
            "OAUTHBEARER", oauthbearer_initial(user, token, self.host, self.ports["imap"]), user)

    def describe(self):
        p = self.ports
        return (f"OAuth2 Dovecot bed in {self.dir}\n"
                f"  imap {self.host}:{p['imap']} (STARTTLS), imaps {p['imaps']}, "
                f"lmtp {p['lmtp']}\n"
                f"  CA/cert {self.cert}\n"
                f"  passdb oauth2 -> {self.oauth_server.introspection_url}")



def _main(argv=None):
    """By hand: the server and the bed, a user with mail, printed; Ctrl-C
    stops both."""
    ap = argparse.ArgumentParser(description="Run the OAuth2 server and its Dovecot on loopback.")
    ap.add_argument("--user", action="append", default=[], help="a user (repeatable)")
    args = ap.parse_args(argv)
    srv = OAuthServer()
    bed = OAuthDovecot(srv.start())
    srv.register_client("popgate-public")

    def run():
        bed.start()
        print(bed.describe())
        print(json.dumps(srv.urls, indent=2))
        for user in args.user or ["demo@example.test"]:
            bed.seed(user, [f"Subject: hello {user}\r\n\r\nhello\r\n".encode()])
            print(f"  {user}: access token {srv.issue(user)['access_token']}")

    def stop():
        bed.stop()
        srv.stop()
    return _tb.run_until_interrupted(run, stop)

if __name__ == "__main__":
    sys.exit(_main())
