"""A strict POP3 client for tests, keeping exact bytes.

Python's poplib splits on LF and hides what the server really sent. The tests
compare bytes, so this client insists on CRLF line ends, returns multi-line
bodies both as sent on the wire and with the dot-stuffing undone, and reports a
connection that closed before the terminating "." as Pop3Truncated instead of
a short message.
"""

import base64
import re
import socket
import ssl

# A status line longer than this is a server bug (RFC 2449: 512 octets).
STATUS_LINE_MAX = 4096
# Recv size for bulk reads: large enough that a 20 MB body is quick to read.
RECV_SIZE = 256 * 1024
_UNSTUFF = re.compile(rb"(?:^|(?<=\r\n))\.")


class Pop3Error(Exception):
    """The server broke the protocol (bad line end, over-long status line)."""


class Pop3Closed(Pop3Error):
    """The server closed the connection where a reply was expected."""


class Pop3Truncated(Pop3Closed):
    """The connection closed inside a multi-line reply, before the final "."."""

    def __init__(self, partial):
        super().__init__("connection closed before the terminating '.' "
                         f"after {len(partial)} octets")
        self.partial = partial


def tls_client_context(cafile):
    """A context that verifies the server as a careful client would."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


class POP3:
    """One POP3 connection. tls=True for implicit TLS (POP3S)."""

    def __init__(self, host, port, *, tls=False, cafile=None, server_hostname="localhost",
                 timeout=15.0, rcvbuf=None):
        self.host = host
        self.port = port
        self.cafile = cafile
        self.server_hostname = server_hostname
        self.buf = bytearray()
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                             socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Set before connect so the window is small from the start.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.tls = False
        if tls:
            self._wrap_tls()
        self.greeting = self.read_line()

    # -- transport ---------------------------------------------------------
    def _wrap_tls(self):
        ctx = tls_client_context(self.cafile)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=self.server_hostname)
        self.tls = True

    def _recv(self, size=RECV_SIZE):
        """Append what arrives to buf; b"" means the peer closed. A reset or a
        TLS connection closed without close_notify counts as closed too: the
        tests care whether the reply was complete, not how it ended."""
        try:
            data = self.sock.recv(size)
        except (ConnectionResetError, ssl.SSLEOFError):
            return b""
        if data:
            self.buf += data
        return data

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.sock.sendall(line + b"\r\n")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t):
        self.sock.settimeout(t)

    def is_closed(self, wait=2.0):
        """True if the server closed the connection (EOF) within wait seconds."""
        old = self.sock.gettimeout()
        self.sock.settimeout(wait)
        try:
            while True:
                data = self._recv()
                if not data:
                    return True
        except (socket.timeout, TimeoutError):
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            return True
        finally:
            try:
                self.sock.settimeout(old)
            except OSError:
                pass

    # -- reading -----------------------------------------------------------
    def read_line(self):
        """One status line without its CRLF. A bare LF is a protocol error."""
        start = 0
        while True:
            i = self.buf.find(b"\n", start)
            if i >= 0:
                if i == 0 or self.buf[i - 1] != 0x0D:
                    raise Pop3Error(f"line not ended by CRLF: {bytes(self.buf[:i + 1])!r}")
                line = bytes(self.buf[:i - 1])
                del self.buf[:i + 1]
                return line
            start = len(self.buf)
            if len(self.buf) > STATUS_LINE_MAX:
                raise Pop3Error(f"status line over {STATUS_LINE_MAX} octets")
            if not self._recv(4096):
                raise Pop3Closed(f"connection closed; unread: {bytes(self.buf)!r}")

    def read_multi_raw(self):
        """The body of a multi-line reply exactly as sent, up to and including
        the CRLF before the terminating ".", which is consumed too."""
        scan = 0
        while True:
            # A body line that is just "." is sent as "..", so ".\r\n" at the
            # start or after a CRLF can only be the terminator.
            if self.buf[:3] == b".\r\n":
                del self.buf[:3]
                return b""
            i = self.buf.find(b"\r\n.\r\n", scan)
            if i >= 0:
                raw = bytes(self.buf[:i + 2])
                del self.buf[:i + 5]
                return raw
            scan = max(0, len(self.buf) - 4)
            if not self._recv():
                raise Pop3Truncated(bytes(self.buf))

    def read_multi(self):
        """The body of a multi-line reply with dot-stuffing undone."""
        return unstuff(self.read_multi_raw())

    # -- commands ----------------------------------------------------------
    def cmd(self, line):
        """Send one command, return its status line."""
        self.send(line)
        return self.read_line()

    def ok(self, line):
        """Send one command that must succeed; return its status line."""
        reply = self.cmd(line)
        if not reply.startswith(b"+OK"):
            raise AssertionError(f"{line!r} -> {reply!r}")
        return reply

    def multi(self, line):
        """Send a command with a multi-line reply; return (status, body).
        body is None when the status is -ERR."""
        reply = self.cmd(line)
        if not reply.startswith(b"+OK"):
            return reply, None
        return reply, self.read_multi()

    def multi_ok(self, line):
        reply, body = self.multi(line)
        if body is None:
            raise AssertionError(f"{line!r} -> {reply!r}")
        return body

    def capa(self):
        """CAPA as a dict: upper-case capability name -> list of arguments."""
        body = self.multi_ok("CAPA")
        caps = {}
        for ln in body.split(b"\r\n"):
            if not ln:
                continue
            words = ln.decode("ascii").split()
            caps[words[0].upper()] = words[1:]
        return caps

    def stls(self):
        reply = self.ok("STLS")
        if self.buf:
            raise Pop3Error(f"data after +OK to STLS before the handshake: {bytes(self.buf)!r}")
        self._wrap_tls()
        return reply

    def user_pass(self, user, password):
        """USER then PASS; returns the PASS reply (or the USER reply if it failed)."""
        r = self.cmd(f"USER {user}")
        if not r.startswith(b"+OK"):
            return r
        return self.cmd(b"PASS " + password.encode())

    def login(self, user, password):
        r = self.user_pass(user, password)
        if not r.startswith(b"+OK"):
            raise AssertionError(f"login as {user} failed: {r!r}")
        return r

    def auth_plain(self, user, password, *, initial_response=True, authzid=""):
        token = base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()
        if initial_response:
            return self.cmd(f"AUTH PLAIN {token}")
        r = self.cmd("AUTH PLAIN")
        if not r.startswith(b"+ ") and r != b"+":
            return r
        return self.cmd(token)

    def stat(self):
        r = self.ok("STAT").split()
        return int(r[1]), int(r[2])

    def list(self):
        """LIST as a list of (number, size)."""
        return [(int(a), int(b)) for a, b in
                (ln.split() for ln in self.multi_ok("LIST").split(b"\r\n") if ln)]

    def list_one(self, n):
        r = self.ok(f"LIST {n}").split()
        return int(r[1]), int(r[2])

    def uidl(self):
        """UIDL as a list of (number, uidl string)."""
        return [(int(a), b.decode("ascii")) for a, b in
                (ln.split() for ln in self.multi_ok("UIDL").split(b"\r\n") if ln)]

    def retr(self, n):
        return self.multi_ok(f"RETR {n}")

    def retr_raw(self, n):
        self.ok(f"RETR {n}")
        return self.read_multi_raw()

    def top(self, n, lines):
        return self.multi_ok(f"TOP {n} {lines}")

    def quit(self):
        r = self.cmd("QUIT")
        self.close()
        return r

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def unstuff(raw):
    """Undo dot-stuffing of a multi-line body (RFC 1939 section 3)."""
    return _UNSTUFF.sub(b"", raw)


def is_ok(reply):
    return reply.startswith(b"+OK")


def is_err(reply):
    return reply.startswith(b"-ERR")
