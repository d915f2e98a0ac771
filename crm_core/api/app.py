"""The CRM REST API as an aiohttp application, mounted by whoever embeds the CRM."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.access import ServingLookup, serving_nobody
from crm_core.api import figures, users  # noqa: F401 - their routes join the table on import
from crm_core.api.handlers import CRM_SETTINGS, LOGINS, SERVING, routes
from crm_core.api.http import (
    MAX_BODY,
    SESSIONS,
    RouteTable,
    auth_middleware,
    errors_middleware,
    json_response,
)
from crm_core.api.openapi import build_openapi
from crm_core.login_throttle import LoginGuard
from crm_core.settings import CrmSettings

API_PREFIX = "/api"
VERSION = "0.1.0"


def create_api(
    sessions: async_sessionmaker[AsyncSession],
    settings: CrmSettings,
    serving: ServingLookup = serving_nobody,
    logins: LoginGuard | None = None,
    extra: Iterable[RouteTable] = (),
) -> web.Application:
    """The API app; mount it with ``parent.add_subapp("/api", create_api(...))``.

    ``serving`` tells who an agent is serving now (their desk's live call): the row rules of
    :mod:`crm_core.access` let agents read and change those customers' records. ``extra``:
    the embedding server's own operations (the staffing plan), checked, answered and
    documented as the CRM's are."""
    app = web.Application(
        middlewares=[errors_middleware, auth_middleware], client_max_size=MAX_BODY
    )
    app[SESSIONS] = sessions
    app[CRM_SETTINGS] = settings
    app[SERVING] = serving
    app[LOGINS] = logins or LoginGuard(sessions, settings.login)  # the server's one, shared
    entries = [*routes.entries, *(entry for table in extra for entry in table.entries)]
    for info, handler in entries:
        app.router.add_route(info.method, info.path, handler)
    document = build_openapi([info for info, _ in entries], API_PREFIX, VERSION)

    async def openapi(_request: web.Request) -> web.Response:
        return json_response(document)

    app.router.add_get("/openapi.json", openapi)
    return app


def openapi_document() -> dict[str, Any]:
    return build_openapi([info for info, _ in routes.entries], API_PREFIX, VERSION)
