"""Faults around the gateway (issue 9, item 4), over real sockets against twistd.

- The database locked by another process past the store's busy timeout, and its disk
  full: the sender gets JSON-IM ``error`` ``internal`` and no ``ack`` (the other side
  has the message already: it is delivered before the commit), nobody's
  connection closes, the conversation carries on afterwards, and every acknowledged
  message is in the database.
- An upstream XMPP server that breaks the component stream in every way: each is
  logged, the link reconnects with growing, bounded delays (reset once attached), and
  a JSON-IM conversation carries on meanwhile.
- An agent who drops mid-chat: the next agent's offer comes within a second, with the
  history; an agent who drops and comes back while it still waits is offered it again
  (a drop is not a rejection); a customer who
  drops: the agent is told at once, and the conversation ends when the grace period
  runs out.
- A routing server that accepts and never answers, or answers too late: the local
  rules decide within (1 + retries) deadlines and the fallback is logged.

Malformed lines from an upstream IRC network are in test_corpus_irc.py (``upstream-*``);
test_irc_bot.py restarts a real network under the bot.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import os
import re
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import attrs
import harness
import pytest
from fault_peers import LoopbackServer, Peer
from jsonim_client import (
    JsonImClient,
    connected_pair,
    exchange,
    hello_agent,
    hello_customer,
)

PASSWORDS = {"anna": "anna-Secret-1", "bob": "bob-Secret-2"}
DB_FILE = "imgateway.sqlite3"
BUSY_TIMEOUT_S = 5.0  # gateway.store.sqlite.BUSY_TIMEOUT_MS
# Both sides are connected: the message went to the other side before the commit
# failed, so the sender is not asked to send it again (it would arrive twice).
STORE_FAILED = "the message was delivered but could not be stored"
# A healthy frame's round trip while something else goes wrong.
HEALTHY_BOUND_S = 0.25
REQUEUE_BOUND_S = 1.0


def start(root: Path, extra: str = "", *, agents=("anna", "bob"), **options) -> harness.Gateway:
    """A gateway on ``root`` with ``agents`` provisioned and ``extra`` appended to its config."""
    config = harness.write_config(root, **options)
    if extra:
        config.write_text(config.read_text() + extra)
    for name in agents:
        harness.add_agent(config, name, PASSWORDS[name], name.title())
    return harness.start_gateway(root / "cwd", config, root.name)


def stored_messages(database: Path) -> dict[str, str]:
    """Message id -> text, as another process reads the database."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
        return dict(db.execute("SELECT id, text FROM messages"))


def assert_all_acked_stored(database: Path, *clients: JsonImClient) -> None:
    acked: dict[str, str] = {}
    for client in clients:
        acked.update(client.acked())
    stored = stored_messages(database)
    missing = {msg: text for msg, text in acked.items() if stored.get(msg) != text}
    assert not missing, f"acknowledged but not stored: {missing}"
    assert acked, "nothing was acknowledged"


def round_trip(client: JsonImClient) -> float:
    start_at = time.perf_counter()
    client.sync()
    return time.perf_counter() - start_at


def refused_to_store(client: JsonImClient, frame_id: str, timeout: float) -> dict:
    """The error for a message the store could not take (and not an ack)."""
    error = client.expect_any(["error", "ack"], timeout, id=frame_id)
    assert (error["type"], error["code"], error["text"]) == ("error", "internal", STORE_FAILED)
    return error


def assert_never_acked(client: JsonImClient, *frame_ids: str) -> None:
    """Neither then nor since: the refused messages got no ack, and one answer each."""
    answers = [f for f in client.received if f.get("id") in frame_ids]
    assert [(f["id"], f["type"]) for f in answers] == [(i, "error") for i in frame_ids], answers


def leave(customer: JsonImClient, agent: JsonImClient | None = None, conversation=None) -> None:
    """End the customer's conversation (so that nothing is held or requeued) and close."""
    customer.send({"type": "end"})
    customer.expect("ended")
    customer.close()
    if agent is not None:
        agent.expect("ended", conversation=conversation)
        agent.close()


