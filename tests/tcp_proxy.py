"""A TCP proxy on loopback that a test can cut and restore: "the database goes down" without stopping Postgres.

The shared Postgres server must stay up for every other test, so a process
under test is pointed at this proxy instead (`TcpProxy.url`), and the test
takes the database away and gives it back:
- `cut()`: every open connection is closed at once (the client sees the
  server go away mid-session), and every new connection is accepted and
  reset at once (the client's connect fails fast, as against a server that
  is restarting), until
- `restore()`: new connections reach the target again.
`hang()` is the other way a database goes away (a partition, packets
dropped): connections stay open, but nothing sent on them arrives and
nothing comes back, so a client waits on its timeouts; `restore()` then
resets those connections (their streams lost bytes) and forwards again.
The listening port stays the same throughout, so the process under test
never needs another URL. Each connection is forwarded by two threads, one
per direction, with blocking calls: no direction can stall the other.
"""

from __future__ import annotations

import socket
import struct
import threading

from sqlalchemy.engine import make_url

from tests.ports import free_port

_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST instead of FIN


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._up = threading.Event()
        self._up.set()
        self._hanging = threading.Event()
        self._held: list[socket.socket] = []  # connections accepted while hanging, never forwarded
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._acceptor: threading.Thread | None = None
        self.accepted = 0  # connections forwarded to the target
        self.refused = 0  # connections reset while cut

    @classmethod
    def for_url(cls, database_url: str) -> TcpProxy:
        """A proxy in front of the server `database_url` names (a Postgres URL)."""
        url = make_url(database_url)
        return cls(url.host or "127.0.0.1", url.port or 5432)

    def url(self, database_url: str) -> str:
        """`database_url` with its host and port replaced by the proxy's."""
        return make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    @property
    def is_up(self) -> bool:
        return self._up.is_set()

    def start(self, up: bool = True) -> TcpProxy:
        """Listen on 127.0.0.1:`port`; `up` False starts it cut."""
        if not up:
            self._up.clear()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        listener.settimeout(0.1)  # so that close() is noticed
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"tcp-proxy-{self.port}", daemon=True)
        self._acceptor.start()
        return self

    def cut(self) -> None:
        """Take the target away: drop every open connection, reset every new one."""
        self._up.clear()
        self._drop_all()

    def hang(self) -> None:
        """Take the target away silently: open connections and new ones get no bytes through, and no error."""
        self._hanging.set()

    def restore(self) -> None:
        """Give the target back to new connections (after `hang`, the connections it stalled are reset first)."""
        if self._hanging.is_set():
            self._drop_all()
            self._hanging.clear()
        self._up.set()

    def close(self) -> None:
        self._closing.set()
        self._up.clear()
        if self._acceptor is not None:
            self._acceptor.join(5)
        if self._listener is not None:
            self._listener.close()
        self._drop_all()

    def __enter__(self) -> TcpProxy:
        return self.start() if self._listener is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            if not self._up.is_set():
                self.refused += 1
                _reset(client)
                continue
            if self._hanging.is_set():
                with self._lock:
                    self._held.append(client)
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            server.settimeout(None)
            client.settimeout(None)
            pair = (client, server)
            with self._lock:  # a cut that came while connecting has dropped every pair: this one must not escape it
                cut = not self._up.is_set()
                if not cut:
                    self._pairs.add(pair)
            if cut:
                _reset(client)
                _reset(server)
                continue
            self.accepted += 1
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._forward, args=(source, sink, pair), daemon=True).start()

    def _forward(self, source: socket.socket, sink: socket.socket, pair: tuple[socket.socket, socket.socket]) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if not self._hanging.is_set():
                    sink.sendall(data)
        except OSError:
            pass  # the other direction or a cut closed the pair: nothing to forward any more
        finally:
            self._drop(pair)

    def _drop_all(self) -> None:
        with self._lock:
            pairs = list(self._pairs)
            held, self._held = self._held, []
        for pair in pairs:
            self._drop(pair)
        for sock in held:
            _reset(sock)

    def _drop(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            if pair not in self._pairs:
                return
            self._pairs.discard(pair)
        for sock in pair:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv on it
            except OSError:
                pass  # already closed by the peer
            _reset(sock)


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    except OSError:
        pass  # the socket is already gone
    sock.close()
