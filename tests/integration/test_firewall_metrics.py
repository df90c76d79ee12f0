"""The firewall's metrics over real sockets: connections by listener and verdict, limit
hits, bans and conntrack entries, scraped from a running gateway."""

from __future__ import annotations

import re
import urllib.request

import fw_site
import harness
import pytest
from fw_site import Client, closed_silently, dial, dropped
from jsonim_client import hello_customer

RULES = """\
chain input {
    policy accept;
    ip saddr 127.0.0.71 drop;
    ip saddr 127.0.0.72 reject;
}
limits { concurrent 1; ban after 2 for 600; }
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("firewall-metrics")
    config, _ = fw_site.write_config(root, RULES)
    gateway = harness.start_gateway(root / "cwd", config)
    gateway.metrics_port = gateway.listener_port("metrics")
    yield gateway
    gateway.stop()


def scrape(site) -> dict[str, float]:
    """Every ``name{labels} value`` sample of the firewall's families."""
    url = f"http://127.0.0.1:{site.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = re.match(r"^(imgateway_firewall_\S+) (\S+)$", line)
        if match:
            samples[match.group(1)] = float(match.group(2))
    return samples


def test_verdicts_limit_hits_bans_and_conntrack_are_counted(site):
    held = Client(site.port, "127.0.0.70", "held")
    hello_customer(held)
    assert dropped(site.port, "127.0.0.71")
    assert closed_silently(dial(site.port, "127.0.0.72")) != b""  # the JSON-IM refusal
    over = Client(site.port, "127.0.0.73", "over")
    hello_customer(over)
    for _ in range(2):  # over the concurrent limit twice: banned
        assert dropped(site.port, "127.0.0.73")
    site.wait_for_log(r"firewall ban address=127\.0\.0\.73", 10)
    assert dropped(site.port, "127.0.0.73")
    samples = scrape(site)
    jsonim = 'listener="jsonim"'
    assert samples[f'imgateway_firewall_connections_total{{{jsonim},verdict="accept"}}'] == 2
    assert samples[f'imgateway_firewall_connections_total{{{jsonim},verdict="drop"}}'] == 4
    assert samples[f'imgateway_firewall_connections_total{{{jsonim},verdict="reject"}}'] == 1
    assert samples['imgateway_firewall_limit_hits_total{limit="concurrent",listener="jsonim"}'] == 2
    assert samples["imgateway_firewall_bans_total"] == 1
    assert samples["imgateway_firewall_bans_active"] == 1
    # The two held JSON-IM clients, and this scrape's own connection to the metrics
    # listener (behind the firewall too).
    assert samples['imgateway_firewall_conntrack_entries{direction="in"}'] == 3
    assert samples['imgateway_firewall_conntrack_entries{direction="out"}'] == 0
    held.hang_up()
    over.hang_up()
