"""Migration from an old POP3 server to popgate (issue 5, item 3), end to end
with real POP3 clients, so that a migrated client downloads nothing again.

The cast:
- the old server: a Dovecot of its own (testbed.Testbed) serving POP3 with
  pop3_uidl_format = %v.%u, which is not popgate's %08Xu%08Xv;
- the new upstream: the session test bed's Dovecot, holding the same mail
  (same bytes, so the same Message-IDs) in another order, so UIDs, UIDVALIDITY
  and UIDLs all differ;
- the client: mpop or fetchmail keeping its UIDL cache. Both key that cache by
  user and host name only (mpop: " count host user" lists; fetchmail:
  "user@host uidl" lines, checked below), not by port, so pointing the client
  at popgate on the same host name but another port is what a DNS switch
  does to it.

The mail: m1..m4 with unique Message-IDs, n1 without one, d1 and d2 with the
same Message-ID and identical headers and sizes, and 200 messages of the
SpamAssassin public corpus (deploy/dev/install-corpus.sh), among them the
Message-IDs real mailers write and RFC 5322 forbids ("PM20008:14:54 AM",
nested brackets, spaces and backslashes). popgate matches by the Message-ID
as sent where it is unique, else by the header hash and size
(translate/legacy_uidl.h): only messages that are truly indistinguishable
(no unique Message-ID, identical header block and size) may come again, here
d1 and d2 (downloaded twice is safe; a message a client never had, hidden
behind a UIDL it knows, would be lost). Both methods must give exactly that.

Method (i): deploy/migration/pop3-uidl-export writes the file and
`popgate-admin uidl import` stores it. Method (ii): the mapping names the old
server (legacy_pop3) and popgate reads it at the first login, and never again.
"""

import glob
import itertools
import json
import os
import poplib
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy" / "dev"))
import testbed as testbed_mod  # noqa: E402

EXPORT_TOOL = str(REPO / "deploy" / "migration" / "pop3-uidl-export")
OLD_UIDL_FORMAT = "%v.%u"
PASSWORD = "migrate pw 1"
CLIENT_TIMEOUT = 120
_ids = itertools.count(1)


# ---- mail ------------------------------------------------------------------------

CORPUS_DIR = os.environ.get("POPGATE_SA_CORPUS", "/var/cache/popgate-test/spamassassin")
CORPUS_COUNT = 200
# The corpus messages whose Message-IDs RFC 5322 forbids (issue 20), and the
# corpus's only one that has none.
CORPUS_ODD_IDS = ["spam-1/00498", "spam-2/00423", "spam-2/00695", "spam-2/01023", "spam-2/01025",
                  "spam-2/00712"]   # 00712: the one without a Message-ID


def corpus():
    """name -> exact bytes of CORPUS_COUNT corpus messages: the odd ones and
    the first of spam-2, without the mbox "From " line, each with a marker line put first in the body."""
    files = sorted(glob.glob(os.path.join(CORPUS_DIR, "spam-2", "*.json")))
    assert len(files) > CORPUS_COUNT, \
        f"the SpamAssassin corpus is not in {CORPUS_DIR}: run deploy/dev/install-corpus.sh"
    odd = [f for pre in CORPUS_ODD_IDS for f in glob.glob(os.path.join(CORPUS_DIR, pre + ".*.json"))]
    assert len(odd) == len(CORPUS_ODD_IDS), odd
    out = {}
    for path in odd + [f for f in files if f not in odd]:
        if len(out) == CORPUS_COUNT:
            break
        with open(path) as f:
            d = json.load(f)
        try:
            raw = d["text"].encode("latin-1")   # the original octets, for most
        except UnicodeEncodeError:
            raw = d["text"].encode("utf-8")
        if raw.startswith(b"From "):
            raw = raw.split(b"\n", 1)[1]
        name = "sa" + d["group"][-1] + d["id"]
        head, sep, body = raw.partition(b"\n\n")
        assert sep, path
        # First in the body, where TOP n 5 sees it.
        msg = head + b"\n\nmarker=" + name.encode() + b"\n" + body
        # CRLF, as the hand-made mail: LIST counts octets as sent.
        out[name] = msg.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert len(out) == CORPUS_COUNT
    return out


