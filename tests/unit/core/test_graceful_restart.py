"""A graceful restart (SIGTERM) leaves conversations resumable, as a crash does; a
customer who comes back while the restore still runs is refused, not given a new one."""

from __future__ import annotations

from core_helpers import FakeParty, make_harness, result_of
from twisted.internet.defer import Deferred

from gateway.core import events as ev
from gateway.core.errors import Unavailable
from gateway.core.gateway import SHUTDOWN
from gateway.store.memory import MemoryStore

GRACE = 120.0


def _connected(h):
    agent, agent_s = h.agent("anna")
    customer, customer_s = h.queued_customer()
    agent_s.accept(agent.last(ev.Offer).offer)
    return customer, customer_s, agent, agent_s


def test_shutdown_leaves_resumable_conversations_open_in_the_store():
    h = make_harness(resume_grace_s=GRACE)
    customer, customer_s, agent, agent_s = _connected(h)
    conv_id = customer_s.conversation.id
    _, waiting_s = h.queued_customer("Eve")
    waiting_id = waiting_s.conversation.id
    h.gateway.shutdown()
    # Told, disconnected, not ended: the store keeps them as they were.
    assert SHUTDOWN in [e.text for e in customer.of(ev.Message)]
    assert customer.of(ev.Ended) == [] and agent.of(ev.Ended) == []
    assert customer.closed == "shutdown" and agent.closed == "shutdown"
    assert h.store.conversations[conv_id].state == "connected"
    assert h.store.conversations[conv_id].agent == "anna"
    assert h.store.conversations[waiting_id].state in ("queued", "offered")
    # The parties' connections closing afterwards change nothing.
    customer_s.disconnected()
    agent_s.disconnected()
    waiting_s.disconnected()
    assert h.store.conversations[conv_id].state == "connected"
    assert h.store.conversations[conv_id].end_reason is None
    assert h.gateway.conversations == {}


def test_shutdown_without_a_grace_period_ends_them_as_before():
    h = make_harness(resume_grace_s=0.0)
    customer, customer_s, _, _ = _connected(h)
    h.gateway.shutdown()
    assert customer.last(ev.Ended).reason == "shutdown"
    assert h.store.conversations[customer_s.conversation.id].end_reason == "shutdown"


def test_after_a_graceful_restart_the_customer_and_agent_resume():
    store = MemoryStore()
    h = make_harness(resume_grace_s=GRACE, store=store)
    _, customer_s, _, _ = _connected(h)
    conv_id, token = customer_s.conversation.id, customer_s.resume_token
    h.gateway.shutdown()
    again = make_harness(resume_grace_s=GRACE, store=store, agents=())
    assert result_of(again.gateway.restore()) == 1
    agent, _ = again.agent("anna")
    assert agent.last(ev.Connected).conversation == conv_id
    party = FakeParty()
    session = again.gateway.customer_arrived(
        party, protocol="jsonim", client=ev.ClientInfo("acme", "2"), answers={}, resume=token
    )
    assert session.conversation.id == conv_id
    assert party.last(ev.Connected).conversation == conv_id


class SlowStore(MemoryStore):
    """open_conversations() answers only when the test calls ``release()``."""

    release = None

    def open_conversations(self):
        rows = result_of(super().open_conversations())
        d: Deferred = Deferred()
        self.release = lambda: d.callback(rows)
        return d


def test_a_returning_customer_is_refused_while_the_restore_runs():
    store = SlowStore()
    h = make_harness(resume_grace_s=GRACE, store=store)
    _, customer_s, _, _ = _connected(h)
    conv_id, token = customer_s.conversation.id, customer_s.resume_token
    h.gateway.shutdown()
    again = make_harness(resume_grace_s=GRACE, store=store, agents=())
    restoring = again.gateway.restore()
    try:
        again.gateway.customer_arrived(
            FakeParty(), protocol="jsonim", client=ev.ClientInfo("a", "1"), answers={},
            resume=token,
        )  # fmt: skip
    except Unavailable as e:
        assert "starting" in e.text
    else:
        raise AssertionError("a returning customer got a new conversation during the restore")
    # A newcomer (no token, no address) is served meanwhile.
    _, newcomer = again.customer()
    assert newcomer.conversation.id != conv_id
    store.release()
    assert result_of(restoring) == 1
    session = again.gateway.customer_arrived(
        FakeParty(), protocol="jsonim", client=ev.ClientInfo("a", "1"), answers={}, resume=token
    )
    assert session.conversation.id == conv_id
