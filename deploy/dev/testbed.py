#!/usr/bin/env python3
"""A throwaway mail stack on loopback: Dovecot (IMAP, POP3, LMTP), Redis, and
popgate, all inside one temporary directory, on free ports.

Used by the integration tests (tests/integration/conftest.py), by `make demo`
(deploy/dev/demo.py), and by hand:

    python3 deploy/dev/testbed.py --user alice:alicepw --seed-dir ./some-mails

No system service is touched: Dovecot runs in the foreground with its own
config, base_dir and instance name; Redis with no persistence. Everything this
module starts is stopped by PID (and waited for) in stop(), which also removes
the directory. Child processes get PR_SET_PDEATHSIG so they die with the Python
process even if it is killed before stop() runs.

The facts behind the Dovecot config are in TESTBED.md (shared/).
"""

import argparse
import ctypes
import grp
import imaplib
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
DH_FILE = "/usr/share/dovecot/dh.pem"
# Upper bounds only, generous because CI machines can be heavily loaded; a
# healthy server starts and stops in well under a second.
START_TIMEOUT = 30.0      # seconds for a server to accept connections
STOP_TIMEOUT = 20.0       # seconds for a server to exit after SIGTERM
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)
_instance_counter = itertools.count(1)
# Maildir file names start with this counter: Dovecot gives new mail UIDs in the
# order of the time stamp at the start of the name, so seeding order is UID order.
_maildir_counter = itertools.count(1)


def ensure_maildir(home, chown):
    """home/Maildir with tmp, new and cur (each made 0700, then chown(path));
    returns the Maildir path."""
    md = os.path.join(home, "Maildir")
    for d in (home, md, *(os.path.join(md, s) for s in ("tmp", "new", "cur"))):
        if not os.path.isdir(d):
            os.mkdir(d, 0o700)
            chown(d)
    return md


def maildir_deliver(md, messages, flags, chown, tag):
    """Deliver messages (bytes each, exact) into Maildir md, in order: each is
    written to tmp/ and renamed into new/, or into cur/ with flags (Maildir
    info letters, e.g. "S" for \\Seen) as a client that had read it would
    leave it. File names sort in delivery order (servers that number by file
    name keep it). Returns the file names."""
    names = []
    for data in messages:
        n = next(_maildir_counter)
        base = f"{1000000000 + n}.M{n}P{os.getpid()}.{tag}"
        tmp = os.path.join(md, "tmp", base)
        with open(tmp, "wb") as f:
            f.write(data)
        chown(tmp)
        if flags:
            dest = os.path.join(md, "cur", f"{base}:2,{''.join(sorted(flags))}")
        else:
            dest = os.path.join(md, "new", base)
        os.rename(tmp, dest)
        names.append(os.path.basename(dest))
    return names


def _die_with_parent():
    """preexec_fn: the child gets SIGTERM when the process that started it dies,
    so a killed test run leaves no Dovecot or Redis behind."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def free_ports(count, host="127.0.0.1"):
    """count distinct free TCP ports, picked by the kernel (bind to port 0). The
    sockets are held open together so the same port is not handed out twice."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host="127.0.0.1"):
    return free_ports(1, host)[0]


def port_free(port, host="127.0.0.1"):
    """True if port can be bound on host now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_for(predicate, timeout, what):
    """Poll predicate() every 0.2 s until it is true; AssertionError after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def port_accepts(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_ports(endpoints, proc, timeout, what, log_path=None):
    """Wait until every (host, port) accepts a connection. Fails early, with the
    tail of the log, if proc exits first."""
    deadline = time.monotonic() + timeout
    pending = list(endpoints)
    while pending:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening"
                               + log_tail(log_path))
        if port_accepts(*pending[0]):
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not accept on {pending[0]} within {timeout:.0f}s"
                               + log_tail(log_path))
        time.sleep(0.05)


def log_tail(path, lines=30):
    if not path or not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        tail = f.read().splitlines()[-lines:]
    return f"\n--- last lines of {path} ---\n" + "\n".join(
        ln.decode("utf-8", "replace") for ln in tail)


