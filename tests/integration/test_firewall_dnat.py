"""DNAT over real sockets: flow control both ways (a side that does not read holds the
other back; the gateway's memory stays flat and nothing sent is lost), and a target given
as a host name resolved before the output chain and SNAT judge it."""

from __future__ import annotations

import socket
import threading

import fw_site
import harness
import pytest
from fw_site import dial

from firewall import proxyproto

MIB = 1024 * 1024
PUSH_LIMIT = 256 * MIB  # what a client would push without flow control
GROWTH_LIMIT = 48 * MIB  # the gateway's resident memory may grow this much at most
STALL_S = 3.0  # a send blocked this long: the other side stopped reading
DNAT_NAMES = ("sink", "named", "blocked")

RULES = """\
chain output {
    policy accept;
    ip daddr 127.0.0.1 tcp dport {blocked} drop;
}
nat {
    dnat listener sink to 127.0.0.1:{sink};
    dnat listener named to localhost:{echo};
    dnat listener blocked to localhost:{blocked};
    snat to 127.0.0.0/8 from 127.0.0.5;
}
"""


class Backend:
    """A TCP server on 127.0.0.1 that accepts and hands each connection to the test
    (which decides whether and when to read or write)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(fw_site.TIMEOUT)
        self.port = self.listener.getsockname()[1]

    def accept(self) -> tuple[socket.socket, tuple[str, int]]:
        """The next connection (within the timeout) and its peer address."""
        conn, peer = self.listener.accept()
        conn.settimeout(fw_site.TIMEOUT)
        return conn, peer

    def close(self) -> None:
        """Stop listening."""
        self.listener.close()


def rss(gateway: harness.Gateway) -> int:
    """The gateway's resident memory in bytes."""
    with open(f"/proc/{gateway.proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def push(sock: socket.socket, limit: int = PUSH_LIMIT) -> int:
    """Send until ``limit`` bytes are sent or a send stalls for STALL_S; bytes sent."""
    chunk = b"x" * MIB
    sent = 0
    sock.settimeout(STALL_S)
    while sent < limit:
        try:
            sent += sock.send(chunk)
        except TimeoutError:
            break
    return sent


def drain(sock: socket.socket, expected: int) -> int:
    """Read until ``expected`` bytes came or the peer closed; the count read."""
    got = 0
    sock.settimeout(fw_site.TIMEOUT)
    while got < expected:
        data = sock.recv(4 * MIB)
        if not data:
            break
        got += len(data)
    return got


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("firewall-dnat")
    sink, echo, blocked = Backend(), fw_site.EchoServer(), Backend()
    rules = (
        RULES.replace("{sink}", str(sink.port))
        .replace("{echo}", str(echo.port))
        .replace("{blocked}", str(blocked.port))
    )
    dnat = "".join(f'{name} = ["tcp:0:interface=127.0.0.1"]\n' for name in DNAT_NAMES)
    config, _ = fw_site.write_config(root, rules, "\n[firewall.dnat]\n" + dnat)
    gateway = harness.start_gateway(root / "cwd", config)
    gateway.sink, gateway.echo, gateway.blocked = sink, echo, blocked
    gateway.dnat = {name: fw_site.port_of(gateway, f"dnat.{name}") for name in DNAT_NAMES}
    yield gateway
    gateway.stop()
    sink.close()
    echo.close()
    blocked.close()


def test_a_backend_that_does_not_read_holds_the_client_back(site):
    before = rss(site)
    client = dial(site.dnat["sink"], "127.0.0.41")
    backend, _ = site.sink.accept()
    sent = push(client)
    grown = rss(site) - before
    assert sent < PUSH_LIMIT, "the gateway read everything the client pushed"
    assert grown < GROWTH_LIMIT, f"the gateway grew by {grown / MIB:.0f} MiB"
    # Nothing the client sent is lost once the backend reads.
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.append(drain(backend, sent)))
    reader.start()
    client.shutdown(socket.SHUT_WR)
    reader.join(60)
    assert got == [sent]
    client.close()
    backend.close()


def test_a_client_that_does_not_read_holds_the_backend_back(site):
    before = rss(site)
    client = dial(site.dnat["sink"], "127.0.0.42")
    backend, _ = site.sink.accept()
    sent = push(backend)
    grown = rss(site) - before
    assert sent < PUSH_LIMIT, "the gateway read everything the backend pushed"
    assert grown < GROWTH_LIMIT, f"the gateway grew by {grown / MIB:.0f} MiB"
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.append(drain(client, sent)))
    reader.start()
    backend.shutdown(socket.SHUT_WR)
    reader.join(60)
    assert got == [sent]
    client.close()
    backend.close()


def test_a_host_name_target_meets_snat_once_resolved(site):
    client = dial(site.dnat["named"], "127.0.0.43")
    client.sendall(b"hello by name\n")
    client.settimeout(fw_site.TIMEOUT)
    got = b""
    while not got.endswith(b"\n"):
        chunk = client.recv(4096)
        assert chunk, got
        got += chunk
    assert got == b"hello by name\n"
    assert site.echo.peers[-1][0] == "127.0.0.5"  # SNAT applied to the resolved address
    client.close()


def test_a_host_name_target_meets_the_output_chain_once_resolved(site):
    mark = len(site.lines)
    assert fw_site.closed_silently(dial(site.dnat["blocked"], "127.0.0.44")) == b""
    site.wait_for_log(r"firewall drop address=127\.0\.0\.1 listener=output rule=\d+", 10, mark)
    # The drop came before any connection out: none waits at the blocked backend.
    site.blocked.listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        site.blocked.listener.accept()
    site.blocked.listener.setblocking(True)


# -- HAProxy-grade DNAT: several backends, checks, failover, timeouts, PROXY to them --


