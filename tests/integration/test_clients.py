"""Real POP3 clients (TESTBED.md: curl, fetchmail, mpop) downloading a mailbox.

Each client test also runs against the test bed's Dovecot POP3 on the same
Maildir ([dovecot-reference]): if that variant fails, the client invocation
is wrong, not popgate. Downloads are compared with what was seeded, line ends
normalised (fetchmail and mpop deliver Unix line ends).
"""

import os
import pwd
import subprocess

import pytest

from messages import big_message, corpus, crlf_to_lf, expected_retr, expected_top

CLIENT_TIMEOUT = 120
# Messages every client delivers unchanged (apart from line ends). Left out:
# those a client rewrites on delivery (fetchmail drops a leading From_ line,
# ends a header-only message with a blank line and garbles lines over 8 KB)
# and those whose bytes are an intended popgate/Dovecot difference (see
# test_differential.py, which covers all of them with a strict client).
CLIENT_SET = ("plain", "bare_lf", "dot_lines", "dot_lf", "eight_bit", "line_1500",
              "malformed_mime", "long_header", "headers_blank_only")


def client_messages():
    """The client set, each ending in a line end (so LIST is exact before any
    RETR), and a 2 MB message without the 100,000-octet line."""
    msgs = [m.data if m.data.endswith(b"\n") else m.data + b"\r\n"
            for m in corpus(include_big=False) if m.name in CLIENT_SET]
    msgs.append(big_message(2 * 1024 * 1024, name=b"client", long_line=False))
    return msgs


class Server:
    """Where a client connects: port (plaintext/STLS) and tls_port."""

    def __init__(self, kind, port, tls_port):
        self.kind = kind
        self.port = port
        self.tls_port = tls_port


@pytest.fixture(params=["popgate", "dovecot-reference"])
def server(request, testbed, start_popgate):
    if request.param == "popgate":
        pg = start_popgate(server={"allow_plaintext_auth": "yes"})
        return Server("popgate", pg.port, pg.tls_port)
    return Server("dovecot", testbed.ports["pop3"], testbed.ports["pop3s"])


@pytest.fixture
def box(mailbox):
    msgs = client_messages()
    mailbox.seed(msgs)
    mailbox.msgs = msgs
    return mailbox


def run(cmd, **kw):
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=CLIENT_TIMEOUT, **kw)
    return r


def same_messages(delivered, seeded):
    """Compare as multisets, line ends normalised to LF."""
    got = sorted(crlf_to_lf(d) for d in delivered)
    want = sorted(crlf_to_lf(expected_retr(s)) for s in seeded)
    assert len(got) == len(want), f"{len(got)} messages delivered, {len(want)} seeded"
    for g, w in zip(got, want):
        assert g == w


def read_dir(path):
    out = []
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            out.append(f.read())
    return out


# -- curl ----------------------------------------------------------------------
def curl(*args):
    r = run(["curl", "-sS", "--max-time", "30", *args])
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def test_curl_plain_list_uidl_top_retr(server, box):
    base = f"pop3://{box.user}:{box.password}@127.0.0.1:{server.port}/"
    rc, out, err = curl(base)
    assert rc == 0, err
    assert out == b"".join(b"%d %d\r\n" % (n, len(expected_retr(m)))
                           for n, m in enumerate(box.msgs, 1))
    rc, out, err = curl("-X", "UIDL", base)
    assert rc == 0, err
    lines = out.split(b"\r\n")[:-1]
    assert [int(ln.split()[0]) for ln in lines] == list(range(1, len(box.msgs) + 1))
    assert len({ln.split()[1] for ln in lines}) == len(box.msgs)
    rc, out, err = curl("-X", "TOP 1 0", base)
    assert rc == 0, err
    assert out == expected_top(box.msgs[0], 0)
    for n, m in enumerate(box.msgs, 1):
        rc, out, err = curl(base + str(n))
        assert rc == 0, err
        assert out == expected_retr(m), n


def test_curl_stls_ssl_reqd(server, box):
    for n, m in enumerate(box.msgs, 1):
        rc, out, err = curl("--ssl-reqd", "-k",
                            f"pop3://{box.user}:{box.password}@127.0.0.1:{server.port}/{n}")
        assert rc == 0, err
        assert out == expected_retr(m), n


def test_curl_pop3s(server, box, testbed):
    url = f"pop3s://{box.user}:{box.password}@127.0.0.1:{server.tls_port}/"
    rc, out, err = curl("-k", "-X", "UIDL", url)
    assert rc == 0, err
    assert len(out.split(b"\r\n")[:-1]) == len(box.msgs)
    # The same with the certificate checked instead of -k.
    rc, out, err = curl("--cacert", testbed.cert, url + "1")
    assert rc == 0, err
    assert out == expected_retr(box.msgs[0])


