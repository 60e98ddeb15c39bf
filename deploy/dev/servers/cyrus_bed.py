"""A throwaway Cyrus IMAP 3.6 (imapd and its own pop3d) on loopback, as a
popgate upstream for the integration tests, next to the test bed's Dovecot.

The same interface as the other upstream beds (deploy/dev/upstream_beds.py):
kind, host, ports ("imap" plain with STARTTLS, "imaps", "pop3" plain with
USER/PASS and STLS, "pop3s"), cert, start()/stop()/context manager,
add_user, seed, imap, create_trash, popgate_upstream, log_tail, capabilities.

How it runs. The Debian packages are unpacked into a private root
(servers/cyrus.py; installing them would remove Dovecot). Everything else is
in one temporary directory: imapd.conf, cyrus.conf (every service gets
`-C <imapd.conf>`), the mailbox database and spool, a private sasldb
(passwords, written with saslpasswd2, checked by `sasl_pwcheck_method:
auxprop`), a self-signed certificate for "localhost". Cyrus's master process
runs in the foreground; as root it drops to nobody (`cyrus_user`), otherwise
it runs as the invoking user. Cyrus logs only through syslog: an LD_PRELOAD
shim (servers/syslog_to_file.c) writes those lines to <dir>/cyrus.log.
stop() sends SIGTERM to master by PID, waits for it and its children, and
removes the directory; a killed test run takes master with it
(PR_SET_PDEATHSIG).

How mail gets in: IMAP APPEND, which stores the literal's bytes exactly.
LMTP is not used: Cyrus's lmtpd alters every message (adds Return-Path,
Received, X-Cyrus-Session-Id; drops a lone CR; CRLF-normalises). APPEND
refuses (checked with Cyrus 3.6.1, Debian 3.6.1-4+deb12u5):
  - a bare LF anywhere:            NO "Message contains bare newlines"
  - a NUL byte:                    NO "Message contains NUL characters"
  - a 0-octet message:             NO "Zero-length message literal"
  - a first line that is no header (e.g. the line "."):
                                   NO "Message contains invalid header"
so the corpus messages bare_lf, mixed_endings, dot_lf (bare LF), nul_bytes,
empty and only_dot cannot be stored on Cyrus; seed() raises SeedRejected for
them. Everything else is stored byte for byte, including a bare CR, CR CR LF,
a message without a final line end, 8-bit headers (`munge8bit: no`, else
Cyrus turns 8-bit header bytes into 'X'), a leading "From " line and 20 MB.
Note: Python's imaplib.append() itself turns bare CR and LF into CRLF, so
seed() sends the literal without it.

Cyrus facts a test may rely on: its pop3d UIDL is "<uidvalidity>.<uid>";
user names cannot hold "." (the hierarchy separator here); a user's INBOX is
created at the first login (`autocreate_quota: 0`), which add_user() does;
`specialusealways: yes` lets a user CREATE INBOX.Trash (USE (\\Trash)).
"""

import grp
import imaplib
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import cyrus  # noqa: E402
import testbed as tb  # noqa: E402

# nobody/nogroup: the user master drops to when started as root.
NOBODY_UID = NOBODY_GID = 65534
# Maildir info letters (as the Dovecot bed's seed() takes them) -> IMAP flags.
MAILDIR_FLAGS = {"S": "\\Seen", "R": "\\Answered", "F": "\\Flagged", "T": "\\Deleted",
                 "D": "\\Draft"}
PROBE_USER = "pgprobe"


class SeedRejected(ValueError):
    """Cyrus refused to store a message (see the module docstring)."""


def _literal_append(conn, mailbox, data, flags=""):
    """APPEND data exactly (imaplib.append() would rewrite line ends).
    Returns the UID from APPENDUID. Raises SeedRejected on NO."""
    conn.literal = bytes(data)
    args = [mailbox] + ([f"({flags})"] if flags else [])
    typ, resp = conn._simple_command("APPEND", *args)
    if typ != "OK":
        raise SeedRejected(f"Cyrus refused APPEND: {typ} {resp!r}")
    m = re.search(rb"\[APPENDUID \d+ (\d+)\]", resp[0] or b"")
    if not m:
        raise RuntimeError(f"no APPENDUID in {resp!r}")
    return int(m.group(1))


