"""``imgateway-admin transcript`` shows the routing decision stored with a conversation."""

from __future__ import annotations

import io
import json
from pathlib import Path

from gateway.admin import cli as admin
from gateway.config import load
from gateway.store import engine_for
from gateway.store.records import ConversationRecord

DECISION = {
    "rule": "vip-billing",
    "target": 1,
    "strategy": "highest_skill",
    "compatibility": "xmpp-modern",
    "source": "remote",
    "reason": "rule vip-billing; compatibility xmpp-modern",
    "queue": "billing",
}


def test_transcript_shows_the_routing_decision(tmp_path: Path, capsys, monkeypatch) -> None:
    config = tmp_path / "imgateway.toml"
    config.write_text(f'[gateway]\ndata_dir = "{tmp_path / "data"}"\n')
    engine = engine_for(load(config))
    engine.open()
    engine.insert_conversation(
        ConversationRecord(
            id="c-1",
            customer_alias="c-7f3a",
            protocol="jsonim",
            client_name="acme",
            client_version="2",
            started=1795946400.0,
            queue="billing",
            agent="anna",
            state="connected",
            routing=DECISION,
        )
    )
    engine.close()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert admin.main(["transcript", "c-1", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == (
        "routing: rule vip-billing, target 1 (highest_skill) in billing;"
        " compatibility xmpp-modern; remote: rule vip-billing; compatibility xmpp-modern"
    )
    assert admin.main(["transcript", "c-1", "--json", "--config", str(config)]) == 0
    assert json.loads(capsys.readouterr().out)["conversation"]["routing"] == DECISION
