"""``twistd imrouter``: the contact centre's routing server.

It holds the routing rules of every media type (chat, email, voice, task) and
classifies each contact into a :class:`gateway.routing.plan.Plan` over HTTP/JSON.
The gateway keeps the live IM state and runs the plan against its own agents; see
docs/routing.md, "Enterprise routing server (twistd imrouter)".
"""
