"""JSON-IM/1: the gateway's own line protocol of JSON frames (see the JSON-IM spec)."""

from protocols.jsonim.protocol import JsonImFactory, JsonImProtocol

__all__ = ["JsonImFactory", "JsonImProtocol"]
