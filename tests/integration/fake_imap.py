"""A small scriptable IMAP server for faults a real server cannot produce.

It speaks just enough IMAP4rev1 for popgate's session: greeting, CAPABILITY,
STARTTLS (or implicit TLS), LOGIN with quoted strings and synchronising
literals, AUTHENTICATE PLAIN with or without SASL-IR, SELECT, the UID FETCH
listing, UID FETCH of a whole body or of several (popgate's prefetch), and
the UPDATE-state commands (recorded, answered OK). AUTHENTICATE XOAUTH2 and OAUTHBEARER take any bearer token
unless oauth_refuse is set: then the server sends the mechanisms' error
challenge ("+ " base64 JSON), records the client's answer as cmd.error_reply
and says NO [AUTHENTICATIONFAILED]; cmd.mech, cmd.user and cmd.token hold
what was sent. Everything a client sends is recorded byte for byte.

A test injects a fault with a hook: FakeImap.hooks[name] = fn(conn, tag, cmd).
The hook replaces the server's whole answer at that point and may write
anything (conn.send), stall (conn.stall) or hang up (conn.close). Hook points:
"greeting" (tag and cmd are None), "login" (LOGIN or AUTHENTICATE, called once
the command and its literals are read; cmd.user and cmd.password hold the
decoded credentials), "select", "listing", "body" (cmd.uid, cmd.data; also
a prefetch's UID FETCH of several bodies, with its first UID's), and
"UID STORE", "UID EXPUNGE", "UID MOVE", "UID COPY" (answered OK otherwise).

Provider traits: with "X-GM-EXT-1" in caps the listing answers X-GM-MSGID
(gm_msgid(uid), a fixed 64-bit number per message, as Gmail's survives a
UIDVALIDITY change); LIST returns `mailboxes` ((attributes, name) pairs, e.g.
("\\HasNoChildren \\Trash", "Trash")).

The LOGIN parser is strict RFC 3501 (quoted strings are 7-bit TEXT-CHARs with
only \\" and \\\\ escaped; 8-bit and specials need a literal) so a quoting
mistake in the client shows up as a recorded syntax error, not a silently
different password. A literal's bytes arriving before the server's "+"
continuation are recorded as a protocol violation too.

Each connection runs in its own daemon thread; stop() closes them all. Set
hooks, caps and accept between connections, not during one.
"""

import base64
import re
import select
import socket
import ssl
import threading
import time

LINE_MAX = 64 * 1024          # longest command line accepted
LITERAL_MAX = 1024 * 1024     # longest literal accepted in a command
EARLY_LITERAL_WAIT = 0.2      # seconds watched for literal bytes sent before "+"
INTERNALDATE = '"01-Jan-2024 00:00:00 +0000"'

# RFC 3501 atom-specials: ( ) { SP CTL % * " \ ]; an astring may hold "]".
_ATOM_SPECIALS = set(b'(){ %*"\\')


class Closed(Exception):
    """The client closed the connection."""


class Command:
    """One client command as read: tag, verb (upper case), the rest of the
    first line, and every byte received for it (literals included)."""

    def __init__(self, tag, verb, args, raw):
        self.tag = tag
        self.verb = verb
        self.args = args
        self.raw = raw
        self.user = None
        self.password = None
        self.uid = None
        self.data = None


