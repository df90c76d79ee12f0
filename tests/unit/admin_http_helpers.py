"""Drive the admin listener's resource tree without sockets: a real twisted.web
Request on a DummyChannel, the raw HTTP answer parsed back."""

from __future__ import annotations

import json
from io import BytesIO
from typing import Any

import attrs
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.web.server import Request, Site
from twisted.web.test.requesthelper import DummyChannel

from gateway.admin import api as adminapi
from gateway.metrics import GatewayMetrics

TOKEN = "s3cret-token"


@attrs.define
class FakeService:
    """What the admin API reads of a GatewayService."""

    gateway: Any
    directory: Any
    store: Any
    config: Any
    metrics: GatewayMetrics


@attrs.define
class Answer:
    """One HTTP answer."""

    status: int
    headers: dict[str, list[str]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None


def service_of(harness) -> FakeService:
    """The admin API's view of a core_helpers Harness."""
    return FakeService(
        gateway=harness.gateway,
        directory=harness.directory,
        store=harness.store,
        config=harness.gateway.config,
        metrics=harness.gateway.metrics,
    )


def site_for(
    service: FakeService, clock: Clock, token: str = TOKEN, resources: dict | None = None
) -> Site:
    """The admin site, with only the given mounted resources (none by default)."""
    return adminapi.admin_site(service, token, clock, resources or {})


def request(
    site: Site,
    method: str,
    path: str,
    *,
    token: str | None = TOKEN,
    body: Any = None,
    cookie: str | None = None,
) -> Answer:
    """Send one request through the site; the answer (which must be complete)."""
    channel = DummyChannel()
    channel.site = site
    req = Request(channel)
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req.content = BytesIO(raw)
    if token is not None:
        req.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {token}".encode()])
    if cookie is not None:
        req.requestHeaders.setRawHeaders(b"cookie", [cookie.encode()])
    req.parseCookies()  # HTTPChannel does this once the headers are in
    req.requestReceived(method.encode(), path.encode(), b"HTTP/1.0")
    return parse(channel.transport.written.getvalue())


def parse(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head, "no answer was written"
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return Answer(status, headers, body)


class CapturedLog:
    """Events published while in use (a context manager)."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def __enter__(self) -> CapturedLog:
        globalLogPublisher.addObserver(self.events.append)
        return self

    def __exit__(self, *exc: Any) -> None:
        globalLogPublisher.removeObserver(self.events.append)

    def texts(self) -> list[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.events]
