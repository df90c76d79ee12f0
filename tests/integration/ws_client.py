"""A blocking JSON-IM/1 client over WebSocket (the web listener's /ws), for the
integration tests: frames one per text message, the same waits as JsonImClient, and
the close code and reason the server gave.

The framing is hand-made (tests/unit/ws_frames.py) so that hostile tests can send what
a library would refuse to: bad UTF-8, frames over the limit, binary messages.
"""

from __future__ import annotations

import socket
import ssl
import time

from jsonim_client import DEFAULT_TIMEOUT, JsonImClient
from ws_frames import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    client_frame,
    close_code,
    close_frame,
    handshake_request,
    read_frames,
)


class HandshakeRefused(AssertionError):
    """The server answered the opening handshake with something else than 101."""

    def __init__(self, response: bytes) -> None:
        super().__init__(f"handshake refused: {response[:300]!r}")
        self.response = response


class WsClient(JsonImClient):
    """One WebSocket connection to a web listener, speaking JSON-IM."""

    def __init__(
        self,
        port: int,
        *,
        name: str = "ws client",
        origin: str | None = None,
        path: str = "/ws",
        source: str | None = None,
        preface: bytes = b"",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.sock = socket.create_connection(
            ("127.0.0.1", port),
            timeout=DEFAULT_TIMEOUT,
            source_address=(source, 0) if source else None,
        )
        self.raw_lines: list[bytes] = []
        self.received: list[dict] = []
        self._pending: list[tuple[int, dict]] = []
        self._buffer = b""
        self._eof = False
        self._sent_texts: dict[str, str] = {}
        self._next_id = 0
        self.raw = bytearray()  # every byte the server sent, the handshake included
        self.close_code: int | None = None
        self.close_reason: str | None = None
        request, accept = handshake_request(path, host=f"127.0.0.1:{port}", origin=origin)
        # ``preface``: what a load balancer sends first (a PROXY header), before TLS.
        if preface:
            self.sock.sendall(preface)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname="localhost")
        self.sock.sendall(request)
        response = self._handshake_response()
        if not response.startswith(b"HTTP/1.1 101 "):
            self.sock.close()
            raise HandshakeRefused(response)
        assert f"Sec-WebSocket-Accept: {accept}".encode() in response, response
        # Frames that came in the same read as the handshake's answer.
        self._consume(b"")

    def _handshake_response(self) -> bytes:
        deadline = time.monotonic() + DEFAULT_TIMEOUT
        data = b""
        while b"\r\n\r\n" not in data:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            data += chunk
        self.raw += data
        head, _, self._buffer = data.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n"

    # -- sending ---------------------------------------------------------------

    def send_raw(self, data: bytes) -> None:
        """JSON text (the line end JsonImClient adds dropped) as one text message."""
        self.sock.sendall(client_frame(data.rstrip(b"\n"), TEXT))

    def send_frame(self, payload: bytes, opcode: int = TEXT, **options) -> None:
        """One frame as given (see ws_frames.client_frame)."""
        self.sock.sendall(client_frame(payload, opcode, **options))

    def send_binary(self, payload: bytes) -> None:
        """One binary message."""
        self.send_frame(payload, BINARY)

    def close(self, code: int = 1000) -> None:
        """Close the WebSocket, then the socket."""
        try:
            self.sock.sendall(close_frame(code))
        except OSError:
            pass
        self.sock.close()

    # -- receiving -------------------------------------------------------------

    def closed_with(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[int | None, str | None]:
        """The server's close code and reason, waiting until it closes."""
        assert self.closed(timeout), self._describe("the server did not close")
        return self.close_code, self.close_reason

    def _read(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return False
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        if not data:
            self._eof = True
            return True
        self.raw += data
        self._consume(data)
        return True

    def _consume(self, data: bytes) -> None:
        frames, self._buffer = read_frames(self._buffer + data)
        for opcode, payload in frames:
            if opcode == TEXT:
                self._line(payload)
            elif opcode == CLOSE:
                self.close_code, self.close_reason = close_code(payload)
                try:
                    self.sock.sendall(close_frame(self.close_code or 1000))
                except OSError:
                    pass
                self._eof = True
            elif opcode == PING:
                self.sock.sendall(client_frame(payload, PONG))