class Connection:
    """One accepted client connection. Hooks use send(), stall(), close()."""

    def __init__(self, server, sock):
        self.server = server
        self.sock = sock
        self.buf = bytearray()
        self.received = bytearray()   # every byte read, in order
        self.commands = []            # Command objects, in order
        self.violations = []          # protocol violations by the client
        self.ended = threading.Event()  # the connection is closed, by either side
        self.tls = False

    # -- output ------------------------------------------------------------
    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            raise Closed() from None

    def line(self, text):
        self.send(text.encode() + b"\r\n" if isinstance(text, str) else text + b"\r\n")

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        raise Closed()

    def stall(self, limit=30.0):
        """Say nothing until the client hangs up (or limit seconds pass), then
        end the connection; what the client sends meanwhile is recorded."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                chunk = self._recv(0.1)
            except Closed:
                break
            if chunk is not None:
                self.received += chunk
        self.close()

    # -- input -------------------------------------------------------------
    def _recv(self, timeout):
        """Bytes that arrived within timeout (None if none); Closed at EOF."""
        if not (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            try:
                ready, _, _ = select.select([self.sock], [], [], timeout)
            except (ValueError, OSError):  # closed by stop()
                raise Closed() from None
            if not ready:
                return None
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            raise Closed()
        return data

    def _fill(self):
        while True:
            data = self._recv(1.0)
            if data is not None:
                self.received += data
                self.buf += data
                return
            if self.server.stopping.is_set():
                raise Closed()

    def read_line(self):
        """One line without CRLF (a bare LF ends a line too)."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 1]
                if line.endswith(b"\r"):
                    line = line[:-1]
                else:
                    self.violations.append("line ended by a bare LF")
                return line
            if len(self.buf) > LINE_MAX:
                self.violations.append("command line too long")
                raise Closed()
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def early_bytes(self):
        """True if the client sent more before we answered (literal before "+")."""
        if self.buf:
            return True
        try:
            data = self._recv(EARLY_LITERAL_WAIT)
        except Closed:
            return False
        if data is None:
            return False
        self.received += data
        self.buf += data
        return True


class SyntaxErrorInCommand(Exception):
    """A command the strict parser refuses (answered BAD, recorded)."""


class _ArgReader:
    """Reads astrings of a command that may continue over literals."""

    def __init__(self, conn, rest, raw):
        self.conn = conn
        self.rest = rest      # bytes of the current line not parsed yet
        self.raw = raw        # bytearray: the command as received

    def expect_space(self):
        if not self.rest.startswith(b" "):
            raise SyntaxErrorInCommand("expected SP")
        self.rest = self.rest[1:]

    def at_end(self):
        return self.rest == b""

    def astring(self):
        r = self.rest
        if r.startswith(b'"'):
            out = bytearray()
            i = 1
            while True:
                if i >= len(r):
                    raise SyntaxErrorInCommand("unterminated quoted string")
                c = r[i]
                if c == 0x22:
                    break
                if c == 0x5C:
                    if i + 1 >= len(r) or r[i + 1] not in (0x22, 0x5C):
                        raise SyntaxErrorInCommand("bad escape in quoted string")
                    out.append(r[i + 1])
                    i += 2
                    continue
                if c == 0 or c > 0x7F or c in (0x0D, 0x0A):
                    raise SyntaxErrorInCommand(f"octet 0x{c:02x} in a quoted string")
                out.append(c)
                i += 1
            self.rest = r[i + 1:]
            return bytes(out)
        # Only synchronising literals: LITERAL+ is not advertised.
        m = re.match(rb"\{(\d+)\}$", r)
        if m:
            n = int(m.group(1))
            if n > LITERAL_MAX:
                raise SyntaxErrorInCommand("literal too long")
            if self.conn.early_bytes():
                self.conn.violations.append("literal sent before the + continuation")
            self.conn.line("+ Ready for literal data")
            data = self.conn.read_exact(n)
            if b"\x00" in data:
                raise SyntaxErrorInCommand("NUL in a literal")
            self.raw += data
            nxt = self.conn.read_line()
            self.raw += nxt + b"\r\n"
            self.rest = nxt
            return data
        i = 0
        while i < len(r) and r[i] > 0x20 and r[i] < 0x7F and r[i] not in _ATOM_SPECIALS:
            i += 1
        if i == 0:
            raise SyntaxErrorInCommand("expected an astring")
        self.rest = r[i:]
        return bytes(r[:i])


