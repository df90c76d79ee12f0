"""SASL for the direct listener: SCRAM-SHA-256 and SCRAM-SHA-1 (RFC 5802, RFC 7677),
PLAIN (RFC 4616; offered only over TLS) and ANONYMOUS (RFC 4505).

The SCRAM server checks a proof against the StoredKey and ServerKey written by
``imgateway-admin agent add``/``passwd`` (see :func:`gateway.passwords.scram_keys`);
it never sees the password. Channel binding (``-PLUS``) is not offered.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping

from gateway.passwords import SCRAM_HASHES, SCRAM_ITERATIONS, scram_keys

MAX_MESSAGE = 4096
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-1")


class SaslFailure(Exception):
    """A SASL exchange failed; ``condition`` is the RFC 6120 section 6.5 failure."""

    def __init__(self, condition: str, text: str = "") -> None:
        super().__init__(condition)
        self.condition = condition
        self.text = text


def b64decode(data: str | bytes) -> bytes:
    """Strict base64 ('=' alone means empty); raises SaslFailure(incorrect-encoding)."""
    if data in ("=", b"="):
        return b""
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise SaslFailure("incorrect-encoding") from None


def b64encode(data: bytes) -> str:
    """Base64, with '=' for an empty payload as RFC 6120 asks."""
    return base64.b64encode(data).decode("ascii") if data else "="


def parse_plain(message: bytes) -> tuple[str, str]:
    """(authcid, password) of a PLAIN message; an authzid must be empty or the same."""
    try:
        authzid, authcid, password = message.decode("utf-8").split("\0")
    except (UnicodeDecodeError, ValueError):
        raise SaslFailure("malformed-request") from None
    if not authcid or not password or authzid not in ("", authcid):
        raise SaslFailure("invalid-authzid" if authzid else "malformed-request")
    return authcid, password


def _attributes(text: str) -> list[tuple[str, str]]:
    out = []
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if len(key) != 1 or not eq:
            raise SaslFailure("malformed-request")
        out.append((key, value))
    return out


def _unescape_name(value: str) -> str:
    if "=" in value.replace("=2C", "").replace("=3D", ""):
        raise SaslFailure("malformed-request")
    return value.replace("=2C", ",").replace("=3D", "=")


class ScramServer:
    """The server side of one SCRAM exchange.

    ``client_first(message)`` returns the user name; the caller looks up that
    user's keys and passes them (or None for an unknown user, who then fails like a
    wrong password) to ``server_first``; ``client_final`` checks the proof and
    returns the server-final message. :attr:`username` is set once it succeeded.
    """

    def __init__(self, mechanism: str, nonce: Callable[[], str] | None = None) -> None:
        if mechanism not in SCRAM_HASHES:
            raise SaslFailure("invalid-mechanism")
        self.mechanism = mechanism
        self._hash = SCRAM_HASHES[mechanism]
        self._nonce = nonce or (lambda: secrets.token_urlsafe(18))
        self._gs2_header = ""
        self._client_first_bare = ""
        self._server_first = ""
        self._combined_nonce = ""
        self._name = ""
        self._keys: Mapping[str, str] | None = None
        self._known = False
        self.username: str | None = None

    def client_first(self, message: bytes) -> str:
        """Parse ``gs2-header client-first-bare``; the user name to look up."""
        if len(message) > MAX_MESSAGE:
            raise SaslFailure("malformed-request")
        try:
            text = message.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslFailure("malformed-request") from None
        flag, _, rest = text.partition(",")
        authzid, _, bare = rest.partition(",")
        if flag not in ("n", "y"):
            # "p=…" asks for channel binding, which is not offered.
            raise SaslFailure("malformed-request", "channel binding is not supported")
        attrs = _attributes(bare)
        if len(attrs) < 2 or attrs[0][0] != "n" or attrs[1][0] != "r" or not attrs[1][1]:
            raise SaslFailure("malformed-request")
        if attrs[0][1].startswith("m") or any(k == "m" for k, _ in attrs):
            raise SaslFailure("malformed-request")
        name = _unescape_name(attrs[0][1])
        if authzid and _unescape_name(authzid.removeprefix("a=")) != name:
            raise SaslFailure("invalid-authzid")
        if not name:
            raise SaslFailure("malformed-request")
        self._gs2_header = f"{flag},{authzid},"
        self._client_first_bare = bare
        self._combined_nonce = attrs[1][1] + self._nonce()
        self._name = name
        return name

    def server_first(self, keys: Mapping[str, str] | None) -> bytes:
        """The challenge: nonce, salt and iteration count (made up for unknown users)."""
        self._known = keys is not None
        if keys is None:
            # An unknown user gets a plausible salt and fails at the proof, as a
            # wrong password does.
            salt = hashlib.sha256(b"imgateway-unknown-user:" + self._name.encode()).digest()[:16]
            keys = scram_keys(secrets.token_urlsafe(16), self._hash, salt, SCRAM_ITERATIONS)
        self._keys = keys
        self._server_first = (
            f"r={self._combined_nonce},s={keys['salt']},i={int(keys['iterations'])}"
        )
        return self._server_first.encode("ascii")

    def client_final(self, message: bytes) -> bytes:
        """Check ``c=…,r=…,p=…``; the ``v=…`` server signature when the proof is right."""
        if self._keys is None or len(message) > MAX_MESSAGE:
            raise SaslFailure("malformed-request")
        try:
            text = message.decode("ascii")
        except UnicodeDecodeError:
            raise SaslFailure("malformed-request") from None
        without_proof, sep, proof_text = text.rpartition(",p=")
        if not sep:
            raise SaslFailure("malformed-request")
        attrs = dict(_attributes(without_proof))
        if attrs.get("c") != base64.b64encode(self._gs2_header.encode()).decode():
            raise SaslFailure("malformed-request", "channel binding data differ")
        if attrs.get("r") != self._combined_nonce:
            raise SaslFailure("malformed-request", "nonce mismatch")
        proof = b64decode(proof_text)
        auth_message = ",".join(
            (self._client_first_bare, self._server_first, without_proof)
        ).encode("utf-8")
        stored_key = b64decode(self._keys["stored_key"])
        server_key = b64decode(self._keys["server_key"])
        signature = hmac.new(stored_key, auth_message, self._hash).digest()
        if len(proof) != len(signature):
            raise SaslFailure("not-authorized")
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
        computed = hashlib.new(self._hash, client_key).digest()
        if not hmac.compare_digest(computed, stored_key) or not self._known:
            raise SaslFailure("not-authorized")
        self.username = self._name
        server_signature = hmac.new(server_key, auth_message, self._hash).digest()
        return b"v=" + base64.b64encode(server_signature)
