"""protocols.tcp: TCP_NODELAY on every connection that has the option."""

from __future__ import annotations

from twisted.internet.testing import StringTransport

from protocols.tcp import no_delay


class _TcpLike(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.no_delay: bool | None = None

    def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802 - Twisted's name
        self.no_delay = enabled


class _Closed(StringTransport):
    def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802 - Twisted's name
        raise OSError("socket closed")


def test_no_delay_turns_nagle_off():
    transport = _TcpLike()
    no_delay(transport)
    assert transport.no_delay is True


def test_no_delay_leaves_other_transports_alone():
    no_delay(StringTransport())  # no setTcpNoDelay: nothing happens
    no_delay(_Closed())  # the socket is already gone: ignored
