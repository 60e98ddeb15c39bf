"""A throwaway Courier-IMAP 5.0 (and Courier's own POP3 daemon) on loopback,
the upstream that lacks LITERAL+, SASL-IR, AUTH=PLAIN, MOVE, SPECIAL-USE,
ESEARCH and CONDSTORE: the test server for popgate's fallbacks.

    with CourierBed() as bed:
        bed.add_user("alice", "pw")
        bed.seed("alice", [b"Subject: x\\r\\n\\r\\nbody\\r\\n"])
        popgate_config_upstream = bed.popgate_upstream()

The packages are never installed (they would remove Dovecot):
deploy/dev/servers/courier.sh unpacks them into a private root R. Courier's
binaries have their paths compiled in (/usr/lib/courier-authlib for auth
modules, /etc/courier for authdaemonrc and userdb.dat, /run/courier/authdaemon
for the socket), so every Courier process runs inside one private mount
namespace (unshare -m) where
  /usr           is a read-only overlay of R/usr over the real /usr,
  /etc, /run     are read-only overlays that add an empty courier/ directory
                 (and to /etc a passwd/group with the "courier" account),
  /etc/courier   is a bind mount of this bed's etc/ (authdaemonrc, userdb.dat),
  /run/courier   is a bind mount of this bed's run/ (the authdaemon socket).
The host's mounts and files are untouched; the mounts vanish with the last
process of the namespace.

The namespace is also a PID namespace whose init is that shell; it starts
authdaemond with the userdb module only, and two couriertcpd listeners on
127.0.0.1: imaplogin -> imapd, and courierpop3login -> courierpop3d, plain
with STLS and (through couriertls -server, as Debian's pop3d-ssl) implicit
TLS (imapd
starts gamin's gam_server, the file-alteration monitor it asks at every LOGIN
and SELECT). stop() signals the shell, whose trap stops the daemons; when it
exits the kernel kills all that is left in the PID namespace. unshare runs with
--kill-child and dies with the Python process (PR_SET_PDEATHSIG), so even a
killed test run leaves no Courier behind. stop() then checks that no process
of the session or the mount namespace is left, waits, and removes the
directory.

Users live in a private userdb (home, Maildir, uid/gid 65534, {SHA256}
password) compiled with Courier's own makedatprog; authdaemond rereads it when
it changes, so users can be added while the servers run.
"""

import base64
import hashlib
import imaplib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(_HERE))   # deploy/dev: testbed

import testbed as _tb  # noqa: E402

INSTALL_SCRIPT = os.path.join(_HERE, "courier.sh")
UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
# Courier's default set on Debian 12 (/etc/courier/imapd, IMAP_CAPABILITY)
# minus nothing: the bed should be the Courier users run. IMAP_KEYWORDS and
# IMAP_ACL add their own capabilities.
IMAP_CAPABILITY = ("IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT "
                   "THREAD=REFERENCES SORT QUOTA IDLE")
# Courier's Trash (IMAP_TRASHFOLDERNAME): a plain folder, no SPECIAL-USE.
TRASH_FOLDER = "INBOX.Trash"
MAIL_UID = MAIL_GID = 65534
_bed_counter = itertools.count(1)
# Maildir names start with this counter, as in testbed.py, so the seeding
# order is the order of the names' time stamps (Courier's UID order too).


def _chown_mail(path):
    os.chown(path, MAIL_UID, MAIL_GID)