class CyrusBed:
    kind = "cyrus"
    host = "127.0.0.1"

    def __init__(self, parent_dir=None, name="cyrus"):
        self.parent_dir = parent_dir
        self.name = name
        self.dir = None
        self.cert = self.key = None
        self.master = None
        self.users = {}
        self.capabilities = set()
        names = ("imap", "imaps", "pop3", "pop3s")
        self.ports = dict(zip(names, tb.free_ports(len(names))))
        if os.geteuid() == 0:
            self.run_uid, self.run_gid = NOBODY_UID, NOBODY_GID
        else:
            self.run_uid, self.run_gid = os.getuid(), os.getgid()

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        try:
            self.install = cyrus.ensure_installed()
            self.dir = tempfile.mkdtemp(prefix=f"popgate-{self.name}-", dir=self.parent_dir)
            self._check_reachable(self.dir)
            os.chmod(self.dir, 0o755)   # master runs as nobody when we are root
            self.cert = os.path.join(self.dir, "cert.pem")
            self.key = os.path.join(self.dir, "key.pem")
            self.conf = os.path.join(self.dir, "imapd.conf")
            self.cyrus_conf = os.path.join(self.dir, "cyrus.conf")
            self.sasldb = os.path.join(self.dir, "sasldb2")
            self.log_path = os.path.join(self.dir, "cyrus.log")
            self._make_dirs()
            self._make_cert()
            self._write_configs()
            self._start_master()
            self.add_user(PROBE_USER, "probe-pw")
            conn = self.imap(PROBE_USER)
            try:
                # imaplib keeps the list from before login; ask again.
                typ, data = conn.capability()
                assert typ == "OK", data
                self.capabilities = set(data[0].decode().upper().split())
            finally:
                conn.logout()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stop master and every process it started (by PID, waited for),
        remove the directory. Safe to call more than once."""
        tb.stop_process(self.master)
        self.master = None
        if self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- pieces ------------------------------------------------------------
    def _own(self, path):
        if os.geteuid() == 0:
            os.chown(path, self.run_uid, self.run_gid)

    def _check_reachable(self, path):
        """As root, Cyrus's processes run as nobody and must reach the
        directory (pytest's tmp_path, for one, is 0700 root)."""
        if os.geteuid() != 0:
            return
        parent = os.path.dirname(path)
        while parent != os.path.dirname(parent):
            if not os.stat(parent).st_mode & 0o001:
                raise RuntimeError(f"{parent} is not searchable by others: Cyrus runs as "
                                   "nobody and cannot reach its directory below it")
            parent = os.path.dirname(parent)

    def _make_dirs(self):
        for sub in ("config", "config/db", "config/socket", "config/proc", "config/lock",
                    "config/sieve", "spool"):
            path = os.path.join(self.dir, sub)
            os.makedirs(path, mode=0o750)
            self._own(path)
        for path in (self.log_path, self.sasldb):
            with open(path, "ab"):
                pass
            os.chmod(path, 0o640)
            self._own(path)

    def _make_cert(self):
        subprocess.run(
            [tb.OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
             "-keyout", self.key, "-out", self.cert],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        os.chmod(self.key, 0o600)
        self._own(self.key)

    def _write_configs(self):
        T = self.dir
        C = f"{T}/config"
        user = pwd.getpwuid(self.run_uid).pw_name
        group = grp.getgrgid(self.run_gid).gr_name
        settings = {
            "configdirectory": C,
            "defaultpartition": "default",
            "partition-default": f"{T}/spool",
            "proc_path": f"{C}/proc",
            "mboxname_lockpath": f"{C}/lock",
            "sievedir": f"{C}/sieve",
            "lmtpsocket": f"{C}/socket/lmtp",
            "idlesocket": f"{C}/socket/idle",
            "notifysocket": f"{C}/socket/notify",
            "cyrus_user": user,
            "cyrus_group": group,
            # The realm saslpasswd2 writes users under and imapd looks them
            # up in (the default, the host name, varies between machines).
            "servername": "localhost",
            "syslog_prefix": f"{self.name}-{os.getpid()}",
            # INBOX, INBOX.Trash: the classic Cyrus namespace.
            "altnamespace": "no",
            "unixhierarchysep": "no",
            "hashimapspool": "no",
            "allowplaintext": "yes",
            "sasl_pwcheck_method": "auxprop",
            "sasl_auxprop_plugin": "sasldb",
            "sasl_sasldb_path": self.sasldb,
            "sasl_mech_list": "PLAIN LOGIN",
            "tls_server_cert": self.cert,
            "tls_server_key": self.key,
            # Create a user's INBOX at the first login.
            "autocreate_quota": "0",
            # Let users CREATE a mailbox with (USE (\Trash)).
            "specialusealways": "yes",
            # Keep 8-bit header bytes as stored (default: replaced by 'X').
            "munge8bit": "no",
            "reject8bit": "no",
            # Tests log in to POP3 again at once (default: 1 minute apart).
            "popminpoll": "0",
        }
        with open(self.conf, "w") as f:
            f.write("".join(f"{k}: {v}\n" for k, v in settings.items()))
        b = self.install.bin
        c = f"-C {self.conf}"
        p = self.ports
        with open(self.cyrus_conf, "w") as f:
            f.write(
                "START {\n"
                f'  recover cmd="{b}/ctl_cyrusdb {c} -r"\n'
                "}\n"
                "SERVICES {\n"
                f'  imap cmd="{b}/imapd {c}" listen="{self.host}:{p["imap"]}" prefork=0 maxchild=100\n'
                f'  imaps cmd="{b}/imapd -s {c}" listen="{self.host}:{p["imaps"]}" prefork=0 maxchild=100\n'
                f'  pop3 cmd="{b}/pop3d {c}" listen="{self.host}:{p["pop3"]}" prefork=0 maxchild=100\n'
                f'  pop3s cmd="{b}/pop3d -s {c}" listen="{self.host}:{p["pop3s"]}" prefork=0 maxchild=100\n'
                "}\n"
                "EVENTS {\n"
                "}\n"
                "DAEMON {\n"
                # IDLE and cross-session change notices go through idled.
                f'  idled cmd="{b}/idled {c}"\n'
                "}\n")

    def _start_master(self):
        env = dict(os.environ)
        env.update(LD_LIBRARY_PATH=self.install.lib_dir,
                   LD_PRELOAD=self.install.syslog_shim,
                   SYSLOG_TO_FILE=self.log_path)
        out = open(os.path.join(self.dir, "master.out"), "ab")
        try:
            self.master = subprocess.Popen(
                [os.path.join(self.install.bin, "master"), "-C", self.conf,
                 "-M", self.cyrus_conf, "-p", os.path.join(self.dir, "master.pid")],
                cwd=self.dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                preexec_fn=tb._die_with_parent)
        finally:
            out.close()
        tb.wait_for_ports([(self.host, port) for port in self.ports.values()], self.master,
                          tb.START_TIMEOUT, "cyrus master", self.log_path)

    # -- users and mail ----------------------------------------------------
    def add_user(self, name, password):
        """A sasldb user; logs in once so that Cyrus creates the INBOX. No
        '.' in the name (the hierarchy separator), no line break or NUL."""
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name) or name in self.users:
            raise ValueError(f"bad or duplicate Cyrus user name {name!r}")
        if any(c in password for c in "\r\n\0") or not password:
            raise ValueError("the password must be one non-empty line")
        r = subprocess.run([self.install.saslpasswd2, "-p", "-c", "-f", self.sasldb,
                            "-u", "localhost", name],
                           input=password.encode(), capture_output=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"saslpasswd2 failed: {r.stderr.decode(errors='replace')}")
        self._own(self.sasldb)
        self.users[name] = password
        self.imap(name).logout()
        return name

    def imap(self, user, password=None):
        """A logged-in imaplib connection (plain IMAP on loopback)."""
        conn = imaplib.IMAP4(self.host, self.ports["imap"], timeout=60)
        conn.login(user, password if password is not None else self.users[user])
        return conn

    def seed(self, user, messages, flags=""):
        """APPEND messages (bytes each, stored exactly) to user's INBOX in
        order, so UIDs ascend in list order. flags: Maildir info letters
        ("S" = \\Seen ...) for all of them. Returns the UIDs. Raises
        SeedRejected for what Cyrus refuses (module docstring)."""
        imap_flags = " ".join(MAILDIR_FLAGS[c] for c in sorted(set(flags)))
        conn = self.imap(user)
        try:
            return [_literal_append(conn, "INBOX", data, imap_flags) for data in messages]
        finally:
            conn.logout()

    def create_trash(self, user):
        """A \\Trash special-use mailbox for user (idempotent); its name."""
        name = "INBOX.Trash"
        conn = self.imap(user)
        try:
            typ, data = conn.list('""', name)
            if typ == "OK" and data[0] and b"\\Trash" in data[0]:
                return name
            typ, data = conn._simple_command("CREATE", name, "(USE (\\Trash))")
            if typ != "OK":
                raise RuntimeError(f"CREATE {name}: {typ} {data!r}")
            typ, data = conn.list('""', name)
            assert typ == "OK" and data[0] and b"\\Trash" in data[0], data
        finally:
            conn.logout()
        return name

    def popgate_upstream(self):
        """The [upstream] keys that point a popgate at this Cyrus."""
        return {"host": self.host, "port": self.ports["imap"], "tls": "starttls",
                "ca_file": self.cert, "verify": "yes", "verify_name": "localhost"}

    def log_tail(self, n=60):
        return tb.log_tail(self.log_path, n)

    def describe(self):
        p = self.ports
        return (f"cyrus in {self.dir}: imap {self.host}:{p['imap']} (STARTTLS), imaps {p['imaps']}, "
                f"pop3 {p['pop3']}, pop3s {p['pop3s']}; CA/cert {self.cert}; log {self.log_path}")
