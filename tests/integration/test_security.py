"""Security over real sockets (issue 9, item 5): what can be shown of it today.

- Failed agent logins are refused and logged, one fail2ban-friendly line each, on every
  protocol, with the peer's address and never the password. (Nothing throttles them
  beyond the per-connection limits: see the report of issue 9; test_overload.py bounds
  what a login flood costs.)
- A customer reaches nobody except through their own conversation and cannot use
  agent commands, on JSON-IM, XMPP and IRC.
- The TLS listeners (JSON-IM, IRC, XMPP direct TLS) speak TLS 1.2 or later only.
- The IRC bot refuses a network whose certificate it cannot verify. (A certificate for
  another name: test_irc_bot.py; the routing client: tests/unit/test_routing_remote.py.)
- Secrets never appear in the logs: agent passwords right and wrong, the XMPP
  component secret, the IRC bot's NickServ password, the admin token.
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import warnings
from pathlib import Path

import harness
import pytest
from irc_peers import RawIrc, irc_ports, write_config
from jsonim_client import answer_interview, hello_agent, hello_customer
from xmpp_peers import SlixClient, free_port, self_signed

AGENT, PASSWORD = "hal", "hal-Secret-9"
WRONG = "guess-Wrong-4"
COMPONENT_SECRET = "component-Secret-77"
NICKSERV_PASSWORD = "nickserv-Secret-55"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
JSONIM_TLS = r"jsonim listener ssl:\S* listening on 127\.0\.0\.1:(\d+)"
XMPP_LISTENING = r"xmpp listener \S+ listening on 127\.0\.0\.1:(\d+)"
XMPPS_LISTENING = r"xmpps listener \S+ listening on 127\.0\.0\.1:(\d+)"
HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("security")
    key, cert = self_signed(root)
    tls = f"ssl:0:interface=127.0.0.1:privateKey={key}:certKey={cert}"
    config = write_config(root, listeners=["tcp:0:interface=127.0.0.1", tls])
    text = config.read_text().replace(
        "[listeners]\n",
        f'[listeners]\nxmpp = ["tcp:0:interface=127.0.0.1"]\nxmpps = ["{tls}"]\n',
        1,
    )
    text = text.replace(
        'jsonim = ["tcp:0:interface=127.0.0.1"]', f'jsonim = ["tcp:0:interface=127.0.0.1", "{tls}"]'
    )
    # The component (nothing listens on its port) is configured only for its secret.
    component_port = free_port()
    text += (
        f'\n[xmpp]\nclient_domain = "localhost"\ndomain = "support.example.org"\n'
        f'server_port = {component_port}\nsecret = "{COMPONENT_SECRET}"\nreconnect_max_s = 1\n'
    )
    config.write_text(text)
    harness.add_agent(config, AGENT, PASSWORD, "Hal")
    gateway = harness.start_gateway(root / "cwd", config, "security")
    ports = irc_ports(gateway, 2)
    gateway.ports = {
        "jsonim": gateway.port,
        "jsonim-tls": int(gateway.wait_for_log(JSONIM_TLS, TIMEOUT).group(1)),
        "irc": ports["tcp"],
        "irc-tls": ports["ssl"],
        "xmpp": int(gateway.wait_for_log(XMPP_LISTENING, TIMEOUT).group(1)),
        "xmpps": int(gateway.wait_for_log(XMPPS_LISTENING, TIMEOUT).group(1)),
    }
    gateway.cert = cert
    gateway.component_port = component_port
    gateway.root = root
    yield gateway
    gateway.stop()


def auth_failures(gateway: harness.Gateway, start: int, protocol: str) -> list[str]:
    return [
        line
        for line in gateway.lines[start:]
        if f"auth failure protocol={protocol} user={AGENT} address=127.0.0.1" in line
    ]


def wait_auth_failure(gateway: harness.Gateway, start: int, protocol: str) -> None:
    gateway.wait_for_log(
        rf"auth failure protocol={protocol} user={AGENT} address=127\.0\.0\.1$", TIMEOUT, start
    )


def read_until(sock, marker: bytes) -> bytes:
    data = b""
    sock.settimeout(TIMEOUT)
    while marker not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


# -- failed logins ---------------------------------------------------------------------


def test_a_failed_jsonim_login_is_refused_and_logged(site):
    mark = len(site.lines)
    client = site.connect("guesser")
    client.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": "x", "version": "1"},
            "auth": {"user": AGENT, "password": WRONG},
        }
    )
    assert client.expect("error")["code"] == "auth_failed"
    assert client.closed()
    wait_auth_failure(site, mark, "jsonim")
    assert len(auth_failures(site, mark, "jsonim")) == 1


def test_a_failed_irc_sasl_login_is_refused_and_logged(site):
    mark = len(site.lines)
    context = ssl.create_default_context(cafile=str(site.cert))
    client = RawIrc(site.ports["irc-tls"], name="irc guesser", tls=context)
    client.send("CAP LS 302", "NICK guesser", "USER hal 0 * :x", "CAP REQ :sasl")
    client.expect(r" CAP \S+ ACK ")
    client.send("AUTHENTICATE PLAIN")
    client.expect(r"^AUTHENTICATE \+")
    client.send("AUTHENTICATE " + base64.b64encode(f"\0{AGENT}\0{WRONG}".encode()).decode())
    client.expect(r"^:irc\.itest 904 guesser :SASL authentication failed$")
    wait_auth_failure(site, mark, "irc")
    assert len(auth_failures(site, mark, "irc")) == 1
    client.close()


def test_a_failed_xmpp_scram_login_is_refused_and_logged(site):
    mark = len(site.lines)
    with pytest.raises(AssertionError, match="authentication failed"):
        SlixClient(f"{AGENT}@localhost/x", WRONG, site.ports["xmpp"], mechanism="SCRAM-SHA-256")
    wait_auth_failure(site, mark, "xmpp")
    assert len(auth_failures(site, mark, "xmpp")) == 1


def test_a_failed_xmpp_plain_login_is_refused_and_logged(site):
    mark = len(site.lines)
    context = ssl.create_default_context(cafile=str(site.cert))
    with socket.create_connection(("127.0.0.1", site.ports["xmpps"]), timeout=TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(HEADER)
            read_until(sock, b"</stream:features>")
            plain = base64.b64encode(f"\0{AGENT}\0{WRONG}".encode()).decode()
            sock.sendall(f"<auth xmlns='{SASL}' mechanism='PLAIN'>{plain}</auth>".encode())
            assert b"<not-authorized/>" in read_until(sock, b"</failure>")
    wait_auth_failure(site, mark, "xmpp")
    assert len(auth_failures(site, mark, "xmpp")) == 1


# -- customers reach nobody else -----------------------------------------------------------


def test_a_customer_reaches_nobody_but_through_their_own_conversation(site):
    agent = site.connect("agent")
    hello_agent(agent, AGENT, PASSWORD)
    victim = site.connect("victim")
    hello_customer(victim, identity={"name": "Vic"}, topic="billing")
    answer_interview(victim, {"name": "Vic", "topic": "billing"})
    offer = agent.expect("offer")
    conversation = offer["conversation"]
    alias = offer["customer"]["alias"]
    agent.send({"type": "accept", "offer": offer["offer"]})
    agent.expect("connected", conversation=conversation)
    victim.expect("connected", conversation=conversation)
    # No new offers while the intruders try: the agent is away, its chat goes on.
    agent.send({"type": "presence", "status": "away"})
    agent.sync()
    injected = "INJECTED"

    # JSON-IM: agent actions are refused; a conversation id in a message is ignored.
    intruder = site.connect("intruder")
    hello_customer(intruder, identity={"name": "Ivan"}, topic="billing")
    for frame in (
        {"type": "accept", "offer": offer["offer"], "id": "i1"},
        {"type": "reject", "offer": offer["offer"], "id": "i2"},
        {"type": "transfer", "conversation": conversation, "to": {"agent": AGENT}, "id": "i3"},
        {"type": "presence", "status": "available", "id": "i4"},
    ):
        intruder.send(frame)
        error = intruder.expect("error", id=frame["id"])
        assert error["code"] == "not_allowed", error
    intruder.send({"type": "message", "conversation": conversation, "text": injected, "id": "i5"})
    intruder.expect("ack", id="i5")
    intruder.send({"type": "typing", "conversation": conversation, "state": "active"})
    intruder.sync()

    # XMPP: the agent's account, the victim's alias, commands to the service.
    with socket.create_connection(("127.0.0.1", site.ports["xmpp"]), timeout=TIMEOUT) as sock:
        sock.sendall(HEADER)
        read_until(sock, b"</stream:features>")
        sock.sendall(f"<auth xmlns='{SASL}' mechanism='ANONYMOUS'/>".encode())
        read_until(sock, b"<success")
        sock.sendall(HEADER)
        read_until(sock, b"</stream:features>")
        sock.sendall(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        read_until(sock, b"</iq>")
        for to, body, answer in (
            (f"{AGENT}@localhost", injected, b"<item-not-found"),
            (f"{alias}@localhost", injected, b"<item-not-found"),
        ):
            sock.sendall(
                f"<message to='{to}' type='chat' id='x'><body>{body}</body></message>".encode()
            )
            assert answer in read_until(sock, b"</message>"), to
        for command in (f"/accept {offer['offer']}", f"/end {alias}", f"/transfer {alias} x"):
            stanza = f"<message to='support@localhost' type='chat'><body>{command}</body></message>"
            sock.sendall(stanza.encode())
        sock.sendall(b"<iq type='get' id='done'><ping xmlns='urn:xmpp:ping'/></iq>")
        read_until(sock, b"id='done'")

    # IRC: the agent's alias, the agents' channel, commands to the service.
    irc = RawIrc(site.ports["irc"], name="irc intruder")
    irc.register("intruder")
    irc.send(f"PRIVMSG Hal :{injected}")
    irc.expect(r"^:irc\.itest 401 intruder Hal :No such nick/channel$")
    irc.send(f"PRIVMSG {alias} :{injected}")
    irc.expect(rf"^:irc\.itest 401 intruder {alias} :No such nick/channel$")
    irc.send("JOIN #agents")
    irc.expect(r"^:irc\.itest 473 intruder #agents :Cannot join channel \(\+i\)$")
    irc.send(f"PRIVMSG Support :/accept {offer['offer']}", f"PRIVMSG Support :/end {alias}")
    irc.send("PING :done")
    irc.expect(r"PONG irc\.itest :done$")
    irc.close()

    # The victim's conversation carries on, and its agent heard none of it.
    victim.send({"type": "message", "text": "still mine", "id": "v1"})
    victim.expect("ack", id="v1")
    got = agent.expect("message", conversation=conversation)
    assert got["text"] == "still mine", got
    agent.sync()
    for frame in agent.received:
        assert injected not in str(frame) and "/accept" not in str(frame), frame
        assert frame.get("type") not in ("typing", "ended", "error"), frame
    assert not victim.frames_of("ended") and not victim.frames_of("error")
    for client in (intruder, victim, agent):
        client.close()


# -- TLS versions -----------------------------------------------------------------------------


def tls_context(cafile: str, version: ssl.TLSVersion) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.create_default_context(cafile=cafile)
        context.minimum_version = version
        context.maximum_version = version
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def handshake(port: int, context: ssl.SSLContext) -> str | None:
    """The TLS version agreed, or None when the handshake failed."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as sock:
                return sock.version()
        except (ssl.SSLError, ConnectionResetError):
            return None


