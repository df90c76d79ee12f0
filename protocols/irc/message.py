"""IRC messages: parsing and serialising lines with IRCv3 tags, prefix and parameters."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

MAX_PARAMS = 15
# Their last parameter is text: always sent as trailing, as clients expect.
_TEXT_COMMANDS = frozenset(
    {"PRIVMSG", "NOTICE", "TOPIC", "PART", "QUIT", "ERROR", "KICK", "PING", "PONG"}
)
_TAG_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}
_TAG_QUOTES = {";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"}


class ParseError(Exception):
    """A line that is not an IRC message (no command)."""


@attrs.frozen
class Message:
    """One IRC message. ``command`` is upper-cased; numerics stay three digits."""

    command: str
    params: tuple[str, ...] = ()
    prefix: str | None = None
    tags: Mapping[str, str] = attrs.field(factory=dict)

    def param(self, index: int, default: str = "") -> str:
        """The parameter at ``index``, or ``default`` when there is none."""
        return self.params[index] if index < len(self.params) else default


def decode(raw: bytes) -> str:
    """UTF-8 if the bytes are valid UTF-8, else Latin-1 (which never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def parse(line: str) -> Message:
    """Parse one line (without CR LF) into a :class:`Message`."""
    tags: dict[str, str] = {}
    rest = line
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        tags = parse_tags(raw_tags)
    rest = rest.lstrip(" ")
    prefix = None
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
        rest = rest.lstrip(" ")
    trailing = None
    if " :" in rest:
        rest, _, trailing = rest.partition(" :")
    elif rest.startswith(":"):
        raise ParseError("no command")
    # Parameters are separated by SPACE only (RFC 1459 2.3.1): str.split() would also
    # cut at form feeds, vertical tabs and Unicode spaces inside a parameter.
    words = [word for word in rest.split(" ") if word]
    if not words:
        raise ParseError("no command")
    command, params = words[0].upper(), words[1:]
    if trailing is not None:
        params.append(trailing)
    if len(params) > MAX_PARAMS:
        # RFC 2812: the rest of the line after 14 middles is the 15th parameter.
        params = [*params[: MAX_PARAMS - 1], " ".join(params[MAX_PARAMS - 1 :])]
    return Message(command, tuple(params), prefix or None, tags)


def parse_tags(raw: str) -> dict[str, str]:
    """IRCv3 message tags, values unescaped; the last of a repeated key wins."""
    tags: dict[str, str] = {}
    for item in raw.split(";"):
        if not item:
            continue
        key, _, value = item.partition("=")
        tags[key] = _unescape(value)
    return tags


def _unescape(value: str) -> str:
    out = []
    i = 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            out.append(_TAG_ESCAPES.get(value[i + 1], value[i + 1]))
            i += 2
            continue
        if ch != "\\":
            out.append(ch)
        i += 1
    return "".join(out)


def escape_tag(value: str) -> str:
    """A tag value escaped for the wire."""
    return "".join(_TAG_QUOTES.get(ch, ch) for ch in value)


def _clean(text: str) -> str:
    # CR, LF and NUL can never be sent inside a line.
    return text.replace("\r", " ").replace("\n", " ").replace("\x00", "")


def serialise(message: Message) -> bytes:
    """The message as one line with CR LF, UTF-8 encoded.

    The last parameter is sent as trailing when it must be (empty, has a space,
    starts with ':'); earlier parameters may not contain such things and are
    cleaned. Length limits are the caller's: see :func:`split_text`.
    """
    parts = []
    if message.tags:
        parts.append(
            "@"
            + ";".join(
                key if value == "" else f"{key}={escape_tag(value)}"
                for key, value in message.tags.items()
            )
        )
    if message.prefix:
        parts.append(":" + _clean(message.prefix).replace(" ", ""))
    parts.append(message.command)
    params = [_clean(p) for p in message.params]
    for p in params[:-1]:
        parts.append(p.replace(" ", "") or "*")
    if params:
        last = params[-1]
        needs_colon = not last or " " in last or last.startswith(":")
        parts.append(":" + last if needs_colon or message.command in _TEXT_COMMANDS else last)
    return (" ".join(parts) + "\r\n").encode("utf-8")


def split_text(text: str, budget: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``budget`` UTF-8 bytes, one per line of text.

    Lines of the text become separate pieces; a long line is cut at a space when
    one is near the limit, never inside a character. Empty lines are dropped.
    """
    budget = max(budget, 16)
    pieces: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = line.replace("\x00", "")
        while line:
            encoded = line.encode("utf-8")
            if len(encoded) <= budget:
                pieces.append(line)
                break
            cut = encoded[:budget].decode("utf-8", "ignore")
            space = cut.rfind(" ")
            if space > len(cut) // 2:
                cut = cut[:space]
            pieces.append(cut)
            line = line[len(cut) :].lstrip(" ")
    return pieces
