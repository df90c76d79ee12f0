"""twistd plugin: ``twistd imgateway``."""

from twisted.application.service import ServiceMaker

imgateway = ServiceMaker(
    "imgateway",
    "gateway.app.tap",
    "Customer service gateway for XMPP, IRC and JSON-IM customers",
    "imgateway",
)