def test_the_client_here_can_speak_tls_1_1(tmp_path):
    # The control for the next test: a server that allows TLS 1.1 gets it from us.
    key, cert = self_signed(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.minimum_version = ssl.TLSVersion.TLSv1_1
        server.set_ciphers("DEFAULT:@SECLEVEL=0")
    server.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        conn, _ = listener.accept()
        try:
            server.wrap_socket(conn, server_side=True).close()
        except ssl.SSLError:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    assert handshake(port, tls_context(str(cert), ssl.TLSVersion.TLSv1_1)) == "TLSv1.1"
    thread.join(TIMEOUT)
    listener.close()


@pytest.mark.parametrize("listener", ["jsonim-tls", "irc-tls", "xmpps"])
def test_tls_listeners_speak_tls_1_2_or_later_only(site, listener):
    port, cafile = site.ports[listener], str(site.cert)
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        assert handshake(port, tls_context(cafile, old)) is None, (listener, old)
    assert handshake(port, tls_context(cafile, ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
    assert handshake(port, tls_context(cafile, ssl.TLSVersion.TLSv1_3)) == "TLSv1.3"


# -- the IRC bot verifies its network -----------------------------------------------------


class FakeTlsNetwork:
    """A TLS IRC server with a self-signed certificate for localhost; records lines."""

    def __init__(self, directory: Path) -> None:
        key, self.cert = self_signed(directory)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(self.cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lines: list[bytes] = []
        self.failures: list[str] = []
        self.event = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            try:
                sock = self.context.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError) as e:
                self.failures.append(str(e))
                self.event.set()
                conn.close()
                continue
            buffer = b""
            sock.settimeout(TIMEOUT)
            try:
                while True:
                    data = sock.recv(4096)
                    if not data:
                        break
                    buffer += data
                    *lines, buffer = buffer.split(b"\r\n")
                    for line in lines:
                        self.lines.append(line)
                        if line.startswith(b"USER "):
                            sock.sendall(b":fake 001 Support :hi\r\n:fake 376 Support :end\r\n")
                        self.event.set()
            except (OSError, ssl.SSLError):
                pass
            sock.close()

    def wait(self, predicate, timeout: float = 20.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"lines {self.lines}, failures {self.failures}"
            self.event.wait(min(remaining, 0.5))
            self.event.clear()

    def close(self) -> None:
        self.listener.close()


def bot_gateway(root: Path, port: int, ca_file: str) -> harness.Gateway:
    bot = f"""
[irc.bot]
enabled = true
host = "localhost"
port = {port}
tls = true
ca_file = "{ca_file}"
auth = "nickserv"
password = "{NICKSERV_PASSWORD}"
reconnect_initial_s = 0.2
reconnect_max_s = 1
"""
    config = write_config(root, listeners=[], irc=bot)
    return harness.start_gateway(root / "cwd", config, "tls-bot")


def test_the_irc_bot_refuses_a_network_it_cannot_verify(tmp_path):
    network = FakeTlsNetwork(tmp_path)
    try:
        # No ca_file: the system's CAs, which never signed this certificate.
        gateway = bot_gateway(tmp_path / "untrusted", network.port, "")
        try:
            network.wait(lambda: len(network.failures) >= 2)
            gateway.wait_for_log(r"IRC bot: connection lost: .*certificate verify failed", 20)
            assert network.lines == [], "the bot spoke to a network it could not verify"
            assert "IRC bot: on " not in gateway.log()
        finally:
            gateway.stop()
        # The control: trusting the certificate, the bot registers and identifies.
        gateway = bot_gateway(tmp_path / "trusted", network.port, str(network.cert))
        try:
            network.wait(lambda: any(b"IDENTIFY" in line for line in network.lines))
            identify = b"PRIVMSG NickServ :IDENTIFY Support " + NICKSERV_PASSWORD.encode()
            assert identify in network.lines, network.lines
            assert NICKSERV_PASSWORD not in gateway.log()
        finally:
            gateway.stop()
    finally:
        network.close()


# -- secrets in logs ------------------------------------------------------------------------


def test_secrets_never_appear_in_the_log(site):
    # After every test above: logins right and wrong on every protocol, the component
    # trying its (absent) server.
    site.wait_for_log(
        rf"retry \d+ to connect <HostnameEndpoint 127\.0\.0\.1:{site.component_port}>", TIMEOUT
    )
    token = (site.root / "data" / "admin.token").read_text().strip()
    log = site.log()
    for secret in (PASSWORD, WRONG, COMPONENT_SECRET, token):
        assert secret and secret not in log, f"a secret is in the log: {secret[:4]}…"
    for encoded in (base64.b64encode(f"\0{AGENT}\0{WRONG}".encode()).decode(),):
        assert encoded not in log
