"""twistd plugin: ``twistd imrouter``."""

from twisted.application.service import ServiceMaker

imrouter = ServiceMaker(
    "imrouter",
    "gateway.routerd.tap",
    "Enterprise routing server: routing rules for every media type, over HTTP/JSON",
    "imrouter",
)