def test_curl_without_tls_cannot_log_in_by_default(popgate, box):
    """With allow_plaintext_auth = no a client that does not start TLS has
    no way to send its password."""
    rc, out, err = curl(f"pop3://{box.user}:{box.password}@127.0.0.1:{popgate.port}/1")
    assert rc != 0, "curl fetched a message over plaintext"
    assert out == b""


# -- fetchmail -----------------------------------------------------------------
SAVE_SCRIPT = """#!/bin/sh
# fetchmail mda: store the message on stdin as the next numbered file in $1.
n=$(ls "$1" | wc -l)
exec cat > "$1/$(printf %04d $((n + 1)))"
"""


def fetchmail(testbed, box, server, tmp_path, keep):
    out = tmp_path / "delivered"
    out.mkdir()
    save = tmp_path / "save.sh"
    save.write_text(SAVE_SCRIPT)
    save.chmod(0o755)
    rc = tmp_path / "fetchmailrc"
    local_user = pwd.getpwuid(os.getuid()).pw_name
    rc.write_text(
        "set no bouncemail\n"
        "set no syslog\n"
        f"poll 127.0.0.1 service {server.port} protocol pop3 auth password timeout 30\n"
        f'  user "{box.user}" there with password "{box.password}" is "{local_user}" here\n'
        f'  sslproto "tls1.2+" sslcertck sslcertfile "{testbed.cert}" sslcommonname "localhost"\n'
        f"  {'keep' if keep else 'no keep'}\n"
        f'  mda "{save} {out}"\n')
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = run(["fetchmail", "-f", str(rc), "-N", "-v", "--invisible",
             "--pidfile", str(tmp_path / "fetchmail.pid"), "-i", str(tmp_path / "fetchids")],
            env=env)
    log = (r.stdout + r.stderr).decode("utf-8", "replace")
    return r.returncode, read_dir(out), log


def test_fetchmail_keep(testbed, server, box, tmp_path):
    rc, delivered, log = fetchmail(testbed, box, server, tmp_path, keep=True)
    assert rc == 0, log
    assert "STLS" in log and "upgrade to TLS succeeded" in log, log
    same_messages(delivered, box.msgs)
    assert len(box.upstream()) == len(box.msgs), "keep must leave every message upstream"


def test_fetchmail_no_keep(testbed, server, box, tmp_path):
    rc, delivered, log = fetchmail(testbed, box, server, tmp_path, keep=False)
    assert rc == 0, log
    same_messages(delivered, box.msgs)
    assert box.upstream() == {}, "fetchmail deleted every message; they must be gone upstream"


# -- mpop ----------------------------------------------------------------------
def mpop(testbed, box, server, tmp_path, implicit_tls=False):
    md = tmp_path / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "mpoprc"
    conf.write_text("")
    conf.chmod(0o600)
    port = server.tls_port if implicit_tls else server.port
    r = run(["mpop", "-C", str(conf), "--host=127.0.0.1", f"--port={port}",
             "--auth=user", f"--user={box.user}", f"--passwordeval=echo {box.password}",
             "--tls=on", f"--tls-starttls={'off' if implicit_tls else 'on'}",
             f"--tls-trust-file={testbed.cert}",
             "--keep=on", "--only-new=on", f"--uidls-file={tmp_path / 'uidls'}",
             f"--delivery=maildir,{md}", "--received-header=off", "--timeout=30"])
    log = (r.stdout + r.stderr).decode("utf-8", "replace")
    return r.returncode, read_dir(md / "new"), log


def test_mpop_keep_only_new(testbed, server, box, tmp_path):
    """mpop keeps UIDLs like a phone: a second run fetches nothing, a run
    after new mail fetches only the new mail."""
    rc, delivered, log = mpop(testbed, box, server, tmp_path)
    assert rc == 0, log
    same_messages(delivered, box.msgs)
    rc, again, log = mpop(testbed, box, server, tmp_path)
    assert rc == 0, log
    assert len(again) == len(box.msgs), "a second run fetched messages again"
    new = [b"Subject: later 1\r\n\r\nnew mail\r\n", b"Subject: later 2\r\n\r\nmore\r\n"]
    box.seed(new)
    rc, after, log = mpop(testbed, box, server, tmp_path)
    assert rc == 0, log
    same_messages(after, box.msgs + new)
    assert len(box.upstream()) == len(box.msgs) + len(new)


def test_mpop_implicit_tls(testbed, server, box, tmp_path):
    rc, delivered, log = mpop(testbed, box, server, tmp_path, implicit_tls=True)
    assert rc == 0, log
    same_messages(delivered, box.msgs)
