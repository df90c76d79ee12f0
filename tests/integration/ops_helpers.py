"""HTTP helpers for the operations tests: admin API calls and metric scrapes, on loopback.

Every call has a timeout; :func:`wait_until` polls with a deadline, never sleeps blind.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import harness
from jsonim_client import answer_interview, hello_agent, hello_customer

TIMEOUT = 10.0
# Loopback only: no proxy from the environment in between.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(
    method: str, url: str, *, token: str | None = None, body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    """One request: (status, headers, body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with _OPENER.open(request, timeout=TIMEOUT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def api(port: int, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """An admin API call: (status, decoded JSON)."""
    status, _, raw = http(method, f"http://127.0.0.1:{port}{path}", token=token, body=body)
    return status, json.loads(raw)


def scrape(port: int) -> dict[str, float]:
    """The metrics endpoint's samples: {'name{label="v",...}': value}."""
    status, _, raw = http("GET", f"http://127.0.0.1:{port}/metrics")
    assert status == 200, raw
    samples = {}
    for line in raw.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def wait_until(check: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition"):
    """Poll ``check`` until it returns something true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout:g}s (last: {last!r})")


def admin_token(gateway: harness.Gateway) -> str:
    """The token the gateway generated, once its log says it has been written."""
    path = gateway.wait_for_log(r"admin token written to (\S+)$", harness.START_TIMEOUT).group(1)
    return Path(path).read_text().strip()


def queued_customer(gateway: harness.Gateway, name: str, topic: str = "billing"):
    """A JSON-IM customer through the interview, waiting in a queue."""
    customer = gateway.connect(f"customer-{name}")
    hello_customer(customer)
    answer_interview(customer, {"name": name, "topic": topic})
    return customer


def agent(gateway: harness.Gateway, user: str, password: str, status: str = "available"):
    """A logged-in JSON-IM agent."""
    client = gateway.connect(user)
    hello_agent(client, user, password, status=status)
    return client


def take_offer(agent_client, customer=None) -> str:
    """Accept the next offer; the conversation id once both sides are connected."""
    offer = agent_client.expect("offer")
    conversation = offer["conversation"]
    agent_client.send({"type": "accept", "offer": offer["offer"]})
    agent_client.expect("connected", conversation=conversation)
    if customer is not None:
        customer.expect("connected", conversation=conversation)
    return conversation
