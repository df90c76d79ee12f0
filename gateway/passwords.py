"""Agent password hashing with scrypt.

An encoded hash reads ``scrypt$n$r$p$salt_b64$key_b64``, so that the cost can be
raised later without invalidating the hashes already stored. Passwords are never
logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import unicodedata

SCHEME = "scrypt"
N = 2**14
R = 8
P = 1
SALT_BYTES = 16
KEY_BYTES = 32

# Bounds on what a stored hash may ask for, so that a corrupt or hostile row
# cannot make one login attempt take minutes or gigabytes.
_MAX_MEMORY = 128 * 1024 * 1024
_MAX_P = 16
_MAX_KEY_BYTES = 128

_dummy_lock = threading.Lock()
_dummy: str | None = None


def hash_password(password: str) -> str:
    """Hash ``password`` with a fresh random salt; returns the encoded form."""
    salt = secrets.token_bytes(SALT_BYTES)
    key = _scrypt(_encode(password), salt, N, R, P, KEY_BYTES)
    return "$".join((SCHEME, str(N), str(R), str(P), _b64(salt), _b64(key)))


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches the encoded hash; False for a malformed encoding."""
    parsed = _parse(encoded)
    if parsed is None:
        return False
    n, r, p, salt, key = parsed
    try:
        candidate = _scrypt(_encode(password), salt, n, r, p, len(key))
    except (UnicodeError, ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, key)


def dummy_hash() -> str:
    """A valid hash of a random secret, computed once.

    Verify against it when the account does not exist, so that an unknown
    name costs as much time as a wrong password.
    """
    global _dummy
    with _dummy_lock:
        if _dummy is None:
            _dummy = hash_password(secrets.token_urlsafe(32))
        return _dummy


def __getattr__(name: str) -> str:
    # DUMMY_HASH is computed on first use: hashing costs time at import otherwise.
    if name == "DUMMY_HASH":
        return dummy_hash()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _encode(password: str) -> bytes:
    # The same password typed on different systems may arrive composed or
    # decomposed; hash one canonical form.
    return unicodedata.normalize("NFC", password).encode("utf-8")


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_MAX_MEMORY + 1024 * 1024
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse(encoded: object) -> tuple[int, int, int, bytes, bytes] | None:
    if not isinstance(encoded, str):
        return None
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    _, n_text, r_text, p_text, salt_text, key_text = parts
    if not all(t.isascii() and t.isdigit() and len(t) <= 10 for t in (n_text, r_text, p_text)):
        return None
    n, r, p = int(n_text), int(r_text), int(p_text)
    if n < 2 or n & (n - 1) or r < 1 or not 1 <= p <= _MAX_P or 128 * r * n > _MAX_MEMORY:
        return None
    try:
        salt = base64.b64decode(salt_text, validate=True)
        key = base64.b64decode(key_text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if not salt or not 16 <= len(key) <= _MAX_KEY_BYTES:
        return None
    return n, r, p, salt, key


# SCRAM (RFC 5802, RFC 7677): the keys an XMPP server needs to check a SCRAM login
# without knowing the password. Stored beside the scrypt hash at `agent add` and
# `agent passwd`; a JSON object {mechanism: {salt, iterations, stored_key, server_key}}.
SCRAM_HASHES = {"SCRAM-SHA-1": "sha1", "SCRAM-SHA-256": "sha256"}
SCRAM_ITERATIONS = 4096


def scram_keys(password: str, hash_name: str, salt: bytes, iterations: int) -> dict[str, str]:
    """StoredKey and ServerKey for one SCRAM hash (the password is SASLprep'd as NFC)."""
    salted = hashlib.pbkdf2_hmac(hash_name, _encode(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hash_name).digest()
    server_key = hmac.new(salted, b"Server Key", hash_name).digest()
    return {
        "salt": _b64(salt),
        "iterations": str(iterations),
        "stored_key": _b64(hashlib.new(hash_name, client_key).digest()),
        "server_key": _b64(server_key),
    }


def scram_credentials(password: str, iterations: int = SCRAM_ITERATIONS) -> str:
    """Every SCRAM mechanism's keys for ``password``, with fresh salts, as JSON."""
    return json.dumps(
        {
            mechanism: scram_keys(password, hash_name, secrets.token_bytes(SALT_BYTES), iterations)
            for mechanism, hash_name in SCRAM_HASHES.items()
        },
        sort_keys=True,
    )