class NamedBackend:
    """A TCP server on 127.0.0.1 that answers each connection with its name, after
    reading a PROXY header when told to (and keeping what it said), then echoes."""

    def __init__(self, name: str, proxy: bool = False) -> None:
        self.name, self.proxy = name, proxy
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.headers: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(fw_site.TIMEOUT)
        with conn:
            try:
                data = b""
                if self.proxy:
                    while (header := proxyproto.parse(data)) is None:
                        chunk = conn.recv(4096)
                        if not chunk:
                            return
                        data += chunk
                    self.headers.append(header)
                    data = data[header.length :]
                conn.sendall(self.name.encode() + b"\n" + data)
                while chunk := conn.recv(65536):
                    conn.sendall(chunk)
            except OSError:
                pass

    def close(self) -> None:
        """Stop accepting (connections to its port are refused from now on)."""
        self._stop.set()
        self._thread.join(fw_site.TIMEOUT)
        self.listener.close()


def first_line(port: int, source: str) -> bytes:
    """Connect through DNAT from ``source``; the backend's first line (b"" if closed)."""
    sock = dial(port, source)
    sock.settimeout(fw_site.TIMEOUT)
    data = b""
    try:
        while b"\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return data.split(b"\n")[0]


HAPROXY_RULES = """\
nat {
    dnat listener pool to { 127.0.0.1:{a}, 127.0.0.1:{b}, 127.0.0.1:{backup} backup }
        check interval 0.2 timeout 1 fall 1 rise 1;
    dnat listener failover to { 127.0.0.1:{stuffed}, 127.0.0.1:{c} } balance first
        timeout connect 0.5;
    dnat listener proxied to 127.0.0.1:{v2} send-proxy-v2 timeout idle 0.5;
    dnat listener proxied1 to 127.0.0.1:{v1} send-proxy;
}
"""


@pytest.fixture(scope="module")
def pool_site(tmp_path_factory):
    root = tmp_path_factory.mktemp("firewall-dnat-pool")
    backends = {
        "a": NamedBackend("a"),
        "b": NamedBackend("b"),
        "backup": NamedBackend("backup"),
        "c": NamedBackend("c"),
        "v2": NamedBackend("v2", proxy=True),
        "v1": NamedBackend("v1", proxy=True),
    }
    # A backend that never answers a connection: its one-place queue is taken.
    stuffed = socket.socket()
    stuffed.bind(("127.0.0.1", 0))
    stuffed.listen(0)
    filler = socket.create_connection(stuffed.getsockname(), timeout=fw_site.TIMEOUT)
    rules = HAPROXY_RULES.replace("{stuffed}", str(stuffed.getsockname()[1]))
    for name, backend in backends.items():
        rules = rules.replace("{" + name + "}", str(backend.port))
    names = ("pool", "failover", "proxied", "proxied1")
    dnat = "".join(f'{name} = ["tcp:0:interface=127.0.0.1"]\n' for name in names)
    config, _ = fw_site.write_config(root, rules, "\n[firewall.dnat]\n" + dnat)
    gateway = harness.start_gateway(root / "cwd", config)
    gateway.backends = backends
    gateway.dnat = {name: fw_site.port_of(gateway, f"dnat.{name}") for name in names}
    yield gateway
    gateway.stop()
    for backend in backends.values():
        backend.close()
    filler.close()
    stuffed.close()


def test_several_backends_take_turns_and_a_dead_one_is_checked_out(pool_site):
    port = pool_site.dnat["pool"]
    assert sorted(first_line(port, "127.0.0.46") for _ in range(2)) == [b"a", b"b"]
    status = fw_site.fw_of(pool_site, "dnat", "list").stdout
    assert f"127.0.0.1:{pool_site.backends['a'].port} up" in status
    pool_site.backends["a"].close()
    pool_site.wait_for_log(
        rf"dnat\.pool: backend 127\.0\.0\.1:{pool_site.backends['a'].port} is down", 10
    )
    assert {first_line(port, "127.0.0.46") for _ in range(4)} == {b"b"}
    pool_site.backends["b"].close()
    pool_site.wait_for_log(
        rf"dnat\.pool: backend 127\.0\.0\.1:{pool_site.backends['b'].port} is down", 10
    )
    # Only the backup is left: it serves.
    assert first_line(port, "127.0.0.46") == b"backup"
    assert "backup up" in fw_site.fw_of(pool_site, "dnat", "list").stdout


def test_a_backend_that_does_not_answer_in_time_fails_over(pool_site):
    mark = len(pool_site.lines)
    assert first_line(pool_site.dnat["failover"], "127.0.0.47") == b"c"
    pool_site.wait_for_log(r"dnat\.failover: backend 127\.0\.0\.1:\d+ unreachable", 10, mark)


def test_the_backend_learns_the_clients_address_and_idle_connections_close(pool_site):
    sock = dial(pool_site.dnat["proxied"], "127.0.0.48")
    local = sock.getsockname()
    sock.settimeout(fw_site.TIMEOUT)
    assert sock.recv(4096).startswith(b"v2\n")
    (header,) = pool_site.backends["v2"].headers
    assert header.source == local
    assert header.destination == ("127.0.0.1", pool_site.dnat["proxied"])
    # Silent both ways for longer than "timeout idle 0.5": closed by the gateway.
    assert sock.recv(4096) == b""
    sock.close()
    pool_site.wait_for_log(r"dnat\.proxied: 127\.0\.0\.48 idle for 0\.5s, closing", 10)
    assert first_line(pool_site.dnat["proxied1"], "127.0.0.49") == b"v1"
    (header,) = pool_site.backends["v1"].headers
    assert header.source[0] == "127.0.0.49"
