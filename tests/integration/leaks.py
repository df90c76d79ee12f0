"""Scan what a customer received for what must never reach them.

The gateway hands customers random values (resume and identity tokens, SASL
nonces and proofs); they are masked before the scan, so that a short secret
such as an account name cannot match inside one by chance.
"""

from __future__ import annotations

import re

_JSON_TOKENS = re.compile(r'("(?:resume|customer_token|token)"\s*:\s*")[^"]*(")')
_SASL = re.compile(r"(<(challenge|success|response|auth)\b[^>]*>)[^<]*(</\2>)")


def customer_view(raw: bytes | bytearray | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
    text = _JSON_TOKENS.sub(r"\1*\2", text)
    return _SASL.sub(r"\1*\3", text)


def assert_unseen(
    raw: bytes | bytearray | str, *secrets: str | bytes, fold_case: bool = False
) -> None:
    view = customer_view(raw)
    if fold_case:
        view = view.lower()
    for secret in secrets:
        text = secret.decode() if isinstance(secret, bytes) else secret
        assert text not in view, f"{text!r} reached the customer: {view!r}"
