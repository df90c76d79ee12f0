"""A hardened XMPP stream parser over expat.

One parser reads one stream: the stream header, then each top-level stanza as a
:class:`twisted.words.xish.domish.Element`, then the stream's end. It refuses what
RFC 6120 section 11.1 restricts (DTDs, entity declarations and references other than
the predefined ones, comments, processing instructions) with ``restricted-xml``, and
bounds what one stanza may cost *while it is being parsed*: its bytes (counted as
they are fed, so a stanza that never ends cannot grow without bound), its depth and
its element count. The counters reset after each stanza.

Errors are raised as :class:`StreamError` carrying the RFC 6120 stream error
condition; the stream is unusable afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from xml.parsers import expat

from twisted.words.xish import domish

from protocols.xmpp import ns

DEFAULT_MAX_STANZA = 256 * 1024
DEFAULT_MAX_DEPTH = 32
DEFAULT_MAX_ELEMENTS = 1000
# Distinct element and attribute names in one stream: expat remembers each name for
# the whole document, so a stream of ever new names would grow its tables forever.
DEFAULT_MAX_NAMES = 2000
# Names nearly every stream uses. A fixed few cannot grow expat's tables without
# bound, so they are not counted, nor kept in a set per stream (0.5 KiB each).
_COMMON_NAMES = frozenset(
    {
        f"{ns.STREAMS} stream",
        f"{ns.CLIENT} iq",
        f"{ns.CLIENT} message",
        f"{ns.CLIENT} presence",
        f"{ns.CLIENT} body",
        f"{ns.XML} lang",
        "urn:ietf:params:xml:ns:xmpp-sasl auth",
        "urn:ietf:params:xml:ns:xmpp-bind bind",
        "urn:ietf:params:xml:ns:xmpp-bind resource",
        "to",
        "from",
        "id",
        "type",
        "version",
        "mechanism",
    }
)
# Bytes handed to expat at once; the size limit is checked between slices.
SLICE = 4096
# expat's text buffer, allocated for the life of every stream: its default of 8 KiB
# was a quarter of an idle XMPP connection's memory. Longer text arrives in pieces.
TEXT_BUFFER = 512

# expat errors that mean an entity was declared or referenced.
_ENTITY_ERRORS = frozenset(
    getattr(expat.errors, name)
    for name in (
        "XML_ERROR_UNDEFINED_ENTITY",
        "XML_ERROR_RECURSIVE_ENTITY_REF",
        "XML_ERROR_ASYNC_ENTITY",
        "XML_ERROR_BINARY_ENTITY_REF",
        "XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF",
        "XML_ERROR_EXTERNAL_ENTITY_HANDLING",
        "XML_ERROR_ENTITY_DECLARED_IN_PE",
        "XML_ERROR_PARAM_ENTITY_REF",
        "XML_ERROR_MISPLACED_XML_PI",
    )
    if hasattr(expat.errors, name)
)
# Declarations inside the root (<!DOCTYPE, <!ENTITY, <!ELEMENT, <!ATTLIST) are syntax
# errors to expat, reported at the letter after "<!" -- as soon as that letter arrives,
# so only "<!" and the letter are sure to have been fed. Comments and processing
# instructions reach their handlers instead.
_DECLARATION_LETTERS = b"DEA"
# Bytes of earlier feeds kept, so that "<!" split from its letter is still seen.
_LOOKBACK = 16
# How a UTF-16 stream begins (a byte order mark, or "<" as UTF-16 without one): expat
# switches to UTF-16 on seeing these, whatever encoding it was created with; XMPP is
# UTF-8 only (RFC 6120 section 11.6), and no UTF-8 stream begins so.
_UTF16_STARTS = (b"\xfe\xff", b"\xff\xfe", b"<\x00", b"\x00<")


class StreamError(Exception):
    """The stream broke a rule; ``condition`` is the RFC 6120 stream error to send."""

    def __init__(self, condition: str, text: str = "") -> None:
        super().__init__(f"{condition}: {text}" if text else condition)
        self.condition = condition
        self.text = text


def _restricted(what: str) -> StreamError:
    return StreamError("restricted-xml", f"{what} not allowed")


def _refusal(what: str) -> Callable[..., None]:
    def refuse(*_: object) -> None:
        raise _restricted(what)

    return refuse


# expat handlers for what a stream may not hold -> the refusal each raises.
_REFUSALS = {
    "StartDoctypeDeclHandler": _refusal("a DTD"),
    "EntityDeclHandler": _refusal("an entity declaration"),
    "UnparsedEntityDeclHandler": _refusal("an entity declaration"),
    "NotationDeclHandler": _refusal("a notation declaration"),
    "ElementDeclHandler": _refusal("an element declaration"),
    "AttlistDeclHandler": _refusal("an attribute list declaration"),
    "ExternalEntityRefHandler": _refusal("an external entity"),
    "CommentHandler": _refusal("a comment"),
    "ProcessingInstructionHandler": _refusal("a processing instruction"),
}


def _split(name: str) -> tuple[str | None, str]:
    uri, sep, local = name.rpartition(" ")
    return (uri, local) if sep else (None, name)


# The few names streams use over and over, split once (short ones only: bounded memory).
_split_cached = lru_cache(maxsize=1024)(_split)


def _qname(name: str) -> tuple[str | None, str]:
    return _split_cached(name) if len(name) <= 128 else _split(name)


class StreamParser:
    """Parses one XML stream, handing back the header, each stanza and the end.

    ``on_header(attributes)`` gets the header's attributes (``xmlns`` is the default
    namespace it declared); ``on_stanza(element)`` each complete top-level element;
    ``on_end()`` the closing ``</stream:stream>``. :meth:`feed` raises
    :class:`StreamError`.
    """

    def __init__(
        self,
        *,
        on_header: Callable[[dict[str, str]], None],
        on_stanza: Callable[[domish.Element], None],
        on_end: Callable[[], None],
        max_stanza_bytes: int = DEFAULT_MAX_STANZA,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_elements: int = DEFAULT_MAX_ELEMENTS,
        max_names: int = DEFAULT_MAX_NAMES,
    ) -> None:
        self._on_header = on_header
        self._on_stanza = on_stanza
        self._on_end = on_end
        self.max_stanza_bytes = max_stanza_bytes
        self.max_depth = max_depth
        self.max_elements = max_elements
        self.max_names = max_names
        self._names: set[str] = set()
        self._fed = 0
        self._head = b""  # the stream's first two bytes, once they have arrived
        self._boundary = 0  # where the stanza (or the run of whitespace) being read began
        self._chunk_start = 0
        self._chunk = b""
        self._depth = 0
        self._elements = 0
        self._stack: list[domish.Element] = []
        self._default_ns: str | None = None
        self._stopped = False
        self._failed = False
        self._parser = self._make_parser()

    def _make_parser(self) -> expat.XMLParserType:
        # The encoding is fixed: XMPP is UTF-8, whatever a declaration says.
        p = expat.ParserCreate("UTF-8", namespace_separator=" ")
        p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        p.buffer_text = True
        p.buffer_size = TEXT_BUFFER
        p.StartElementHandler = self._start
        p.EndElementHandler = self._end
        p.CharacterDataHandler = self._text
        p.StartNamespaceDeclHandler = self._namespace
        # Shared by every stream: a closure per handler per stream cost 1.8 KiB.
        for handler, refuse in _REFUSALS.items():
            setattr(p, handler, refuse)
        return p

    # -- feeding -------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parse more of the stream; callbacks run as stanzas complete."""
        if self._failed:
            raise StreamError("internal-server-error", "the stream already failed")
        if len(self._head) < 2 and data:
            self._head += data[: 2 - len(self._head)]
            if self._head in _UTF16_STARTS:
                self._failed = True
                raise StreamError("unsupported-encoding", "XMPP streams are UTF-8")
        for start in range(0, len(data), SLICE):
            if self._stopped:
                return
            piece = data[start : start + SLICE]
            kept = self._chunk[-_LOOKBACK:]
            self._chunk_start, self._chunk = self._fed - len(kept), kept + piece
            self._fed += len(piece)
            try:
                self._parser.Parse(piece, False)
            except StreamError:
                self._failed = True
                raise
            except expat.ExpatError as e:
                self._failed = True
                raise self._expat_error(e) from None
            if self._stopped:
                return
            self._check_size(self._fed)

    def stop(self) -> None:
        """Parse nothing more (the stream is closing); further bytes are ignored."""
        self._stopped = True

    def _expat_error(self, error: expat.ExpatError) -> StreamError:
        message = expat.errors.messages[error.code]
        if message in _ENTITY_ERRORS:
            return StreamError("restricted-xml", "entities are not allowed")
        offset = self._parser.ErrorByteIndex - self._chunk_start
        for at in (offset, offset + 1):
            if 2 <= at < len(self._chunk) and self._chunk[at - 2 : at] == b"<!":
                if self._chunk[at : at + 1].upper() in _DECLARATION_LETTERS:
                    return StreamError("restricted-xml", "restricted XML is not allowed")
        return StreamError("not-well-formed", message)

    def _check_size(self, position: int) -> None:
        if position - self._boundary > self.max_stanza_bytes:
            raise StreamError(
                "policy-violation", f"stanza larger than {self.max_stanza_bytes} bytes"
            )

    # -- expat handlers --------------------------------------------------------

    def _namespace(self, prefix: str | None, uri: str) -> None:
        if self._depth == 0 and prefix is None:
            self._default_ns = uri

    def _remember(self, name: str) -> None:
        if name not in self._names and name not in _COMMON_NAMES:
            if len(self._names) >= self.max_names:
                raise StreamError("policy-violation", "too many distinct names in one stream")
            self._names.add(name)

    def _start(self, name: str, attributes: dict[str, str]) -> None:
        if self._stopped:
            return
        self._check_size(self._parser.CurrentByteIndex)
        self._remember(name)
        for key in attributes:
            self._remember(key)
        if self._depth == 0:
            self._depth = 1
            self._boundary = self._parser.CurrentByteIndex
            if _qname(name) != (ns.STREAMS, "stream"):
                uri, local = _qname(name)
                if local == "stream":
                    raise StreamError("invalid-namespace", "the stream is in the wrong namespace")
                raise StreamError("bad-format", "a stream must begin with stream:stream")
            header = {}
            for key, value in attributes.items():
                uri, local = _qname(key)
                header["xml:" + local if uri == ns.XML else local] = value
            header["xmlns"] = self._default_ns or ""
            self._on_header(header)
            return
        if self._depth == 1:
            self._elements = 0
        self._elements += 1
        if self._elements > self.max_elements:
            raise StreamError("policy-violation", f"more than {self.max_elements} elements")
        if self._depth > self.max_depth:
            raise StreamError("policy-violation", f"nested deeper than {self.max_depth}")
        attribs = {}
        for key, value in attributes.items():
            uri, local = _qname(key)
            attribs[(uri, local) if uri else local] = value
        element = domish.Element(_qname(name), attribs=attribs)
        if self._stack:
            self._stack[-1].addChild(element)
        self._stack.append(element)
        self._depth += 1

    def _end(self, name: str) -> None:
        if self._stopped:
            return
        self._depth -= 1
        if self._depth == 0:
            self._on_end()
            return
        element = self._stack.pop()
        if self._depth == 1:
            self._boundary = self._parser.CurrentByteIndex
            self._on_stanza(element)

    def _text(self, text: str) -> None:
        if self._stopped:
            return
        if self._stack:
            self._stack[-1].addContent(text)
        elif self._depth == 1:
            if text.strip():
                raise StreamError("bad-format", "text between stanzas")
            # Whitespace keepalives between stanzas do not add up to a stanza.
            self._boundary = self._parser.CurrentByteIndex
