"""How the direct listener checks agents against the gateway's own accounts.

PLAIN (over TLS only) goes through the core's ``agent_login`` and its scrypt check.
SCRAM needs the per-agent SCRAM keys kept beside the scrypt hash (written by
``imgateway-admin agent add``/``passwd``) and a login without a password. The core
has no public call for either yet, so both are reached here, in this one place,
through the store and the core's login step; see the report on issue 4 for the
public API proposed to replace them (``Gateway.agent_credentials(name)`` and
``Gateway.agent_authenticated(party, name, ...)``).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred

from gateway.core import events as ev

PROTOCOL = "xmpp"


class AgentAuth:
    """SASL back end of the direct listener for one gateway."""

    def __init__(self, gateway: Any) -> None:
        self._gateway = gateway

    def scram_keys(self, name: str, mechanism: str, address: str | None = None) -> Deferred:
        """Fires with the agent's keys for ``mechanism`` (a dict), or None; fails with
        AuthFailed while the agent is locked out at ``address``."""

        def pick(stored: str | None):
            if not stored:
                return None
            try:
                keys = json.loads(stored).get(mechanism)
            except (ValueError, AttributeError):
                return None
            return keys if isinstance(keys, dict) else None

        d = self._gateway.agent_credentials(name, protocol=PROTOCOL, address=address)
        return d.addCallback(pick)

    def login_with_password(
        self, party: Any, name: str, password: str, address: str | None = None
    ) -> Deferred:
        """PLAIN: the core checks the scrypt hash (and logs a failure with the peer's
        ``address``); fires with the AgentSession."""
        return self._gateway.agent_login(
            party,
            protocol=PROTOCOL,
            name=name,
            password=password,
            client=ev.ClientInfo(),
            features=frozenset({"typing"}),
            address=address,
        )

    def failed(self, name: str, address: str | None) -> None:
        """SCRAM: a proof that did not verify, counted against the lockouts and logged."""
        self._gateway.agent_login_failed(PROTOCOL, name, address)

    def login_verified(self, party: Any, name: str, address: str | None = None) -> Deferred:
        """SCRAM succeeded: log the agent in; fires with the AgentSession."""
        return self._gateway.agent_authenticated(
            party,
            protocol=PROTOCOL,
            name=name,
            client=ev.ClientInfo(),
            features=frozenset({"typing"}),
            address=address,
        )
