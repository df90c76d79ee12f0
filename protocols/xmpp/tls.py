"""Server TLS contexts for the direct listener: pyOpenSSL, TLS 1.2 or later,
no renegotiation, no compression."""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer


@implementer(IOpenSSLContextFactory)
class ServerTLS:
    """A context factory for ``transport.startTLS`` built from PEM files.

    Files are read once, when the listener is built, so a bad path fails startup.
    """

    def __init__(self, cert_path: str, key_path: str) -> None:
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_options(
            SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE
        )
        context.use_certificate_chain_file(cert_path)
        context.use_privatekey_file(key_path)
        context.check_privatekey()
        self._context = context

    def getContext(self) -> SSL.Context:  # noqa: N802 (Twisted's name)
        """The shared server context."""
        return self._context
