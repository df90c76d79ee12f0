"""WebSocket frames (RFC 6455) for tests: a client's masked frames and a reader of the
server's. Hand-made on purpose: hostile tests send what a well-behaved library refuses
to (bad UTF-8, frames over the limit, binary messages)."""

from __future__ import annotations

import base64
import hashlib
import os
import struct

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def client_frame(
    payload: bytes, opcode: int = TEXT, *, fin: bool = True, length: int | None = None
) -> bytes:
    """One masked client frame; ``length`` overrides the stated payload length."""
    stated = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if stated < 126:
        head += bytes([0x80 | stated])
    elif stated < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", stated)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", stated)
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def close_frame(code: int = 1000, reason: str = "") -> bytes:
    """A masked close frame."""
    return client_frame(struct.pack("!H", code) + reason.encode(), CLOSE)


def handshake_request(
    path: str = "/ws", *, host: str = "127.0.0.1", origin: str | None = None
) -> tuple[bytes, str]:
    """An opening handshake request and the Sec-WebSocket-Accept it must be answered with."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), accept


def read_frames(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The server's whole frames in ``data`` as (opcode, payload), and the rest."""
    frames = []
    pos = 0
    while len(data) - pos >= 2:
        opcode = data[pos] & 0x0F
        masked = data[pos + 1] & 0x80
        length = data[pos + 1] & 0x7F
        head = 2
        if length == 126:
            if len(data) - pos < 4:
                break
            length = struct.unpack("!H", data[pos + 2 : pos + 4])[0]
            head = 4
        elif length == 127:
            if len(data) - pos < 10:
                break
            length = struct.unpack("!Q", data[pos + 2 : pos + 10])[0]
            head = 10
        if masked:
            raise AssertionError("the server masked a frame")
        if len(data) - pos < head + length:
            break
        frames.append((opcode, data[pos + head : pos + head + length]))
        pos += head + length
    return frames, data[pos:]


def close_code(payload: bytes) -> tuple[int | None, str]:
    """A close frame's code and reason."""
    if len(payload) < 2:
        return None, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")
