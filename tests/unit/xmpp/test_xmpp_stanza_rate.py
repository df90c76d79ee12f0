"""The direct XMPP listener's per-connection stanza rate comes from [xmpp]."""

from __future__ import annotations

from pathlib import Path

from c2s_helpers import anonymous, make_server

from gateway import config as gwconfig


def test_the_stanza_rate_is_configured(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "imgateway.toml").write_text(
        "[xmpp]\nstanzas_per_second = 500.0\nstanza_burst = 5000\n"
    )
    xmpp = gwconfig.load(cwd=tmp_path).sections["xmpp"]
    assert (xmpp.stanzas_per_second, xmpp.stanza_burst) == (500.0, 5000)
    defaults = gwconfig.load(cwd=Path("/nonexistent-imgateway")).sections["xmpp"]
    assert (defaults.stanzas_per_second, defaults.stanza_burst) == (20.0, 200)


def test_a_connection_may_send_its_burst_and_no_more():
    _core, server = make_server(stanzas_per_second=0.01, stanza_burst=40)
    client = anonymous(server)  # auth and bind: two stanzas of the burst
    client.send("<presence/>" * 38)
    assert not client.transport.disconnecting
    out = client.send("<presence/>")
    assert "policy-violation" in out and client.transport.disconnecting
