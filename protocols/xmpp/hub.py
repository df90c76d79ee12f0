"""The component's brain: routes stanzas for the gateway's domain to the core and back.

Customers write to the support address (``support@support.example.com``); agents
(accounts on the attached server provisioned with ``--address xmpp:BARE``) send
presence and commands to it, and see each customer as a translated address
(``c-7f3a@support.example.com``). Whoever writes first is looked up as an agent;
anyone the store does not know as an agent is a customer. A customer's stanzas only
ever come from the support address: an agent's JID, resource or server never reaches
them. Outgoing stanzas are built anew from neutral events; no text is spliced as XML.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.xish import domish

from firewall.common import TokenBucket
from gateway import __version__, logs
from gateway.core import events as ev
from gateway.core.errors import AuthFailed, GatewayError
from protocols.xmpp import adhoc, commands, desk, ns, render, stanzas
from protocols.xmpp.identify import Identifier, party_found
from protocols.xmpp.jid import InvalidJid, Jid, parse_jid
from protocols.xmpp.parties import AgentParty, CustomerParty
from protocols.xmpp.settings import XmppSettings

PROTOCOL = "xmpp"
FEATURES = frozenset({"typing"})
# Stanzas kept per sender while the store says whether it is an agent.
MAX_WAITING_STANZAS = 16
MAX_LOOKUPS = 1000
# Messages to a customer remembered by stanza id, for bounces.
MAX_SENT_KEPT = 64
AWAY_SHOWS = frozenset({"away", "xa", "dnd"})
# Gateway notices to agents (present in newer cores); none matches when absent.
_NOTICE = getattr(ev, "Notice", ())
DISCO_FEATURES = (
    ns.DISCO_INFO,
    ns.DISCO_ITEMS,
    ns.PING,
    ns.VERSION,
    ns.CHATSTATES,
    ns.COMMANDS,
)
# Message bounces that mean the customer's client is no longer there.
GONE_CONDITIONS = frozenset(
    {
        "service-unavailable",
        "recipient-unavailable",
        "item-not-found",
        "gone",
        "remote-server-not-found",
        "remote-server-timeout",
    }
)
NOTHING_TO_END = "There is no conversation to end. Write to start one."


class Hub:
    """Routes stanzas between the attached server and the core, across reconnects.

    ``attached(send)`` is called when the component link is up, ``detached()``
    when it is gone: every party is then logged out or disconnected.
    """

    _log = Logger(observer=logs.observer)

    def __init__(
        self, gateway, settings: XmppSettings, clock: IReactorTime, *, server: bool = False
    ) -> None:
        self._gateway = gateway
        self.settings = settings
        self._clock = clock
        # Component mode: customers are accounts of the attached server, which can carry
        # a conversation without us (redirect hosting) and has authenticated them.
        self._server = server
        self.domain = settings.domain
        self.support = settings.support_jid
        self._send: Callable[[domish.Element], None] | None = None
        self.customers: dict[str, CustomerParty] = {}
        self.agents: dict[str, AgentParty] = {}
        self._lookups: dict[str, list[domish.Element]] = {}
        self.identifier = Identifier(self.send, self.support, clock, settings.version_timeout_s)
        self.adhoc = adhoc.AdHoc(gateway, self.send, clock)
        self._serial = 0

    # -- the link --------------------------------------------------------------

    def attached(self, send: Callable[[domish.Element], None]) -> None:
        """The component stream is authenticated; stanzas go out through ``send``."""
        self._send = send

    def detached(self) -> None:
        """The link is gone: nobody can be reached, so every party leaves."""
        self._send = None
        for party in list(self.customers.values()):
            self._forget_customer(party)
            party.session.disconnected()
        for party in list(self.agents.values()):
            self._forget_agent(party)
            party.session.disconnected()

    def send(self, element: domish.Element) -> None:
        """Send a stanza if the link is up (dropped otherwise, as the server would)."""
        if self._send is not None:
            self._send(element)

    # -- stanzas in ------------------------------------------------------------

    def stanza_received(self, stanza: domish.Element) -> None:
        """Handle one stanza from the server; one bad stanza never stops the others."""
        try:
            self._route(stanza)
        except Exception:
            self._log.failure("XMPP: handling a {name} stanza failed", name=stanza.name)
            if stanza.getAttribute("type") != "error" and stanza.name in ("message", "iq"):
                self.send(stanzas.error_reply(stanza, "wait", "internal-server-error"))

    def _route(self, stanza: domish.Element) -> None:
        if stanza.uri not in (ns.COMPONENT, ns.CLIENT, None) or stanza.name not in (
            "message",
            "presence",
            "iq",
        ):
            return
        kind = stanza.getAttribute("type")
        try:
            sender = parse_jid(stanza.getAttribute("from"))
            to = parse_jid(stanza.getAttribute("to"))
        except InvalidJid:
            if kind != "error" and stanza.hasAttribute("from"):
                self.send(stanzas.error_reply(stanza, "modify", "jid-malformed"))
            return
        if to.domain != self.domain:
            return
        if stanza.name == "iq":
            self._iq(stanza, sender, to, kind)
            return
        if kind == "error":
            self._bounced(stanza, sender)  # never answered
            return
        waiting = self._lookups.get(sender.bare)
        if waiting is not None:
            if len(waiting) < MAX_WAITING_STANZAS:
                waiting.append(stanza)
            elif stanza.name == "message":
                self.send(stanzas.error_reply(stanza, "wait", "resource-constraint"))
            return
        agent = self.agents.get(sender.bare)
        if agent is not None:
            self._from_agent(agent, stanza, sender, to, kind)
            return
        customer = self.customers.get(sender.bare)
        if customer is not None:
            self._from_customer(customer, stanza, sender, to, kind)
            return
        if stanza.name == "presence":
            self._stranger_presence(stanza, sender, to, kind)
            return
        if to.local != self.settings.support_user:
            self.send(stanzas.error_reply(stanza, "cancel", "item-not-found"))
            return
        if kind in ("groupchat", "headline"):
            return
        self._look_up(sender, stanza)

    def _stranger_presence(self, stanza, sender: Jid, to: Jid, kind: str | None) -> None:
        self.identifier.presence(stanza, sender)
        if kind == "subscribe":
            self.send(stanzas.presence(to.bare, sender.bare, "subscribed"))
            self.send(stanzas.presence(to.bare, sender.full))
        elif kind == "probe":
            self.send(stanzas.presence(to.bare, sender.full))
        elif kind is None and to.local == self.settings.support_user:
            # Available presence to the support address: maybe an agent coming on duty.
            self._look_up(sender, stanza)

    def _bounced(self, stanza: domish.Element, sender: Jid) -> None:
        """A message we sent a customer came back: its client is gone (a lost
        connection, so the conversation is held, not offered meanwhile)."""
        party = self.customers.get(sender.bare)
        if party is None or stanza.name != "message":
            return
        error = stanzas.child(stanza, stanza.uri, "error")
        conditions = {e.name for e in error.elements()} if error is not None else set()
        if not conditions & GONE_CONDITIONS or sender.full not in (party.jid, party.bare):
            return
        # What bounced, and what was sent after it, did not arrive: kept for a resume.
        ids = list(party.sent)
        bounced = stanza.getAttribute("id")
        lost = [party.sent[i] for i in ids[ids.index(bounced) :]] if bounced in ids else []
        self.drop_customer(
            party, "unreachable (" + ", ".join(sorted(conditions)) + ")", undelivered=lost
        )

    # -- who is this? ----------------------------------------------------------

    def _look_up(self, sender: Jid, stanza: domish.Element) -> None:
        if len(self._lookups) >= MAX_LOOKUPS:
            if stanza.name == "message":
                self.send(stanzas.error_reply(stanza, "wait", "resource-constraint"))
            return
        self._lookups[sender.bare] = [stanza]
        party = AgentParty(self, sender.full, sender.bare)
        d = maybeDeferred(
            self._gateway.agent_attach,
            party,
            protocol=PROTOCOL,
            address=f"xmpp:{sender.bare}",
            client=ev.ClientInfo(),
            features=FEATURES,
        )
        d.addCallbacks(self._agent_found, self._not_an_agent, (party,), None, (sender,), None)
        d.addErrback(lambda f: self._log.failure("XMPP: routing {who} failed", f, who=sender.bare))

    def _agent_found(self, session, party: AgentParty) -> None:
        waiting = self._lookups.pop(party.bare, [])
        party.session = session
        if self._send is None or party.closed:
            party.closed = True
            session.disconnected()
            return
        self.agents[party.bare] = party
        self._log.info(
            "XMPP: agent {agent} attached from {jid}", agent=session.name, jid=party.bare
        )
        self.send(stanzas.presence(self.support, party.jid))
        party.inquiry = self.identifier.start(party.jid, party.bare, party_found(party))
        for stanza in waiting:
            self._route(stanza)

    def _not_an_agent(self, failure: Failure, sender: Jid) -> None:
        waiting = self._lookups.pop(sender.bare, [])
        if not failure.check(AuthFailed):
            if not failure.check(GatewayError):
                self._log.failure("XMPP: looking up {who} failed", failure, who=sender.bare)
            code, text = (
                (failure.value.code, failure.value.text)
                if failure.check(GatewayError)
                else ("internal", "internal error")
            )
            for stanza in waiting:
                if stanza.name == "message":
                    self.send(stanzas.gateway_error_reply(stanza, code, text))
            return
        for stanza in waiting:
            if stanza.name != "message":
                continue  # a stranger's presence: its caps are remembered already
            if sender.bare in self.customers:
                self._route(stanza)
                continue
            opening = _opening(stanza)
            if opening is None:
                continue  # chat states alone (an <inactive/> after a chat) open nothing
            if opening.strip().lower() in ("/end", "!end"):
                self.send(
                    render.hinted(stanzas.message(self.support, stanza["from"], NOTHING_TO_END))
                )
                continue
            self._new_customer(stanza, parse_jid(stanza["from"]), opening)

    # -- customers -------------------------------------------------------------

    def _server_account(self, bare: str) -> dict:
        """What the attached server vouches for: the customer's account, where to write."""
        if not self._server:
            return {}
        return {"verified": {"account": f"xmpp:{bare}"}, "address": f"xmpp:{bare}"}

    def _new_customer(self, stanza: domish.Element, sender: Jid, opening: str) -> None:
        if len(self.customers) >= self.settings.max_customers:
            self.send(stanzas.error_reply(stanza, "wait", "resource-constraint"))
            return
        bucket = TokenBucket(
            self.settings.messages_per_second, self.settings.message_burst, self._clock
        )
        party = CustomerParty(self, sender.full, sender.bare, bucket)
        client = self.identifier.known(sender.full) or ev.ClientInfo()
        self.customers[sender.bare] = party
        try:
            party.session = self._gateway.customer_arrived(
                party,
                protocol=PROTOCOL,
                client=client,
                answers={},
                features=FEATURES,
                key=f"xmpp:{sender.bare}",  # a returning customer, for sticky routing
                opening=opening,
                **self._server_account(sender.bare),
            )
        except GatewayError as e:
            self._forget_customer(party)
            self.send(stanzas.gateway_error_reply(stanza, e.code, e.text))
            return
        self._log.info(
            "XMPP: customer session {session} for a new conversation", session=party.session.id
        )
        if party.closed:
            return
        # Its presence tells when it leaves: ask to see it (RFC 6121 subscription),
        # and what it is now (a probe, answered where it subscribed us before).
        if self.settings.subscribe_customers:
            self.send(stanzas.presence(self.support, sender.bare, "subscribe"))
        self.send(stanzas.presence(self.support, sender.bare, "probe"))

        def forms(supported: bool) -> None:
            party.forms = supported

        party.inquiry = self.identifier.start(
            party.jid, party.bare, party_found(party), forms=forms
        )

    def _from_customer(
        self, party: CustomerParty, stanza: domish.Element, sender: Jid, to: Jid, kind
    ) -> None:
        if stanza.name == "presence":
            self.identifier.presence(stanza, sender)
            # Going offline is how an XMPP user leaves. (An unavailable presence from
            # the bare JID is Prosody's receipt for a subscription request, not that.)
            if kind == "unavailable" and sender.full == party.jid:
                self.drop_customer(party, "went offline", quit=True)
            elif kind == "subscribe":
                self._approve(to, sender)
            elif kind == "probe":
                self.send(stanzas.presence(to.bare, sender.full))
            return
        if to.local != self.settings.support_user:
            self.send(stanzas.error_reply(stanza, "cancel", "item-not-found"))
            return
        if kind in ("groupchat", "headline"):
            return
        party.jid = sender.full
        body = stanzas.body_of(stanza)
        submitted = render.form_answer(stanza)
        if submitted is not None:
            body = submitted
        if body is None:
            state = self._chatstate(stanza)
            if state is not None:
                try:
                    party.session.typing(state)
                except GatewayError:
                    pass
            return
        if not party.bucket.consume():
            self.send(stanzas.gateway_error_reply(stanza, "rate_limited", "slow down"))
            return
        if body.strip().lower() in ("/end", "!end"):
            party.session.end()
            return
        party.session.say_then(body, partial(self._said, stanza))

    def _said(self, stanza: domish.Element, msg: str | None, error: Exception | None) -> None:
        # A line's outcome from the core: nothing to say once committed.
        if error is not None:
            self._refused(Failure(error), stanza)

    def _refused(self, failure: Failure, stanza: domish.Element) -> None:
        if failure.check(GatewayError):
            self.send(stanzas.gateway_error_reply(stanza, failure.value.code, failure.value.text))
            return
        self._log.failure("XMPP: a message failed", failure)
        self.send(stanzas.gateway_error_reply(stanza, "internal", "internal error"))

    def _chatstate(self, stanza: domish.Element) -> str | None:
        state = stanzas.child(stanza, ns.CHATSTATES)
        return render.CHATSTATE_IN.get(state.name) if state is not None else None

    def deliver_to_customer(self, party: CustomerParty, event: object) -> None:
        """Render an event for a customer, always from the support address."""
        if isinstance(event, ev.Typing):
            state = render.CHATSTATE_OUT.get(event.state)
            if state:
                self.send(stanzas.message(self.support, party.jid, chatstate=state))
            return
        line = render.customer_line(event)
        if line is not None:
            message = stanzas.message(self.support, party.jid, line)
            self._serial += 1
            message["id"] = f"m-{self._serial}"
            party.sent[message["id"]] = event
            while len(party.sent) > MAX_SENT_KEPT:
                party.sent.popitem(last=False)
            if isinstance(event, ev.Prompt) and event.choices and party.forms:
                message.addChild(render.prompt_form(event))
            if render.is_live_only(event):
                render.hinted(message)
            self.send(message)
        if isinstance(event, ev.Ended):
            self._forget_customer(party)

    def drop_customer(
        self, party: CustomerParty, reason: str, quit: bool = False, undelivered: list = ()
    ) -> None:
        """The customer is gone: ``quit`` when it left (offline, a closed stream), else
        its connection was lost (a bounce, a broken stream) and it may come back."""
        if party.closed:
            return
        self._forget_customer(party)
        self._log.info(
            "XMPP: customer {session} left: {reason}", session=party.session.id, reason=reason
        )
        party.session.disconnected(quit=quit, undelivered=tuple(undelivered))

    def _forget_customer(self, party: CustomerParty) -> None:
        party.closed = True
        if self.customers.get(party.bare) is party:
            del self.customers[party.bare]
        self.identifier.stop(party.inquiry)
        party.inquiry = None

    def _approve(self, to: Jid, sender: Jid) -> None:
        """A subscription request: approved, and the contact's presence sent at once
        (RFC 6121 3.1.5), so clients show it online without waiting for a probe."""
        self.send(stanzas.presence(to.bare, sender.bare, "subscribed"))
        self.send(stanzas.presence(to.bare, sender.bare))

    # -- IQ ----------------------------------------------------------------------

    def _iq(self, stanza: domish.Element, sender: Jid, to: Jid, kind: str | None) -> None:
        if kind in ("result", "error"):
            self.identifier.answer(stanza, sender, kind)
            return
        if kind not in ("get", "set") or not stanza.getAttribute("id"):
            if kind != "error":
                self.send(stanzas.error_reply(stanza, "modify", "bad-request"))
            return
        payloads = list(stanza.elements())
        if len(payloads) != 1:
            self.send(stanzas.error_reply(stanza, "modify", "bad-request"))
            return
        payload = payloads[0]
        agent = self.agents.get(sender.bare)
        if to.local == self.settings.support_user and self.adhoc.iq(stanza, payload, agent, kind):
            return
        known = to.local in ("", self.settings.support_user) or self._is_alias(to.local)
        if not known:
            self.send(stanzas.error_reply(stanza, "cancel", "item-not-found"))
            return
        answer = None
        if kind == "get" and payload.name == "query":
            answer = self._query(stanza, payload.uri, to.local)
        elif kind == "get" and (payload.uri, payload.name) == (ns.PING, "ping"):
            answer = stanzas.result(stanza)
        if answer is None:
            answer = stanzas.error_reply(stanza, "cancel", "service-unavailable")
        self.send(answer)

    def _query(self, stanza: domish.Element, uri: str, local: str) -> domish.Element | None:
        answer = stanzas.result(stanza)
        if uri == ns.DISCO_INFO:
            query = answer.addElement((ns.DISCO_INFO, "query"))
            identity = query.addElement("identity")
            # The domain is the gateway; the support address answers for the service
            # (an automated contact), a customer's address for a person behind it.
            category, kind, name = {
                "": ("component", "generic", "imgateway"),
                self.settings.support_user: ("client", "bot", "Customer support"),
            }.get(local, ("client", "pc", local))
            identity["category"], identity["type"], identity["name"] = category, kind, name
            for feature in DISCO_FEATURES:
                query.addElement("feature")["var"] = feature
        elif uri == ns.DISCO_ITEMS:
            answer.addElement((ns.DISCO_ITEMS, "query"))
        elif uri == ns.VERSION:
            query = answer.addElement((ns.VERSION, "query"))
            query.addElement("name", content="imgateway")
            query.addElement("version", content=__version__)
        else:
            return None
        return answer

    def _is_alias(self, local: str) -> bool:
        return any(local in agent.chats for agent in self.agents.values())

    # -- agents ------------------------------------------------------------------

    def _from_agent(
        self, party: AgentParty, stanza: domish.Element, sender: Jid, to: Jid, kind
    ) -> None:
        if stanza.name == "presence":
            self._agent_presence(party, stanza, sender, to, kind)
            return
        if kind in ("groupchat", "headline"):
            return
        party.jid = sender.full
        body = stanzas.body_of(stanza)
        if to.local == self.settings.support_user:
            if body is not None:
                self._agent_command(party, body, None, stanza)
            return
        conversation = party.conversation_of(to.local)
        if conversation is None:
            self.send(stanzas.error_reply(stanza, "cancel", "item-not-found"))
            return
        if body is None:
            state = self._chatstate(stanza)
            if state is not None:
                try:
                    party.session.typing(conversation, state)
                except GatewayError:
                    pass
            return
        if commands.is_command(body):
            self._agent_command(party, body, to.local, stanza)
            return
        party.session.say_then(conversation, body, partial(self._said, stanza))

    def _agent_presence(self, party: AgentParty, stanza, sender: Jid, to: Jid, kind) -> None:
        if kind is None:
            party.jid = sender.full
            show_element = stanzas.child(stanza, stanza.uri, "show")
            show = str(show_element).strip() if show_element is not None else ""
            status = "away" if show in AWAY_SHOWS else "available"
            party.session.set_presence(status)
        elif kind == "unavailable":
            if sender.full == party.jid or not sender.resource:
                self.drop_agent(party, "went offline")
        elif kind == "subscribe":
            self._approve(to, sender)
        elif kind == "probe":
            self.send(stanzas.presence(to.bare, sender.full))

    def _agent_command(
        self, party: AgentParty, text: str, alias: str | None, stanza: domish.Element
    ) -> None:
        sender = f"{alias}@{self.domain}" if alias else self.support
        try:
            command = commands.parse(text, bare=alias is None)
            if command is not None and commands.for_desk(command):
                desk.run(self._gateway, party, command.name, command.args, alias, sender, self._say)
                return
            if command is None:
                reply = "Write to a customer's address to talk to them; help lists the commands."
            else:
                reply = self._run(party, command, alias)
        except commands.CommandError as e:
            reply = str(e)
        except GatewayError as e:
            reply = f"Error: {e.text}"
        if reply:
            self.send(render.hinted(stanzas.message(sender, party.jid, reply)))

    def _run(self, party: AgentParty, command: commands.Command, alias: str | None) -> str | None:
        session = party.session
        name, args = command.name, command.args
        if name == "help":
            return desk.HELP if args == ("desk",) else commands.HELP
        if name in ("available", "away"):
            session.set_presence(name)
            return f"You are {name}."
        if name == "status":
            return self._status(party)
        if name in ("accept", "reject"):
            offer = args[0] if args else next(iter(party.offers), None)
            if offer is None:
                return f"No offer to {name}."
            if name == "accept":
                session.accept(offer)
                party.offers.pop(offer, None)
                return None  # the customer's address greets the agent
            session.reject(offer)
            party.offers.pop(offer, None)
            return f"Rejected offer {offer}."
        if name == "transfer":
            chat = self._chat(party, args[0] if len(args) == 2 else alias)
            target = args[-1]
            if target.startswith("@"):
                session.transfer(chat, agent=target[1:])
            else:
                session.transfer(chat, queue=target)
            return None
        if name == "end":
            session.end(self._chat(party, args[0] if args else alias))
            return None
        return None

    def _chat(self, party: AgentParty, alias: str | None) -> str:
        if alias is None:
            if len(party.chats) != 1:
                raise commands.CommandError(
                    "name the chat (c-…) or write it to the customer's address"
                )
            alias = next(iter(party.chats))
        alias = alias.partition("@")[0].lower()
        conversation = party.conversation_of(alias)
        if conversation is None:
            raise commands.CommandError(f"you have no chat with {alias[:40]}")
        return conversation

    def _status(self, party: AgentParty) -> str:
        lines = [f"You are {party.session.agent.status}."]
        chats = ", ".join(f"{a}@{self.domain}" for a in party.chats) or "none"
        lines.append(f"Chats: {chats}")
        lines.append(f"Offers: {', '.join(party.offers) or 'none'}")
        return "\n".join(lines)

    def _say(self, sender: str, to: str, text: str) -> None:
        self.send(stanzas.message(sender, to, text))

    def deliver_to_agent(self, party: AgentParty, event: object) -> None:
        """Render an event for an agent: chats from the customer's translated address;
        the gateway's own lines carry hints against offline storage."""
        send = self._send_hinted if render.is_live_only(event) else self.send
        if desk.deliver(party, event, self.support, self.domain, send):
            return
        if isinstance(event, ev.Offer):
            alias = event.customer.alias
            party.offers[event.offer] = alias
            text = render.offer(event, f"{alias}@{self.domain}")
            send(stanzas.message(self.support, party.jid, text))
        elif isinstance(event, ev.Revoked):
            party.offers.pop(event.offer, None)
            send(stanzas.message(self.support, party.jid, render.revoked(event)))
        elif isinstance(event, _NOTICE):
            send(stanzas.message(self.support, party.jid, event.text))
        elif isinstance(event, ev.Connected):
            party.chats[event.peer_alias] = event.conversation
            sender = f"{event.peer_alias}@{self.domain}"
            send(stanzas.message(sender, party.jid, render.connected_for_agent(event)))
        else:
            alias = party.alias_of(getattr(event, "conversation", ""))
            if alias is None:
                return
            sender = f"{alias}@{self.domain}"
            if isinstance(event, ev.Message):
                send(stanzas.message(sender, party.jid, desk.line_for_agent(event)))
            elif isinstance(event, ev.Typing):
                state = render.CHATSTATE_OUT.get(event.state)
                if state:
                    send(stanzas.message(sender, party.jid, chatstate=state))
            elif isinstance(event, ev.Ended):
                del party.chats[alias]
                send(stanzas.message(sender, party.jid, render.agent_ended(event)))

    def _send_hinted(self, element: domish.Element) -> None:
        if element.name == "message" and stanzas.body_of(element) is not None:
            render.hinted(element)
        self.send(element)

    def add_agent(self, party: AgentParty, session) -> None:
        """An agent authenticated by the direct listener (not looked up by address)."""
        party.session = session
        self.agents[party.bare] = party

    def agent_bound(self, party: AgentParty) -> None:
        """The direct listener's agent bound a resource: ask its software."""
        self.identifier.stop(party.inquiry)
        party.inquiry = self.identifier.start(party.jid, party.bare, party_found(party))

    def drop_agent(self, party: AgentParty, reason: str) -> None:
        """Log the agent out of the gateway; its chats go back to their queues."""
        if party.closed:
            return
        self._forget_agent(party)
        self._log.info("XMPP: agent {jid} logged out: {reason}", jid=party.bare, reason=reason)
        if reason != "went offline":
            self.send(stanzas.message(self.support, party.jid, f"You are logged out: {reason}."))
        party.session.disconnected()
        if party.on_close is not None:
            party.on_close(reason)

    def _forget_agent(self, party: AgentParty) -> None:
        party.closed = True
        self.identifier.stop(party.inquiry)
        party.inquiry = None
        if self.agents.get(party.bare) is party:
            del self.agents[party.bare]


def _opening(stanza: domish.Element) -> str | None:
    """The text a stranger's message opens a conversation with; None for a message
    without one (chat states only)."""
    submitted = render.form_answer(stanza)
    body = submitted if submitted is not None else stanzas.body_of(stanza)
    return body if body is not None and body.strip() else None
