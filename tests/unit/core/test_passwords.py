"""Password hashing."""

from __future__ import annotations

import base64
import hashlib

import pytest

from gateway import passwords
from gateway.passwords import hash_password, verify_password


def test_round_trip() -> None:
    encoded = hash_password("correct horse")
    assert verify_password("correct horse", encoded)
    assert not verify_password("correct horse ", encoded)
    assert not verify_password("", encoded)


def test_encoding() -> None:
    scheme, n, r, p, salt, key = hash_password("pw").split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert len(base64.b64decode(salt)) == 16
    assert len(base64.b64decode(key)) == 32


def test_salt_is_random() -> None:
    assert hash_password("pw") != hash_password("pw")


def test_unicode_forms_are_equal() -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert verify_password(decomposed, hash_password(composed))


def test_other_costs_verify() -> None:
    # A hash made with other parameters (say, before the cost was raised) still works.
    encoded = hash_password("pw")
    scheme, _, _, _, salt, _ = encoded.split("$")
    key = hashlib.scrypt(b"pw", salt=base64.b64decode(salt), n=2**10, r=4, p=2, dklen=32)
    other = "$".join((scheme, str(2**10), "4", "2", salt, base64.b64encode(key).decode()))
    assert verify_password("pw", other)


def _malformed() -> list[str]:
    good = hash_password("pw")
    scheme, n, r, p, salt, key = good.split("$")
    return [
        "",
        "pw",
        "scrypt",
        good + "$",
        "bcrypt$" + good.split("$", 1)[1],
        "$".join((scheme, "abc", r, p, salt, key)),
        "$".join((scheme, "1000", r, p, salt, key)),  # not a power of two
        "$".join((scheme, "-16384", r, p, salt, key)),
        "$".join((scheme, "9" * 5000, r, p, salt, key)),
        "$".join((scheme, str(2**24), r, p, salt, key)),  # too costly
        "$".join((scheme, n, "0", p, salt, key)),
        "$".join((scheme, n, r, "0", salt, key)),
        "$".join((scheme, n, r, "99", salt, key)),
        "$".join((scheme, n, r, p, "!!!", key)),
        "$".join((scheme, n, r, p, salt, "!!!")),
        "$".join((scheme, n, r, p, "", key)),
        "$".join((scheme, n, r, p, salt, base64.b64encode(b"short").decode())),
        "$".join((scheme, "\u0661\u0666", r, p, salt, key)),  # non-ASCII digits
    ]


@pytest.mark.parametrize("encoded", _malformed())
def test_malformed_is_false(encoded: str) -> None:
    assert verify_password("pw", encoded) is False


def test_not_a_string_is_false() -> None:
    assert verify_password("pw", None) is False  # type: ignore[arg-type]


def test_dummy_hash() -> None:
    dummy = passwords.DUMMY_HASH
    assert dummy is passwords.DUMMY_HASH
    assert dummy == passwords.dummy_hash()
    assert dummy.startswith("scrypt$16384$8$1$")
    assert not verify_password("", dummy)
    assert not verify_password("pw", dummy)


def test_unknown_attribute() -> None:
    with pytest.raises(AttributeError):
        passwords.NO_SUCH_THING  # noqa: B018
