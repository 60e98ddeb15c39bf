"""A loopback TCP relay between popgate and a server it talks to, for tests
that look at (or alter) what passes: count the Redis commands or the IMAP
body fetches of a session, record how popgate's writes are grouped, disguise
a server's greeting.

One thread per direction per connection. A subclass overrides
client_to_server (what popgate writes) and/or server_to_client (what the
server answers); the defaults copy bytes unchanged. Either direction ending
shuts both sockets down, so the other pump ends too. Only 127.0.0.1.
"""
import socket
import threading


class LoopbackRelay:
    def __init__(self, target_port, backlog=16):
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(backlog)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            state = self.new_connection()
            threading.Thread(target=self._run, args=(self.client_to_server, client, server, state),
                             daemon=True).start()
            threading.Thread(target=self._run, args=(self.server_to_client, server, client, state),
                             daemon=True).start()

    @staticmethod
    def _run(pump, src, dst, state):
        try:
            pump(src, dst, state)
        except (OSError, ValueError):
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def new_connection(self):
        """Per-connection state handed to both pumps (None unless overridden)."""
        return None

    @staticmethod
    def copy(src, dst):
        while data := src.recv(65536):
            dst.sendall(data)

    def client_to_server(self, src, dst, state):
        self.copy(src, dst)

    def server_to_client(self, src, dst, state):
        self.copy(src, dst)

    def close(self):
        self.listener.close()