def header_block(data):
    """The header as stored, up to the blank line."""
    data = data.replace(b"\r\n", b"\n")
    return data.split(b"\n\n", 1)[0]


def indistinguishable(msgs):
    """Names of the messages that no key can tell apart: no Message-ID that
    is unique, and another message with the same header bytes and size."""
    def msgid(data):
        ids = re.findall(rb"^message-id[ \t]*:(.*(?:\n[ \t].*)*)", header_block(data), re.I | re.M)
        return ids[0].replace(b"\n", b"").strip(b" \t") if len(ids) == 1 else None
    ids = {}
    for k, v in msgs.items():
        ids.setdefault(msgid(v), []).append(k)
    shape = {}
    for k, v in msgs.items():
        shape.setdefault((header_block(v), len(v.replace(b"\r\n", b"\n"))), []).append(k)
    return sorted(k for k, v in msgs.items()
                  if not (msgid(v) and len(ids[msgid(v)]) == 1)
                  and len(shape[(header_block(v), len(v.replace(b"\r\n", b"\n")))]) > 1)


def mail(tag):
    """name -> exact bytes. Every message carries "marker=<name>" in its body."""
    def msg(name, msgid=None, subject=None, extra=b""):
        head = (b"From: Old Sender <sender@old.example>\r\nTo: user@old.example\r\n"
                b"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
                b"Subject: " + (subject or name).encode() + b"\r\n" + extra)
        if msgid:
            head += b"Message-ID: " + msgid.encode() + b"\r\n"
        return head + b"\r\nmarker=" + name.encode() + b"\r\n"

    out = {f"m{i}": msg(f"m{i}", f"<m{i}.{tag}@old.example>") for i in range(1, 5)}
    out["n1"] = msg("n1")                                   # no Message-ID
    dup = f"<dup.{tag}@old.example>"
    out["d1"] = msg("d1", dup, subject="twice")              # same headers, same size,
    out["d2"] = msg("d2", dup, subject="twice")              # different body
    assert len(out["d1"]) == len(out["d2"])
    out.update(CORPUS)
    return out


CORPUS = corpus()
OLD_ORDER = ["m1", "m2", "n1", "d1", "m3", "d2", "m4"] + list(CORPUS)
NEW_ORDER = list(reversed(OLD_ORDER))                        # the copy reordered
UNMATCHABLE = indistinguishable(mail("x"))
assert UNMATCHABLE[:2] == ["d1", "d2"], UNMATCHABLE


def later(tag, name, msgid):
    return (b"From: someone@example.net\r\nTo: user@old.example\r\n"
            b"Subject: delivered after the switch\r\nList-Id: <list.example.net>\r\n"
            b"Message-ID: " + msgid.encode() + b"\r\n\r\nmarker=" + name.encode() + b"\r\n")


def marker(data):
    m = re.search(rb"marker=(\w+)", data)
    assert m, data[:200]
    return m.group(1).decode()


# ---- clients ---------------------------------------------------------------------

def read_dir(path):
    out = []
    for name in sorted(os.listdir(path)):
        with open(os.path.join(path, name), "rb") as f:
            out.append(f.read())
    return out


SAVE_SCRIPT = """#!/bin/sh
# fetchmail mda: store the message on stdin as the next numbered file in $1.
n=$(ls "$1" | wc -l)
exec cat > "$1/$(printf %04d $((n + 1)))"
"""


