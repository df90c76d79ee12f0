"""XMPP adapter: the gateway as an XEP-0114 component of an existing server."""
