"""`cti serve`'s whole application in this process, beside a real Asterisk: for tests and
benches that drive it from a browser and watch Asterisk at the same time."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy.ext.asyncio import async_sessionmaker

from cti_server.app import AMI, DATABASE, SCHEMA_READY, build_app
from cti_server.config import Settings
from cti_server.telephony import agent_actions
from cti_server.telephony.ami_client import AmiError
from tests.support.ui import add_users
from tests.support.waiting import poll_until


@contextlib.asynccontextmanager
async def cti_served(
    settings: Settings, *users: tuple[str, str, str | None], queue: str = "support"
) -> AsyncIterator[web.Application]:
    """The application on ``settings.http.port`` once AMI is connected and the CRM is ready, with
    ``users`` (username, role, extension; tests.support.ui's password). Afterwards their phones
    leave ``queue`` of the Asterisk, which may outlive this server."""
    app = build_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.http.port).start()
    try:
        await app[AMI].wait_connected(10)
        await poll_until(lambda: _schema_ready(app), 30, what="CRM schema ready")
        await add_users(async_sessionmaker(app[DATABASE], expire_on_commit=False), *users)
        yield app
    finally:
        for _, _, extension in users:
            interface = settings.ui.agent_interface.format(extension=extension)
            with contextlib.suppress(agent_actions.AgentActionError, AmiError):  # Asterisk gone
                await agent_actions.queue_logout(app[AMI], queue, interface)
        await runner.cleanup()


async def _schema_ready(app: web.Application) -> bool:
    return app[SCHEMA_READY].is_set()
