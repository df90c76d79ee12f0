"""imgateway: the protocol-neutral core of the customer service IM gateway."""

__version__ = "0.1.0"