class Client:
    """A POP3 client with a persistent UIDL cache in home, as on a desktop.
    run(port, cafile) -> sorted markers of what this run downloaded."""

    def __init__(self, kind, home, user, password):
        self.kind = kind
        self.home = home
        self.user = user
        self.password = password
        self.runs = 0
        home.mkdir(parents=True, exist_ok=True)

    @property
    def cache_path(self):
        return self.home / ("uidls" if self.kind == "mpop" else "fetchids")

    def cache(self):
        return self.cache_path.read_text() if self.cache_path.exists() else ""

    def run(self, port, cafile):
        self.runs += 1
        out = self.home / f"run{self.runs}"
        if self.kind == "mpop":
            for sub in ("tmp", "new", "cur"):
                (out / sub).mkdir(parents=True)
            conf = self.home / "mpoprc"
            conf.write_text("")
            conf.chmod(0o600)
            cmd = ["mpop", "-C", str(conf), "--host=127.0.0.1", f"--port={port}",
                   "--auth=user", f"--user={self.user}", f"--passwordeval=echo '{self.password}'",
                   "--tls=on", "--tls-starttls=on", f"--tls-trust-file={cafile}",
                   "--keep=on", "--only-new=on", f"--uidls-file={self.cache_path}",
                   f"--delivery=maildir,{out}", "--received-header=off", "--timeout=30"]
            env = None
            ok = (0,)
        else:
            out.mkdir(parents=True)
            save = self.home / "save.sh"
            save.write_text(SAVE_SCRIPT)
            save.chmod(0o755)
            rc = self.home / "fetchmailrc"
            rc.write_text(
                "set no bouncemail\nset no syslog\n"
                f"poll 127.0.0.1 service {port} protocol pop3 auth password timeout 30 uidl\n"
                f'  user "{self.user}" there with password "{self.password}" is "root" here\n'
                f'  sslproto "tls1.2+" sslcertck sslcertfile "{cafile}" sslcommonname "localhost"\n'
                f'  keep\n  mda "{save} {out}"\n')
            rc.chmod(0o600)
            cmd = ["fetchmail", "-f", str(rc), "-N", "-v", "--invisible",
                   "--pidfile", str(self.home / "fetchmail.pid"), "-i", str(self.cache_path)]
            env = dict(os.environ, HOME=str(self.home), FETCHMAILHOME=str(self.home))
            ok = (0, 1)        # fetchmail exits 1 for "no mail"
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=CLIENT_TIMEOUT, env=env)
        log = (r.stdout + r.stderr).decode("utf-8", "replace")
        assert r.returncode in ok, f"{self.kind} exited {r.returncode}:\n{log}"
        got = read_dir(out / "new" if self.kind == "mpop" else out)
        if self.kind == "fetchmail" and r.returncode == 1:
            # "1" is "nothing new" ("No mail", or "7 messages (7 seen)").
            assert got == [] and "normal termination, status 1" in log, log
        self.last_log = log
        return sorted(marker(d) for d in got)


@pytest.fixture(params=["mpop", "fetchmail"])
def client_kind(request):
    return request.param


# ---- servers ---------------------------------------------------------------------

@pytest.fixture
def old_server():
    """The old POP3 server, private to the test (one test stops it)."""
    with testbed_mod.Testbed(name="pgold", dovecot_settings={"pop3_uidl_format": OLD_UIDL_FORMAT},
                             redis=False) as tb:
        yield tb


def pop3_listing(port, user, cafile, stls=True):
    """[(uidl, marker)] of a maildrop in message order, via STLS; changes nothing."""
    p = poplib.POP3("127.0.0.1", port, timeout=30)
    try:
        if stls:
            p.stls(ssl.create_default_context(cafile=cafile))
        p.user(user)
        p.pass_(PASSWORD)
        out = []
        for line in p.uidl()[1]:
            n, uidl = line.split()
            body = b"\r\n".join(p.top(int(n), 5)[1])
            out.append((uidl.decode(), marker(body)))
        p.quit()
        return out
    finally:
        p.close()


def pop3_logins(tb):
    """pop3-login lines in tb's Dovecot log: every POP3 connection it took."""
    try:
        with open(tb.dovecot_log, errors="replace") as f:
            return [ln for ln in f if " pop3-login: " in ln]
    except FileNotFoundError:
        return []


def settled_pop3_logins(tb):
    """pop3_logins once the log has stopped growing (Dovecot writes it
    asynchronously)."""
    last = None
    for _ in range(20):
        now = pop3_logins(tb)
        if now == last:
            return now
        last = now
        time.sleep(0.25)
    return last


def admin_binary():
    if os.environ.get("POPGATE_ADMIN_BIN"):
        return os.path.abspath(os.environ["POPGATE_ADMIN_BIN"])
    pg = Path(os.path.abspath(os.environ.get("POPGATE_BIN") or REPO / "popgate"))
    beside = pg.with_name("popgate-admin")
    return str(beside if beside.exists() else REPO / "popgate-admin")


def admin(conf_path, *args):
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    r = subprocess.run([admin_binary(), "-c", conf_path, *map(str, args)],
                       capture_output=True, text=True, timeout=60, env=env)
    assert "Sanitizer" not in r.stderr and "runtime error:" not in r.stderr, r.stderr
    return r


