"""Login lockout over real sockets (addresses given by a trusted proxy's PROXY headers):
guesses spread over many addresses slow down the guessing but do not lock the real agent
out of the place it logs in from; a successful login of another account does not wipe an
address's failures; logins the adapter checks itself (XMPP SCRAM) count and are held
back as a password is."""

from __future__ import annotations

import base64
import re
import socket

import fw_site
import harness
import pytest
from fw_site import Client
from jsonim_client import hello_agent

from firewall import proxyproto

RULES = "proxy { trusted 127.0.0.2; }\n"
ACCOUNTS = {
    "anna": "anna-Secret-1",
    "bob": "bob-Secret-2",
    "mallory": "mallory-Secret-3",
    "carol": "carol-Secret-4",
}
XMPP_LISTENING = r"xmpp listener \S+ listening on 127\.0\.0\.1:(\d+)"
HOME = "203.0.113.10"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("firewall-logins")
    config, _ = fw_site.write_config(root, RULES)
    text = config.read_text().replace("[agents]\n", "[agents]\nlogin_failures_free = 2\n", 1)
    text = text.replace("[listeners]\n", '[listeners]\nxmpp = ["tcp:0:interface=127.0.0.1"]\n', 1)
    config.write_text(text + '\n[xmpp]\nclient_domain = "localhost"\n')
    for name, password in ACCOUNTS.items():
        harness.add_agent(config, name, password, name.title())
    gateway = harness.start_gateway(root / "cwd", config)
    gateway.xmpp_port = int(gateway.wait_for_log(XMPP_LISTENING, 10).group(1))
    yield gateway
    gateway.stop()


def from_address(site, source: str, name: str) -> Client:
    header = proxyproto.v1_header((source, 40000), ("127.0.0.1", site.port))
    return Client(site.port, "127.0.0.2", name, first=header)


def attempt(site, source: str, user: str, password: str) -> dict:
    """One agent hello from ``source``; the welcome or the error."""
    client = from_address(site, source, f"{user} from {source}")
    client.send(
        {
            "type": "hello",
            "protocol": "jsonim/1",
            "role": "agent",
            "client": {"name": "desk", "version": "1"},
            "auth": {"user": user, "password": password},
        }
    )
    answer = client.expect_any(["welcome", "error"])
    client.close()
    return answer


def test_guessing_from_many_addresses_does_not_lock_the_agent_out_at_home(site):
    home = from_address(site, HOME, "anna at home")
    hello_agent(home, "anna", ACCOUNTS["anna"])
    home.hang_up()
    answers = [attempt(site, f"198.51.100.{i}", "anna", "guess") for i in range(1, 11)]
    assert answers[0]["text"] == "authentication failed"
    # The account's free failures (four times an address's) are spent: guessing from
    # anywhere new is held back ...
    assert answers[-1]["text"].startswith("too many failed logins"), answers
    # ... but not the agent, from where it logs in.
    assert attempt(site, HOME, "anna", ACCOUNTS["anna"])["type"] == "welcome"


def test_another_accounts_login_does_not_wipe_an_addresss_failures(site):
    attacker = "198.51.100.50"
    for _ in range(2):  # the free failures
        assert attempt(site, attacker, "bob", "guess")["text"] == "authentication failed"
    assert attempt(site, attacker, "mallory", ACCOUNTS["mallory"])["type"] == "welcome"
    assert attempt(site, attacker, "bob", "guess")["text"] == "authentication failed"
    assert attempt(site, attacker, "bob", "guess")["text"].startswith("too many failed logins")


HEADER = (
    b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>"
)
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"


class ScramGuesser:
    """A raw XMPP stream trying SCRAM-SHA-256 proofs that cannot verify."""

    def __init__(self, port: int, user: str) -> None:
        self.user = user
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=fw_site.TIMEOUT)
        self.sock.sendall(HEADER)
        self.read_until(b"</stream:features>")

    def read_until(self, *markers: bytes) -> bytes:
        """What the gateway sends until one of ``markers`` arrives."""
        data = b""
        while not any(marker in data for marker in markers):
            chunk = self.sock.recv(65536)
            assert chunk, data
            data += chunk
        return data

    def start(self) -> bytes:
        """Send the client-first message; the challenge or the failure that answers it."""
        first = base64.b64encode(f"n,,n={self.user},r=guesser-nonce".encode()).decode()
        self.sock.sendall(f"<auth xmlns='{SASL}' mechanism='SCRAM-SHA-256'>{first}</auth>".encode())
        return self.read_until(b"</challenge>", b"</failure>")

    def guess(self) -> None:
        """One whole exchange with a made-up proof: refused as not authorised."""
        challenge = self.start()
        assert b"<challenge" in challenge, challenge
        text = challenge.split(b">", 1)[1].split(b"<", 1)[0]
        server_first = base64.b64decode(text).decode()
        nonce = dict(part.split("=", 1) for part in server_first.split(","))["r"]
        proof = base64.b64encode(b"\0" * 32).decode()
        final = base64.b64encode(f"c=biws,r={nonce},p={proof}".encode()).decode()
        self.sock.sendall(f"<response xmlns='{SASL}'>{final}</response>".encode())
        assert b"<not-authorized/>" in self.read_until(b"</failure>")

    def close(self) -> None:
        self.sock.close()


def test_scram_failures_count_and_a_lockout_holds_scram_too(site):
    mark = len(site.lines)
    first = ScramGuesser(site.xmpp_port, "carol")
    first.guess()
    first.close()
    second = ScramGuesser(site.xmpp_port, "carol")
    second.guess()
    second.guess()  # the third failure from 127.0.0.1: locked out for a second
    # Locked out: the next attempt gets no challenge (no keys read, no proof checked).
    answer = second.start()
    assert b"<challenge" not in answer and b"<not-authorized/>" in answer, answer
    second.close()
    # Four failures logged: three proofs, and the attempt refused while locked out (the
    # log is read by another thread: each line is waited for, with a bound).
    failure = re.compile(r"auth failure protocol=xmpp user=carol address=127\.0\.0\.1$")
    start = mark
    for _ in range(4):
        site.wait_for_log(failure, 10, start)
        start = next(i for i in range(start, len(site.lines)) if failure.search(site.lines[i]))
        start += 1
    assert len([line for line in site.lines[mark:] if "auth failure protocol=" in line]) == 4
