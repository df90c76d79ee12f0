"""Routing: rules classify a conversation into a plan; the engine runs it.

- :mod:`gateway.routing.plan` — the plan, its targets, the customer's attributes;
- :mod:`gateway.routing.rules` — local rules and the compatibility table;
- :mod:`gateway.routing.remote` — the enterprise routing server's client, with fallback;
- :mod:`gateway.routing.engine` — matching waiting conversations to agents.
"""
