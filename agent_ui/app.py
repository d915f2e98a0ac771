"""The web application: built by the composition root with :class:`UiDeps`, mounted at ``/ui``.

Its background work (following the calls for the desks and the wallboard, pushing the wallboard,
ending idle sessions) is one ``cleanup_ctx`` entry that cancels and awaits every task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import jinja2
from aiohttp import web

from agent_ui import customers, review, staffing, wallboard  # noqa: F401 - pages register on import
from agent_ui.auth import STORE, Handler, add_sign_in, pages
from agent_ui.deps import DEPS, TEMPLATES, UiDeps
from agent_ui.desk_commands import DeskCommands
from agent_ui.desk_phone import DeskPhones
from agent_ui.desktop import DESKS, Desks
from agent_ui.phone_accounts import PHONE_SERVER
from agent_ui.pop import PopService
from agent_ui.sessions import SessionStore
from agent_ui.wallboard import WALLBOARD, Wallboard
from agent_ui.ws import HUB, Hub, socket_view

HERE = Path(__file__).parent
USER_CHECK_EVERY = 5.0  # seconds: a user disabled elsewhere is signed out this soon
POPS = web.AppKey("ui_pops", PopService)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def create_ui(deps: UiDeps) -> web.Application:
    """The desktop, customer pages, wallboard and websocket; nothing runs until started."""
    app = web.Application(middlewares=[_security_headers])
    app[DEPS] = deps
    app[TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    store = SessionStore(deps.settings.idle_minutes * 60)
    app[STORE] = store
    hub = Hub(store)
    app[HUB] = hub
    pops = PopService(deps.db, deps.region)
    app[POPS] = pops
    app[DESKS] = Desks(deps, hub, pops)
    DeskCommands(app[DESKS])  # the desks' messages, registered with the hub
    DeskPhones(app[DESKS])  # ... and what their browser phones report
    app[WALLBOARD] = Wallboard(deps, hub, pops)
    add_sign_in(app, deps.logins)
    pages.add_to(app)
    app.router.add_get("/ws", socket_view, name="ws")
    app.router.add_static("/static", HERE / "static", name="static")
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_close_sockets)
    return app


@web.middleware
async def _security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and refusals carry them too
        exc.headers.update(SECURITY_HEADERS)
        raise
    if not response.prepared:
        response.headers.update(_headers_for(request))
    return response


def _headers_for(request: web.Request) -> dict[str, str]:
    """The security headers; a page running the browser phone may also reach its phone server."""
    phone_server = request.get(PHONE_SERVER)
    if not phone_server:
        return SECURITY_HEADERS
    policy = SECURITY_HEADERS["Content-Security-Policy"].replace(
        "connect-src 'self'", f"connect-src 'self' {phone_server}"
    )
    return {**SECURITY_HEADERS, "Content-Security-Policy": policy}


async def _background(app: web.Application) -> AsyncIterator[None]:
    bus = app[DEPS].bus
    sweep_every = min(30.0, app[STORE].idle_seconds / 2)
    tasks = [
        asyncio.create_task(app[DESKS].run(bus), name="ui-desks"),
        asyncio.create_task(app[WALLBOARD].run(bus), name="ui-wallboard"),
        asyncio.create_task(app[WALLBOARD].push(), name="ui-wallboard-push"),
        asyncio.create_task(app[HUB].sweep(sweep_every), name="ui-idle-sweep"),
        asyncio.create_task(
            app[HUB].watch_users(app[DEPS].db, USER_CHECK_EVERY), name="ui-user-check"
        ),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await app[POPS].close()


async def _close_sockets(app: web.Application) -> None:
    await app[HUB].close_all()
