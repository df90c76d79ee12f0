"""Building stanzas and stream errors: every text is escaped by the serialiser."""

from __future__ import annotations

import re

from twisted.words.xish import domish

from protocols.xmpp import ns

# Characters XML 1.0 cannot carry at all, even escaped.
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

# gateway.core.errors codes -> (stanza error type, defined condition).
ERROR_CONDITIONS = {
    "not_allowed": ("cancel", "not-allowed"),
    "bad_request": ("modify", "bad-request"),
    "unavailable": ("cancel", "service-unavailable"),
    "auth_failed": ("auth", "not-authorized"),
    "rate_limited": ("wait", "resource-constraint"),
    "internal": ("wait", "internal-server-error"),
}


def xml_text(text: str) -> str:
    """``text`` without the characters XML cannot carry (replaced by U+FFFD)."""
    return _NOT_XML.sub("\ufffd", text)


class _ChatMessage(domish.Element):
    """A message stanza whose serialisation is a template while it holds only its body.

    Every chat line is one of these; domish's general serialiser (a serialiser object,
    namespace bookkeeping, a list of pieces per element) cost more than routing it.
    Anything added to it, or another namespace around it, takes the general path.
    """

    _ATTRIBUTES = ("from", "to", "type")

    def toXml(  # noqa: N802 (Twisted's name and arguments)
        self,
        prefixes=None,
        closeElement=1,  # noqa: N803
        defaultUri="",  # noqa: N803
        prefixesInScope=None,  # noqa: N803
    ) -> str:
        """The stanza as XML text; the same text domish writes, written faster."""
        children = self.children
        if (
            closeElement
            and self.uri == defaultUri
            and len(children) == 1
            and not self.localPrefixes
            and tuple(self.attributes) == self._ATTRIBUTES
        ):
            body = children[0]
            if (
                isinstance(body, domish.Element)
                and body.name == "body"
                and body.uri == defaultUri
                and not body.attributes
                and not body.localPrefixes
                and len(body.children) == 1
                and isinstance(body.children[0], str)
            ):
                attributes = self.attributes
                return (
                    f"<message from='{_attribute(attributes['from'])}' "
                    f"to='{_attribute(attributes['to'])}' "
                    f"type='{_attribute(attributes['type'])}'>"
                    f"<body>{domish.escapeToXml(body.children[0])}</body></message>"
                )
        return super().toXml(prefixes, closeElement, defaultUri, prefixesInScope)


def _attribute(value: str) -> str:
    return domish.escapeToXml(value, 1)


def message(
    sender: str,
    to: str,
    body: str | None = None,
    *,
    kind: str = "chat",
    chatstate: str | None = None,
    uri: str = ns.COMPONENT,
) -> domish.Element:
    """A message stanza with an optional body and chat state."""
    element = domish.Element((uri, "message")) if body is None else _ChatMessage((uri, "message"))
    element["from"], element["to"], element["type"] = sender, to, kind
    if body is not None:
        element.addElement("body", content=xml_text(body))
    if chatstate is not None:
        element.addElement((ns.CHATSTATES, chatstate))
    return element


def presence(sender: str, to: str, kind: str | None = None, uri: str = ns.COMPONENT):
    """A presence stanza (available when ``kind`` is None)."""
    element = domish.Element((uri, "presence"))
    element["from"], element["to"] = sender, to
    if kind:
        element["type"] = kind
    return element


def iq(sender: str, to: str, kind: str, stanza_id: str, uri: str = ns.COMPONENT):
    """An IQ stanza with no payload yet."""
    element = domish.Element((uri, "iq"))
    element["from"], element["to"], element["type"], element["id"] = sender, to, kind, stanza_id
    return element


def result(request: domish.Element) -> domish.Element:
    """The empty result of an IQ request (addresses swapped)."""
    answer = iq(
        request.getAttribute("to", ""),
        request.getAttribute("from", ""),
        "result",
        request.getAttribute("id", ""),
        uri=request.uri or ns.COMPONENT,
    )
    return answer


def error_reply(
    stanza: domish.Element, kind: str, condition: str, text: str | None = None
) -> domish.Element:
    """An error answer to ``stanza`` per RFC 6120 section 8.3 (payload not echoed)."""
    reply = domish.Element((stanza.uri or ns.COMPONENT, stanza.name))
    reply["type"] = "error"
    for src, dst in (("from", "to"), ("to", "from")):
        if stanza.hasAttribute(src):
            reply[dst] = stanza[src]
    if stanza.hasAttribute("id"):
        reply["id"] = stanza["id"]
    error = reply.addElement("error")
    error["type"] = kind
    error.addElement((ns.STANZA_ERRORS, condition))
    if text:
        error.addElement((ns.STANZA_ERRORS, "text"), content=xml_text(text))
    return reply


def gateway_error_reply(stanza: domish.Element, code: str, text: str) -> domish.Element:
    """A stanza error for a :class:`gateway.core.errors.GatewayError` code."""
    kind, condition = ERROR_CONDITIONS.get(code, ERROR_CONDITIONS["internal"])
    return error_reply(stanza, kind, condition, text)


def stream_error(condition: str, text: str = "") -> bytes:
    """A stream error element, serialised, with the stream's close tag after it."""
    error = domish.Element((ns.STREAMS, "error"))
    error.addElement((ns.STREAM_ERRORS, condition))
    if text:
        error.addElement((ns.STREAM_ERRORS, "text"), content=xml_text(text))
    return error.toXml(prefixes={ns.STREAMS: "stream"}).encode() + b"</stream:stream>"


def stream_header(to: str | None, sender: str | None, uri: str, stream_id: str | None = None):
    """The opening ``<stream:stream>`` tag, serialised (attribute values escaped)."""
    pairs = [("xmlns", uri), ("xmlns:stream", ns.STREAMS)]
    pairs += [(k, v) for k, v in (("to", to), ("from", sender), ("id", stream_id)) if v]
    pairs.append(("version", "1.0"))
    attributes = " ".join(f"{k}='{domish.escapeToXml(xml_text(v), 1)}'" for k, v in pairs)
    return f"<?xml version='1.0'?><stream:stream {attributes}>".encode()


def body_of(stanza: domish.Element) -> str | None:
    """The text of the first ``<body/>`` in the stanza's own namespace, if any."""
    # children, not elements(): that generator asks zope.interface about each child.
    for child in stanza.children:
        if type(child) is not str and child.name == "body" and child.uri == stanza.uri:
            return str(child)
    return None


def child(stanza: domish.Element, uri: str, name: str | None = None):
    """The first child element in ``uri`` (named ``name`` if given), or None."""
    for element in stanza.children:
        if type(element) is str or element.uri != uri:
            continue
        if name is None or element.name == name:
            return element
    return None
