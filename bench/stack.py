"""The servers under test, started on loopback in one temporary directory.

- Dovecot A: IMAP and native POP3 on one Maildir tree (the no-extra-hop limit).
- Dovecot B: POP3 only, mail from Dovecot A over IMAP (`mail_location = imapc:`).
- perdition: POP3 (and POP3S) relayed to Dovecot A's POP3 (a plain proxy hop).
- popgate: POP3 (and POP3S) to Dovecot A's IMAP, with Redis beside it.

Every piece is started by this module and stopped by PID in Stack.stop(),
which is safe after a failed start. A piece that fails to start is recorded in
Stack.failures and its peer is skipped; the others still run. Children get
PR_SET_PDEATHSIG, so a killed harness leaves no server behind.

Dovecot runs in one of two modes (Stack.dovecot_mode):

- "default": Dovecot's own defaults for the process model (login processes in
  high-security mode, one per connection; a new imap/pop3 process per session;
  nothing kept ready). Only the limits are raised, so that 10,000 idle
  connections fit: default_process_limit and default_client_limit (which
  the login and auth services take theirs from). The issue 17 targets are
  measured this way.
- "tuned": the strongest baseline: login processes in high-performance mode
  (many clients per process, one per core kept ready) and imap/pop3
  processes reused across sessions, with the same raised limits, plus
  process_limit of imap/pop3 and mail_max_userip_connections. The
  "Dovecot tuned" table and the runs before issue 17 use it.
"""

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "deploy", "dev"))

from testbed import free_ports, stop_process, wait_for_ports  # noqa: E402

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
PERDITION_POP3 = shutil.which("perdition.pop3") or "/usr/sbin/perdition.pop3"
PERDITION_POP3S = shutil.which("perdition.pop3s") or "/usr/sbin/perdition.pop3s"
DH_FILE = "/usr/share/dovecot/dh.pem"
START_TIMEOUT = 30.0
# Room for 10,000 idle connections on both sides of a proxy, plus Dovecot's
# internal sockets.
CONN_LIMIT = 30000
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)

PEERS = ("dovecot", "imapc", "perdition", "popgate")
DOVECOT_MODES = ("default", "tuned")
PEER_TITLES = {
    "dovecot": "Dovecot POP3 (native)",
    "imapc": "Dovecot POP3 over imapc",
    "perdition": "perdition → Dovecot POP3",
    "popgate": "popgate → Dovecot IMAP",
}


def _die_with_parent():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class StartError(Exception):
    pass


class Peer:
    """One POP3 server under test. own: PIDs whose trees are the peer itself
    (the gateway); uses_backend: it reads mail through Dovecot A."""

    def __init__(self, name, port, tls_port, own, uses_backend, rss_pid=None, note=""):
        self.name = name
        self.title = PEER_TITLES[name]
        self.port = port
        self.tls_port = tls_port
        self.own = own
        self.uses_backend = uses_backend
        self.rss_pid = rss_pid  # single-process peers: its own RSS is reported
        self.note = note