def export(old, user, *extra, password=PASSWORD, tls="starttls"):
    port = old.ports["pop3s"] if tls == "implicit" else old.ports["pop3"]
    env = dict(os.environ, POP3_PASSWORD=password)
    return subprocess.run([EXPORT_TOOL, "--host", "127.0.0.1", "--port", str(port), "--user", user,
                           "--tls", tls, "--ca-file", old.cert, "--verify-name", "localhost", *extra],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env)


def old_message_count(old, user):
    md = old.maildir(user)
    return sum(len(os.listdir(os.path.join(md, sub))) for sub in ("new", "cur"))


# ---- the story ---------------------------------------------------------------------

def before_the_switch(old, new, client_kind, tmp_path):
    """The user on the old server with a client that downloaded everything,
    and the same mail copied to the new upstream. Returns (user, msgs,
    client, {marker: old uidl})."""
    n = next(_ids)
    user = f"mig{n}{client_kind[0]}"
    msgs = mail(f"{n}{client_kind}")
    old.add_user(user, PASSWORD)
    old.seed(user, [msgs[k] for k in OLD_ORDER])
    old_uidls = {mk: u for u, mk in pop3_listing(old.ports["pop3"], user, old.cert)}
    assert all(re.fullmatch(r"\d+\.\d+", u) for u in old_uidls.values()), old_uidls

    client = Client(client_kind, tmp_path / client_kind, user, PASSWORD)
    assert client.run(old.ports["pop3"], old.cert) == sorted(OLD_ORDER)
    cache = client.cache()
    assert all(u in cache for u in old_uidls.values()), cache
    # The cache is keyed by host and user, not port (what makes the switch work).
    assert str(old.ports["pop3"]) not in cache, cache
    assert client.run(old.ports["pop3"], old.cert) == [], "the client does not keep its UIDLs"

    # The mail is copied to the new upstream (as imapsync or doveadm would).
    new.add_user(user, PASSWORD)
    new.seed(user, [msgs[k] for k in NEW_ORDER])
    return user, msgs, client, old_uidls


def check_served_uidls(pg, new, user, old_uidls):
    """What popgate serves: the old UIDL for m1..m4, its own for the rest."""
    listing = pop3_listing(pg.port, user, new.cert)
    served = {mk: u for u, mk in listing}
    assert sorted(served) == sorted(OLD_ORDER)
    for mk in OLD_ORDER:
        if mk in UNMATCHABLE:
            assert served[mk] not in old_uidls.values(), (mk, served)
        else:
            assert served[mk] == old_uidls[mk], (mk, served)
    assert len(set(served.values())) == len(served), f"UIDLs not unique: {served}"


def after_the_switch(pg, new, user, client, msgs, tag, first_run=True):
    """The client pointed at popgate: only the unmatchable mail again (unless
    first_run is False: the caller has done that run), then new mail exactly
    once, and a message that reuses an old Message-ID is never hidden."""
    if first_run:
        got = client.run(pg.port, new.cert)
        assert got == sorted(UNMATCHABLE), \
            f"{client.kind} downloaded {got} through popgate" + testbed_mod.log_tail(pg.log_path, 40)
    assert client.run(pg.port, new.cert) == []

    new.seed(user, [later(tag, "x1", f"<x1.{tag}@example.net>")])
    assert client.run(pg.port, new.cert) == ["x1"]
    assert client.run(pg.port, new.cert) == []

    # A list copy of m1 (same Message-ID, other message): m1's Message-ID is
    # no longer unique upstream, so m1 may come again; y1 must come.
    m1_id = re.search(rb"Message-ID: (<[^>]+>)", msgs["m1"]).group(1).decode()
    new.seed(user, [later(tag, "y1", m1_id)])
    got = client.run(pg.port, new.cert)
    assert "y1" in got and set(got) <= {"y1", "m1"}, got
    assert client.run(pg.port, new.cert) == []


def migration_popgate(start_popgate, mappings=None):
    extra = {f"mapping {k}": v for k, v in (mappings or {}).items()}
    # view = all: the maildrop the old POP3 server showed; nothing deleted.
    extra["policy"] = {"view": "all", "on_retr": "seen", "on_dele": "hide"}
    return start_popgate(server={"allow_plaintext_auth": "no"}, extra_sections=extra)


