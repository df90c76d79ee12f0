"""XEP-0115 entity capabilities: the verification string and its hash (section 5).

A client's presence names its disco#info by a hash (``ver``); a disco#info answer
for ``node#ver`` is trusted only if it hashes to ``ver`` (section 5.4), so one
client's answer can be cached for every client announcing the same ``ver``.
XEP-0232's software information form, where present, gives the client's name and
version; otherwise the name of its ``client`` identity does.
"""

from __future__ import annotations

import base64
import hashlib
from collections import OrderedDict

import attrs
from twisted.words.xish import domish

from gateway.core.events import ClientInfo
from protocols.xmpp import ns

# The IANA hash names XEP-0115 uses, as hashlib knows them.
HASHES = {
    "sha-1": "sha1",
    "sha-224": "sha224",
    "sha-256": "sha256",
    "sha-384": "sha384",
    "sha-512": "sha512",
}
SOFTWARE_INFO = "urn:xmpp:dataforms:softwareinfo"
MAX_FIELD = 64
MAX_CACHED = 10000


class CapsError(ValueError):
    """A disco#info answer that cannot be verified (section 5.4's rules)."""


@attrs.frozen
class Caps:
    """What a presence's ``<c/>`` announced."""

    node: str
    ver: str
    hash: str


def from_presence(stanza: domish.Element) -> Caps | None:
    """The caps a presence announces, if any (legacy caps without ``hash`` are ignored)."""
    for element in stanza.elements():
        if (element.uri, element.name) == (ns.CAPS, "c"):
            node, ver = element.getAttribute("node", ""), element.getAttribute("ver", "")
            algorithm = element.getAttribute("hash", "")
            if node and ver and algorithm:
                return Caps(node[:256], ver[:128], algorithm.lower())
    return None


def verification_string(query: domish.Element) -> str:
    """The string section 5.1 hashes, from a disco#info ``<query/>``."""
    identities, features, forms = [], [], []
    for element in query.elements():
        if element.uri != ns.DISCO_INFO and element.uri != ns.DATA_FORMS:
            continue
        if element.name == "identity" and element.uri == ns.DISCO_INFO:
            lang = element.getAttribute((ns.XML, "lang"), "")
            identities.append(
                (
                    element.getAttribute("category", ""),
                    element.getAttribute("type", ""),
                    lang,
                    element.getAttribute("name", ""),
                )
            )
        elif element.name == "feature" and element.uri == ns.DISCO_INFO:
            features.append(element.getAttribute("var", ""))
        elif (element.uri, element.name) == (ns.DATA_FORMS, "x"):
            forms.append(_form(element))
    if len(set(identities)) != len(identities):
        raise CapsError("duplicate identity")
    if len(set(features)) != len(features):
        raise CapsError("duplicate feature")
    forms = [form for form in forms if form is not None]
    if len({form_type for form_type, _ in forms}) != len(forms):
        raise CapsError("two forms of one FORM_TYPE")
    out = []
    for identity in sorted(identities):
        out.append("/".join(identity) + "<")
    for feature in sorted(features):
        out.append(feature + "<")
    for form_type, fields in sorted(forms):
        out.append(form_type + "<")
        for var, values in sorted(fields):
            out.append(var + "<")
            out.extend(value + "<" for value in sorted(values))
    return "".join(out)


def _form(form: domish.Element) -> tuple[str, list[tuple[str, list[str]]]] | None:
    """(FORM_TYPE, [(var, values)]) of an extended-info form; None without FORM_TYPE."""
    form_type = None
    fields = []
    for field in form.elements():
        if field.name != "field":
            continue
        values = [str(v) for v in field.elements() if v.name == "value"]
        var = field.getAttribute("var", "")
        if var == "FORM_TYPE":
            if field.getAttribute("type", "hidden") != "hidden" or len(values) != 1:
                raise CapsError("FORM_TYPE must be hidden and single")
            form_type = values[0]
        else:
            fields.append((var, values))
    if form_type is None:
        return None  # section 5.4: such forms are left out of the string
    return form_type, fields


def verify(caps: Caps, query: domish.Element) -> bool:
    """Whether ``query`` (the answer for ``node#ver``) hashes to the announced ``ver``."""
    name = HASHES.get(caps.hash)
    if name is None:
        return False
    try:
        string = verification_string(query)
    except CapsError:
        return False
    digest = hashlib.new(name, string.encode("utf-8")).digest()
    return base64.b64encode(digest).decode("ascii") == caps.ver


def client_of(query: domish.Element) -> ClientInfo | None:
    """The software a disco#info answer describes: XEP-0232's form, else the name of
    its ``client`` identity; None when it says neither."""
    for element in query.elements():
        if (element.uri, element.name) != (ns.DATA_FORMS, "x"):
            continue
        try:
            form = _form(element)
        except CapsError:
            continue
        if form is None or form[0] != SOFTWARE_INFO:
            continue
        fields = {var: values[0] for var, values in form[1] if values}
        if fields.get("software"):
            return ClientInfo(
                fields["software"][:MAX_FIELD], fields.get("software_version", "")[:MAX_FIELD]
            )
    for element in query.elements():
        if (element.uri, element.name) == (ns.DISCO_INFO, "identity"):
            if element.getAttribute("category") == "client" and element.getAttribute("name"):
                return ClientInfo(element["name"][:MAX_FIELD])
    return None


class CapsCache:
    """Verified ``ver`` hashes and the software they describe (least recently used out)."""

    def __init__(self, size: int = MAX_CACHED) -> None:
        self._size = size
        self._known: OrderedDict[str, ClientInfo] = OrderedDict()

    def get(self, ver: str) -> ClientInfo | None:
        """The software a verified ``ver`` describes, if known."""
        client = self._known.get(ver)
        if client is not None:
            self._known.move_to_end(ver)
        return client

    def put(self, ver: str, client: ClientInfo) -> None:
        """Remember a verified ``ver``."""
        self._known[ver] = client
        self._known.move_to_end(ver)
        while len(self._known) > self._size:
            self._known.popitem(last=False)
