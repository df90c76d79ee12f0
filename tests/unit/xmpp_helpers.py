"""Test helpers for the XMPP adapter: stanzas from text, a hub on the real core."""

from __future__ import annotations

import attrs
from core_helpers import Harness, make_harness
from twisted.words.xish import domish

from gateway.store.records import AgentRecord
from protocols.xmpp import ns
from protocols.xmpp.hub import Hub
from protocols.xmpp.parser import StreamParser
from protocols.xmpp.settings import XmppSettings

DOMAIN = "support.example.com"
SUPPORT = f"support@{DOMAIN}"
HEADER = (
    b"<stream:stream xmlns='jabber:component:accept' "
    b"xmlns:stream='http://etherx.jabber.org/streams' id='abc'>"
)


def parse_stanzas(xml: str, uri: str = ns.COMPONENT) -> list[domish.Element]:
    """The stanzas in ``xml``, parsed as if received on a component stream."""
    out: list[domish.Element] = []
    parser = StreamParser(on_header=lambda h: None, on_stanza=out.append, on_end=lambda: None)
    parser.feed(HEADER.replace(b"jabber:component:accept", uri.encode()) + xml.encode())
    return out


def stanza(xml: str) -> domish.Element:
    """One stanza from its XML text."""
    (element,) = parse_stanzas(xml)
    return element


@attrs.define
class HubHarness:
    """A hub attached to a recording 'server', on the real core with a Clock."""

    core: Harness
    hub: Hub
    sent: list[domish.Element] = attrs.Factory(list)

    def receive(self, xml: str) -> None:
        for element in parse_stanzas(xml):
            self.hub.stanza_received(element)

    def take(self) -> list[domish.Element]:
        sent = list(self.sent)
        self.sent.clear()  # the hub holds this list's append
        return sent

    def to(self, jid: str) -> list[domish.Element]:
        """Stanzas sent to ``jid`` (taken)."""
        mine = [s for s in self.sent if s.getAttribute("to") == jid]
        self.sent[:] = [s for s in self.sent if s.getAttribute("to") != jid]
        return mine

    def bodies(self, jid: str) -> list[str]:
        """Bodies of the messages sent to ``jid`` (taken)."""
        out = []
        for element in self.to(jid):
            for child in element.elements():
                if child.name == "body":
                    out.append(str(child))
        return out

    def message(self, sender: str, body: str, to: str = SUPPORT) -> None:
        self.receive(
            f"<message from='{sender}' to='{to}' type='chat'><body>{body}</body></message>"
        )


def make_hub(core_changes=None, **settings) -> HubHarness:
    """A hub for ``support.example.com``; agent ``xanna`` is ``xmpp:anna@corp.example``.

    ``core_changes`` are configuration changes for the core (``resume_grace_s``...).
    """
    core = make_harness(**(core_changes or {}))
    core.store.add_agent(
        AgentRecord(
            name="xanna",
            display_name="Anna X.",
            password_hash="hash:secret",
            capacity=2,
            addresses=("xmpp:anna@corp.example",),
        )
    )
    options = {"domain": DOMAIN, "secret": "s3cret", **settings}
    hub = Hub(core.gateway, XmppSettings(**options), core.clock)
    harness = HubHarness(core, hub)
    hub.attached(harness.sent.append)
    return harness