# -- the database locked and its disk full ----------------------------------------------


@pytest.fixture(scope="module")
def chat_site(tmp_path_factory):
    """One gateway for the store and conversation faults; customers may resume for 1 s."""
    root = tmp_path_factory.mktemp("faults")
    gateway = start(root, resume_grace_s=1)
    gateway.root = root
    yield gateway
    gateway.stop()


def test_a_locked_database_refuses_messages_clearly_and_the_chat_carries_on(chat_site):
    gateway = chat_site
    database = gateway.root / "data" / DB_FILE
    customer, agent, conversation = connected_pair(gateway, "anna", PASSWORDS["anna"])
    bystander = gateway.connect("bystander")
    hello_customer(bystander)
    exchange(customer, agent, conversation, "before the lock", "still fine")
    mark = len(gateway.lines)

    locker = sqlite3.connect(database, timeout=10, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        locked_at = time.monotonic()
        customer.send({"type": "message", "text": "said while locked", "id": "locked1"})
        # Everyone's frames are still answered at once: only the store waits.
        for client in (customer, agent, bystander):
            assert round_trip(client) < HEALTHY_BOUND_S
        refused_to_store(customer, "locked1", BUSY_TIMEOUT_S + 10)
        waited = time.monotonic() - locked_at
        assert BUSY_TIMEOUT_S - 0.5 <= waited <= BUSY_TIMEOUT_S + 5, waited
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    gateway.wait_for_log(r"store transaction of \d+ operations failed", 10, mark)
    gateway.wait_for_log(r"database is locked", 10, mark)
    exchange(customer, agent, conversation, "after the lock", "welcome back")
    for client in (customer, agent, bystander):
        client.sync()
        assert not client.frames_of("ended"), client.frames_of("ended")
    assert "said while locked" not in stored_messages(database).values()
    # Delivered at once (before the commit), once: the sender was not told to resend.
    assert [f["text"] for f in agent.frames_of("message") if f["text"] == "said while locked"] == [
        "said while locked"
    ]
    assert_never_acked(customer, "locked1")
    assert_all_acked_stored(database, customer, agent)
    leave(customer, agent, conversation)
    leave(bystander)


def test_a_stalled_database_bounds_the_waiting_messages(tmp_path):
    # store.max_pending = 2: while the writer waits on the lock with one message,
    # two more wait in memory and the next is refused at once, not queued; the
    # lock goes before the busy timeout, and what waited is committed.
    gateway = start(tmp_path, "\n[store]\nmax_pending = 2\n", agents=("anna",))
    database = tmp_path / "data" / DB_FILE
    try:
        customer, agent, conversation = connected_pair(gateway, "anna", PASSWORDS["anna"])
        exchange(customer, agent, conversation, "before the lock", "fine")
        locker = sqlite3.connect(database, timeout=10, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")
        try:
            customer.send({"type": "message", "text": "w1", "id": "w1"})
            agent.expect("message", text="w1")  # the writer holds it: blocked on the lock
            for n in (2, 3):
                customer.send({"type": "message", "text": f"w{n}", "id": f"w{n}"})
            sent_at = time.monotonic()
            customer.send({"type": "message", "text": "w4", "id": "w4"})
            error = customer.expect_any(["error", "ack"], 5, id="w4")
            assert time.monotonic() - sent_at < HEALTHY_BOUND_S
            assert (error["type"], error["code"], error["text"]) == (
                "error",
                "unavailable",
                "the service is busy; please send it again",
            ), error
            assert not agent.frames_of("message") or all(
                f["text"] != "w4" for f in agent.frames_of("message")
            )
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        # Released within the busy timeout: what waited commits, in order.
        for n in (1, 2, 3):
            customer.expect("ack", BUSY_TIMEOUT_S + 5, id=f"w{n}")
        assert_never_acked(customer, "w4")
        gateway.wait_for_log(r"message \S+ of \S+ refused: 2 operations wait", 10)
        exchange(customer, agent, conversation, "after the lock", "carry on")
        assert_all_acked_stored(database, customer, agent)
    finally:
        gateway.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs for the gateway's data directory, unmounted afterwards."""
    data = tmp_path / "data"
    data.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(data)],
        capture_output=True,
        text=True,
    )
    assert mount.returncode == 0, (
        f"the disk-full test mounts a tmpfs and needs root (or CAP_SYS_ADMIN): "
        f"mount exited {mount.returncode}: {mount.stderr.strip()}"
    )
    try:
        yield tmp_path
    finally:
        subprocess.run(["umount", "--lazy", str(data)], check=True, capture_output=True)


