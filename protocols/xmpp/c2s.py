"""The direct client listener (RFC 6120/6121, the parts IM clients use).

Stream negotiation, STARTTLS (or direct TLS, XEP-0368, when the listener's endpoint
is ``ssl:``), SASL (SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN for agents, PLAIN only
over TLS; ANONYMOUS for customers), resource binding, then stanzas: those for the
listener's domain go to a :class:`~protocols.xmpp.hub.Hub` of their own, exactly as
the component's do, and the hub's answers come back to the bound connection. The
``from`` of every stanza is the connection's bound JID, whatever the client wrote.
"""

from __future__ import annotations

import secrets
import weakref
from typing import Any

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ISSLTransport
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.words.xish import domish
from zope.interface import implementer

from firewall.common import TokenBucket, describe_address
from firewall.interfaces import IFirewalledProtocol
from gateway import logs
from gateway.core.errors import GatewayError
from gateway.daemon import StartupError
from protocols.tcp import firewall_message_hook, firewall_role, no_delay
from protocols.xmpp import ns, stanzas
from protocols.xmpp.auth import AgentAuth
from protocols.xmpp.hub import Hub
from protocols.xmpp.jid import InvalidJid, parse_jid
from protocols.xmpp.parser import StreamError, StreamParser
from protocols.xmpp.parties import AgentParty
from protocols.xmpp.sasl import (
    SCRAM_MECHANISMS,
    SaslFailure,
    ScramServer,
    b64decode,
    b64encode,
    parse_plain,
)
from protocols.xmpp.settings import XmppSettings
from protocols.xmpp.tls import ServerTLS

TLS = "urn:ietf:params:xml:ns:xmpp-tls"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
BIND = "urn:ietf:params:xml:ns:xmpp-bind"
SESSION = "urn:ietf:params:xml:ns:xmpp-session"
ROSTER = "jabber:iq:roster"
MAX_AUTH_FAILURES = 3
MAX_RESOURCE = 64

_NEGOTIATING, _AUTHENTICATING, _AUTHENTICATED, _BOUND, _CLOSED = range(5)


class ClientServer:
    """What the ``xmpp`` and ``xmpps`` listeners of one gateway share: the hub of the
    client domain, the agents' SASL back end, the TLS context and the bound streams."""

    def __init__(self, gateway: Any, settings: XmppSettings, clock: IReactorTime) -> None:
        self.settings = settings
        self.domain = settings.client_domain
        self.clock = clock
        self.hub = Hub(gateway, attrs.evolve(settings, domain=self.domain), clock)
        self.hub.attached(self.route)
        self.auth = AgentAuth(gateway)
        self.tls = ServerTLS(settings.tls_cert, settings.tls_key) if settings.tls_cert else None
        self.streams: dict[str, ClientStream] = {}

    def route(self, element: domish.Element) -> None:
        """Deliver a stanza from the hub to the connection bound to its ``to``."""
        to = element.getAttribute("to", "")
        stream = self.streams.get(to)
        if stream is None:
            bare = to.partition("/")[0]
            stream = next((s for s in self.streams.values() if s.bare == bare), None)
        if stream is not None:
            stream.send_stanza(element)


def _to_client(element: domish.Element) -> None:
    """Stanzas the hub builds are in the component namespace; here they are jabber:client."""
    if element.uri in (ns.COMPONENT, None):
        element.uri = ns.CLIENT
    if element.defaultUri in (ns.COMPONENT, None):
        element.defaultUri = ns.CLIENT
    for child in element.children:
        if type(child) is not str and (child.uri == ns.COMPONENT or child.uri is None):
            _to_client(child)


