"""Which software an XMPP customer or agent runs, and what it can do.

Asked with XEP-0092 (``jabber:iq:version``) first. A client that does not answer in
``xmpp.version_timeout_s``, or answers with an error, is identified from its
XEP-0115 capabilities instead: the ``node#ver`` its presence announced is resolved
with a disco#info query and trusted only if the answer hashes to ``ver``
(:mod:`.caps`; verified answers are cached by ``ver``). A client that announced no
caps is named by its own disco#info identity. The plain disco#info query also
tells whether the client fills in XEP-0004 forms.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.words.xish import domish

from gateway import logs
from gateway.core.events import ClientInfo
from protocols.xmpp import caps, ns, stanzas
from protocols.xmpp.jid import Jid

MAX_CLIENT_FIELD = 64
MAX_CAPS = 10000


class Inquiry:
    """What is being asked of one party's client, and where the answer goes."""

    def __init__(self, jid: str, bare: str, found: Callable[[ClientInfo], None]) -> None:
        self.jid = jid
        self.bare = bare
        self.found = found
        self.forms: Callable[[bool], None] | None = None
        self.queries: set[str] = set()
        self.timer: IDelayedCall | None = None
        self.done = False
        self.fallen_back = False
        self.plain_info: domish.Element | None = None


class Identifier:
    """Asks clients who they are; answers go to each inquiry's ``found``."""

    _log = Logger(observer=logs.observer)

    def __init__(
        self,
        send: Callable[[domish.Element], None],
        sender: str,
        clock: IReactorTime,
        timeout_s: float,
    ) -> None:
        self._send = send
        self._sender = sender
        self._clock = clock
        self._timeout_s = timeout_s
        self._serial = 0
        self._queries: dict[str, tuple[Inquiry, str, caps.Caps | None]] = {}
        self._caps: OrderedDict[str, caps.Caps] = OrderedDict()
        self._verified = caps.CapsCache()

    # -- presence ------------------------------------------------------------

    def presence(self, stanza: domish.Element, sender: Jid) -> None:
        """Remember the caps a presence announces (by full JID)."""
        announced = caps.from_presence(stanza)
        if announced is None:
            return
        self._caps[sender.full] = announced
        self._caps.move_to_end(sender.full)
        while len(self._caps) > MAX_CAPS:
            self._caps.popitem(last=False)

    def known(self, jid: str) -> ClientInfo | None:
        """The software of ``jid`` if its announced caps are verified already."""
        announced = self._caps.get(jid)
        return self._verified.get(announced.ver) if announced is not None else None

    # -- asking ----------------------------------------------------------------

    def start(
        self,
        jid: str,
        bare: str,
        found: Callable[[ClientInfo], None],
        forms: Callable[[bool], None] | None = None,
    ) -> Inquiry:
        """Ask ``jid`` its software (and, with ``forms``, whether it does XEP-0004)."""
        inquiry = Inquiry(jid, bare, found)
        inquiry.forms = forms
        self._ask(inquiry, ns.VERSION, "version")
        self._ask(inquiry, ns.DISCO_INFO, "info")
        inquiry.timer = self._clock.callLater(self._timeout_s, self._timed_out, inquiry)
        return inquiry

    def stop(self, inquiry: Inquiry | None) -> None:
        """Forget an inquiry (its party left)."""
        if inquiry is None:
            return
        inquiry.done = True
        for query_id in inquiry.queries:
            self._queries.pop(query_id, None)
        inquiry.queries.clear()
        if inquiry.timer is not None and inquiry.timer.active():
            inquiry.timer.cancel()
        inquiry.timer = None

    def _ask(self, inquiry: Inquiry, uri: str, kind: str, announced=None) -> None:
        self._serial += 1
        query_id = f"{kind}-{self._serial}"
        request = stanzas.iq(self._sender, inquiry.jid, "get", query_id)
        query = request.addElement((uri, "query"))
        if announced is not None:
            query["node"] = f"{announced.node}#{announced.ver}"
        inquiry.queries.add(query_id)
        self._queries[query_id] = (inquiry, kind, announced)
        self._send(request)

    # -- answers ---------------------------------------------------------------

    def answer(self, stanza: domish.Element, sender: Jid, kind: str) -> bool:
        """Take an IQ result or error if it answers one of our queries."""
        query_id = stanza.getAttribute("id", "")
        entry = self._queries.get(query_id)
        if entry is None:
            return False
        inquiry, asked, announced = entry
        if sender.bare != inquiry.bare:
            return False  # someone else's answer: ignored, the query stays open
        del self._queries[query_id]
        inquiry.queries.discard(query_id)
        if inquiry.done and asked != "info":
            return True
        if asked == "version":
            self._version(inquiry, stanza, kind)
        elif asked == "info":
            self._plain_info(inquiry, stanza, kind)
        else:
            self._node_info(inquiry, stanza, kind, announced)
        return True

    def _version(self, inquiry: Inquiry, stanza: domish.Element, kind: str) -> None:
        query = stanzas.child(stanza, ns.VERSION, "query")
        fields: dict[str, str] = {}
        if kind == "result" and query is not None:
            for element in query.elements():
                if element.uri == ns.VERSION and element.name in ("name", "version"):
                    fields[element.name] = str(element).strip()[:MAX_CLIENT_FIELD]
        if fields.get("name"):
            self._found(inquiry, ClientInfo(fields["name"], fields.get("version", "")))
        else:
            self._fall_back(inquiry)

    def _plain_info(self, inquiry: Inquiry, stanza: domish.Element, kind: str) -> None:
        query = stanzas.child(stanza, ns.DISCO_INFO, "query")
        if kind != "result" or query is None:
            return
        inquiry.plain_info = query
        if inquiry.forms is not None:
            features = {
                e.getAttribute("var")
                for e in query.elements()
                if (e.uri, e.name) == (ns.DISCO_INFO, "feature")
            }
            inquiry.forms(ns.DATA_FORMS in features)
        if inquiry.fallen_back and not inquiry.done and not inquiry.queries:
            self._from_plain(inquiry)

    def _node_info(self, inquiry: Inquiry, stanza: domish.Element, kind: str, announced) -> None:
        query = stanzas.child(stanza, ns.DISCO_INFO, "query")
        if kind == "result" and query is not None and caps.verify(announced, query):
            client = caps.client_of(query)
            if client is not None:
                self._verified.put(announced.ver, client)
                self._found(inquiry, client)
                return
        if kind == "result":
            self._log.info(
                "XMPP: caps of {jid} do not verify ({node})", jid=inquiry.bare, node=announced.node
            )
        self._from_plain(inquiry)

    def _timed_out(self, inquiry: Inquiry) -> None:
        inquiry.timer = None
        if not inquiry.done:
            self._log.info("XMPP: {jid} did not say its software in time", jid=inquiry.bare)
            self._fall_back(inquiry)

    def _fall_back(self, inquiry: Inquiry) -> None:
        """XEP-0092 said nothing: the announced caps, else the client's own disco#info."""
        if inquiry.fallen_back:
            return
        inquiry.fallen_back = True
        announced = self._caps.get(inquiry.jid)
        if announced is not None:
            client = self._verified.get(announced.ver)
            if client is not None:
                self._found(inquiry, client)
            elif announced.hash in caps.HASHES:
                self._ask(inquiry, ns.DISCO_INFO, "node", announced)
            else:
                self._from_plain(inquiry)
            return
        if inquiry.plain_info is not None or not inquiry.queries:
            self._from_plain(inquiry)

    def _from_plain(self, inquiry: Inquiry) -> None:
        client = caps.client_of(inquiry.plain_info) if inquiry.plain_info is not None else None
        if client is not None:
            self._found(inquiry, client)

    def _found(self, inquiry: Inquiry, client: ClientInfo) -> None:
        # Done, though the forms question may still be answered.
        inquiry.done = True
        if inquiry.timer is not None and inquiry.timer.active():
            inquiry.timer.cancel()
        inquiry.timer = None
        inquiry.found(client)


def party_found(party: Any) -> Callable[[ClientInfo], None]:
    """Where a party's software goes once known: its session's ``identify``."""

    def found(client: ClientInfo) -> None:
        session = getattr(party, "session", None)
        if session is not None and not getattr(party, "closed", False):
            session.identify(client)

    return found
