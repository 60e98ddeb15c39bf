"""A minimal blocking RESP2 client for tests and benchmarks that need binary
values (the packed id lists) and pipelines, which redis-cli --raw cannot give
back exactly. Loopback only; no TLS, no AUTH."""
import socket
import struct


class RedisError(Exception):
    pass


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Redis:
    def __init__(self, port, host="127.0.0.1", timeout=60):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(max(1 << 20, n + 2 - len(self.buf)))
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RedisError(f"unexpected reply {line!r}")

    def call(self, *args):
        (r,) = self.pipeline([args])
        if isinstance(r, RedisError):
            raise r
        return r

    def pipeline(self, commands):
        """Sends every command, then reads every reply (errors as RedisError
        values, not raised)."""
        self.sock.sendall(b"".join(encode(c) for c in commands))
        return [self._reply() for _ in commands]

    def scan(self, pattern):
        cursor, keys = b"0", []
        while True:
            cursor, batch = self.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            keys.extend(batch)
            if cursor == b"0":
                return keys

    def memory(self):
        """INFO memory's numeric fields, e.g. used_memory, used_memory_dataset
        (used_memory without the server's overhead: client buffers, the
        script cache, replication backlog, per-key dict overhead)."""
        out = {}
        for line in self.call("INFO", "memory").decode().splitlines():
            name, _, value = line.partition(":")
            if value.strip().isdigit():
                out[name] = int(value)
        return out


def decode_ids(value):
    """An id list (translate/id_list.h) as its ids, in order."""
    ids, pos = [], 0
    while pos < len(value):
        tag, count, shift, pos = value[pos], 0, 0, pos + 1
        while True:
            count |= (value[pos] & 0x7F) << shift
            shift, pos = shift + 7, pos + 1
            if value[pos - 1] < 0x80:
                break
        if tag == 0:
            ids.extend(struct.unpack(">%dQ" % count, value[pos:pos + 8 * count]))
            pos += 8 * count
        else:
            assert tag == 1 and ids
            last = ids[-1]
            ids.extend(last + k for k in range(1, count + 1))
    return ids
