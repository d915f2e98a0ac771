"""``/api/events``: the event stream, and the webhooks' delivery figures for admins.

Mounted by the composition root beside the CRM API (which never imports this server's code);
both take the same bearer tokens.
"""

from __future__ import annotations

from functools import partial

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_core.access import allows
from crm_core.models import ROLES
from crm_core.people import user_for_token
from cti_server.integrations.access import Viewer
from cti_server.integrations.service import IntegrationService
from cti_server.integrations.stream import TokenUser, bearer, stream_view

PREFIX = "/api/events"
RECHECK_SECONDS = 60.0


class TokenCheck:
    """Bearer tokens checked against the CRM, as ``/api`` does."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __call__(self, token: str) -> TokenUser | None:
        try:
            async with self._sessions() as session:
                user = await user_for_token(session, token)
        except (SQLAlchemyError, OSError):
            return None  # the database is down: no new stream, and open ones close
        if user is None or user.role not in ROLES:
            return None
        return TokenUser(user.username, Viewer(role=user.role, extension=user.extension))


def create_events_api(
    service: IntegrationService,
    sessions: async_sessionmaker[AsyncSession],
    recheck_seconds: float = RECHECK_SECONDS,
) -> web.Application:
    """Mount with ``parent.add_subapp(PREFIX, create_events_api(...))``."""
    app = web.Application()
    check = TokenCheck(sessions)

    async def status(request: web.Request) -> web.Response:
        """``GET /api/events/status`` (admin): stream clients and each webhook's deliveries."""
        token = bearer(request)
        user = await check(token) if token is not None else None
        if user is None:
            return web.json_response({"error": "unauthorized"}, status=401)
        if not allows(user.viewer.role, "events.status"):  # the role matrix: crm_core.access
            return web.json_response({"error": "forbidden"}, status=403)
        return web.json_response(service.status())

    app.router.add_get(
        "/stream",
        partial(
            stream_view,
            authenticate=check,
            receivers=service.receivers,
            recheck_seconds=recheck_seconds,
        ),
    )
    app.router.add_get("/status", status)
    return app
