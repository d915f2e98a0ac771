"""``GET /routing`` names the routing policy's file, never where it lives on the server: not in
the policy it shows, not in the error of a change it refused (issue 14, finding 10)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from crm_core.routing import AgentProfile, CustomerFacts
from cti_server.config import RoutingSettings
from cti_server.routing.http import routing_routes
from cti_server.routing.policy import builtin_policy_path
from cti_server.routing.reloader import PolicyReloader
from cti_server.routing.router import Router
from cti_server.tracker.tracker import Tracker


class _NoCrm:
    async def agents(self) -> Mapping[str, AgentProfile]:
        return {}

    async def customer(self, customer_id: int | None) -> CustomerFacts | None:
        return None


async def _supervisor(_request: web.Request, _role: str) -> web.Response | None:
    return None


@pytest.mark.asyncio
async def test_routing_shows_the_policy_file_by_name_only(tmp_path: Path) -> None:
    folder = tmp_path / "srv" / "cti-secret-place"
    folder.mkdir(parents=True)
    policy = folder / "policy.yaml"
    policy.write_text(builtin_policy_path().read_text(encoding="utf-8"), encoding="utf-8")
    router = Router(
        tracker=Tracker(lambda _event: None),
        links=[],
        policies=PolicyReloader(policy),
        directory=_NoCrm(),
        publish=lambda _event: None,
        settings=RoutingSettings(enabled=True),
        waiting_queues=["support"],
    )
    app = web.Application()
    app.router.add_routes(routing_routes(router, _supervisor))
    async with TestClient(TestServer(app)) as http:
        shown = await (await http.get("/routing")).text()
        policy.unlink()  # a change the router refuses: the file cannot be read
        refused = await (await http.get("/routing")).text()

    assert json.loads(shown)["policy"] == {"name": "default", "file": "policy.yaml", "error": None}
    assert json.loads(refused)["policy"]["error"].startswith("policy.yaml: cannot read")
    for body in (shown, refused):
        assert "cti-secret-place" not in body
        assert str(tmp_path) not in body
