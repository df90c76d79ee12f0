"""A blocking client of the admin HTTP API, for ``imgateway-admin`` (urllib, no reactor).

The address is the first ``[admin] listen`` endpoint (or IMGATEWAY_ADMIN_URL); the
token comes from IMGATEWAY_ADMIN_TOKEN, ``[admin] token`` or ``DATA_DIR/admin.token``.
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import attrs

from gateway.admin.settings import (
    TOKEN_ENV,
    TOKEN_FILE,
    AdminSettings,
    endpoint_interface,
    endpoint_parts,
)
from gateway.config import Config

URL_ENV = "IMGATEWAY_ADMIN_URL"
CA_ENV = "IMGATEWAY_ADMIN_CA"
TIMEOUT_S = 30.0


def _opener(context: ssl.SSLContext | None) -> urllib.request.OpenerDirector:
    # No http_proxy for the admin API: it is on this host, and a proxy would see the token.
    handlers: list[Any] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def tls_context(description: str | None, ca_file: str | None) -> ssl.SSLContext | None:
    """How the CLI checks an ``ssl:`` admin listener: against ``ca_file`` (a CA, host
    name checked), else against the listener's own certificate from its endpoint string
    (``certKey=``, else ``privateKey=``): that certificate and no other is trusted."""
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    if description is None or endpoint_parts(description)[0] != "ssl":
        return None
    options = dict(p.partition("=")[::2] for p in endpoint_parts(description)[1:] if "=" in p)
    cert = options.get("certKey") or options.get("privateKey")
    if not cert:
        return None
    context = ssl.create_default_context(cafile=cert)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = False  # pinned: only this certificate is accepted
    return context


class AdminUnavailable(Exception):
    """The admin API cannot be reached, or no token is known."""


def url_of(description: str) -> str:
    """The base URL a client uses for a ``tcp:``/``ssl:`` endpoint string."""
    parts = endpoint_parts(description)
    if parts[0] not in ("tcp", "tcp6", "ssl") or len(parts) < 2:
        raise AdminUnavailable(f"cannot reach the admin listener {description!r} over HTTP")
    port = parts[1].removeprefix("port=")
    host = endpoint_interface(description) or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if parts[0] == "ssl" else "http"
    return f"{scheme}://{host}:{port}"


@attrs.define
class AdminClient:
    """Calls the admin API: ``request(method, path, body) -> (status, json)``."""

    base_url: str
    token: str
    timeout_s: float = TIMEOUT_S
    tls: ssl.SSLContext | None = None

    @classmethod
    def from_config(cls, config: Config, environ: dict[str, str] | None = None) -> AdminClient:
        """The client for the gateway that ``config`` describes."""
        env = os.environ if environ is None else environ
        settings: AdminSettings = config.sections.get("admin") or AdminSettings()
        url = env.get(URL_ENV)
        if not url:
            if not settings.listen:
                raise AdminUnavailable("admin.listen is empty: the admin API is off")
            url = url_of(settings.listen[0])
        token = env.get(TOKEN_ENV) or settings.token or _token_file(config.data_dir)
        if not token:
            raise AdminUnavailable(
                f"no admin token: set {TOKEN_ENV}, admin.token, or start the gateway so that"
                f" it writes {Path(config.data_dir) / TOKEN_FILE}"
            )
        first = settings.listen[0] if settings.listen else None
        return cls(url.rstrip("/"), token, tls=tls_context(first, env.get(CA_ENV)))

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; the status and the decoded JSON (or text) answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Accept": "application/json"},
        )
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with _opener(self.tls).open(req, timeout=self.timeout_s) as response:
                return response.status, _decode(response.read(), response.headers)
        except urllib.error.HTTPError as e:
            return e.code, _decode(e.read(), e.headers)
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise AdminUnavailable(
                f"cannot reach the admin API at {self.base_url}: {reason}"
            ) from None


def _token_file(data_dir: Path) -> str:
    try:
        return (Path(data_dir) / TOKEN_FILE).read_text().strip()
    except OSError:
        return ""


def _decode(raw: bytes, headers: Any) -> Any:
    if "json" in (headers.get("Content-Type") or ""):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode("utf-8", "replace")