class FakeImap:
    """The server. messages: list of bytes, UIDs 1..n. tls: None (plaintext,
    STARTTLS offered when starttls=True) or "implicit". caps: capabilities
    besides IMAP4rev1 and STARTTLS. accept: the only (user, password) pair, as
    bytes, that logs in."""

    def __init__(self, *, messages=(), user=b"fake", password=b"fakepw", caps=("AUTH=PLAIN", "SASL-IR", "UIDPLUS"),
                 tls=None, starttls=False, certfile=None, keyfile=None, uidvalidity=1700000000,
                 mailboxes=(), greeting="fake IMAP ready", reported_size=len):
        """greeting: the text after the greeting's CAPABILITY code (Exchange
        greets "The Microsoft Exchange IMAP4 service is ready."); reported_size:
        fn(message bytes) -> the RFC822.SIZE the listing reports (an estimate,
        as Exchange's, when it is not len)."""
        self.messages = list(messages)
        self.mailboxes = list(mailboxes)
        self.greeting = greeting
        self.reported_size = reported_size
        self.accept = (user, password)
        self.caps = list(caps)
        self.tls = tls
        self.starttls = starttls
        self.uidvalidity = uidvalidity
        self.oauth_refuse = False
        self.hooks = {}
        self.connections = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads = []
        self._ssl = None
        if tls or starttls:
            self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ssl.load_cert_chain(certfile, keyfile)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    # -- test API ------------------------------------------------------------
    def reset(self):
        """Forget recorded connections and hooks (between tests)."""
        with self._lock:
            self.connections = []
        self.hooks = {}

    def last(self):
        with self._lock:
            return self.connections[-1] if self.connections else None

    def all_commands(self):
        with self._lock:
            conns = list(self.connections)
        return [c for conn in conns for c in conn.commands]

    def verbs(self):
        return [c.verb for c in self.all_commands()]

    def violations(self):
        with self._lock:
            return [v for conn in self.connections for v in conn.violations]

    def wait_all_closed(self, timeout=5.0):
        """True once every recorded connection has ended (a stalling hook
        ends its connection only when the client hangs up)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            conns = list(self.connections)
        for conn in conns:
            if not conn.ended.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def stop(self):
        self.stopping.set()
        try:
            self.listener.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.sock.close()
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)
        self._acceptor.join(timeout=5)

    # -- server ----------------------------------------------------------------
    def _accept_loop(self):
        while not self.stopping.is_set():
            # A blocked accept() would not notice the listener being closed.
            try:
                ready, _, _ = select.select([self.listener], [], [], 0.1)
                if not ready:
                    continue
                sock, _ = self.listener.accept()
            except (OSError, ValueError):
                return
            conn = Connection(self, sock)
            with self._lock:
                self.connections.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _caps(self, conn):
        caps = ["IMAP4rev1"]
        if self.starttls and not conn.tls:
            caps.append("STARTTLS")
        return " ".join(caps + self.caps)

    def _serve(self, conn):
        try:
            if self.tls == "implicit":
                conn.sock.settimeout(10)
                try:
                    conn.sock = self._ssl.wrap_socket(conn.sock, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    conn.violations.append(f"TLS handshake failed: {e}")
                    raise Closed() from None
                conn.sock.settimeout(None)
                conn.tls = True
            hook = self.hooks.get("greeting")
            if hook:
                hook(conn, None, None)
            else:
                conn.line(f"* OK [CAPABILITY {self._caps(conn)}] {self.greeting}")
            while True:
                self._command(conn)
        except Closed:
            pass
        finally:
            try:
                conn.sock.close()
            except OSError:
                pass
            conn.ended.set()

    def _command(self, conn):
        line = conn.read_line()
        raw = bytearray(line + b"\r\n")
        m = re.match(rb"([^ ]+) ([A-Za-z]+)(?: (.*))?$", line, re.S)
        if not m:
            conn.violations.append(f"unparsable command line {line[:80]!r}")
            conn.line(b"* BAD unparsable command")
            return
        tag = m.group(1).decode("latin-1")
        verb = m.group(2).decode().upper()
        args = m.group(3) or b""
        if verb == "UID":
            sub = args.split(b" ", 1)
            verb = "UID " + sub[0].decode("latin-1").upper()
            args = sub[1] if len(sub) > 1 else b""
        cmd = Command(tag, verb, args, raw)
        conn.commands.append(cmd)
        handler = {
            "CAPABILITY": self._capability,
            "STARTTLS": self._starttls,
            "LOGIN": self._login,
            "AUTHENTICATE": self._authenticate,
            "SELECT": self._select,
            "UID FETCH": self._uid_fetch,
            "LOGOUT": self._logout,
            "LIST": self._list,
        }.get(verb)
        if handler:
            handler(conn, cmd)
        elif self.hooks.get(verb):
            self.hooks[verb](conn, tag, cmd)
        else:
            # NOOP, UID STORE, UID EXPUNGE, UID MOVE, UID COPY, LIST ...
            conn.line(f"{tag} OK {verb} done")

    def _capability(self, conn, cmd):
        conn.line(f"* CAPABILITY {self._caps(conn)}")
        conn.line(f"{cmd.tag} OK CAPABILITY done")

    def _starttls(self, conn, cmd):
        hook = self.hooks.get("starttls")
        if hook:
            hook(conn, cmd.tag, cmd)
            return
        if not self.starttls or conn.tls:
            conn.line(f"{cmd.tag} BAD STARTTLS not available")
            return
        conn.line(f"{cmd.tag} OK Begin TLS negotiation now")
        if conn.buf:
            conn.violations.append("data pipelined after STARTTLS")
        try:
            conn.sock = self._ssl.wrap_socket(conn.sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            conn.violations.append(f"STARTTLS handshake failed: {e}")
            raise Closed() from None
        conn.tls = True

    def _logged_in(self, conn, cmd):
        hook = self.hooks.get("login")
        if hook:
            hook(conn, cmd.tag, cmd)
            return
        if (cmd.user, cmd.password) == self.accept:
            conn.line(f"{cmd.tag} OK Logged in")
        else:
            conn.line(f"{cmd.tag} NO [AUTHENTICATIONFAILED] Authentication failed.")

    def _login(self, conn, cmd):
        reader = _ArgReader(conn, cmd.args, cmd.raw)
        try:
            cmd.user = reader.astring()
            reader.expect_space()
            cmd.password = reader.astring()
            if not reader.at_end():
                raise SyntaxErrorInCommand(f"trailing bytes {reader.rest[:40]!r}")
        except SyntaxErrorInCommand as e:
            conn.violations.append(f"LOGIN: {e}")
            conn.line(f"{cmd.tag} BAD {e}")
            return
        self._logged_in(conn, cmd)

    def _authenticate_oauth(self, conn, cmd, parts):
        cmd.mech = parts[0].upper().decode()
        if len(parts) == 2:
            if "SASL-IR" not in self.caps:
                conn.violations.append("SASL-IR used but not advertised")
            blob = parts[1]
        else:
            conn.line("+ ")
            blob = conn.read_line()
            cmd.raw += blob + b"\r\n"
        try:
            fields = base64.b64decode(blob, validate=True).split(b"\x01")
        except ValueError:
            conn.violations.append("AUTHENTICATE: bad base64")
            conn.line(f"{cmd.tag} BAD bad base64")
            return
        cmd.user = cmd.token = None
        for f in fields:
            if f.startswith(b"user="):
                cmd.user = f[5:]
            elif f.startswith(b"n,a="):
                cmd.user = f[4:].rstrip(b",")
            elif f.startswith(b"auth=Bearer "):
                cmd.token = f[12:]
        if cmd.user is None or cmd.token is None or fields[-2:] != [b"", b""]:
            conn.violations.append(f"AUTHENTICATE {cmd.mech}: malformed response")
        if not self.oauth_refuse:
            conn.line(f"{cmd.tag} OK Logged in")
            return
        challenge = b'{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}'
        conn.line(b"+ " + base64.b64encode(challenge))
        cmd.error_reply = conn.read_line()
        cmd.raw += cmd.error_reply + b"\r\n"
        conn.line(f"{cmd.tag} NO [AUTHENTICATIONFAILED] Invalid credentials")

    def _authenticate(self, conn, cmd):
        parts = cmd.args.split(b" ")
        if parts[0].upper() in (b"XOAUTH2", b"OAUTHBEARER") and len(parts) <= 2:
            self._authenticate_oauth(conn, cmd, parts)
            return
        if parts[0].upper() != b"PLAIN" or len(parts) > 2:
            conn.line(f"{cmd.tag} NO Unsupported mechanism")
            return
        if len(parts) == 2:
            if "SASL-IR" not in self.caps:
                conn.violations.append("SASL-IR used but not advertised")
            blob = parts[1]
        else:
            if conn.early_bytes():
                conn.violations.append("SASL response sent before the + continuation")
            conn.line("+ ")
            blob = conn.read_line()
            cmd.raw += blob + b"\r\n"
        try:
            decoded = b"" if blob == b"=" else base64.b64decode(blob, validate=True)
        except ValueError:
            conn.violations.append("AUTHENTICATE: bad base64")
            conn.line(f"{cmd.tag} BAD bad base64")
            return
        fields = decoded.split(b"\x00")
        if len(fields) != 3:
            conn.violations.append(f"AUTHENTICATE: {len(fields)} NUL-separated fields")
            conn.line(f"{cmd.tag} NO [AUTHENTICATIONFAILED] malformed PLAIN message")
            return
        authzid, cmd.user, cmd.password = fields
        if authzid not in (b"", cmd.user):
            conn.violations.append("AUTHENTICATE: authzid differs from authcid")
        self._logged_in(conn, cmd)

    def _select(self, conn, cmd):
        hook = self.hooks.get("select")
        if hook:
            hook(conn, cmd.tag, cmd)
            return
        conn.line(r"* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)")
        conn.line(f"* {len(self.messages)} EXISTS")
        conn.line("* 0 RECENT")
        conn.line(f"* OK [UIDVALIDITY {self.uidvalidity}] UIDs valid")
        conn.line(f"* OK [UIDNEXT {len(self.messages) + 1}] Predicted next UID")
        conn.line(f"{cmd.tag} OK [READ-WRITE] Select completed")

    def _uid_fetch(self, conn, cmd):
        m = re.match(rb"(\d+) \(BODY\.PEEK\[\]\)$", cmd.args)
        if m:
            cmd.uid = int(m.group(1))
            if not 1 <= cmd.uid <= len(self.messages):
                conn.line(f"{cmd.tag} OK Fetch completed (no such UID)")
                return
            cmd.data = self.messages[cmd.uid - 1]
            hook = self.hooks.get("body")
            if hook:
                hook(conn, cmd.tag, cmd)
                return
            conn.send(b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (cmd.uid, cmd.uid, len(cmd.data))
                      + cmd.data + b")\r\n")
            conn.line(f"{cmd.tag} OK Fetch completed")
            return
        m = re.match(rb"([0-9:,]+) \(UID BODY\.PEEK\[\]\)$", cmd.args)
        if m:
            self._uid_fetch_bodies(conn, cmd, m.group(1))
            return
        if cmd.args.startswith(b"1:* "):
            hook = self.hooks.get("listing")
            if hook:
                hook(conn, cmd.tag, cmd)
                return
            gm = b"X-GM-MSGID" in cmd.args.upper()
            if gm and "X-GM-EXT-1" not in self.caps:
                conn.violations.append("X-GM-MSGID asked for without X-GM-EXT-1")
            for uid, data in enumerate(self.messages, 1):
                extra = f" X-GM-MSGID {self.gm_msgid(uid)}" if gm else ""
                conn.line(f"* {uid} FETCH (UID {uid} FLAGS () RFC822.SIZE {self.reported_size(data)} "
                          f"INTERNALDATE {INTERNALDATE}{extra})")
            conn.line(f"{cmd.tag} OK Fetch completed")
            return
        conn.violations.append(f"unexpected UID FETCH {cmd.args[:80]!r}")
        conn.line(f"{cmd.tag} BAD not supported by the fake server")

    def _uid_fetch_bodies(self, conn, cmd, uidset):
        """popgate's prefetch: several whole bodies in one UID FETCH. The
        "body" hook, when set, answers the whole command, with cmd.uid and
        cmd.data those of the set's first UID."""
        uids = []
        for part in uidset.split(b","):
            lo, _, hi = part.partition(b":")
            uids.extend(range(int(lo), int(hi or lo) + 1))
        uids = [u for u in uids if 1 <= u <= len(self.messages)]
        cmd.uid = uids[0] if uids else 0
        cmd.data = self.messages[cmd.uid - 1] if uids else b""
        hook = self.hooks.get("body")
        if hook:
            hook(conn, cmd.tag, cmd)
            return
        for uid in uids:
            data = self.messages[uid - 1]
            conn.send(b"* %d FETCH (UID %d BODY[] {%d}\r\n" % (uid, uid, len(data)) + data + b")\r\n")
        conn.line(f"{cmd.tag} OK Fetch completed")

    @staticmethod
    def gm_msgid(uid):
        """The X-GM-MSGID of the message with this UID (the same whatever
        the UIDVALIDITY), above 2**60 as Gmail's are."""
        return 1278455344230334865 + uid * 7919

    def _list(self, conn, cmd):
        for attrs, name in self.mailboxes:
            conn.line(f'* LIST ({attrs}) "/" "{name}"')
        conn.line(f"{cmd.tag} OK LIST done")

    def _logout(self, conn, cmd):
        conn.line("* BYE Logging out")
        conn.line(f"{cmd.tag} OK Logout completed")
        conn.close()
