"""Hostile and slow peers for the fault tests: loopback servers the gateway connects to.

:class:`LoopbackServer` accepts on 127.0.0.1 and runs one handler per connection in a
thread of its own, recording when each connection was accepted and when it ended.
Every read has a deadline; :meth:`LoopbackServer.close` ends every connection.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable

import attrs

READ_TIMEOUT = 15.0


class Peer:
    """One accepted connection, as a handler sees it."""

    def __init__(self, sock: socket.socket, closing: threading.Event) -> None:
        self.sock = sock
        self.received = b""
        self.closing = closing

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until(self, pattern: bytes, timeout: float = READ_TIMEOUT) -> re.Match:
        """Read until ``pattern`` matches what came so far; fail at the deadline or EOF."""
        regex = re.compile(pattern, re.S)
        deadline = time.monotonic() + timeout
        while not (match := regex.search(self.received)):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no /{pattern!r}/ within {timeout:g}s: {self.received[:300]!r}"
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            assert chunk, f"closed before /{pattern!r}/: {self.received[:300]!r}"
            self.received += chunk
        return match

    def read_to_eof(self, timeout: float = READ_TIMEOUT) -> bool:
        """Read until the other side closes; False if it did not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.sock.settimeout(min(remaining, 0.2))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                if self.closing.is_set():
                    return False
                continue
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.received += chunk


@attrs.define
class Connection:
    """What the server saw of one connection (monotonic times)."""

    index: int
    accepted: float
    ended: float | None = None
    peer_closed: bool | None = None  # the gateway closed first (not the handler)
    error: str | None = None


class LoopbackServer:
    """Accepts on 127.0.0.1; connection ``i`` is served by ``handlers[min(i, last)]``.

    A handler returns once it has done its part: True to read on until the gateway
    closes the connection (or the server closes), False to close it at once.
    """

    def __init__(self, handlers: list[Callable[[Peer], bool]]) -> None:
        self.handlers = handlers
        self.connections: list[Connection] = []
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._socks: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="loopback-server", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            with self._changed:
                record = Connection(len(self.connections), time.monotonic())
                self.connections.append(record)
                self._socks.append(sock)
                self._changed.notify_all()
            threading.Thread(target=self._serve, args=(sock, record), daemon=True).start()

    def _serve(self, sock: socket.socket, record: Connection) -> None:
        handler = self.handlers[min(record.index, len(self.handlers) - 1)]
        peer = Peer(sock, self._closing)
        try:
            wait_for_gateway = handler(peer)
            record.peer_closed = peer.read_to_eof() if wait_for_gateway else False
        except (AssertionError, OSError) as e:
            record.error = f"{type(e).__name__}: {e}"
        finally:
            sock.close()
            with self._changed:
                record.ended = time.monotonic()
                self._changed.notify_all()

    def wait_connections(self, count: int, timeout: float, *, ended: bool = False) -> None:
        """Wait until ``count`` connections were accepted (and, with ``ended``, ended)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                done = self.connections[:count]
                if len(done) == count and (not ended or all(c.ended for c in done)):
                    return
                remaining = deadline - time.monotonic()
                assert remaining > 0, (
                    f"{len(self.connections)} of {count} connections in {timeout:g}s: "
                    f"{self.connections}"
                )
                self._changed.wait(remaining)

    def close(self) -> None:
        self._closing.set()
        self.listener.close()
        with self._changed:
            socks = list(self._socks)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