def _children_of(pid):
    """PIDs whose parent is pid, from /proc."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: parse
        # after the last ')'.
        fields = stat[stat.rfind(b")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def _pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    # A zombie is gone for our purposes: it holds no port and no file.
    return stat[stat.rfind(b")") + 2:].split()[0] != b"Z"


def stop_process(proc, timeout=STOP_TIMEOUT, sig=signal.SIGTERM):
    """Signal proc, wait for it and for the children it had; SIGKILL what is
    left after timeout. Returns the exit status of proc."""
    if proc is None:
        return None
    kids = _children_of(proc.pid) if proc.poll() is None else []
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while any(_pid_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for k in kids:
        if _pid_alive(k):
            try:
                os.kill(k, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return proc.returncode


class Testbed:
    """Dovecot + Redis in one temporary directory.

    Attributes after start(): dir, cert, key, ports (dict: imap, imaps, pop3,
    pop3s, lmtp, redis), mail_uid, mail_gid. Use as a context manager or call
    start() and stop() (stop() is safe to call more than once and after a
    failed start()).
    """

    host = "127.0.0.1"

    def __init__(self, protocols=("imap", "pop3", "lmtp"), parent_dir=None, name="pgtest",
                 dovecot_settings=None, redis=True, trash=True):
        """dovecot_settings: extra Dovecot settings, a dict {name: value} (a
        top-level setting the test bed already writes, such as
        pop3_uidl_format, is replaced in place; others are added) or a string
        of raw config text appended at the end (blocks such as `protocol pop3
        { ... }`). E.g. {"pop3_uidl_format": "%g"} plays an old POP3 server
        whose UIDLs differ from popgate's. redis=False runs no Redis (the
        instance is then only an IMAP/POP3 server for another test bed's
        popgate); ports["redis"] is still reserved but nothing listens.
        trash=False leaves out the special-use Trash mailbox, as on a server
        without special-use folders."""
        self.protocols = tuple(protocols)
        self.dovecot_settings = dovecot_settings
        self.with_redis = redis
        self.with_trash = trash
        self.dir = tempfile.mkdtemp(prefix="popgate-testbed-", dir=parent_dir)
        os.chmod(self.dir, 0o755)  # Dovecot's unprivileged processes walk into it.
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.passwd_dir = os.path.join(self.dir, "passwd.d")
        self.mail_root = os.path.join(self.dir, "mail")
        self.dovecot_conf = os.path.join(self.dir, "dovecot.conf")
        self.dovecot_log = os.path.join(self.dir, "dovecot.log")
        self.redis_log = os.path.join(self.dir, "redis.log")
        self.instance = f"{name}-{os.getpid()}-{next(_instance_counter)}"
        self.users = {}
        self.dovecot = None
        self.redis = None
        self.popgates = []
        names = ("imap", "imaps", "pop3", "pop3s", "lmtp", "redis")
        self.ports = dict(zip(names, free_ports(len(names))))
        if os.geteuid() == 0:
            # Mail belongs to nobody, as on a real server it belongs to vmail.
            self.mail_uid, self.mail_gid = 65534, 65534
            self.service_user = self.service_group = None
        else:
            self.mail_uid, self.mail_gid = os.getuid(), os.getgid()
            self.service_user = pwd.getpwuid(os.getuid()).pw_name
            self.service_group = grp.getgrgid(os.getgid()).gr_name

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        try:
            self._make_cert()
            os.makedirs(self.mail_root, mode=0o755)
            self._chown(self.mail_root)
            os.makedirs(self.passwd_dir, mode=0o755)
            self._write_dovecot_conf()
            self._start_dovecot()
            if self.with_redis:
                self._start_redis()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        """Stop popgates, Dovecot and Redis by PID, wait for them, remove the
        directory. Never raises for an already stopped piece."""
        for pg in list(self.popgates):
            pg.stop(check=False)
        self.popgates.clear()
        stop_process(self.dovecot)
        self.dovecot = None
        stop_process(self.redis)
        self.redis = None
        if self.dir and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- pieces ------------------------------------------------------------
    def _chown(self, path):
        if os.geteuid() == 0:
            os.chown(path, self.mail_uid, self.mail_gid)

    def _make_cert(self):
        subprocess.run(
            [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
             "-keyout", self.key, "-out", self.cert],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        os.chmod(self.key, 0o600)

    def _write_dovecot_conf(self):
        T = self.dir
        p = self.ports
        lines = [
            f"protocols = {' '.join(self.protocols)}",
            "listen = 127.0.0.1",
            f"base_dir = {T}/run",
            f"state_dir = {T}/state",
            f"instance_name = {self.instance}",
            f"log_path = {self.dovecot_log}",
            "ssl = yes",
            f"ssl_cert = <{self.cert}",
            f"ssl_key = <{self.key}",
            f"ssl_dh = <{DH_FILE}",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            # popgate has its own failure delay; Dovecot's would only slow tests.
            "auth_failure_delay = 0",
            # No auth penalty: after a few failed logins it would delay every
            # login from 127.0.0.1 (popgate's and the tests') by up to 15 s.
            # Dovecot disables it when auth cannot open this socket.

            f"mail_location = maildir:{self.mail_root}/%u/Maildir",
            "pop3_uidl_format = %08Xu%08Xv",
            # A special-use Trash, as real servers have, for on_dele = trash.
            "namespace inbox {",
            "  inbox = yes",
            *(["  mailbox Trash {", "    special_use = \\Trash", "    auto = create", "  }"]
              if self.with_trash else []),
            "}",
            # Tests find a user's imap process by its title to kill it.
            "verbose_proctitle = yes",
            f"first_valid_uid = {min(self.mail_uid, 500)}",
            f"first_valid_gid = {min(self.mail_gid, 1)}",
            "passdb {",
            "  driver = passwd-file",
            # One file per user: Dovecot re-reads a passwd-file at most once a
            # second, so a user added to a shared file just after a login
            # would not exist yet; a new file is read when first needed.
            f"  args = scheme=PLAIN username_format=%u {self.passwd_dir}/%u",
            "}",
            "userdb {",
            "  driver = static",
            f"  args = uid={self.mail_uid} gid={self.mail_gid} home={self.mail_root}/%u",
            "}",
            "protocol imap {",
            "  mail_max_userip_connections = 100",
            "}",
            "protocol pop3 {",
            "  mail_max_userip_connections = 100",
            "}",
        ]
        chroot = []
        if self.service_user:
            # Without root Dovecot cannot switch users or chroot: run everything
            # as the invoking user.
            lines += [f"default_login_user = {self.service_user}",
                      f"default_internal_user = {self.service_user}",
                      f"default_internal_group = {self.service_group}"]
            chroot = ["  chroot ="]
        # No auth penalty: after a few failed logins it would delay every login
        # from 127.0.0.1 (popgate's and the tests') by up to 15 s. Dovecot
        # disables it when auth cannot open this socket.
        lines += ["service anvil {",
                  "  unix_listener anvil-auth-penalty {",
                  "    mode = 0",
                  "  }"] + chroot + ["}"]
        lines += ["service imap-login {",
                  f"  inet_listener imap {{\n    port = {p['imap']}\n  }}",
                  f"  inet_listener imaps {{\n    port = {p['imaps']}\n  }}"] + chroot + ["}"]
        if "pop3" in self.protocols:
            lines += ["service pop3-login {",
                      f"  inet_listener pop3 {{\n    port = {p['pop3']}\n  }}",
                      f"  inet_listener pop3s {{\n    port = {p['pop3s']}\n  }}"] + chroot + ["}"]
        if "lmtp" in self.protocols:
            lines += ["service lmtp {",
                      f"  inet_listener lmtp {{\n    port = {p['lmtp']}\n  }}",
                      "}"]
        lines = self._apply_dovecot_settings(lines)
        with open(self.dovecot_conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _apply_dovecot_settings(self, lines):
        extra = self.dovecot_settings
        if not extra:
            return lines
        if isinstance(extra, str):
            return lines + [extra]
        lines = list(lines)
        for key, value in extra.items():
            if any(c in f"{key}{value}" for c in "\r\n"):
                raise ValueError(f"one Dovecot setting a line: {key!r}")
            setting = f"{key} = {value}"
            for i, ln in enumerate(lines):
                # Only top-level "key = value" lines (no indentation).
                if ln.split(" = ", 1)[0] == key and not ln.startswith(" "):
                    lines[i] = setting
                    break
            else:
                # Appended after the blocks: a top-level setting there is
                # still global to Dovecot.
                lines.append(setting)
        return lines

    def dovecot_endpoints(self):
        eps = [(self.host, self.ports["imap"]), (self.host, self.ports["imaps"])]
        if "pop3" in self.protocols:
            eps += [(self.host, self.ports["pop3"]), (self.host, self.ports["pop3s"])]
        if "lmtp" in self.protocols:
            eps.append((self.host, self.ports["lmtp"]))
        return eps

    def _start_dovecot(self):
        log = open(os.path.join(self.dir, "dovecot.stderr"), "wb")
        try:
            self.dovecot = subprocess.Popen(
                [DOVECOT, "-F", "-c", self.dovecot_conf],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent)
        finally:
            log.close()
        wait_for_ports(self.dovecot_endpoints(), self.dovecot, START_TIMEOUT, "dovecot",
                       self.dovecot_log)

    def _start_redis(self):
        log = open(self.redis_log, "wb")
        try:
            self.redis = subprocess.Popen(
                [REDIS, "--save", "", "--appendonly", "no", "--port", str(self.ports["redis"]),
                 "--bind", "127.0.0.1", "--dir", self.dir, "--daemonize", "no"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent)
        finally:
            log.close()
        wait_for_ports([(self.host, self.ports["redis"])], self.redis, START_TIMEOUT,
                       "redis-server", self.redis_log)

    def stop_dovecot(self):
        """Stop this test bed's Dovecot (by PID, waiting for it and its
        children), e.g. to take an old POP3 server away. Mail stays."""
        stop_process(self.dovecot)
        self.dovecot = None
        # Not port_free(): connections in TIME_WAIT keep a plain bind() off
        # the port, though Dovecot (SO_REUSEADDR) could listen there again.
        wait_for(lambda: not any(port_accepts(h, port) for h, port in self.dovecot_endpoints()),
                 STOP_TIMEOUT, "dovecot's ports to close")

    def start_dovecot(self):
        """Start Dovecot again after stop_dovecot() (same config, ports, mail)."""
        if self.dovecot is not None and self.dovecot.poll() is None:
            return
        self._start_dovecot()

    # -- users and mail ----------------------------------------------------
    def add_user(self, name, password):
        """Add a passwd-file user. Neither field may hold ':' or a line break
        (passwd-file syntax), nor the name a '/' (it is a file name)."""
        for field in (name, password):
            if any(c in field for c in ":\r\n\0"):
                raise ValueError(f"passwd-file cannot hold {field!r}")
        if "/" in name or name in (".", "..") or name in self.users:
            raise ValueError(f"bad or duplicate user name {name!r}")
        path = os.path.join(self.passwd_dir, name)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(f"{name}:{{PLAIN}}{password}::::::\n")
        os.rename(path + ".tmp", path)
        self.users[name] = password
        return name

    def maildir(self, user):
        return os.path.join(self.mail_root, user, "Maildir")

    def _ensure_maildir(self, user):
        return ensure_maildir(os.path.join(self.mail_root, user), self._chown)

    def seed(self, user, messages, flags=""):
        """Deliver messages (bytes each, exact) into user's INBOX, in order.
        flags: Maildir info letters (e.g. "S" for \\Seen) for all of them; with
        flags the file goes to cur/, as a client that had read it would leave it.
        Returns the file names."""
        return maildir_deliver(self._ensure_maildir(user), messages, flags, self._chown, "testbed")

    def imap(self, user, password=None):
        """A logged-in imaplib connection to the test bed's Dovecot (plain
        IMAP on loopback; the caller logs out)."""
        conn = imaplib.IMAP4(self.host, self.ports["imap"], timeout=30)
        conn.login(user, password if password is not None else self.users[user])
        return conn

    # -- the upstream-bed interface (deploy/dev/upstream_beds.py) ------------
    kind = "dovecot"

    def create_trash(self, user):
        """The \\Trash special-use mailbox: the config has it (auto = create)."""
        return "Trash"

    def popgate_upstream(self):
        """The [upstream] keys that point a popgate at this Dovecot."""
        return {"host": self.host, "port": self.ports["imap"], "tls": "starttls",
                "ca_file": self.cert, "verify": "yes", "verify_name": "localhost"}

    def log_tail(self, n=60):
        return log_tail(self.dovecot_log, n)

    @property
    def capabilities(self):
        """IMAP capabilities after login (of a probe user added on first use)."""
        if "pgprobe" not in self.users:
            self.add_user("pgprobe", "probe-pw")
        conn = self.imap("pgprobe")
        try:
            typ, data = conn.capability()
            assert typ == "OK", data
            return set(data[0].decode().upper().split())
        finally:
            conn.logout()

    def imap_process_pids(self, user):
        """PIDs of Dovecot imap processes serving user (verbose_proctitle)."""
        pids = []
        # Titles look like "dovecot-<instance>/imap [alice 127.0.0.1 UID fetch]".
        marker = f"/imap [{user} ".encode()
        for pid in _descendants(self.dovecot.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if marker in cmd:
                pids.append(pid)
        return pids

    def popgate(self, **kwargs):
        """A Popgate wired to this test bed; see Popgate."""
        pg = Popgate(self, **kwargs)
        self.popgates.append(pg)
        return pg

    def describe(self):
        p = self.ports
        return (f"test bed in {self.dir}\n"
                f"  dovecot imap {self.host}:{p['imap']} (STARTTLS), imaps {p['imaps']}, "
                f"pop3 {p['pop3']}, pop3s {p['pop3s']}, lmtp {p['lmtp']}\n"
                + (f"  redis {self.host}:{p['redis']}\n" if self.with_redis else "")
                + f"  CA/cert {self.cert}")


def _descendants(pid):
    out = []
    todo = [pid]
    while todo:
        kids = _children_of(todo.pop())
        out += kids
        todo += kids
    return out


# -- popgate ---------------------------------------------------------------
def default_popgate_binary():
    return os.environ.get("POPGATE_BIN", "./popgate")


def format_ini(sections):
    """sections: {section: {key: value or list of values}} -> INI text. A list
    becomes one line per value (repeatable keys such as listen)."""
    out = []
    for section, items in sections.items():
        out.append(f"[{section}]")
        for key, value in items.items():
            values = value if isinstance(value, (list, tuple)) else [value]
            for v in values:
                if isinstance(v, bool):
                    v = "yes" if v else "no"
                out.append(f"{key} = {v}")
        out.append("")
    return "\n".join(out)


class Popgate:
    """One popgate process with a config generated for a Testbed.

    server / upstream: dicts merged over the defaults (a value of None removes
    a default key). By default it listens on one free plaintext+STLS port and
    one implicit-TLS port on 127.0.0.1 (ports=(port, tls_port) chooses them),
    and talks STARTTLS to the test bed's Dovecot with certificate
    verification against "localhost".
    Attributes: port (plaintext/STLS), tls_port, config_path, log_path, proc.
    """

    def __init__(self, testbed, *, server=None, upstream=None, extra_sections=None,
                 binary=None, name=None, env=None, ports=None):
        self.testbed = testbed
        self.binary = os.path.abspath(binary or default_popgate_binary())
        n = next(_instance_counter)
        self.name = name or f"popgate{n}"
        self.port, self.tls_port = ports or free_ports(2)
        self.config_path = os.path.join(testbed.dir, f"{self.name}.conf")
        self.log_path = os.path.join(testbed.dir, f"{self.name}.log")
        self.env = env
        srv = {
            "listen": f"127.0.0.1:{self.port}",
            "listen_tls": f"127.0.0.1:{self.tls_port}",
            "tls_cert": testbed.cert,
            "tls_key": testbed.key,
            "allow_plaintext_auth": "no",
            "auth_failure_delay": 0,
            "preauth_timeout": 60,
            "idle_timeout": 600,
            "shutdown_timeout": 5,
            "max_bad_commands": 10,
        }
        up = {
            "host": "127.0.0.1",
            "port": testbed.ports["imap"],
            "tls": "starttls",
            "ca_file": testbed.cert,
            "verify": "yes",
            "verify_name": "localhost",
            "connect_timeout": 10,
            "command_timeout": 60,
            "mailbox": "INBOX",
        }
        for base, over in ((srv, server), (up, upstream)):
            for k, v in (over or {}).items():
                if v is None:
                    base.pop(k, None)
                else:
                    base[k] = v
        # Device state lives in the test bed's Redis. The policy defaults here
        # are the classic leave-on-server maildrop (every message, DELE
        # expunges at QUIT), which the command/integrity/client tests assume;
        # tests of devices and views pass their own [policy].
        self.sections = {
            "server": srv,
            "upstream": up,
            "redis": {"address": f"{testbed.host}:{testbed.ports['redis']}", "timeout": 2},
            "policy": {"view": "all", "on_retr": "seen", "on_dele": "expunge"},
        }
        self.sections.update(extra_sections or {})
        self.proc = None

    def endpoints(self):
        eps = []
        for key in ("listen", "listen_tls"):
            vals = self.sections["server"].get(key)
            for v in (vals if isinstance(vals, (list, tuple)) else [vals] if vals else []):
                host, _, port = str(v).rpartition(":")
                eps.append((host.strip("[]"), int(port)))
        return eps

    def write_config(self):
        with open(self.config_path, "w") as f:
            f.write(format_ini(self.sections))
        return self.config_path

    def check_config(self):
        """popgate -t: returns (exit status, output)."""
        self.write_config()
        r = subprocess.run([self.binary, "-t", "-c", self.config_path],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")

    def start(self, timeout=START_TIMEOUT):
        if not os.access(self.binary, os.X_OK):
            raise FileNotFoundError(
                f"popgate binary {self.binary} is missing or not executable "
                "(build it with `make popgate`, or set POPGATE_BIN)")
        self.write_config()
        env = dict(os.environ)
        # Sanitizer builds: report everything into the log and fail hard.
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        env.update(self.env or {})
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [self.binary, "-c", self.config_path],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                preexec_fn=_die_with_parent)
        finally:
            log.close()
        try:
            wait_for_ports(self.endpoints(), self.proc, timeout, "popgate", self.log_path)
        except BaseException:
            self.stop(check=False)
            raise
        return self

    def reload(self, timeout=START_TIMEOUT):
        """Write the config from self.sections (change them first), send
        SIGHUP and wait for popgate to log the reload. Returns True when it
        logged `event=reload ... result=ok`, False on `event=reload-failed`
        (it then keeps the old config)."""
        self.write_config()
        def outcomes():
            text = self.log()
            return (len(re.findall(r"event=reload .*result=ok", text)),
                    text.count("event=reload-failed"))
        before = outcomes()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ok, failed = outcomes()
            if ok > before[0]:
                return True
            if failed > before[1]:
                return False
            if not self.running():
                raise AssertionError("popgate exited on SIGHUP" + log_tail(self.log_path))
            time.sleep(0.05)
        raise AssertionError("popgate did not log a reload within "
                             f"{timeout:.0f}s of SIGHUP" + log_tail(self.log_path))

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def sanitizer_reports(self):
        text = self.log()
        marks = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                 "WARNING: ThreadSanitizer")
        return [ln for ln in text.splitlines() if any(m in ln for m in marks)]

    def stop(self, check=True, timeout=None):
        """SIGTERM, wait (drain), SIGKILL after timeout. With check, raise if it
        did not exit 0 by itself or the log holds a sanitizer report."""
        if self.proc is None:
            return None
        if timeout is None:
            # The drain, then the sanitizer's exit-time leak check, which
            # is slow on a loaded machine.
            timeout = float(self.sections["server"].get("shutdown_timeout", 5)) + STOP_TIMEOUT
        was_running = self.proc.poll() is None
        killed = False
        if was_running:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                killed = True
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        status = self.proc.returncode
        self.proc = None
        if self in self.testbed.popgates:
            self.testbed.popgates.remove(self)
        if check:
            problems = []
            if killed:
                problems.append(f"did not exit within {timeout:.0f}s of SIGTERM")
            elif not was_running:
                problems.append(f"had already exited (status {status}) before SIGTERM")
            elif status != 0:
                problems.append(f"exited with status {status} after SIGTERM")
            reports = self.sanitizer_reports()
            if reports:
                problems.append("sanitizer reports: " + "; ".join(reports[:5]))
            if problems:
                raise AssertionError(f"popgate {self.name}: " + ", ".join(problems)
                                     + log_tail(self.log_path, 60))
        return status


# -- CLI -------------------------------------------------------------------
def run_until_interrupted(run, stop):
    """For a bed run by hand: run() (start and print), then wait for Ctrl-C
    or SIGTERM; stop() in every case. Returns 0."""
    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    try:
        run()
        print("Ctrl-C stops everything.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0


def _main(argv=None):
    ap = argparse.ArgumentParser(description="Run a throwaway Dovecot + Redis (+ popgate) on loopback.")
    ap.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                    help="add a user (repeatable); default demo:demo")
    ap.add_argument("--seed-dir", metavar="DIR",
                    help="deliver every file in DIR (sorted) to each user, byte for byte")
    ap.add_argument("--popgate", action="store_true",
                    help="also start popgate (POPGATE_BIN, default ./popgate)")
    args = ap.parse_args(argv)
    tb = Testbed()

    def run():
        tb.start()
        for spec in args.user or ["demo:demo"]:
            name, _, pw = spec.partition(":")
            tb.add_user(name, pw)
            if args.seed_dir:
                files = sorted(os.listdir(args.seed_dir))
                msgs = []
                for fn in files:
                    with open(os.path.join(args.seed_dir, fn), "rb") as f:
                        msgs.append(f.read())
                tb.seed(name, msgs)
        print(tb.describe())
        print("  users: " + ", ".join(f"{u}/{p}" for u, p in tb.users.items()))
        if args.popgate:
            pg = tb.popgate().start()
            print(f"  popgate {pg.port} (STLS), {pg.tls_port} (TLS), log {pg.log_path}")
    return run_until_interrupted(run, tb.stop)


if __name__ == "__main__":
    sys.exit(_main())
