"""The agent directory: who is logged in, where, with what skills, status and load.

``records`` holds :class:`AgentPresence`, the serialisable record of one logged-in
agent; ``interfaces`` the :class:`IAgentDirectory` seam (every call a Deferred, and
change notifications that feed the matching engine and the node's view); ``memory``
the single-process directory, the default; ``view`` a node's synchronous view of it.

A new directory backend (Redis for a cluster, say) is one module here implementing
IAgentDirectory, chosen by the composition root (gateway/app/service.py).
"""
