"""Supervisors and the router over HTTP: what waits and why, and their two controls.

- ``GET /routing``: waiting calls with their effective priority now, agents, the policy in
  force (its name, its file's name and a refused change of it; never where the file lives on
  the server), the last decisions with their reasons;
- ``POST /routing/calls/{node}/{linkedid}/move`` ``{"agent": "1001"}``: only that agent may
  take the call (the call waits for them while they are busy); the decision that gives it to
  them (``routing.decision`` of the interaction) names the supervisor (``moved_by``);
- ``POST /routing/calls/{node}/{linkedid}/priority`` ``{"adjust": 60}``: virtual seconds added
  to the call's priority (negative moves it back; 0 undoes).

Every route needs a bearer token of a supervisor or above; payloads are validated (400 for a
body that is not a JSON object, 422 naming the bad field, 404 for a call that does not wait,
409 for an agent who is not signed in for routing). Policy edits are edits of the policy file
(re-read before each decision); skill edits go through the CRM API and count within
``routing.skills_cache_seconds``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from crm_core.access import least
from crm_core.api.http import BadRequest, error_response, read_body
from cti_server.routing.router import Router, RoutingError

Authorize = Callable[[web.Request, str], Awaitable[web.Response | None]]
"""Returns the refusal (401/403) for a request without ``role`` or above, None when allowed."""
Who = Callable[[web.Request], str]
"""The user an allowed request was authorized as (their username), "" when unknown."""

SUPERVISOR = least("wallboard.watch")  # the role matrix: crm_core.access


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MoveIn(_Strict):
    agent: Annotated[str, StringConstraints(pattern=r"^[0-9]{2,10}$")]
    """The agent's extension."""


class PriorityIn(_Strict):
    adjust: float = Field(ge=-3600, le=3600, allow_inf_nan=False)
    """Virtual seconds added to the call's priority."""


Handler = Callable[[web.Request], Awaitable[web.Response]]


def routing_routes(
    router: Router, authorize: Authorize, who: Who = lambda _request: ""
) -> list[web.RouteDef]:
    """The routes, bound to ``router``; ``authorize`` is the server's role check, ``who`` names
    the supervisor it let through (a move's decision records them)."""

    def guarded(handler: Handler) -> Handler:
        async def _guarded(request: web.Request) -> web.Response:
            refused = await authorize(request, SUPERVISOR)
            if refused is not None:
                return refused
            try:
                return await handler(request)
            except ValidationError as exc:
                fields = [
                    {"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]}
                    for err in exc.errors(include_url=False, include_input=False)
                ]
                return error_response(
                    422, "invalid", "the request has invalid fields", fields=fields
                )
            except BadRequest as exc:
                return error_response(400, "bad_request", str(exc))
            except RoutingError as exc:
                return error_response(exc.status, exc.code, str(exc))

        return _guarded

    async def overview(_request: web.Request) -> web.Response:
        return web.json_response(_without_server_paths(router.snapshot()))

    async def move(request: web.Request) -> web.Response:
        body = await read_body(request, MoveIn)
        node, linkedid = request.match_info["node"], request.match_info["linkedid"]
        return web.json_response(router.move(node, linkedid, body.agent, by=who(request)))

    async def priority(request: web.Request) -> web.Response:
        body = await read_body(request, PriorityIn)
        node, linkedid = request.match_info["node"], request.match_info["linkedid"]
        return web.json_response(router.change_priority(node, linkedid, body.adjust))

    return [
        web.get("/routing", guarded(overview)),
        web.post("/routing/calls/{node}/{linkedid}/move", guarded(move)),
        web.post("/routing/calls/{node}/{linkedid}/priority", guarded(priority)),
    ]


def _without_server_paths(view: dict[str, Any]) -> dict[str, Any]:
    """The policy file by its name alone: where files live on the server tells an attacker
    about the machine and is no business of a supervisor's (a refused edit's error names the
    file the same way)."""
    policy = dict(view["policy"])
    path = Path(policy.pop("path"))
    policy["file"] = path.name
    if policy.get("error"):
        policy["error"] = str(policy["error"]).replace(str(path), path.name)
    return {**view, "policy": policy}