def test_migration_with_uidl_import(testbed, old_server, start_popgate, client_kind, tmp_path):
    user, msgs, client, old_uidls = before_the_switch(old_server, testbed, client_kind, tmp_path)

    r = export(old_server, user, "-o", str(tmp_path / "legacy.uidl"))
    assert r.returncode == 0, r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    lines = [ln for ln in (tmp_path / "legacy.uidl").read_text().splitlines()
             if not ln.startswith("#")]
    assert [ln.split()[0] for ln in lines] == [old_uidls[k] for k in OLD_ORDER]
    assert [int(ln.split()[1]) for ln in lines] == [len(msgs[k]) for k in OLD_ORDER]
    fields = {k: ln.split() for k, ln in zip(OLD_ORDER, lines)}
    assert fields["n1"][3] == "-" and fields["d1"][3] == fields["d2"][3] != "-"
    assert fields["d1"][2] == fields["d2"][2] != fields["n1"][2]
    assert fields["sa100498"][3] == "PM20008:14:54%20AM"
    assert fields["sa201023"][3].startswith("<00003dc678b8$00001100$0000354c@C:\\Documents%20and%20")
    assert old_message_count(old_server, user) == len(OLD_ORDER), "the export deleted mail"

    pg = migration_popgate(start_popgate)
    r = admin(pg.config_path, "uidl", "import", user, tmp_path / "legacy.uidl")
    assert r.returncode == 0, r.stdout + r.stderr
    print(r.stdout)

    check_served_uidls(pg, testbed, user, old_uidls)
    after_the_switch(pg, testbed, user, client, msgs, f"imp{client_kind}")


def test_migration_lazy_legacy_pop3(testbed, old_server, start_popgate, client_kind, tmp_path):
    user, msgs, client, old_uidls = before_the_switch(old_server, testbed, client_kind, tmp_path)
    pg = migration_popgate(start_popgate, {"legacy": {
        "users": user,
        "legacy_pop3": f"127.0.0.1:{old_server.ports['pop3']}",
        "legacy_tls": "starttls",
        "legacy_ca_file": old_server.cert,
        "legacy_verify": "yes",
        "legacy_verify_name": "localhost",
        "legacy_timeout": 20,
    }})
    before = len(settled_pop3_logins(old_server))

    # The first login reads the old server, once.
    got = client.run(pg.port, testbed.cert)
    assert got == sorted(UNMATCHABLE), \
        f"{client.kind} downloaded {got} through popgate" + testbed_mod.log_tail(pg.log_path, 40)
    contacts = settled_pop3_logins(old_server)[before:]
    assert len([ln for ln in contacts if f"user=<{user}>" in ln and "Login:" in ln]) == 1, contacts
    assert old_message_count(old_server, user) == len(OLD_ORDER), "popgate deleted mail on the old server"

    # Later logins do not contact it again ...
    assert client.run(pg.port, testbed.cert) == []
    # What matched by which key is in the log, per login: n1 and the corpus
    # message without a Message-ID by header hash, the rest but d1 and d2 by
    # Message-ID.
    with open(pg.log_path, errors="replace") as f:
        reports = [ln for ln in f if "legacy-uidl" in ln and "by_header_hash" in ln]
    assert reports, testbed_mod.log_tail(pg.log_path, 40)
    print(reports[-1])
    want = len(OLD_ORDER) - len(UNMATCHABLE)
    assert re.search(rf"\bmatched[=\":]+{want}\b", reports[-1]), reports[-1]
    assert re.search(r"\bby_header_hash[=\":]+2\b", reports[-1]), reports[-1]
    check_served_uidls(pg, testbed, user, old_uidls)
    assert settled_pop3_logins(old_server)[before:] == contacts, "popgate asked the old server again"

    # ... and do not need it: with the old server gone, same answers.
    old_server.stop_dovecot()
    after_the_switch(pg, testbed, user, client, msgs, f"lazy{client_kind}", first_run=False)
    served = {mk: u for u, mk in pop3_listing(pg.port, user, testbed.cert)}
    assert {mk: served[mk] for mk in ("m2", "m3", "m4")} == \
        {mk: old_uidls[mk] for mk in ("m2", "m3", "m4")}, "the legacy UIDLs were lost"


