"""The admin API's teams: ``GET /v1/teams``, ``POST /v1/teams/reload``, and teams in views."""

from __future__ import annotations

import attrs
from admin_http_helpers import request, site_for
from core_helpers import make_harness

from gateway.directory.teams import Teams
from gateway.store.records import TeamRecord


@attrs.define
class TeamsService:
    """What the admin API reads of a GatewayService, reloading teams from the store."""

    gateway: object
    directory: object
    store: object
    config: object
    metrics: object

    def reload_teams(self):
        def loaded(records):
            teams = Teams.of(records)
            self.gateway.set_teams(teams)
            return teams

        return self.store.teams().addCallback(loaded)


def test_teams_are_listed_reloaded_and_shown_with_queues_and_agents():
    h = make_harness()
    service = TeamsService(h.gateway, h.directory, h.store, h.gateway.config, h.gateway.metrics)
    site = site_for(service, h.clock)
    assert request(site, "GET", "/v1/teams").json() == []
    h.store.set_teams([TeamRecord(name="front", members=("anna", "bob"), queues=("general",))])
    h.agent("anna")
    answer = request(site, "POST", "/v1/teams/reload")
    assert (answer.status, answer.json()) == (200, {"ok": True, "teams": ["front"]})
    assert request(site, "GET", "/v1/teams").json() == [
        {
            "name": "front",
            "description": "",
            "members": ["anna", "bob"],
            "queues": ["general"],
            "logged_in": ["anna"],
        }
    ]
    [general] = request(site, "GET", "/v1/queues").json()
    assert (general["teams"], general["skills"]) == (["front"], {})
    [anna] = request(site, "GET", "/v1/agents").json()
    assert anna["teams"] == ["front"]
    assert request(site, "GET", "/v1").json()["resources"][:4] == [
        "summary",
        "agents",
        "queues",
        "teams",
    ]
