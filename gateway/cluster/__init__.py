"""Several gateway nodes serving one agent pool: Redis for what they share.

``settings`` reads ``[cluster]``; ``link`` keeps a node's Redis connections; ``node``
is the node's membership (its channel, the stand-ins for other nodes' agents, what
agents do across nodes), with ``membership`` (heartbeat, resume index, hand-overs and
take-overs) and ``proxies`` (the agents and the delivery across nodes); ``workers``
runs several processes of one gateway on one host. The agent directory they share
is :mod:`gateway.directory.redis`. docs/cluster.md has the design.
"""