# ---- the export tool on its own ------------------------------------------------------

def test_export_tool_help():
    r = subprocess.run([EXPORT_TOOL, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    for text in ("--host", "--user", "--tls", "--ca-file", "--password-env", "popgate-admin uidl import"):
        assert text in r.stdout


def test_export_tool_tls_modes_and_header_forms(old_server, tmp_path):
    user = f"exp{next(_ids)}"
    old_server.add_user(user, PASSWORD)
    msgs = [
        b"Message-ID: <plain@x>\r\n\r\nmarker=a\r\n",
        b"Message-ID:\r\n  <folded@x>\r\n\r\nmarker=b\r\n",
        b"message-id :(comment (nested)) <commented@x> (tail)\r\n\r\nmarker=c\r\n",
        b"Message-ID: <one@x>\r\nMessage-ID: <two@x>\r\n\r\nmarker=d\r\n",   # two: unusable
        b"Message-ID: not an id\r\n\r\nmarker=e\r\n",
        b"Subject: none\r\n\r\nmarker=f\r\n.\r\n..dots\r\n",
    ]
    old_server.seed(user, msgs)
    outputs = []
    for tls in ("starttls", "implicit"):
        r = export(old_server, user, tls=tls)
        assert r.returncode == 0, r.stderr
        outputs.append([ln for ln in r.stdout.splitlines() if not ln.startswith("#")])
    assert outputs[0] == outputs[1]
    fields = [ln.split() for ln in outputs[0]]
    # The Message-ID as sent, %XX-encoded; none for two of them.
    assert [f[3] for f in fields] == ["<plain@x>", "<folded@x>",
                                      "(comment%20(nested))%20<commented@x>%20(tail)", "-",
                                      "not%20an%20id", "-"]
    assert all(re.fullmatch(r"[0-9a-f]{32}", f[2]) for f in fields)
    assert len({f[2] for f in fields}) == len(fields)
    assert [int(f[1]) for f in fields] == [len(m) for m in msgs]
    assert all(re.fullmatch(r"\d+\.\d+", f[0]) for f in fields)
    assert "2 without a Message-ID" in r.stderr   # the summary names what matches how
    assert "4 by Message-ID and 2 by header hash" in r.stderr
    # Plain POP3 too, when asked for explicitly.
    r = export(old_server, user, tls="none")
    assert r.returncode == 0, r.stderr
    # Read-only: every message is still there, none marked deleted.
    assert old_message_count(old_server, user) == len(msgs)
    # -o writes the same, mode 0600.
    out = tmp_path / "x.uidl"
    assert export(old_server, user, "-o", str(out), "-q").returncode == 0
    assert [ln for ln in out.read_text().splitlines() if not ln.startswith("#")] == outputs[0]
    assert out.stat().st_mode & 0o777 == 0o600


def test_export_tool_failures_never_show_the_password(old_server):
    user = f"expf{next(_ids)}"
    old_server.add_user(user, PASSWORD)
    secret = "Wr0ng-S3cret-Value"
    r = export(old_server, user, password=secret)
    assert r.returncode == 2, r.stderr
    assert "[AUTH]" in r.stderr
    assert secret not in r.stdout + r.stderr
    # The system CA store does not know the test bed's certificate.
    env = dict(os.environ, POP3_PASSWORD=PASSWORD)
    r = subprocess.run([EXPORT_TOOL, "--host", "127.0.0.1", "--port", str(old_server.ports["pop3s"]),
                        "--user", user, "--tls", "implicit"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 3, r.stderr
    assert "certificate" in r.stderr.lower()
    # No password in the environment and no terminal to prompt on.
    env = {k: v for k, v in os.environ.items() if k != "POP3_PASSWORD"}
    r = subprocess.run([EXPORT_TOOL, "--host", "127.0.0.1", "--port", str(old_server.ports["pop3"]),
                        "--user", user, "--ca-file", old_server.cert],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 1 and "POP3_PASSWORD" in r.stderr
    # Nothing listening.
    r = subprocess.run([EXPORT_TOOL, "--host", "127.0.0.1", "--port", str(testbed_mod.free_port()),
                        "--user", user, "--tls", "none"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, POP3_PASSWORD=PASSWORD))
    assert r.returncode == 3 and "cannot connect" in r.stderr