@implementer(IFirewalledProtocol)
class ClientStream(Protocol):
    """One client connection."""

    _log = Logger(observer=logs.observer)

    def __init__(self, server: ClientServer, direct_tls: bool) -> None:
        self._server = server
        self._settings = server.settings
        self._clock = server.clock
        self._secure = direct_tls
        self._state = _NEGOTIATING
        self._header_sent = False
        self._parser = self._new_parser()
        self._timer: IDelayedCall | None = None
        # Keepalive of a bound stream: pinged when idle, closed when the ping goes unheard.
        self._idle: IDelayedCall | None = None
        self._pinged = False
        self._failures = 0
        self._scram: ScramServer | None = None
        self._scram_name = ""
        self._awaiting_initial: str | None = None
        self._busy = False
        self._local: str | None = None
        self._agent: AgentParty | None = None
        # The client closed its stream itself (</stream:stream>): it left on purpose.
        self._closed_by_client = False
        self.bare: str | None = None
        self.full: str | None = None
        self._peer = "unknown"
        # A client flooding beyond [xmpp] stanzas_per_second gets policy-violation.
        self._bucket = TokenBucket(
            self._settings.stanzas_per_second, self._settings.stanza_burst, self._clock
        )

    # -- Twisted ---------------------------------------------------------------

    def connectionMade(self) -> None:
        """Start the authentication deadline."""
        no_delay(self.transport)
        self._count_message = firewall_message_hook(self.transport)
        self._peer = describe_address(self.transport.getPeer())
        if not self._secure:
            self._secure = ISSLTransport.providedBy(self.transport)
        self._timer = self._clock.callLater(self._settings.auth_timeout_s, self._timed_out)

    def dataReceived(self, data: bytes) -> None:
        """Parse; a broken stream gets its stream error and only this one closes."""
        if self._state == _CLOSED:
            return
        if self._idle is not None:
            self._pinged = False
            self._idle.reset(self._settings.ping_s)
        try:
            self._parser.feed(data)
        except StreamError as e:
            self._log.info(
                "XMPP {peer}: stream error {condition}: {text}",
                peer=self._peer,
                condition=e.condition,
                text=e.text,
            )
            self._fail(e.condition, e.text)

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Forget the binding; the agent or customer leaves."""
        self._state = _CLOSED
        self._parser.stop()
        self._cancel_timer()
        if self.full is not None and self._server.streams.get(self.full) is self:
            del self._server.streams[self.full]
        hub = self._server.hub
        if self._agent is not None:
            self._agent.on_close = None
            hub.drop_agent(self._agent, "went offline")
        elif self.bare is not None:
            customer = hub.customers.get(self.bare)
            if customer is not None:
                if self._closed_by_client:
                    hub.drop_customer(customer, "closed its stream", quit=True)
                else:
                    hub.drop_customer(customer, "connection lost")

    # -- the stream ------------------------------------------------------------

    def _new_parser(self) -> StreamParser:
        return StreamParser(
            on_header=self._header,
            on_stanza=self._stanza,
            on_end=self._stream_end,
            max_stanza_bytes=self._settings.max_stanza,
            max_depth=self._settings.max_depth,
            max_elements=self._settings.max_elements,
        )

    def _restart(self) -> None:
        """After TLS or SASL: the client opens a new stream."""
        self._parser.stop()
        self._parser = self._new_parser()
        self._header_sent = False

    def _send_header(self) -> None:
        if not self._header_sent:
            self._header_sent = True
            stream_id = secrets.token_hex(8)
            self.transport.write(
                stanzas.stream_header(None, self._server.domain, ns.CLIENT, stream_id)
            )

    def _header(self, attributes: dict[str, str]) -> None:
        self._send_header()
        if attributes.get("xmlns") != ns.CLIENT:
            raise StreamError("invalid-namespace", "expected jabber:client")
        if attributes.get("to", "").lower() != self._server.domain:
            raise StreamError("host-unknown", "this server serves another domain")
        if attributes.get("version") != "1.0":
            raise StreamError("unsupported-version", "version 1.0 is required")
        self._write(self._features())

    def _features(self) -> domish.Element:
        features = domish.Element((ns.STREAMS, "features"))
        if self._state in (_NEGOTIATING, _AUTHENTICATING):
            if not self._secure and self._server.tls is not None:
                features.addElement((TLS, "starttls")).addElement("required")
            else:
                mechanisms = features.addElement((SASL, "mechanisms"))
                for name in self._mechanisms():
                    mechanisms.addElement("mechanism", content=name)
        else:
            features.addElement((BIND, "bind"))
            session = features.addElement((SESSION, "session"))
            session.addElement("optional")
        return features

    def _mechanisms(self) -> tuple[str, ...]:
        plain = ("PLAIN",) if self._secure else ()
        return (*SCRAM_MECHANISMS, *plain, "ANONYMOUS")

    def _stanza(self, element: domish.Element) -> None:
        # The firewall counts stanzas against its message rate; False: dropped.
        if not self._count_message(1):
            self._state = _CLOSED
            self._parser.stop()
            return
        if not self._bucket.consume():
            raise StreamError("policy-violation", "too many stanzas")
        if element.uri == ns.STREAMS and element.name == "error":
            self._close()
            return
        if self._state in (_NEGOTIATING, _AUTHENTICATING):
            self._negotiate(element)
        elif self._state == _AUTHENTICATED:
            self._bind(element)
        else:
            self._bound_stanza(element)

    def _stream_end(self) -> None:
        self._closed_by_client = True
        self._close()

    # -- TLS and SASL ------------------------------------------------------------

    def _negotiate(self, element: domish.Element) -> None:
        if self._busy:
            raise StreamError("policy-violation", "wait for the server's answer")
        if (element.uri, element.name) == (TLS, "starttls"):
            if self._secure or self._server.tls is None:
                raise StreamError("policy-violation", "TLS is not available here")
            self._write_raw(b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            self.transport.startTLS(self._server.tls)
            self._secure = True
            self._restart()
            return
        if not self._secure and self._server.tls is not None:
            raise StreamError("policy-violation", "STARTTLS is required")
        if element.uri != SASL:
            raise StreamError("not-authorized", "authenticate first")
        try:
            if element.name == "auth":
                self._auth(element)
            elif element.name == "response":
                self._response(element)
            elif element.name == "abort":
                raise SaslFailure("aborted")
            else:
                raise StreamError("not-authorized", "authenticate first")
        except SaslFailure as e:
            self._sasl_failed(e.condition)

    def _auth(self, element: domish.Element) -> None:
        if self._state == _AUTHENTICATING:
            raise SaslFailure("aborted")
        mechanism = element.getAttribute("mechanism", "")
        if mechanism == "PLAIN" and not self._secure:
            raise SaslFailure("encryption-required")
        if mechanism not in self._mechanisms():
            raise SaslFailure("invalid-mechanism")
        self._state = _AUTHENTICATING
        text = str(element).strip()
        if not text and mechanism != "ANONYMOUS":  # its trace is optional
            # No initial response: an empty challenge asks for it.
            self._awaiting_initial = mechanism
            self._write_raw(b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            return
        self._start(mechanism, b64decode(text or "="))

    def _start(self, mechanism: str, message: bytes) -> None:
        if mechanism == "ANONYMOUS":
            self._authenticated(f"anon-{secrets.token_hex(6)}", None)
        elif mechanism == "PLAIN":
            name, password = parse_plain(message)
            address = self._peer_host()
            self._login(
                name,
                lambda party: self._server.auth.login_with_password(party, name, password, address),
            )
        else:
            self._scram = ScramServer(mechanism)
            name = self._scram.client_first(message)
            self._scram_name = name
            self._check_name(name)
            self._busy = True
            d = self._server.auth.scram_keys(name, mechanism, self._peer_host())
            d.addCallback(self._scram_challenge)
            d.addErrback(self._async_failed)

    def _scram_challenge(self, keys) -> None:
        self._busy = False
        if self._state == _CLOSED or self._scram is None:
            return
        challenge = self._scram.server_first(keys)
        self._write_sasl("challenge", challenge)

    def _response(self, element: domish.Element) -> None:
        if self._state != _AUTHENTICATING:
            raise SaslFailure("malformed-request")
        message = b64decode(str(element).strip() or "=")
        if self._awaiting_initial is not None:
            mechanism, self._awaiting_initial = self._awaiting_initial, None
            self._start(mechanism, message)
            return
        if self._scram is None:
            raise SaslFailure("malformed-request")
        scram, self._scram = self._scram, None
        try:
            final = scram.client_final(message)
        except SaslFailure as e:
            if e.condition == "not-authorized":  # a wrong password or an unknown name
                self._server.auth.failed(self._scram_name, self._peer_host())
            raise
        name, address = scram.username, self._peer_host()
        self._login(
            name,
            lambda party: self._server.auth.login_verified(party, name, address),
            success=final,
        )

    def _peer_host(self) -> str | None:
        return getattr(self.transport.getPeer(), "host", None)

    def _check_name(self, name: str) -> None:
        try:
            jid = parse_jid(f"{name}@{self._server.domain}")
        except InvalidJid:
            raise SaslFailure("not-authorized") from None
        if jid.local != name or name.startswith(("c-", "anon-")):
            raise SaslFailure("not-authorized")

    def _login(self, name: str, login, success: bytes = b"") -> None:
        self._check_name(name)
        party = AgentParty(
            self._server.hub, f"{name}@{self._server.domain}", f"{name}@{self._server.domain}"
        )
        self._busy = True
        d: Deferred = login(party)
        d.addCallback(self._agent_in, party, success)
        d.addErrback(self._async_failed)

    def _agent_in(self, session, party: AgentParty, success: bytes) -> None:
        self._busy = False
        if self._state == _CLOSED:
            session.disconnected()
            return
        party.on_close = self._logged_out
        self._server.hub.add_agent(party, session)
        self._agent = party
        self._log.info(
            "XMPP {peer}: agent {agent} authenticated", peer=self._peer, agent=session.name
        )
        self._authenticated(party.bare.partition("@")[0], success)

    def _async_failed(self, failure: Failure) -> None:
        self._busy = False
        if self._state == _CLOSED:
            return
        if failure.check(SaslFailure):
            self._sasl_failed(failure.value.condition)
        elif failure.check(GatewayError):
            self._sasl_failed(
                "not-authorized"
                if failure.value.code == "auth_failed"
                else "temporary-auth-failure"
            )
        else:
            self._log.failure("XMPP {peer}: authentication failed", failure, peer=self._peer)
            self._sasl_failed("temporary-auth-failure")

    def _sasl_failed(self, condition: str) -> None:
        self._state = _NEGOTIATING
        self._scram = None
        self._awaiting_initial = None
        self._failures += 1
        failure = domish.Element((SASL, "failure"))
        failure.addElement(condition)
        self._write(failure)
        if self._failures >= MAX_AUTH_FAILURES:
            self._fail("policy-violation", "too many failed authentications")

    def _authenticated(self, local: str, success: bytes | None) -> None:
        # The firewall's rules may depend on the role: ask it again now it is known.
        role = "agent" if self._agent is not None else "customer"
        if not firewall_role(self.transport, role):
            self._state = _CLOSED
            self._parser.stop()
            self._cancel_timer()
            return
        self._local = local
        self._state = _AUTHENTICATED
        self.bare = f"{local}@{self._server.domain}"
        element = domish.Element((SASL, "success"))
        if success:
            element.addContent(b64encode(success))
        self._write(element)
        self._restart()

    def _logged_out(self, reason: str) -> None:
        self._agent = None
        condition = "conflict" if "another" in reason else "system-shutdown"
        self._fail(condition, reason)

    # -- binding ---------------------------------------------------------------

    def _bind(self, element: domish.Element) -> None:
        query = stanzas.child(element, BIND, "bind")
        if element.name != "iq" or element.getAttribute("type") != "set" or query is None:
            raise StreamError("not-authorized", "bind a resource first")
        resource_element = stanzas.child(query, BIND, "resource")
        resource = str(resource_element).strip() if resource_element is not None else ""
        if not resource or len(resource) > MAX_RESOURCE or not resource.isprintable():
            resource = secrets.token_hex(6)
        full = f"{self.bare}/{resource}"
        if full in self._server.streams:
            full = f"{full}-{secrets.token_hex(3)}"
        self.full = full
        self._server.streams[full] = self
        self._state = _BOUND
        self._cancel_timer()
        self._idle = self._clock.callLater(self._settings.ping_s, self._keepalive)
        if self._agent is not None:
            self._agent.jid = full
            self._server.hub.agent_bound(self._agent)
        answer = stanzas.result(element)
        answer.uri = answer.defaultUri = ns.CLIENT
        answer.attributes.pop("from", None)
        answer.attributes.pop("to", None)
        answer.addElement((BIND, "bind")).addElement("jid", content=full)
        self._write(answer)

    # -- stanzas ---------------------------------------------------------------

    def _bound_stanza(self, element: domish.Element) -> None:
        if element.uri != ns.CLIENT or element.name not in ("message", "presence", "iq"):
            raise StreamError("unsupported-stanza-type", "message, presence and iq only")
        element["from"] = self.full
        to = element.getAttribute("to")
        kind = element.getAttribute("type")
        if not to:
            if element.name == "presence":
                if self._agent is not None:
                    element["to"] = self._server.hub.support
                    self._server.hub.stanza_received(element)
                elif kind is None:
                    # A customer's initial presence: the support contact is online.
                    hub = self._server.hub
                    self.send_stanza(stanzas.presence(hub.support, self.full))
                return
            if element.name == "iq":
                self._own_iq(element, kind)
                return
            element["to"] = self.bare
        try:
            target = parse_jid(element["to"])
        except InvalidJid:
            if kind != "error":
                self.send_stanza(stanzas.error_reply(element, "modify", "jid-malformed"))
            return
        if target.domain != self._server.domain:
            if kind != "error" and element.name != "presence":
                self.send_stanza(stanzas.error_reply(element, "cancel", "remote-server-not-found"))
            return
        if target.bare == self.bare:
            if element.name == "iq":
                self._own_iq(element, kind)
            return
        self._server.hub.stanza_received(element)

    def _own_iq(self, element: domish.Element, kind: str | None) -> None:
        """IQs to the account itself: an empty roster, a session; nothing else."""
        if kind not in ("get", "set"):
            return
        payload = element.firstChildElement()
        answer = stanzas.result(element)
        answer.attributes.pop("from", None)
        answer["to"] = self.full
        if payload is not None and (payload.uri, kind) == (ROSTER, "get"):
            answer.addElement((ROSTER, "query"))
        elif payload is not None and payload.uri == SESSION:
            pass
        elif payload is not None and (payload.uri, kind) == (ns.PING, "get"):
            pass
        else:
            answer = stanzas.error_reply(element, "cancel", "service-unavailable")
        self.send_stanza(answer)

    # -- out -------------------------------------------------------------------

    def send_stanza(self, element: domish.Element) -> None:
        """Write a stanza in the jabber:client namespace."""
        _to_client(element)
        self._write(element)

    def _write(self, element: domish.Element) -> None:
        if self._state != _CLOSED:
            xml = element.toXml(prefixes={ns.STREAMS: "stream"}, defaultUri=ns.CLIENT)
            self.transport.write(xml.encode("utf-8"))

    def _write_raw(self, data: bytes) -> None:
        if self._state != _CLOSED:
            self.transport.write(data)

    def _write_sasl(self, name: str, payload: bytes) -> None:
        element = domish.Element((SASL, name))
        element.addContent(b64encode(payload))
        self._write(element)

    def _fail(self, condition: str, text: str = "") -> None:
        if self._state == _CLOSED:
            return
        self._send_header()
        self.transport.write(stanzas.stream_error(condition, text))
        self._state = _CLOSED
        self._parser.stop()
        self._cancel_timer()
        self.transport.loseConnection()

    def firewall_reject(self, reason: str) -> None:
        """The firewall refuses this stream: its polite error (the firewall closes)."""
        self._send_header()
        self.transport.write(stanzas.stream_error("policy-violation", reason))

    def _close(self) -> None:
        if self._state == _CLOSED:
            return
        self._send_header()
        self.transport.write(b"</stream:stream>")
        self._state = _CLOSED
        self._parser.stop()
        self._cancel_timer()
        self.transport.loseConnection()

    def _timed_out(self) -> None:
        self._timer = None
        self._log.info("XMPP {peer}: not authenticated in time", peer=self._peer)
        self._fail("connection-timeout", "authenticate in time")

    def _keepalive(self) -> None:
        if self._state == _CLOSED:
            return
        if self._pinged:
            self._idle = None
            self._log.info("XMPP {peer}: no answer to a ping", peer=self._peer)
            self._fail("connection-timeout", "no answer to a ping")
            return
        self._pinged = True
        ping = domish.Element((ns.CLIENT, "iq"))
        ping["type"] = "get"
        ping["id"] = "ka-" + secrets.token_hex(4)
        ping["from"] = self._server.domain
        ping["to"] = self.full
        ping.addElement((ns.PING, "ping"))
        self._write(ping)
        self._idle = self._clock.callLater(self._settings.ping_s, self._keepalive)

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._state == _CLOSED and self._idle is not None:
            if self._idle.active():
                self._idle.cancel()
            self._idle = None


class ClientFactory(ServerFactory):
    """Builds a :class:`ClientStream` per connection of one listener."""

    noisy = False

    def __init__(self, server: ClientServer, direct_tls: bool) -> None:
        self.server = server
        self.direct_tls = direct_tls

    def buildProtocol(self, addr: Any) -> ClientStream:
        """A stream for one connection."""
        stream = ClientStream(self.server, self.direct_tls)
        stream.factory = self
        return stream


_servers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _server(gateway: Any, config: Any, reactor: Any) -> ClientServer:
    # Both listener kinds of one gateway share one hub and one set of bound streams.
    server = _servers.get(gateway)
    if server is None:
        server = _servers[gateway] = ClientServer(gateway, config.sections["xmpp"], reactor)
    return server


def starttls_factory(gateway: Any, config: Any, reactor: Any) -> ClientFactory:
    """The ``xmpp`` listener: plain TCP, STARTTLS offered (and required) with a certificate."""
    return ClientFactory(_server(gateway, config, reactor), direct_tls=False)


def direct_tls_factory(gateway: Any, config: Any, reactor: Any) -> Any:
    """The ``xmpps`` listener (XEP-0368): TLS from the first byte.

    Its endpoints are ``tcp:`` ones, TLS made here from ``xmpp.tls_cert``/``tls_key``
    (the certificate given once, for STARTTLS and direct TLS alike), or ``ssl:`` ones
    carrying their own keys.
    """
    server = _server(gateway, config, reactor)
    factory = ClientFactory(server, direct_tls=True)
    endpoints = config.listeners.get("xmpps", [])
    plain = [e for e in endpoints if not e.startswith("ssl:")]
    if not plain:
        return factory
    if server.tls is None or len(plain) != len(endpoints):
        raise StartupError(
            "listeners.xmpps: use ssl: endpoints, or tcp: ones with xmpp.tls_cert and tls_key"
            " (not both kinds)"
        )
    return TLSMemoryBIOFactory(server.tls, False, factory)