def courier_root():
    """Run courier.sh (idempotent, fast when done) and return the private root."""
    r = subprocess.run(["/bin/sh", INSTALL_SCRIPT], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError("deploy/dev/servers/courier.sh failed:\n"
                           + r.stderr.decode("utf-8", "replace"))
    root = r.stdout.decode().strip().splitlines()[-1]
    if not os.path.isfile(os.path.join(root, ".popgate-complete")):
        raise RuntimeError(f"courier.sh printed {root!r}, not a complete root")
    return root


def _mnt_ns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return None


def _members(sid, mnt_ns):
    """PIDs (not zombies) in session sid or in mount namespace mnt_ns: the
    namespace's shell and all it started, including gam_server, which
    libgamin starts in a session of its own."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2:].split()
        # fields[0] state, [1] ppid, [2] pgrp, [3] session
        if fields[0] == b"Z":
            continue
        if int(fields[3]) == sid or (mnt_ns is not None and _mnt_ns(entry) == mnt_ns):
            out.append(int(entry))
    return out


def _die_hard_with_parent():
    """preexec_fn for unshare: SIGKILL when the Python process dies. (unshare
    --fork ignores SIGTERM while it waits; its death SIGKILLs the namespace's
    init, --kill-child, and with it the whole PID namespace.)"""
    _tb._libc.prctl(_tb.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


class CourierBed:
    """Courier-IMAP + Courier POP3 + authdaemond in a private mount namespace.

    Attributes: dir, ports {"imap": plain+STARTTLS, "pop3": plain+STLS,
    USER/PASS allowed, "pop3s": implicit TLS}, cert (PEM, CN/SAN localhost), key, users,
    capabilities (set of IMAP capabilities after LOGIN, filled by start()),
    log_path, startup_seconds.
    """

    kind = "courier"
    host = "127.0.0.1"
    trash_folder = TRASH_FOLDER

    def __init__(self, parent_dir=None, name="courier"):
        self.name = f"{name}-{os.getpid()}-{next(_bed_counter)}"
        self.dir = tempfile.mkdtemp(prefix=f"popgate-{name}-", dir=parent_dir)
        if any(c in self.dir for c in ":,'\n"):
            # overlay's lowerdir uses ':' and ','; the shell script quotes '.
            raise ValueError(f"unusable directory name {self.dir!r}")
        os.chmod(self.dir, 0o755)   # imapd runs as uid 65534 and walks in
        self.etc = os.path.join(self.dir, "etc")          # -> /etc/courier
        self.run = os.path.join(self.dir, "run")          # -> /run/courier
        self.stub = os.path.join(self.dir, "stub")        # mount points
        self.mail_root = os.path.join(self.dir, "mail")
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.tls_pem = os.path.join(self.etc, "tls.pem")  # key + cert, couriertls
        self.log_path = os.path.join(self.dir, "courier.log")
        self.script = os.path.join(self.dir, "namespace.sh")
        self.ports = dict(zip(("imap", "pop3", "pop3s"), _tb.free_ports(3)))
        self.users = {}
        self.capabilities = set()
        self.proc = None
        self.mnt_ns = None
        self.root = None
        self.startup_seconds = None

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        t0 = time.monotonic()
        try:
            self.root = courier_root()
            for d in (self.etc, self.run, self.mail_root,
                      os.path.join(self.stub, "etc", "courier"),
                      os.path.join(self.stub, "run", "courier")):
                os.makedirs(d, mode=0o755, exist_ok=True)
            os.chmod(self.etc, 0o755)
            self._write_accounts()
            self._make_cert()
            self._write_config()
            self._write_userdb()
            self._write_script()
            self._start_namespace()
            # One login tells what the server offers after LOGIN.
            self.add_user("courier-probe", "probe-pw")
            self.imap("courier-probe").logout()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - t0
        return self

    def stop(self):
        """Stop every process of the namespace, wait for them, remove the
        directory. Safe to call twice and after a failed start()."""
        if self.proc is not None:
            sid = self.proc.pid
            # The namespace's shell (PID 1 of its PID namespace) traps TERM and
            # stops the daemons; when it exits the kernel kills whatever is
            # left in the namespace (gam_server, sessions), and unshare exits.
            for pid in _tb._children_of(self.proc.pid):
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=_tb.STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                # unshare --kill-child: SIGKILL to the shell, so to the namespace.
                _tb.stop_process(self.proc)
            # Belt and braces: nothing of the session or the mount namespace
            # may outlive stop().
            deadline = time.monotonic() + _tb.STOP_TIMEOUT
            sig = signal.SIGTERM
            while True:
                left = _members(sid, self.mnt_ns)
                if not left:
                    break
                if time.monotonic() > deadline:
                    sig = signal.SIGKILL
                for pid in left:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                time.sleep(0.05)
            self.proc = None
        if self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def pids(self):
        """PIDs of the running namespace (shell, daemons, sessions, gam_server)."""
        return _members(self.proc.pid, self.mnt_ns) if self.proc is not None else []

    # -- pieces ------------------------------------------------------------
    def _make_cert(self):
        subprocess.run(
            [_tb.OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
             "-keyout", self.key, "-out", self.cert],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        os.chmod(self.key, 0o600)
        with open(self.tls_pem, "wb") as out:
            for p in (self.key, self.cert):
                with open(p, "rb") as f:
                    out.write(f.read())
        # imaplogin and courierpop3login switch to the "courier" account before
        # they exec couriertls, which then reads this file.
        os.chmod(self.tls_pem, 0o600)
        os.chown(self.tls_pem, MAIL_UID, MAIL_GID)
        # A named group instead of generated parameters: instant.
        subprocess.run(
            [_tb.OPENSSL, "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt",
             "dh_param:ffdhe2048", "-out", os.path.join(self.etc, "dhparams.pem")],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)

    def _write_accounts(self):
        """The namespace's /etc/passwd and /etc/group: the host's plus the
        "courier" account Debian's postinst would add. imaplogin and
        courierpop3login look it up (getpwnam("courier")) before they start
        couriertls for STARTTLS, and fail STARTTLS without it. It maps to
        nobody/nogroup: the bed has no other use for it."""
        for name, line in (("passwd", f"courier:x:{MAIL_UID}:{MAIL_GID}:Courier mail server:"
                                      "/nonexistent:/usr/sbin/nologin\n"),
                           ("group", f"courier:x:{MAIL_GID}:\n")):
            with open(f"/etc/{name}", "rb") as f:
                host = f.read()
            if host and not host.endswith(b"\n"):
                host += b"\n"
            if not any(ln.startswith(b"courier:") for ln in host.splitlines()):
                host += line.encode()
            with open(os.path.join(self.stub, "etc", name), "wb") as f:
                f.write(host)

    def _write_config(self):
        # authdaemond reads /etc/courier/authdaemonrc itself.
        with open(os.path.join(self.etc, "authdaemonrc"), "w") as f:
            f.write('authmodulelist="authuserdb"\n'
                    "daemons=2\n"
                    "authdaemonvar=/run/courier/authdaemon\n"
                    # 1 would log failed logins, 2 passwords: neither is wanted.
                    "DEBUG_LOGIN=0\n"
                    'DEFAULTOPTIONS=""\n'
                    'LOGGEROPTS=""\n')
        common = [
            "TCPDOPTS=\"-nodnslookup -noidentlookup\"",
            "COURIERTLS=/usr/bin/couriertls",
            "TLS_CERTFILE=/etc/courier/tls.pem",
            "TLS_DHPARAMS=/etc/courier/dhparams.pem",
            "TLS_VERIFYPEER=NONE",
            "TLS_CACHEFILE=",
            "MAILDIRPATH=Maildir",
            "PATH=/usr/bin:/bin:/usr/sbin:/sbin",
            # libgamin's socket is abstract ("/tmp/fam-<user>-<id>"), shared by
            # all network-namespace peers: one gam_server per bed, not one
            # for every Courier on the machine.
            f"GAM_CLIENT_ID={self.name}",
        ]
        imapd = common + [
            f"IMAP_CAPABILITY=\"{IMAP_CAPABILITY}\"",
            # Debian adds AUTH=PLAIN after STARTTLS; left out, so popgate meets
            # a server with LOGIN only whichever way it connects.
            "IMAP_CAPABILITY_TLS=\"$IMAP_CAPABILITY\"",
            "IMAP_KEYWORDS=1",
            "IMAP_ACL=1",
            "IMAP_PROXY=0",
            "IMAP_IDLE_TIMEOUT=60",
            "IMAP_MAILBOX_SANITY_CHECK=1",
            "IMAP_DISABLETHREADSORT=0",
            "IMAP_CHECK_ALL_FOLDERS=0",
            "IMAP_OBSOLETE_CLIENT=0",
            "IMAP_UMASK=022",
            "IMAP_USELOCKS=1",
            "IMAP_ENHANCEDIDLE=0",
            "IMAP_TRASHFOLDERNAME=Trash",
            "IMAP_EMPTYTRASH=Trash:7",
            "IMAP_MOVE_EXPUNGE_TO_TRASH=0",
            "IMAP_STARTTLS=YES",
            "IMAP_TLS_REQUIRED=0",
            "HEADERFROM=X-IMAP-Sender",
        ]
        pop3d = common + [
            'POP3AUTH=""',
            'POP3AUTH_TLS=""',
            "POP3_PROXY=0",
            "POP3_STARTTLS=YES",
            "POP3_TLS_REQUIRED=0",
        ]
        for name, lines in (("imapd.env", imapd), ("pop3d.env", pop3d)):
            with open(os.path.join(self.etc, name), "w") as f:
                f.write("\n".join(lines) + "\n")

    def _write_script(self):
        R, T = self.root, self.dir
        q = _sh_quote
        tcpd = ("/usr/sbin/couriertcpd -address=127.0.0.1 -maxprocs=200 -maxperip=200 "
                "-nodnslookup -noidentlookup")
        text = f"""#!/bin/sh
# Runs inside `unshare -m --propagation private`: see courier_bed.py.
set -eu
mount -t overlay popgate-courier-usr -o ro,lowerdir={R}/usr:/usr /usr
mount -t overlay popgate-courier-etc -o ro,lowerdir={T}/stub/etc:/etc /etc
mount --bind {q(self.etc)} /etc/courier
mount -t overlay popgate-courier-run -o ro,lowerdir={T}/stub/run:/run /run
mount --bind {q(self.run)} /run/courier
mkdir -p /run/courier/authdaemon
cd /
pids=""
stop() {{
    trap '' TERM INT HUP
    kill -TERM $pids 2>/dev/null || true
    wait
    exit 0
}}
trap stop TERM INT HUP
env -i PATH=/usr/bin:/bin /usr/lib/courier/courier-authlib/authdaemond &
pids="$!"
n=0
while [ ! -S /run/courier/authdaemon/socket ]; do
    n=$((n + 1))
    if [ $n -gt 600 ]; then echo "authdaemond made no socket" >&2; stop; fi
    sleep 0.05
done
env -i /bin/sh -c 'set -a; . /etc/courier/imapd.env; exec {tcpd} {self.ports["imap"]} \\
    /usr/lib/courier/courier/imaplogin /usr/bin/imapd Maildir' &
pids="$pids $!"
env -i /bin/sh -c 'set -a; . /etc/courier/pop3d.env; exec {tcpd} {self.ports["pop3"]} \\
    /usr/lib/courier/courier/courierpop3login /usr/lib/courier/courier/courierpop3d Maildir' &
pids="$pids $!"
# pop3s as Debian's pop3d-ssl starts it: couriertls -server wraps the
# connection in TLS and runs courierpop3login on the decrypted side.
env -i /bin/sh -c 'set -a; . /etc/courier/pop3d.env; POP3_TLS=1; POP3_STARTTLS=NO; \\
    exec {tcpd} {self.ports["pop3s"]} /usr/bin/couriertls -server -tcpd -user=courier \\
    /usr/lib/courier/courier/courierpop3login /usr/lib/courier/courier/courierpop3d Maildir' &
pids="$pids $!"
echo "courier namespace up: $pids" >&2
# wait returns early when a trapped signal arrives; stop() then exits. It
# returns by itself only when every daemon has gone: then so does the shell.
wait || true
echo "courier daemons exited" >&2
exit 1
"""
        with open(self.script, "w") as f:
            f.write(text)

    def _start_namespace(self):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [UNSHARE, "--mount", "--propagation", "private", "--pid", "--fork",
                 "--kill-child=SIGKILL", "/bin/sh", self.script],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, preexec_fn=_die_hard_with_parent)
        finally:
            log.close()
        _tb.wait_for_ports([(self.host, self.ports[k]) for k in ("imap", "pop3", "pop3s")],
                           self.proc, _tb.START_TIMEOUT, "courier", self.log_path)
        # Listening means the shell runs in the new namespace by now.
        ns = _mnt_ns(self.proc.pid)
        if ns is None or ns == _mnt_ns(os.getpid()):
            raise RuntimeError("courier's shell is not in a mount namespace of its own"
                               + self.log_tail())
        self.mnt_ns = ns

    # -- users and mail ----------------------------------------------------
    def _write_userdb(self):
        """Compile etc/userdb.dat and userdbshadow.dat from self.users with
        Courier's makedatprog (as makeuserdb does). The .dat files are
        replaced by rename, and authdaemond's userdb module reopens them when
        their time stamp changes."""
        makedat = os.path.join(self.root, "usr/lib/courier/courier-authlib/makedatprog")
        plain, shadow = [], []
        for user, pw in self.users.items():
            home = os.path.join(self.mail_root, user)
            plain.append(f"{user}\tuid={MAIL_UID}|gid={MAIL_GID}|home={home}"
                         f"|mail={home}/Maildir|_=\n")
            digest = base64.b64encode(hashlib.sha256(pw.encode()).digest()).decode()
            shadow.append(f"{user}\tsystempw={{SHA256}}{digest}\n")
        for name, lines, mode in (("userdb", plain, 0o644), ("userdbshadow", shadow, 0o600)):
            dat = os.path.join(self.etc, f"{name}.dat")
            tmp = os.path.join(self.etc, f"{name}.tmp")
            old_umask = os.umask(0o777 & ~mode)
            try:
                subprocess.run([makedat, "-", tmp, dat], input=("".join(lines) + ".\n").encode(),
                               check=True, capture_output=True, timeout=30)
            finally:
                os.umask(old_umask)

    def add_user(self, name, password):
        """A userdb user with an empty Maildir. Name and password: no tab,
        '|', line break, NUL or '/' (the userdb format and the home path)."""
        for field in (name, password):
            if any(c in field for c in "\t|\r\n\0"):
                raise ValueError(f"userdb cannot hold {field!r}")
        if "/" in name or name in (".", "..", "") or name in self.users:
            raise ValueError(f"bad or duplicate user name {name!r}")
        self.users[name] = password
        self._ensure_maildir(name)
        before = self._userdb_mtime()
        self._write_userdb()
        # userdb.dat is reopened when its mtime changes: make sure it does even
        # when two users are added within the file system's time resolution.
        if self._userdb_mtime() == before:
            t = time.time() + 1
            os.utime(os.path.join(self.etc, "userdb.dat"), (t, t))
        return name

    def _userdb_mtime(self):
        try:
            return os.stat(os.path.join(self.etc, "userdb.dat")).st_mtime_ns
        except FileNotFoundError:
            return None

    def maildir(self, user):
        return os.path.join(self.mail_root, user, "Maildir")

    def _ensure_maildir(self, user):
        return _tb.ensure_maildir(os.path.join(self.mail_root, user), _chown_mail)

    def seed(self, user, messages, flags=""):
        """Store messages (bytes each, exact: CRLF, LF, bare CR as given) in
        user's INBOX as Maildir files, in order (UIDs ascend in list order).
        flags: Maildir info letters for all of them ("S" = \\Seen, "F", "R",
        "T", ...); with flags the file goes to cur/. Returns the file names."""
        return _tb.maildir_deliver(self._ensure_maildir(user), messages, flags, _chown_mail, "popgatebed")

    def imap(self, user, password=None):
        """A logged-in imaplib connection (plain IMAP on loopback; the caller
        logs out). Sets self.capabilities to what the server says after LOGIN."""
        conn = imaplib.IMAP4(self.host, self.ports["imap"], timeout=30)
        password = password if password is not None else self.users[user]
        if password.isascii():
            conn.login(user, password)
        else:
            # imaplib quotes ASCII only; 8-bit goes as a synchronizing literal.
            conn.literal = password.encode()
            typ, data = conn._simple_command("LOGIN", conn._quote(user))
            if typ != "OK":
                raise conn.error(data[-1])
            conn.state = "AUTH"
        typ, data = conn.capability()
        if typ == "OK" and data and data[0]:
            self.capabilities = set(data[0].decode().upper().split())
        return conn

    def create_trash(self, user):
        """Create Courier's Trash folder for user over IMAP; return its name
        (INBOX.Trash: Courier has no SPECIAL-USE to find it by)."""
        conn = self.imap(user)
        try:
            # Courier refuses to CREATE an existing folder without saying so
            # ("NO Cannot create this folder."): look first.
            typ, data = conn.list('""', TRASH_FOLDER)
            if typ == "OK" and any(d for d in data):
                return TRASH_FOLDER
            typ, data = conn.create(TRASH_FOLDER)
            if typ != "OK":
                raise RuntimeError(f"CREATE {TRASH_FOLDER}: {typ} {data}")
        finally:
            conn.logout()
        return TRASH_FOLDER

    def popgate_upstream(self):
        """[upstream] keys for a popgate in front of this Courier: its IMAP
        port with STARTTLS (couriertls), verified against self.cert."""
        return {
            "host": self.host,
            "port": self.ports["imap"],
            "tls": "starttls",
            "ca_file": self.cert,
            "verify": "yes",
            "verify_name": "localhost",
        }

    def log_tail(self, n=60):
        return _tb.log_tail(self.log_path, n)

    def describe(self):
        return (f"courier in {self.dir} (namespace shell {self.proc and self.proc.pid})\n"
                f"  imap {self.host}:{self.ports['imap']} (STARTTLS), "
                f"pop3 {self.ports['pop3']} (STLS, USER/PASS), pop3s {self.ports['pop3s']}\n  CA/cert {self.cert}")
