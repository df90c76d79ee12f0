"""Writes of a TCP connection, coalesced per reactor turn and sent without a poll.

Twisted's TCP transport buffers each write, asks epoll for writability, sends when
the next poll says so, and then asks epoll to stop: two ``epoll_ctl`` calls, one
dispatch through the reactor and one ``send`` per connection and turn. A chat relay
writes a little to many connections every turn (deliveries, acks), so those calls
were a third of the reactor's time on IRC.

An :class:`Outbox` keeps what its connection writes during one reactor turn and, at
the turn's end, sends it straight on the socket in one ``send`` (as asyncio's
transports do when nothing is queued). Whatever the socket does not take, and every
write while the transport still has data of its own queued, goes to the transport as
before, so the order of the bytes never changes.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp

__all__ = ["Outbox", "outbox_for"]


class _Turn:
    """The outboxes of one reactor with something to send at the end of this turn."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._due: list[Outbox] = []

    def add(self, outbox: Outbox) -> None:
        if not self._due:
            # callLater(0): run after the events of this poll, before the next wait.
            self._reactor.callLater(0, self.flush)
        self._due.append(outbox)

    def flush(self) -> None:
        due, self._due = self._due, []
        for outbox in due:
            outbox.flush()


_turns: dict[int, _Turn] = {}


def _turn(reactor: Any) -> _Turn:
    turn = _turns.get(id(reactor))
    if turn is None:
        turn = _turns[id(reactor)] = _Turn(reactor)
    return turn


class Outbox:
    """One TCP connection's writes of the current reactor turn (see the module docstring).

    ``transport`` is a :class:`twisted.internet.tcp.Connection`; :func:`outbox_for`
    gives None for any other transport, whose writes then go to it directly.
    """

    __slots__ = ("_chunks", "_transport", "_turn")

    def __init__(self, transport: tcp.Connection) -> None:
        self._transport = transport
        self._turn = _turn(transport.reactor)
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the end of this turn."""
        if not data:
            return
        if not self._chunks:
            self._turn.add(self)
        self._chunks.append(data)

    def flush(self) -> None:
        """Send what this turn wrote now (before a close, say)."""
        chunks = self._chunks
        if not chunks:
            return
        self._chunks = []
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        transport = self._transport
        if not _idle(transport):
            transport.write(data)
            return
        try:
            sent = transport.socket.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            # The transport meets the same error on its own path and closes.
            transport.write(data)
            return
        if sent < len(data):
            transport.write(data[sent:])

    def discard(self) -> None:
        """Forget what was not sent yet (the connection is aborted or gone)."""
        self._chunks = []


def _idle(transport: tcp.Connection) -> bool:
    # Connected, not closing, not encrypting (STARTTLS), and nothing of its own waiting
    # to be sent: bytes sent now cannot overtake any.
    try:
        return (
            not transport.TLS
            and transport.connected
            and not transport.disconnecting
            and not transport._tempDataLen
            and transport.offset == len(transport.dataBuffer)
        )
    except AttributeError:  # another Twisted's transport: leave it to the transport
        return False


def outbox_for(transport: Any) -> Outbox | None:
    """An :class:`Outbox` for a plain TCP transport; None for anything else."""
    if isinstance(transport, tcp.Connection) and hasattr(transport, "_tempDataLen"):
        return Outbox(transport)
    return None
