"""Automated agents (bots) that run inside the gateway and log in as agents.

``settings`` parses the ``[bots]`` configuration section, ``faq`` is the FAQ bot,
``knowledge`` its knowledge base and matcher, ``service`` starts it with the gateway.
"""
