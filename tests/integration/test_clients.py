"""Real POP3 clients (TESTBED.md: curl, fetchmail, mpop) downloading a mailbox.

Each client test runs against popgate in front of every upstream of
conftest.UPSTREAMS ([popgate-<server>]) and against that server's own POP3
on the same mailbox ([reference-<server>]): if a reference variant fails, the
client invocation is wrong, not popgate. Downloads are compared with what was
seeded, line ends normalised (fetchmail and mpop deliver Unix line ends).
"""

import os
import pwd
import subprocess

import pytest

from conftest import UNSTORABLE, UPSTREAMS, new_mailbox
from messages import big_message, corpus, crlf_to_lf, expected_retr, expected_top, native

CLIENT_TIMEOUT = 120
# Messages every client delivers unchanged (apart from line ends). Left out:
# those a client rewrites on delivery (fetchmail drops a leading From_ line,
# ends a header-only message with a blank line and garbles lines over 8 KB)
# and those whose bytes are an intended popgate/Dovecot difference (see
# test_differential.py, which covers all of them with a strict client).
CLIENT_SET = ("plain", "bare_lf", "dot_lines", "dot_lf", "eight_bit", "line_1500",
              "malformed_mime", "long_header", "headers_blank_only")
# Messages a server's own POP3 does not deliver, so its reference variant
# cannot: Courier's sends a notice instead of a message with an 8-bit header
# (test_differential.py K5).
NOT_DELIVERED = {"dovecot": set(), "cyrus": set(), "courier": {"eight_bit"}}


def client_messages(kind="dovecot"):
    """The client set (without what server kind cannot store or its POP3
    does not deliver), each ending in a line end (so LIST is exact before
    any RETR), and a 2 MB message without the 100,000-octet line; stored as
    kind's own delivery would (messages.native())."""
    msgs = [m.data if m.data.endswith(b"\n") else m.data + b"\r\n"
            for m in corpus(include_big=False)
            if m.name in CLIENT_SET and m.name not in UNSTORABLE[kind]
            and m.name not in NOT_DELIVERED[kind]]
    msgs.append(big_message(2 * 1024 * 1024, name=b"client", long_line=False))
    return [native(kind, m) for m in msgs]


class Server:
    """Where a client connects: port (plaintext/STLS) and tls_port, the
    certificate that verifies it, and the upstream bed holding the mail."""

    def __init__(self, kind, port, tls_port, cert, bed):
        self.kind = kind
        self.port = port
        self.tls_port = tls_port
        self.cert = cert
        self.bed = bed


@pytest.fixture(params=[f"{side}-{up}" for up in UPSTREAMS for side in ("popgate", "reference")])
def server(request, testbed, upstream_bed, start_popgate):
    side, _, kind = request.param.partition("-")
    bed = upstream_bed(kind)
    if side == "popgate":
        pg = start_popgate(server={"allow_plaintext_auth": "yes"}, upstream=bed.popgate_upstream())
        return Server("popgate", pg.port, pg.tls_port, testbed.cert, bed)
    return Server(kind, bed.ports["pop3"], bed.ports["pop3s"], bed.cert, bed)


@pytest.fixture
def box(server):
    mb = new_mailbox(server.bed)
    msgs = client_messages(server.bed.kind)
    mb.seed(msgs)
    mb.msgs = msgs
    mb.kind = server.bed.kind
    return mb


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


def test_curl_pop3s(server, box):
    url = f"pop3s://{box.user}:{box.password}@127.0.0.1:{server.tls_port}/"
    rc, out, err = curl("-k", "-X", "UIDL", url)
    assert rc == 0, err
    assert len(out.split(b"\r\n")[:-1]) == len(box.msgs)
    # The same with the certificate checked instead of -k.
    rc, out, err = curl("--cacert", server.cert, url + "1")
    assert rc == 0, err
    assert out == expected_retr(box.msgs[0])


def test_curl_without_tls_cannot_log_in_by_default(popgate, mailbox):
    """With allow_plaintext_auth = no a client that does not start TLS has
    no way to send its password."""
    box = mailbox
    box.seed(client_messages()[:1])
    rc, out, err = curl(f"pop3://{box.user}:{box.password}@127.0.0.1:{popgate.port}/1")
    assert rc != 0, "curl fetched a message over plaintext"
    assert out == b""


# -- fetchmail -----------------------------------------------------------------
SAVE_SCRIPT = """#!/bin/sh
# fetchmail mda: store the message on stdin as the next numbered file in $1.
n=$(ls "$1" | wc -l)
exec cat > "$1/$(printf %04d $((n + 1)))"
"""


def fetchmail(box, server, tmp_path, keep):
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
        f'  sslproto "tls1.2+" sslcertck sslcertfile "{server.cert}" sslcommonname "localhost"\n'
        f"  {'keep' if keep else 'no keep'}\n"
        f'  mda "{save} {out}"\n')
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = run(["fetchmail", "-f", str(rc), "-N", "-v", "--invisible",
             "--pidfile", str(tmp_path / "fetchmail.pid"), "-i", str(tmp_path / "fetchids")],
            env=env)
    log = (r.stdout + r.stderr).decode("utf-8", "replace")
    return r.returncode, read_dir(out), log


def test_fetchmail_keep(server, box, tmp_path):
    rc, delivered, log = fetchmail(box, server, tmp_path, keep=True)
    assert rc == 0, log
    assert "STLS" in log and "upgrade to TLS succeeded" in log, log
    same_messages(delivered, box.msgs)
    assert len(box.upstream()) == len(box.msgs), "keep must leave every message upstream"


def test_fetchmail_no_keep(server, box, tmp_path):
    rc, delivered, log = fetchmail(box, server, tmp_path, keep=False)
    assert rc == 0, log
    same_messages(delivered, box.msgs)
    assert box.upstream() == {}, "fetchmail deleted every message; they must be gone upstream"


# -- mpop ----------------------------------------------------------------------
def mpop(box, server, tmp_path, implicit_tls=False):
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
             f"--tls-trust-file={server.cert}",
             "--keep=on", "--only-new=on", f"--uidls-file={tmp_path / 'uidls'}",
             f"--delivery=maildir,{md}", "--received-header=off", "--timeout=30"])
    log = (r.stdout + r.stderr).decode("utf-8", "replace")
    return r.returncode, read_dir(md / "new"), log


def test_mpop_keep_only_new(server, box, tmp_path):
    """mpop keeps UIDLs like a phone: a second run fetches nothing, a run
    after new mail fetches only the new mail."""
    rc, delivered, log = mpop(box, server, tmp_path)
    assert rc == 0, log
    same_messages(delivered, box.msgs)
    rc, again, log = mpop(box, server, tmp_path)
    assert rc == 0, log
    assert len(again) == len(box.msgs), "a second run fetched messages again"
    new = [native(box.kind, m) for m in (b"Subject: later 1\r\n\r\nnew mail\r\n",
                                         b"Subject: later 2\r\n\r\nmore\r\n")]
    box.seed(new)
    rc, after, log = mpop(box, server, tmp_path)
    assert rc == 0, log
    same_messages(after, box.msgs + new)
    assert len(box.upstream()) == len(box.msgs) + len(new)


def test_mpop_implicit_tls(server, box, tmp_path):
    rc, delivered, log = mpop(box, server, tmp_path, implicit_tls=True)
    assert rc == 0, log
    same_messages(delivered, box.msgs)
