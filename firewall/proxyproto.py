"""PROXY protocol v1 (text) and v2 (binary) headers, as HAProxy sends them."""

from __future__ import annotations

import ipaddress
import struct

import attrs

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # the longest v1 line, CRLF included
V2_MAX = 16 + 536  # header and the largest address block this parser reads
# What a proxy sends when it cannot name the client (v1 UNKNOWN, v2 LOCAL).
UNKNOWN_V1 = b"PROXY UNKNOWN\r\n"
LOCAL_V2 = V2_SIGNATURE + b"\x20\x00\x00\x00"


class ProxyError(ValueError):
    """Bytes that are not a valid PROXY header."""


@attrs.frozen
class ProxyHeader:
    """A parsed header: the client's address, or None for v1 UNKNOWN / v2 LOCAL."""

    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    length: int  # bytes the header took


def parse(data: bytes) -> ProxyHeader | None:
    """The header at the start of ``data``; None if more bytes are needed.

    Raises :class:`ProxyError` when ``data`` cannot start a valid header.
    """
    if data.startswith(V2_SIGNATURE[: len(data)]) and len(data) < 16:
        return None
    if data.startswith(V2_SIGNATURE):
        return _v2(data)
    if b"PROXY "[: len(data)] == data[:6]:
        return _v1(data)
    raise ProxyError("not a PROXY protocol header")


def _v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n")
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyError("PROXY v1 line too long")
        return None
    if end + 2 > V1_MAX:
        raise ProxyError("PROXY v1 line too long")
    parts = data[:end].decode("ascii", "replace").split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(None, None, end + 2)
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyError("malformed PROXY v1 line")
    try:
        src = ipaddress.ip_address(parts[2])
        dst = ipaddress.ip_address(parts[3])
        sport, dport = int(parts[4]), int(parts[5])
    except ValueError:
        raise ProxyError("malformed PROXY v1 addresses") from None
    family_ok = src.version == dst.version == (4 if parts[1] == "TCP4" else 6)
    if not family_ok or not (0 <= sport < 65536 and 0 <= dport < 65536):
        raise ProxyError("malformed PROXY v1 addresses")
    if str(sport) != parts[4] or str(dport) != parts[5]:
        raise ProxyError("malformed PROXY v1 ports")
    return ProxyHeader((str(src), sport), (str(dst), dport), end + 2)


def _v2(data: bytes) -> ProxyHeader | None:
    version_command, family, length = struct.unpack("!BBH", data[12:16])
    if version_command >> 4 != 2 or version_command & 0x0F > 1:
        raise ProxyError("unsupported PROXY v2 version or command")
    if 16 + length > V2_MAX + 2048:
        raise ProxyError("PROXY v2 header too long")
    if len(data) < 16 + length:
        return None
    body = data[16 : 16 + length]
    total = 16 + length
    if version_command & 0x0F == 0:  # LOCAL: the proxy's own connection (health check)
        return ProxyHeader(None, None, total)
    if family == 0x11:  # TCP over IPv4
        if length < 12:
            raise ProxyError("short PROXY v2 IPv4 block")
        src, dst, sport, dport = struct.unpack("!4s4sHH", body[:12])
        return ProxyHeader(
            (str(ipaddress.IPv4Address(src)), sport),
            (str(ipaddress.IPv4Address(dst)), dport),
            total,
        )
    if family == 0x21:  # TCP over IPv6
        if length < 36:
            raise ProxyError("short PROXY v2 IPv6 block")
        src, dst, sport, dport = struct.unpack("!16s16sHH", body[:36])
        return ProxyHeader(
            (str(ipaddress.IPv6Address(src)), sport),
            (str(ipaddress.IPv6Address(dst)), dport),
            total,
        )
    if family == 0x00:  # UNSPEC
        return ProxyHeader(None, None, total)
    raise ProxyError("unsupported PROXY v2 address family")


def v1_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A v1 header, as a proxy sends it (DNAT's ``send-proxy``)."""
    family = "TCP6" if ":" in source[0] else "TCP4"
    return f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n".encode()


def v2_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A v2 PROXY header over TCP (DNAT's ``send-proxy-v2``)."""
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    family = 0x11 if src.version == 4 else 0x21
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    return V2_SIGNATURE + struct.pack("!BBH", 0x21, family, len(body)) + body
