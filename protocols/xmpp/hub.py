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

from collections import OrderedDict
from collections.abc import Callable

from twisted.internet.defer import maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.xish import domish

from firewall.common import TokenBucket
from gateway import __version__, logs
from gateway.core import events as ev
from gateway.core.errors import AuthFailed, GatewayError
from protocols.xmpp import commands, desk, ns, render, stanzas
from protocols.xmpp.jid import InvalidJid, Jid, parse_jid
from protocols.xmpp.parties import AgentParty, CustomerParty
from protocols.xmpp.settings import XmppSettings

PROTOCOL = "xmpp"
FEATURES = frozenset({"typing"})
# Stanzas kept per sender while the store says whether it is an agent.
MAX_WAITING_STANZAS = 16
MAX_LOOKUPS = 1000
MAX_CAPS = 10000
MAX_CLIENT_FIELD = 64
AWAY_SHOWS = frozenset({"away", "xa", "dnd"})
# Gateway notices to agents (present in newer cores); none matches when absent.
_NOTICE = getattr(ev, "Notice", ())
DISCO_FEATURES = (ns.DISCO_INFO, ns.DISCO_ITEMS, ns.PING, ns.VERSION, ns.CHATSTATES)


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
        self._caps: OrderedDict[str, str] = OrderedDict()
        self._version_queries: dict[str, CustomerParty] = {}
        self._disco_queries: dict[str, CustomerParty] = {}
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

    def _next_id(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}-{self._serial}"

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
            return  # never answer an error; a bounce for a customer changes nothing
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
        self._remember_caps(stanza, sender)
        if kind == "subscribe":
            self.send(stanzas.presence(to.bare, sender.bare, "subscribed"))
            self.send(stanzas.presence(to.bare, sender.full))
        elif kind == "probe":
            self.send(stanzas.presence(to.bare, sender.full))
        elif kind is None and to.local == self.settings.support_user:
            # Available presence to the support address: maybe an agent coming on duty.
            self._look_up(sender, stanza)

    def _remember_caps(self, stanza: domish.Element, sender: Jid) -> None:
        caps = stanzas.child(stanza, ns.CAPS, "c")
        if caps is not None and caps.getAttribute("node"):
            self._caps[sender.full] = caps["node"][:MAX_CLIENT_FIELD]
            self._caps.move_to_end(sender.full)
            while len(self._caps) > MAX_CAPS:
                self._caps.popitem(last=False)

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
            if sender.bare not in self.customers:
                self._new_customer(stanza, parse_jid(stanza["from"]))
            else:
                self._route(stanza)

    # -- customers -------------------------------------------------------------

    def _server_account(self, bare: str) -> dict:
        """What the attached server vouches for: the customer's account, where to write."""
        if not self._server:
            return {}
        return {"verified": {"account": f"xmpp:{bare}"}, "address": f"xmpp:{bare}"}

    def _new_customer(self, stanza: domish.Element, sender: Jid) -> None:
        if len(self.customers) >= self.settings.max_customers:
            self.send(stanzas.error_reply(stanza, "wait", "resource-constraint"))
            return
        bucket = TokenBucket(
            self.settings.messages_per_second, self.settings.message_burst, self._clock
        )
        party = CustomerParty(self, sender.full, sender.bare, bucket)
        node = self._caps.get(sender.full)
        client = ev.ClientInfo(name=node) if node else ev.ClientInfo()
        self.customers[sender.bare] = party
        try:
            party.session = self._gateway.customer_arrived(
                party,
                protocol=PROTOCOL,
                client=client,
                answers={},
                features=FEATURES,
                key=f"xmpp:{sender.bare}",  # a returning customer, for sticky routing
                **self._server_account(sender.bare),
            )
        except GatewayError as e:
            self._forget_customer(party)
            self.send(stanzas.gateway_error_reply(stanza, e.code, e.text))
            return
        self._log.info(
            "XMPP: customer session {session} for a new conversation", session=party.session.id
        )
        # The opening line starts the conversation; the interview's questions follow.
        if not party.closed:
            self._ask_version(party)

    def _from_customer(
        self, party: CustomerParty, stanza: domish.Element, sender: Jid, to: Jid, kind
    ) -> None:
        if stanza.name == "presence":
            self._remember_caps(stanza, sender)
            if kind == "unavailable" and sender.full == party.jid:
                self.drop_customer(party, "went offline")
            elif kind == "subscribe":
                self.send(stanzas.presence(to.bare, sender.bare, "subscribed"))
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
        if body.strip().lower() == "/end":
            party.session.end()
            return
        d = party.session.say(body)
        d.addErrback(self._refused, stanza)

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
            if isinstance(event, ev.Prompt) and event.choices and party.forms:
                message.addChild(render.prompt_form(event))
            self.send(message)
        if isinstance(event, ev.Ended):
            self._forget_customer(party)

    def drop_customer(self, party: CustomerParty, reason: str) -> None:
        """The customer is gone (offline, or the core closes it)."""
        if party.closed:
            return
        self._forget_customer(party)
        self._log.info(
            "XMPP: customer {session} left: {reason}", session=party.session.id, reason=reason
        )
        party.session.disconnected()

    def _forget_customer(self, party: CustomerParty) -> None:
        party.closed = True
        if self.customers.get(party.bare) is party:
            del self.customers[party.bare]
        if party.version_query is not None:
            self._version_queries.pop(party.version_query, None)
            party.version_query = None
        if party.disco_query is not None:
            self._disco_queries.pop(party.disco_query, None)
            party.disco_query = None
        if party.version_timer is not None and party.version_timer.active():
            party.version_timer.cancel()
        party.version_timer = None

    # -- client identification (XEP-0092) --------------------------------------

    def _ask_version(self, party: CustomerParty) -> None:
        query_id = self._next_id("ver")
        request = stanzas.iq(self.support, party.jid, "get", query_id)
        request.addElement((ns.VERSION, "query"))
        party.version_query = query_id
        self._version_queries[query_id] = party
        party.version_timer = self._clock.callLater(
            self.settings.version_timeout_s, self._version_timed_out, party
        )
        self.send(request)
        # And what it can do: XEP-0004 forms make the interview's choices a list.
        disco_id = self._next_id("disco")
        disco = stanzas.iq(self.support, party.jid, "get", disco_id)
        disco.addElement((ns.DISCO_INFO, "query"))
        party.disco_query = disco_id
        self._disco_queries[disco_id] = party
        self.send(disco)

    def _version_timed_out(self, party: CustomerParty) -> None:
        party.version_timer = None
        if party.version_query is not None:
            self._version_queries.pop(party.version_query, None)
            party.version_query = None
            self._log.info(
                "XMPP: customer {session} did not say its client", session=party.session.id
            )

    def _disco_answer(self, stanza: domish.Element, sender: Jid, kind: str) -> bool:
        party = self._disco_queries.get(stanza.getAttribute("id", ""))
        if party is None or party.bare != sender.bare:
            return False
        del self._disco_queries[party.disco_query]
        party.disco_query = None
        query = stanzas.child(stanza, ns.DISCO_INFO, "query")
        if kind == "result" and query is not None:
            features = {
                e.getAttribute("var")
                for e in query.elements()
                if (e.uri, e.name) == (ns.DISCO_INFO, "feature")
            }
            party.forms = ns.DATA_FORMS in features
        return True

    def _version_answer(self, stanza: domish.Element, sender: Jid, kind: str) -> bool:
        party = self._version_queries.get(stanza.getAttribute("id", ""))
        if party is None or party.bare != sender.bare:
            return False
        self._forget_version_query(party)
        query = stanzas.child(stanza, ns.VERSION, "query")
        if kind != "result" or query is None:
            return True
        fields = {}
        for element in query.elements():
            if element.uri == ns.VERSION and element.name in ("name", "version"):
                fields[element.name] = str(element).strip()[:MAX_CLIENT_FIELD]
        if fields.get("name"):
            client = ev.ClientInfo(name=fields["name"], version=fields.get("version", ""))
            party.session.identify(client)
        return True

    def _forget_version_query(self, party: CustomerParty) -> None:
        if party.version_query is not None:
            self._version_queries.pop(party.version_query, None)
            party.version_query = None
        if party.version_timer is not None and party.version_timer.active():
            party.version_timer.cancel()
        party.version_timer = None

    # -- IQ ----------------------------------------------------------------------

    def _iq(self, stanza: domish.Element, sender: Jid, to: Jid, kind: str | None) -> None:
        if kind in ("result", "error"):
            if not self._disco_answer(stanza, sender, kind):
                self._version_answer(stanza, sender, kind)
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
        known = to.local in ("", self.settings.support_user) or self._is_alias(to.local)
        if not known:
            self.send(stanzas.error_reply(stanza, "cancel", "item-not-found"))
            return
        answer = None
        if kind == "get" and payload.name == "query":
            answer = self._query(stanza, payload.uri)
        elif kind == "get" and (payload.uri, payload.name) == (ns.PING, "ping"):
            answer = stanzas.result(stanza)
        if answer is None:
            answer = stanzas.error_reply(stanza, "cancel", "service-unavailable")
        self.send(answer)

    def _query(self, stanza: domish.Element, uri: str) -> domish.Element | None:
        answer = stanzas.result(stanza)
        if uri == ns.DISCO_INFO:
            query = answer.addElement((ns.DISCO_INFO, "query"))
            identity = query.addElement("identity")
            identity["category"], identity["type"] = "component", "generic"
            identity["name"] = "imgateway"
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
        d = party.session.say(conversation, body)
        d.addErrback(self._refused, stanza)

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
            self.send(stanzas.presence(to.bare, sender.bare, "subscribed"))
        elif kind == "probe":
            self.send(stanzas.presence(to.bare, sender.full))

    def _agent_command(
        self, party: AgentParty, text: str, alias: str | None, stanza: domish.Element
    ) -> None:
        sender = f"{alias}@{self.domain}" if alias else self.support
        try:
            command = commands.parse(text)
            if command is not None and commands.for_desk(command):
                desk.run(self._gateway, party, command.name, command.args, alias, sender, self._say)
                return
            if command is None:
                reply = "Write to a customer's address to talk to them; /help lists the commands."
            else:
                reply = self._run(party, command, alias)
        except commands.CommandError as e:
            reply = str(e)
        except GatewayError as e:
            reply = f"Error: {e.text}"
        if reply:
            self.send(stanzas.message(sender, party.jid, reply))

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
        """Render an event for an agent: chats from the customer's translated address."""
        if desk.deliver(party, event, self.support, self.domain, self.send):
            return
        if isinstance(event, ev.Offer):
            alias = event.customer.alias
            party.offers[event.offer] = alias
            text = render.offer(event, f"{alias}@{self.domain}")
            self.send(stanzas.message(self.support, party.jid, text))
        elif isinstance(event, ev.Revoked):
            party.offers.pop(event.offer, None)
            self.send(stanzas.message(self.support, party.jid, render.revoked(event)))
        elif isinstance(event, _NOTICE):
            self.send(stanzas.message(self.support, party.jid, event.text))
        elif isinstance(event, ev.Connected):
            party.chats[event.peer_alias] = event.conversation
            sender = f"{event.peer_alias}@{self.domain}"
            self.send(stanzas.message(sender, party.jid, render.connected_for_agent(event)))
        else:
            alias = party.alias_of(getattr(event, "conversation", ""))
            if alias is None:
                return
            sender = f"{alias}@{self.domain}"
            if isinstance(event, ev.Message):
                self.send(stanzas.message(sender, party.jid, desk.line_for_agent(event)))
            elif isinstance(event, ev.Typing):
                state = render.CHATSTATE_OUT.get(event.state)
                if state:
                    self.send(stanzas.message(sender, party.jid, chatstate=state))
            elif isinstance(event, ev.Ended):
                del party.chats[alias]
                self.send(stanzas.message(sender, party.jid, render.agent_ended(event)))

    def add_agent(self, party: AgentParty, session) -> None:
        """An agent authenticated by the direct listener (not looked up by address)."""
        party.session = session
        self.agents[party.bare] = party

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
        if self.agents.get(party.bare) is party:
            del self.agents[party.bare]
