"""A blocking JSON-IM/1 client for the integration tests (see shared/spec/jsonim.md).

Every wait has a deadline. Frames that arrive while the test waits for another type
are kept, in order, for a later :meth:`JsonImClient.expect`.
"""

from __future__ import annotations

import json
import socket
import ssl
import struct
import time
from collections.abc import Iterable
from typing import Any

DEFAULT_TIMEOUT = 10.0


class JsonImClient:
    """One TCP connection to a JSON-IM listener."""

    def __init__(
        self,
        port: int,
        *,
        name: str = "client",
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        server_hostname: str = "localhost",
    ) -> None:
        self.name = name
        self.sock = socket.create_connection((host, port), timeout=DEFAULT_TIMEOUT)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=server_hostname)
        self.raw_lines: list[bytes] = []  # every line the server sent, as sent
        self.received: list[dict] = []  # every frame, in order
        self._pending: list[tuple[int, dict]] = []  # (index in received, frame) not yet taken
        self._buffer = b""
        self._eof = False
        self._sent_texts: dict[str, str] = {}  # frame id -> text of a sent message
        self._next_id = 0

    # -- sending ---------------------------------------------------------------

    def send(self, frame: dict) -> None:
        """Send one frame; a message's text is remembered by its id for :meth:`acked`."""
        if frame.get("type") == "message" and isinstance(frame.get("id"), str):
            self._sent_texts[frame["id"]] = frame.get("text")
        self.send_raw(json.dumps(frame, ensure_ascii=False).encode() + b"\n")

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are."""
        self.sock.sendall(data)

    def new_id(self, prefix: str = "f") -> str:
        """A frame id unique on this connection."""
        self._next_id += 1
        return f"{prefix}{self._next_id}"

    # -- receiving -------------------------------------------------------------

    def expect(
        self, type_: str, timeout: float = DEFAULT_TIMEOUT, *, since: int = 0, **fields: Any
    ) -> dict:
        """Take the next frame of ``type_`` (with these field values), waiting until ``timeout``.

        ``since`` (from :meth:`mark`) ignores frames received before the mark.
        """
        return self.expect_any([type_], timeout, since=since, **fields)

    def expect_any(
        self, types: Iterable[str], timeout: float = DEFAULT_TIMEOUT, *, since: int = 0, **fields
    ) -> dict:
        """Take the next frame whose type is one of ``types`` (and fields match)."""
        wanted = set(types)
        deadline = time.monotonic() + timeout
        while True:
            for i, (index, frame) in enumerate(self._pending):
                if (
                    index >= since
                    and frame.get("type") in wanted
                    and all(frame.get(k) == v for k, v in fields.items())
                ):
                    del self._pending[i]
                    return frame
            if self._eof:
                raise AssertionError(self._describe(f"closed while waiting for {wanted} {fields}"))
            if not self._read(deadline):
                raise AssertionError(self._describe(f"no {wanted} {fields} within {timeout:g}s"))

    def frames_of(self, type_: str) -> list[dict]:
        """Every frame of ``type_`` received so far, taken by expect() or not."""
        return [f for f in self.received if f.get("type") == type_]

    def pending(self) -> list[dict]:
        """Frames received that no expect() has taken."""
        return [frame for _, frame in self._pending]

    def mark(self) -> int:
        """A position in the received frames, for ``expect(..., since=mark)``."""
        return len(self.received)

    def closed(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """True if the server closes the connection within ``timeout``; frames are kept."""
        deadline = time.monotonic() + timeout
        while not self._eof:
            if not self._read(deadline):
                return False
        return True

    def sync(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Ping and wait for the pong: every frame sent before has been handled."""
        pid = self.new_id("sync")
        self.send({"type": "ping", "id": pid})
        self.expect("pong", timeout, id=pid)

    def acked(self) -> dict[str, str]:
        """Stored message id (``ack.msg``) -> the text this client sent under that frame id."""
        out = {}
        for ack in self.frames_of("ack"):
            if ack.get("id") in self._sent_texts and isinstance(ack.get("msg"), str):
                out[ack["msg"]] = self._sent_texts[ack["id"]]
        return out

    def text(self) -> str:
        """Everything the server sent, as text."""
        return b"\n".join(self.raw_lines).decode("utf-8", "replace")

    # -- closing ---------------------------------------------------------------

    def close(self) -> None:
        """Close our side."""
        self.sock.close()

    def hang_up(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Close our writing side and wait until the server has closed too."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        try:
            assert self.closed(timeout), self._describe("server did not close after our FIN")
        finally:
            self.sock.close()

    def abort(self) -> None:
        """Drop the connection abruptly (TCP RST), as a crashed client would."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    # -- internals -------------------------------------------------------------

    def _read(self, deadline: float) -> bool:
        """Read once; False when the deadline passed with nothing read."""
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
            if self._buffer:
                self._line(self._buffer)  # a last frame without its LF
                self._buffer = b""
            return True
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            self._line(line.rstrip(b"\r"))
        return True

    def _line(self, line: bytes) -> None:
        if not line:
            return
        self.raw_lines.append(line)
        try:
            frame = json.loads(line)
        except ValueError:
            raise AssertionError(
                f"{self.name}: server sent a line that is not JSON: {line!r}"
            ) from None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            raise AssertionError(f"{self.name}: server sent a frame without a type: {line!r}")
        self._pending.append((len(self.received), frame))
        self.received.append(frame)

    def _describe(self, problem: str) -> str:
        lines = [f"{self.name}: {problem}.", "  frames received (oldest first, * = not yet taken):"]
        pending = {id(f) for _, f in self._pending}
        for frame in self.received[-40:]:
            mark = "*" if id(frame) in pending else " "
            lines.append(f"  {mark} {json.dumps(frame, ensure_ascii=False)[:400]}")
        if not self.received:
            lines.append("    (none)")
        if self._eof:
            lines.append("  the server closed the connection")
        return "\n".join(lines)


def hello_customer(
    client: JsonImClient,
    *,
    client_name: str = "itest-widget",
    client_version: str = "2.3.1",
    features: Iterable[str] = ("typing",),
    **extra: Any,
) -> dict:
    """Say hello as a customer and return the welcome."""
    client.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "customer",
            "client": {"name": client_name, "version": client_version},
            "features": list(features),
            **extra,
        }
    )
    return client.expect("welcome")


def hello_agent(
    client: JsonImClient,
    user: str,
    password: str,
    *,
    features: Iterable[str] = ("typing",),
    status: str | None = "available",
) -> dict:
    """Log in as an agent, set presence (confirmed by a ping) and return the welcome."""
    client.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": "itest-desk", "version": "1.0"},
            "features": list(features),
            "auth": {"user": user, "password": password},
        }
    )
    welcome = client.expect("welcome")
    if status is not None:
        set_presence(client, status)
    return welcome


def set_presence(client: JsonImClient, status: str) -> None:
    """Send presence and wait until the gateway has handled it."""
    client.send({"type": "presence", "status": status})
    client.sync()


def answer_interview(
    client: JsonImClient, answers: dict[str, str], timeout: float = DEFAULT_TIMEOUT
) -> tuple[list[dict], dict]:
    """Answer every prompt from ``answers`` until queued; return (prompts, queued)."""
    prompts = []
    while True:
        frame = client.expect_any(["prompt", "queued"], timeout)
        if frame["type"] == "queued":
            return prompts, frame
        prompts.append(frame)
        field = frame.get("field")
        assert field in answers, client._describe(f"unexpected prompt for field {field!r}")
        client.send({"type": "message", "text": answers[field], "id": client.new_id("iv")})


def exchange(
    customer: JsonImClient, agent: JsonImClient, conversation: str, asked: str, answered: str
) -> tuple[str, str]:
    """One message each way, each acknowledged and delivered; returns the two ``msg`` ids."""
    cid = customer.new_id("c")
    customer.send({"type": "message", "text": asked, "id": cid})
    to_agent = customer.expect("ack", id=cid)["msg"]
    assert isinstance(to_agent, str) and to_agent, customer._describe("ack without msg")
    got = agent.expect("message", msg=to_agent)
    assert (got.get("conversation"), got.get("from"), got.get("text")) == (
        conversation,
        "customer",
        asked,
    ), got
    assert isinstance(got.get("ts"), int | float), got

    aid = agent.new_id("a")
    agent.send({"type": "message", "conversation": conversation, "text": answered, "id": aid})
    to_customer = agent.expect("ack", id=aid)["msg"]
    assert isinstance(to_customer, str) and to_customer, agent._describe("ack without msg")
    got = customer.expect("message", msg=to_customer)
    assert (got.get("conversation"), got.get("from"), got.get("text")) == (
        conversation,
        "agent",
        answered,
    ), got
    return to_agent, to_customer


def connected_pair(
    gateway: Any, agent_name: str, password: str
) -> tuple[JsonImClient, JsonImClient, str]:
    """A healthy customer and agent already in conversation: (customer, agent, id).

    Hostile cases run beside it; it must carry on unaffected.
    """
    agent = gateway.connect("healthy agent")
    hello_agent(agent, agent_name, password)
    customer = gateway.connect("healthy customer")
    hello_customer(customer, identity={"name": "Hana"}, topic="billing")
    answer_interview(customer, {"name": "Hana", "topic": "billing"})
    offer = agent.expect("offer")
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=offer["conversation"])
    customer.expect("connected", conversation=offer["conversation"])
    return customer, agent, offer["conversation"]