class Stack:
    host = "127.0.0.1"

    def __init__(self, popgate_bin, popgate_set=(), parent_dir=None, dovecot_mode="tuned"):
        if dovecot_mode not in DOVECOT_MODES:
            raise ValueError(f"unknown Dovecot mode {dovecot_mode}")
        # Read at each (re)start: restart() after changing it switches modes.
        self.dovecot_mode = dovecot_mode
        # Default mode only: login services in high-performance mode, which
        # 10,000 idle pre-login connections need (run.py sets it for (d)).
        self.login_high_performance = False
        self.dir = tempfile.mkdtemp(prefix="popgate-bench-", dir=parent_dir)
        os.chmod(self.dir, 0o755)  # Dovecot's unprivileged processes walk into it.
        self.popgate_bin = os.path.abspath(popgate_bin)
        self.popgate_exe = None  # private copy, made at the first start
        self.popgate_set = list(popgate_set)
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        self.passwd = os.path.join(self.dir, "passwd")
        self.mail_root = os.path.join(self.dir, "mail")
        names = ("a_imap", "a_imaps", "a_pop3", "a_pop3s", "b_pop3", "b_pop3s",
                 "perdition", "perdition_tls", "popgate", "popgate_tls", "redis")
        self.ports = dict(zip(names, free_ports(len(names))))
        self.procs = {}
        self.peers = {}
        self.failures = {}
        self.popgate_notes = []
        if os.geteuid() == 0:
            # Mail belongs to nobody, as on a real server it belongs to vmail.
            self.mail_uid, self.mail_gid = 65534, 65534
            self.service_user = None
        else:
            import grp
            import pwd
            self.mail_uid, self.mail_gid = os.getuid(), os.getgid()
            self.service_user = (pwd.getpwuid(os.getuid()).pw_name,
                                 grp.getgrgid(os.getgid()).gr_name)
        self.ncpu = os.cpu_count() or 1

    # -- lifecycle ---------------------------------------------------------
    def prepare(self, users):
        """Certificate, passwd file and mail root; users: {name: password}."""
        subprocess.run(
            [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
             "-keyout", self.key, "-out", self.cert],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        os.chmod(self.key, 0o600)
        os.makedirs(self.mail_root, mode=0o755)
        self.chown(self.mail_root)
        with open(self.passwd, "w") as f:
            for name, pw in users.items():
                f.write(f"{name}:{{PLAIN}}{pw}::::::\n")
        os.chmod(self.passwd, 0o644)

    def start(self, which=PEERS):
        """Start Dovecot A and the peers named in which. Failures are recorded,
        not raised, except for Dovecot A, which every peer needs."""
        self._start_dovecot_a()
        self.peers["dovecot"] = Peer("dovecot", self.ports["a_pop3"], self.ports["a_pop3s"],
                                     own=[self.procs["dovecot_a"].pid], uses_backend=False)
        starters = {"imapc": self._start_dovecot_b, "perdition": self._start_perdition,
                    "popgate": self._start_popgate}
        for name in which:
            if name == "dovecot":
                continue
            try:
                self.peers[name] = starters[name]()
            except (StartError, OSError, subprocess.SubprocessError) as e:
                self.failures[name] = str(e)
        return self

    def restart(self, which=None):
        """Stop every server and start it again on the same ports and mail
        (only the peers in which, if given). A fresh process has no heap left
        over from earlier workloads, so the memory that new connections take
        shows as growth instead of being served from memory an earlier
        workload freed. It is also how the Dovecot mode changes."""
        which = list(self.peers) if which is None else list(which)
        self._stop_processes()
        self.peers.clear()
        return self.start(which)

    def _stop_processes(self):
        for key in reversed(list(self.procs)):
            try:
                stop_process(self.procs[key])
            except Exception as e:  # keep stopping the others
                print(f"bench: stopping {key}: {e}", file=sys.stderr)
        self.procs.clear()

    def stop(self):
        """Stop everything by PID, newest first, and remove the directory."""
        self._stop_processes()
        if self.dir and os.path.isdir(self.dir) and not os.environ.get("BENCH_KEEP_DIR"):
            # rm is several times faster than shutil.rmtree on the
            # half-million hard links of a full run.
            subprocess.run(["rm", "-rf", "--one-file-system", self.dir], check=False)
            shutil.rmtree(self.dir, ignore_errors=True)

    def backend_pids(self):
        return [self.procs["dovecot_a"].pid] if "dovecot_a" in self.procs else []

    def chown(self, path):
        if os.geteuid() == 0:
            os.chown(path, self.mail_uid, self.mail_gid)

    # -- helpers -----------------------------------------------------------
    def _spawn(self, key, argv, log_name, env=None):
        log = open(os.path.join(self.dir, log_name), "ab")
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT, env=env,
                                    preexec_fn=_die_with_parent)
        finally:
            log.close()
        self.procs[key] = proc
        return proc

    def _wait(self, key, endpoints, what, log_name):
        try:
            wait_for_ports(endpoints, self.procs[key], START_TIMEOUT, what,
                           os.path.join(self.dir, log_name))
        except RuntimeError as e:
            stop_process(self.procs.pop(key))
            raise StartError(str(e)) from None

    def _dovecot_common(self, tag, protocols, log_name):
        T = os.path.join(self.dir, tag)
        os.makedirs(T, exist_ok=True)
        lines = [
            f"protocols = {protocols}",
            "listen = 127.0.0.1",
            f"base_dir = {T}/run",
            f"state_dir = {T}/state",
            f"instance_name = pgbench-{tag}-{os.getpid()}",
            f"log_path = {os.path.join(self.dir, log_name)}",
            "ssl = yes",
            f"ssl_cert = <{self.cert}",
            f"ssl_key = <{self.key}",
            f"ssl_dh = <{DH_FILE}",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login",
            "pop3_uidl_format = %08Xu%08Xv",
            f"first_valid_uid = {min(self.mail_uid, 500)}",
            f"first_valid_gid = {min(self.mail_gid, 1)}",
            # Both modes: 10,000 idle connections (d) must fit. Login services
            # take their process and client limits from these, auth and anvil
            # their client limit.
            f"default_process_limit = {CONN_LIMIT}",
            f"default_client_limit = {CONN_LIMIT}",
        ]
        if self.dovecot_mode == "tuned":
            lines.append(f"mail_max_userip_connections = {CONN_LIMIT}")
        login_extra = []
        if self.service_user:
            # Without root Dovecot cannot switch users or chroot.
            user, group = self.service_user
            lines += [f"default_login_user = {user}", f"default_internal_user = {user}",
                      f"default_internal_group = {group}",
                      "service anvil {", "  chroot =", "}"]
            login_extra = ["  chroot ="]
        return T, lines, login_extra

    def _login_service(self, name, listeners, extra):
        out = [f"service {name} {{"]
        for lname, port in listeners:
            out += [f"  inet_listener {lname} {{", f"    port = {port}", "  }"]
        if self.dovecot_mode == "tuned":
            # High-performance mode: a login process serves many clients.
            out += ["  service_count = 0", f"  process_min_avail = {self.ncpu}",
                    f"  client_limit = {CONN_LIMIT}"]
        elif self.login_high_performance:
            out += ["  service_count = 0", f"  client_limit = {CONN_LIMIT}"]
        # Default: high-security mode (service_count = 1, a process per
        # connection, none kept ready); process_limit comes from
        # default_process_limit.
        return out + extra + ["}"]

    def _mail_service(self, name):
        if self.dovecot_mode != "tuned":
            # Defaults: a new process per session, none kept ready,
            # process_limit 1,024 (the 1,000 logged-in connections of (d) fit).
            return []
        return [f"service {name} {{", "  service_count = 0",
                f"  process_min_avail = {self.ncpu}", f"  process_limit = {CONN_LIMIT}", "}"]

    def dovecot_settings(self):
        """The service settings this mode writes, as text for the results."""
        if self.dovecot_mode == "tuned":
            return (f"imap-login/pop3-login: service_count = 0, process_min_avail = {self.ncpu}, "
                    f"client_limit = {CONN_LIMIT}; imap/pop3: service_count = 0, "
                    f"process_min_avail = {self.ncpu}, process_limit = {CONN_LIMIT}; "
                    f"default_process_limit = default_client_limit = "
                    f"mail_max_userip_connections = {CONN_LIMIT}")
        return ("service_count, process_min_avail, client_limit and process_limit of "
                "imap-login/pop3-login/imap/pop3 and mail_max_userip_connections at Dovecot's "
                f"defaults; default_process_limit = default_client_limit = {CONN_LIMIT}; "
                "for (d) only, imap-login/pop3-login in high-performance mode "
                f"(service_count = 0, client_limit = {CONN_LIMIT})")

    # -- Dovecot A ---------------------------------------------------------
    def _start_dovecot_a(self):
        T, lines, login_extra = self._dovecot_common("a", "imap pop3", "dovecot-a.log")
        p = self.ports
        lines += [
            f"mail_location = maildir:{self.mail_root}/%u/Maildir",
            "passdb {", "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {self.passwd}", "}",
            "userdb {", "  driver = static",
            f"  args = uid={self.mail_uid} gid={self.mail_gid} home={self.mail_root}/%u", "}",
        ]
        lines += self._login_service("imap-login", [("imap", p["a_imap"]), ("imaps", p["a_imaps"])],
                                     login_extra)
        lines += self._login_service("pop3-login", [("pop3", p["a_pop3"]), ("pop3s", p["a_pop3s"])],
                                     login_extra)
        lines += self._mail_service("imap") + self._mail_service("pop3")
        conf = os.path.join(T, "dovecot.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self._spawn("dovecot_a", [DOVECOT, "-F", "-c", conf], "dovecot-a.stderr")
        self._wait("dovecot_a", [(self.host, p[k]) for k in ("a_imap", "a_imaps", "a_pop3", "a_pop3s")],
                   "dovecot A", "dovecot-a.log")

    # -- Dovecot B (POP3 over imapc) ---------------------------------------
    def _start_dovecot_b(self):
        T, lines, login_extra = self._dovecot_common("b", "pop3", "dovecot-b.log")
        p = self.ports
        home = os.path.join(T, "home")
        os.makedirs(home, mode=0o755, exist_ok=True)
        self.chown(home)
        lines += [
            # Index and cache stay local (~/imapc), as a real imapc proxy keeps them.
            "mail_location = imapc:~/imapc",
            "imapc_host = 127.0.0.1",
            f"imapc_port = {p['a_imap']}",
            "imapc_ssl = no",
            # STAT and LIST need sizes: take RFC822.SIZE instead of the bodies.
            "imapc_features = rfc822.size",
            # B checks the password itself (same passwd file) and hands it on to
            # A through the userdb: one IMAP login per POP3 session. With
            # `passdb imap` it would log in twice.
            "passdb {", "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {self.passwd}",
            "  override_fields = userdb_imapc_user=%u userdb_imapc_password=%w", "}",
            "userdb {", "  driver = static",
            f"  args = uid={self.mail_uid} gid={self.mail_gid} home={home}/%u", "}",
        ]
        lines += self._login_service("pop3-login", [("pop3", p["b_pop3"]), ("pop3s", p["b_pop3s"])],
                                     login_extra)
        lines += self._mail_service("pop3")
        conf = os.path.join(T, "dovecot.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self._spawn("dovecot_b", [DOVECOT, "-F", "-c", conf], "dovecot-b.stderr")
        self._wait("dovecot_b", [(self.host, p["b_pop3"]), (self.host, p["b_pop3s"])],
                   "dovecot B (imapc)", "dovecot-b.log")
        return Peer("imapc", p["b_pop3"], p["b_pop3s"], own=[self.procs["dovecot_b"].pid],
                    uses_backend=True)

    # -- perdition ---------------------------------------------------------
    def _perdition_argv(self, binary, port, extra):
        run_as = ["-u", "nobody", "-g", "nogroup"] if os.geteuid() == 0 else []
        return [binary, "--no_daemon", "-F", os.path.join(self.dir, f"perdition-{port}.log"),
                "-b", f"127.0.0.1:{port}", "-l", str(port),
                # No popmap: every user goes to Dovecot A's POP3 ("pure proxy").
                "-M", "", "-s", f"127.0.0.1:{self.ports['a_pop3']}",
                "-n", "--pid_file", "", "--connection_limit", "0",
                "--authenticate_timeout", "600", "--timeout", "600"] + run_as + extra

    def _start_perdition(self):
        p = self.ports
        self._spawn("perdition", self._perdition_argv(PERDITION_POP3, p["perdition"],
                                                      ["--ssl_mode", "none"]),
                    "perdition.stderr")
        self._wait("perdition", [(self.host, p["perdition"])], "perdition", "perdition.stderr")
        own = [self.procs["perdition"].pid]
        tls_port = None
        try:
            self._spawn("perdition_tls", self._perdition_argv(
                PERDITION_POP3S, p["perdition_tls"],
                ["--ssl_mode", "ssl_listen", "--ssl_cert_file", self.cert,
                 "--ssl_key_file", self.key]), "perdition-tls.stderr")
            self._wait("perdition_tls", [(self.host, p["perdition_tls"])], "perdition.pop3s",
                       "perdition-tls.stderr")
            own.append(self.procs["perdition_tls"].pid)
            tls_port = p["perdition_tls"]
        except StartError as e:
            self.failures["perdition (POP3S)"] = str(e)
        return Peer("perdition", p["perdition"], tls_port, own=own, uses_backend=True)

    # -- popgate and Redis -------------------------------------------------
    # Settings a popgate build may not know yet: (section, key, value, why).
    # One that `popgate -t` refuses is left out and the results say so.
    POPGATE_OPTIONAL = (
        ("server", "max_connections_per_addr", "0",
         "every client of the benchmark comes from 127.0.0.1"),
        ("redis", "address", None, "device state"),
        # Every message in every session, as Dovecot's POP3 serves them: the
        # default view hides what was read, which would leave the repeated
        # sessions of (b) with nothing to RETR.
        ("policy", "view", "all", "the leave-on-server maildrop Dovecot serves"),
    )

    def _popgate_config(self, skip):
        p = self.ports
        sections = {
            "server": {
                "listen": f"127.0.0.1:{p['popgate']}",
                "listen_tls": f"127.0.0.1:{p['popgate_tls']}",
                "tls_cert": self.cert,
                "tls_key": self.key,
                "allow_plaintext_auth": "yes",
                "max_connections": str(CONN_LIMIT),
                "preauth_timeout": "600",
                "idle_timeout": "600",
                "shutdown_timeout": "5",
                "auth_failure_delay": "0",
            },
            "upstream": {
                "host": "127.0.0.1",
                "port": str(p["a_imap"]),
                "tls": "none",
                # As patient as the load generator's clients (pop3load -t 60,
                # and command_timeout below): with Dovecot's default settings
                # every upstream connection waits for an imap-login process
                # to be forked, and 200 clients logging in at once on 2 busy
                # cores can take longer than popgate's default 10 s for the
                # greeting; clients of native Dovecot just wait that long.
                "connect_timeout": "60",
                "command_timeout": "60",
                "mailbox": "INBOX",
            },
        }
        for section, key, value, _why in self.POPGATE_OPTIONAL:
            if (section, key) not in skip:
                sections.setdefault(section, {})[key] = (
                    value if value is not None else f"127.0.0.1:{p['redis']}")
        for item in self.popgate_set:
            key, _, value = item.partition("=")
            section, _, name = key.partition(".")
            sections.setdefault(section.strip(), {})[name.strip()] = value.strip()
        out = []
        for section, items in sections.items():
            out.append(f"[{section}]")
            out += [f"{k} = {v}" for k, v in items.items()]
            out.append("")
        return "\n".join(out)

    def _popgate_check(self, text):
        path = os.path.join(self.dir, "popgate.conf")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([self.popgate_exe, "-t", "-c", path], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30)
        return r.returncode == 0, (r.stdout + r.stderr).decode("utf-8", "replace").strip(), path

    def _popgate_copy(self):
        """The binary as it was when the run started: a rebuild of ./popgate
        during the run must not put two builds into one set of results."""
        if not os.access(self.popgate_bin, os.X_OK):
            raise StartError(f"{self.popgate_bin} is missing (build it with `make popgate`)")
        if self.popgate_exe is None:
            exe = os.path.join(self.dir, "popgate.bin")
            shutil.copy2(self.popgate_bin, exe)
            self.popgate_exe = exe
        return self.popgate_exe

    def _start_popgate(self):
        self._popgate_copy()
        p = self.ports
        self._spawn("redis", [REDIS, "--save", "", "--appendonly", "no", "--port", str(p["redis"]),
                              "--bind", "127.0.0.1", "--dir", self.dir, "--daemonize", "no"],
                    "redis.log")
        self._wait("redis", [(self.host, p["redis"])], "redis-server", "redis.log")
        skip = set()
        while True:
            ok, out, path = self._popgate_check(self._popgate_config(skip))
            if ok:
                break
            refused = next(((s, k) for s, k, _v, _w in self.POPGATE_OPTIONAL
                            if f"[{s}] {k}:" in out and (s, k) not in skip), None)
            if refused is None:
                raise StartError(f"popgate -t rejected the config: {out}")
            skip.add(refused)
        for section, key, _value, why in self.POPGATE_OPTIONAL:
            note = f"this popgate build refused [{section}] {key} ({why}): it ran without it"
            if (section, key) in skip and note not in self.popgate_notes:
                self.popgate_notes.append(note)
        self._spawn("popgate", [self.popgate_exe, "-c", path], "popgate.log")
        self._wait("popgate", [(self.host, p["popgate"]), (self.host, p["popgate_tls"])],
                   "popgate", "popgate.log")
        pid = self.procs["popgate"].pid
        return Peer("popgate", p["popgate"], p["popgate_tls"], own=[pid, self.procs["redis"].pid],
                    uses_backend=True, rss_pid=pid)

    def log_tail(self, name, lines=20):
        path = os.path.join(self.dir, name)
        try:
            with open(path, "rb") as f:
                tail = f.read().splitlines()[-lines:]
        except OSError:
            return ""
        return "\n".join(ln.decode("utf-8", "replace") for ln in tail)
