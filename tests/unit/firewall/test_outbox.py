"""firewall.outbox: a connection's writes of one reactor turn go out in one send, in order."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from firewall.outbox import Outbox, outbox_for


class FakeSocket:
    """Takes at most ``room`` bytes per send (None: all); or raises ``error``."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.room: int | None = None
        self.error: OSError | None = None

    def send(self, data: bytes) -> int:
        if self.error is not None:
            raise self.error
        taken = bytes(data if self.room is None else data[: self.room])
        self.sent.append(taken)
        return len(taken)


class FakeConnection:
    """What an Outbox reads of twisted.internet.tcp.Connection, and its write buffer."""

    def __init__(self, clock: Clock) -> None:
        self.reactor = clock
        self.socket = FakeSocket()
        self.TLS = False
        self.connected = True
        self.disconnecting = False
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0
        self.buffered: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self.connected:
            return
        self.buffered.append(data)
        self._tempDataLen += len(data)


def make(clock: Clock | None = None) -> tuple[Clock, FakeConnection, Outbox]:
    clock = clock or Clock()
    conn = FakeConnection(clock)
    return clock, conn, Outbox(conn)  # type: ignore[arg-type]


def test_one_turns_writes_go_out_in_one_send_at_its_end():
    clock, conn, outbox = make()
    outbox.write(b"a")
    outbox.write(b"bc")
    outbox.write(b"")
    assert conn.socket.sent == []
    clock.advance(0)
    assert conn.socket.sent == [b"abc"]
    assert conn.buffered == []
    outbox.write(b"d")
    clock.advance(0)
    assert conn.socket.sent == [b"abc", b"d"]


def test_each_connection_gets_one_send_per_turn_and_one_timer_serves_all():
    clock = Clock()
    _, first, a = make(clock)
    _, second, b = make(clock)
    a.write(b"1")
    b.write(b"2")
    a.write(b"3")
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(0)
    assert first.socket.sent == [b"13"]
    assert second.socket.sent == [b"2"]
    assert clock.getDelayedCalls() == []


def test_what_the_socket_does_not_take_goes_to_the_transport_and_later_writes_follow_it():
    clock, conn, outbox = make()
    conn.socket.room = 2
    outbox.write(b"hello")
    clock.advance(0)
    assert conn.socket.sent == [b"he"]
    assert conn.buffered == [b"llo"]
    # The transport still holds bytes: the next turn's must queue behind them.
    outbox.write(b"!")
    clock.advance(0)
    assert conn.socket.sent == [b"he"]
    assert conn.buffered == [b"llo", b"!"]


def test_a_partly_sent_transport_buffer_also_keeps_later_writes_behind_it():
    clock, conn, outbox = make()
    conn.dataBuffer, conn.offset = b"older", 2
    outbox.write(b"new")
    clock.advance(0)
    assert conn.socket.sent == []
    assert conn.buffered == [b"new"]


def test_a_full_socket_or_an_error_leaves_the_bytes_to_the_transport():
    clock, conn, outbox = make()
    conn.socket.error = BlockingIOError()
    outbox.write(b"x")
    clock.advance(0)
    assert conn.buffered == [b"x"]
    clock, conn, outbox = make()
    conn.socket.error = ConnectionResetError()
    outbox.write(b"y")
    clock.advance(0)
    assert conn.buffered == [b"y"]


def test_a_closing_or_closed_transport_is_written_to_as_before():
    clock, conn, outbox = make()
    conn.disconnecting = True
    outbox.write(b"bye")
    clock.advance(0)
    assert conn.socket.sent == []
    assert conn.buffered == [b"bye"]
    clock, conn, outbox = make()
    conn.connected = False
    outbox.write(b"late")
    clock.advance(0)
    assert conn.socket.sent == [] and conn.buffered == []


def test_once_tls_has_started_every_write_goes_through_the_transport():
    clock, conn, outbox = make()
    conn.TLS = True
    outbox.write(b"secret")
    clock.advance(0)
    assert conn.socket.sent == []
    assert conn.buffered == [b"secret"]


def test_flush_sends_at_once_and_discard_forgets():
    clock, conn, outbox = make()
    outbox.write(b"last words")
    outbox.flush()
    assert conn.socket.sent == [b"last words"]
    outbox.write(b"dropped")
    outbox.discard()
    clock.advance(0)
    assert conn.socket.sent == [b"last words"]
    assert conn.buffered == []


def test_only_plain_tcp_transports_get_an_outbox():
    assert outbox_for(StringTransport()) is None
    assert outbox_for(object()) is None