def fill(directory: Path) -> Path:
    """A file taking every free byte of ``directory``'s file system."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        size = 1 << 20
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
                size //= 2
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0
    return filler


def test_a_full_disk_refuses_messages_clearly_and_serving_goes_on(small_disk):
    root = small_disk
    gateway = start(root, agents=("anna",))
    database = root / "data" / DB_FILE
    try:
        customer, agent, conversation = connected_pair(gateway, "anna", PASSWORDS["anna"])
        exchange(customer, agent, conversation, "before the disk fills", "noted")
        mark = len(gateway.lines)
        filler = fill(root / "data")
        try:
            customer.send({"type": "message", "text": "said on a full disk", "id": "full1"})
            refused_to_store(customer, "full1", 10)
            agent.send(
                {"type": "message", "conversation": conversation, "text": "me too", "id": "full2"}
            )
            refused_to_store(agent, "full2", 10)
            for client in (customer, agent):
                assert round_trip(client) < HEALTHY_BOUND_S
        finally:
            filler.unlink()
        gateway.wait_for_log(r"store transaction of \d+ operations failed", 10, mark)
        gateway.wait_for_log(r"database or disk is full", 10, mark)

        exchange(customer, agent, conversation, "space again", "stored again")
        for client in (customer, agent):
            assert not client.frames_of("ended"), client.frames_of("ended")
        texts = set(stored_messages(database).values())
        assert {"said on a full disk", "me too"}.isdisjoint(texts), texts
        assert_never_acked(customer, "full1")
        assert_never_acked(agent, "full2")
        assert_all_acked_stored(database, customer, agent)
        # A new customer is served too.
        late = gateway.connect("late customer")
        hello_customer(late, identity={"name": "Lee"}, topic="billing")
        offer = agent.expect("offer")
        agent.send({"type": "accept", "offer": offer["offer"]})
        late.expect("connected", conversation=offer["conversation"])
        exchange(late, agent, offer["conversation"], "new here", "hello")
        assert_all_acked_stored(database, customer, agent, late)
    finally:
        gateway.stop()


# -- agents and customers dropping -------------------------------------------------------


def test_an_agent_drops_mid_chat_and_the_next_agent_is_offered_it_within_a_second(chat_site):
    gateway = chat_site
    anna = gateway.connect("anna")
    hello_agent(anna, "anna", PASSWORDS["anna"])
    bob = gateway.connect("bob")
    hello_agent(bob, "bob", PASSWORDS["bob"], status="away")  # so that anna gets the offer
    customer = gateway.connect("customer")
    hello_customer(customer, identity={"name": "Eve"}, topic="billing")
    offer = anna.expect("offer")
    conversation = offer["conversation"]
    anna.send({"type": "accept", "offer": offer["offer"]})
    customer.expect("connected", conversation=conversation)
    asked, answered = "charged twice", "looking into it"
    exchange(customer, anna, conversation, asked, answered)
    bob.send({"type": "presence", "status": "available"})
    bob.sync()
    mark = customer.mark()

    dropped_at = time.perf_counter()
    anna.abort()
    offer = bob.expect("offer", REQUEUE_BOUND_S + 5)
    took = time.perf_counter() - dropped_at
    assert offer["conversation"] == conversation, offer
    assert took < REQUEUE_BOUND_S, f"the next offer came {took:.3f}s after the agent dropped"

    notice = customer.expect("message", since=mark, **{"from": "system"})
    assert "disconnected" in notice["text"], notice
    customer.expect("queued", since=mark)
    bob.send({"type": "accept", "offer": offer["offer"]})
    history = bob.expect("connected", conversation=conversation)["history"]
    said = [(h["from"], h["text"]) for h in history]
    assert ("customer", asked) in said and ("agent", answered) in said, said
    assert customer.expect("connected", since=mark)["agent"] == {"alias": "Bob"}
    exchange(customer, bob, conversation, "are you there?", "yes, Bob here")
    customer.send({"type": "end"})
    bob.expect("ended", conversation=conversation)
    customer.close()
    bob.close()


def test_an_agent_who_drops_and_comes_back_is_offered_the_conversation_again(chat_site):
    # Nobody else is available: the requeued conversation waits, and the agent who
    # dropped is not held against it (a drop is not a rejection).
    gateway = chat_site
    anna = gateway.connect("anna")
    hello_agent(anna, "anna", PASSWORDS["anna"])
    customer = gateway.connect("customer")
    hello_customer(customer, identity={"name": "Fay"}, topic="billing")
    offer = anna.expect("offer")
    conversation = offer["conversation"]
    anna.send({"type": "accept", "offer": offer["offer"]})
    customer.expect("connected", conversation=conversation)
    asked, answered = "my card was declined", "let me look"
    exchange(customer, anna, conversation, asked, answered)
    mark = customer.mark()
    anna.abort()
    customer.expect("queued", since=mark)

    back = gateway.connect("anna")
    hello_agent(back, "anna", PASSWORDS["anna"])
    offer = back.expect("offer", REQUEUE_BOUND_S + 5)
    assert offer["conversation"] == conversation, offer
    back.send({"type": "accept", "offer": offer["offer"]})
    history = back.expect("connected", conversation=conversation)["history"]
    said = [(h["from"], h["text"]) for h in history]
    assert ("customer", asked) in said and ("agent", answered) in said, said
    customer.expect("connected", since=mark)
    exchange(customer, back, conversation, "still there?", "yes, back again")
    leave(customer, back, conversation)


def test_a_customer_drops_and_the_agent_is_told(chat_site):
    gateway = chat_site
    customer, agent, conversation = connected_pair(gateway, "anna", PASSWORDS["anna"])
    exchange(customer, agent, conversation, "one question", "one answer")
    dropped_at = time.perf_counter()
    customer.abort()
    notice = agent.expect("message", **{"from": "system"})
    assert time.perf_counter() - dropped_at < REQUEUE_BOUND_S
    assert re.fullmatch(
        r"Customer c-\w+ lost the connection; they may come back for a while\.", notice["text"]
    ), notice
    # Not back within the grace period (1 s): ended as the customer's doing.
    ended = agent.expect("ended", 5, conversation=conversation)
    assert ended["reason"] == "customer", ended
    assert 1.0 <= time.perf_counter() - dropped_at < 3.0
    agent.close()


# -- a hostile upstream XMPP server --------------------------------------------------------

SECRET = "component-Secret-77"
DOMAIN = "support.localhost"
GATEWAY_HEADER = rb"<stream:stream[^>]*>"
STREAM = b"xmlns:stream='http://etherx.jabber.org/streams'"


def server_header(stream_id: str = "s1", namespace: str = "jabber:component:accept") -> bytes:
    return (
        f"<?xml version='1.0'?><stream:stream xmlns='{namespace}' "
        f"xmlns:stream='http://etherx.jabber.org/streams' from='{DOMAIN}' id='{stream_id}'>"
    ).encode()


def garbage(peer: Peer) -> bool:
    peer.read_until(GATEWAY_HEADER)
    peer.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    return True


def wrong_namespace(peer: Peer) -> bool:
    peer.read_until(GATEWAY_HEADER)
    peer.send(server_header(namespace="jabber:client"))
    return True


def dtd(peer: Peer) -> bool:
    peer.read_until(GATEWAY_HEADER)
    peer.send(
        b"<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY a 'aaaaaaaaaa'>"
        b"<!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>]>" + server_header()[21:]
    )
    return True


def oversized(peer: Peer) -> bool:
    peer.read_until(GATEWAY_HEADER)
    peer.send(server_header())
    peer.read_until(rb"</handshake>")
    try:
        peer.send(b"<message><body>" + b"A" * 400_000)
    except OSError:
        pass  # closed on us partway: as meant
    return True


def closes_mid_stanza(peer: Peer) -> bool:
    peer.read_until(GATEWAY_HEADER)
    peer.send(server_header())
    peer.read_until(rb"</handshake>")
    peer.send(b"<handshake")
    return False


def accepts(stream_id: str, then_close: bool):
    def handler(peer: Peer) -> bool:
        peer.read_until(GATEWAY_HEADER)
        peer.send(server_header(stream_id))
        digest = peer.read_until(rb"<handshake>([0-9a-f]{40})</handshake>").group(1)
        assert digest == hashlib.sha1((stream_id + SECRET).encode()).hexdigest().encode()
        peer.send(b"<handshake/>")
        # Served: a ping is answered.
        peer.send(f"<iq type='get' id='p-{stream_id}' from='localhost' to='{DOMAIN}'>".encode())
        peer.send(b"<ping xmlns='urn:xmpp:ping'/></iq>")
        peer.read_until(rf"<iq[^>]*id=.p-{stream_id}.".encode())
        if then_close:
            peer.send(b"</stream:stream>")
        return True

    return handler


# (handler, what the gateway logs about it, how many such lines in all)
HOSTILE = [
    (garbage, r"XMPP component: stream error not-well-formed", 1),
    (wrong_namespace, r"XMPP component: stream error invalid-namespace", 1),
    (dtd, r"XMPP component: stream error restricted-xml", 1),
    (oversized, r"XMPP component: stream error policy-violation: stanza larger than", 1),
    # Every one of the five.
    (
        closes_mid_stanza,
        r"XMPP component support\.localhost: connection ended before the handshake",
        5,
    ),
]
RECONNECT_MAX_S = 2.0
# The delays (xmpp.component: 0.5 s doubled per attempt up to reconnect_max_s, +10%).
EXPECTED_GAPS = [0.5, 1.0, 2.0, 2.0, 2.0, 0.5]


def test_a_hostile_xmpp_server_is_logged_and_retried_with_backoff(tmp_path):
    handlers = [h for h, _, _ in HOSTILE] + [accepts("good1", True), accepts("good2", False)]
    server = LoopbackServer(handlers)
    gateway = None
    try:
        gateway = start(
            tmp_path,
            f'\n[xmpp]\ndomain = "{DOMAIN}"\nserver_port = {server.port}\nsecret = "{SECRET}"\n'
            f"reconnect_max_s = {RECONNECT_MAX_S}\nauth_timeout_s = 5\n",
            agents=("anna",),
        )
        customer, agent, conversation = connected_pair(gateway, "anna", PASSWORDS["anna"])
        for count in range(1, len(handlers) + 1):
            server.wait_connections(count, 15, ended=count < len(handlers))
            # The healthy pair meanwhile, a round trip each way.
            start_at = time.perf_counter()
            exchange(customer, agent, conversation, f"asked {count}", f"answered {count}")
            assert time.perf_counter() - start_at < 2 * HEALTHY_BOUND_S
        gateway.wait_for_log(r"XMPP component support\.localhost attached", 10)

        records = server.connections
        assert [r.error for r in records] == [None] * len(records), records
        # The gateway closed each broken stream itself (the fifth closed on it).
        assert [r.peer_closed for r in records[:4]] == [True] * 4, records
        gaps = [later.accepted - done.ended for done, later in itertools.pairwise(records)]
        for gap, expected in zip(gaps, EXPECTED_GAPS, strict=True):
            assert expected - 0.05 <= gap <= expected * 1.1 + 0.3, (gaps, EXPECTED_GAPS)
        assert gaps[0] < gaps[1] < gaps[2], gaps

        log = gateway.log()
        for _, pattern, count in HOSTILE:
            found = re.findall(pattern, log)
            assert len(found) == count, f"{len(found)} lines /{pattern}/, not {count}"
        attempts = [int(a) for a in re.findall(r"reconnecting in [\d.]+s \(attempt (\d+)\)", log)]
        assert attempts == [1, 2, 3, 4, 5, 1], attempts
        assert SECRET not in log
        customer.close()
        agent.close()
    finally:
        if gateway is not None:
            gateway.stop()
        server.close()


# -- a slow routing server -------------------------------------------------------------

DEADLINE_S = 0.5  # routing.remote_deadline_s, the default; one retry (gateway.routing.remote)
ATTEMPTS = 2
FALLBACK_MARGIN_S = 0.5


@attrs.define
class SlowRouter:
    """Reads each request and answers never, or after ``delay_s``."""

    delay_s: float | None
    requests: int = 0
    _lock: threading.Lock = attrs.Factory(threading.Lock)

    def __call__(self, peer: Peer) -> bool:
        peer.read_until(rb"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", peer.received).group(1))
        peer.read_until(rb"\r\n\r\n.{%d}" % length)
        if peer.received.startswith(b"POST /v1/events "):
            return True  # the event feed's batches: not decisions (left unanswered too)
        with self._lock:
            self.requests += 1
        if self.delay_s is None:
            return True  # read on until the gateway gives up on it
        if peer.closing.wait(self.delay_s):
            return False
        body = b'{"error": "too late"}'
        try:
            peer.send(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
        except OSError:
            pass  # the gateway gave up and closed: as expected
        return False


@pytest.mark.parametrize("delay_s", [None, 2.0], ids=["never-answers", "answers-after-2s"])
def test_a_slow_routing_server_falls_back_to_local_rules_within_the_deadline(tmp_path, delay_s):
    router = SlowRouter(delay_s)
    server = LoopbackServer([router])
    gateway = None
    try:
        config = harness.write_config(tmp_path)
        config.write_text(
            config.read_text().replace(
                "[routing]\n",
                f'[routing]\nremote_url = "http://127.0.0.1:{server.port}"\n'
                f'remote_token = "router-Token-5"\nremote_deadline_s = {DEADLINE_S}\n',
            )
        )
        harness.add_agent(config, "anna", PASSWORDS["anna"], "Anna")
        gateway = harness.start_gateway(tmp_path / "cwd", config, "routing-slow")
        agent = gateway.connect("anna")
        hello_agent(agent, "anna", PASSWORDS["anna"])
        for round_ in range(2):
            mark = len(gateway.lines)
            customer = gateway.connect(f"customer {round_}")
            started = time.perf_counter()
            hello_customer(customer, identity={"name": "Dana"}, topic="billing")
            offer = agent.expect("offer", ATTEMPTS * DEADLINE_S + 10)
            took = time.perf_counter() - started
            bound = ATTEMPTS * DEADLINE_S + FALLBACK_MARGIN_S
            assert ATTEMPTS * DEADLINE_S - 0.05 <= took <= bound, f"offer after {took:.3f}s"
            gateway.wait_for_log(
                r"routing decision source=fallback .*: routing server timed out after "
                rf"{DEADLINE_S:g}s \({ATTEMPTS} attempts\); local rule",
                5,
                mark,
            )
            gateway.wait_for_log(
                rf"conversation {offer['conversation']} planned by fallback rules", 5, mark
            )
            customer.close()
            agent.expect("revoked", offer=offer["offer"])
        assert router.requests == 2 * ATTEMPTS, router.requests
        agent.close()
    finally:
        if gateway is not None:
            gateway.stop()
        server.close()
