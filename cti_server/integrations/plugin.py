"""How the composition root adds the integrations: one call, like a Wazo plugin's ``load``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from cti_server.bus import Bus
from cti_server.integrations.customers import CrmCustomers
from cti_server.integrations.http import PREFIX, create_events_api
from cti_server.integrations.metrics import IntegrationsCollector
from cti_server.integrations.service import IntegrationService
from cti_server.integrations.settings import IntegrationsSettings
from cti_server.integrations.webhooks import Webhooks

INTEGRATIONS = web.AppKey("integrations", IntegrationService)


def add_integrations(
    app: web.Application,
    settings: IntegrationsSettings,
    bus: Bus,
    sessions: async_sessionmaker[AsyncSession],
    *,
    is_leader: Callable[[], bool],
    metrics: CollectorRegistry | None = None,
) -> IntegrationService:
    """Mount ``/api/events`` and start and stop the service with ``app`` (after the bus is up:
    call it after the bus's ``cleanup_ctx`` entry; processes sharing Redis: only the leader
    sends webhooks, every process serves its own stream clients); its metrics on ``metrics``."""
    service = IntegrationService(
        bus,
        Webhooks(settings, is_leader),
        CrmCustomers(sessions),
        identify_seconds=settings.identify_seconds,
    )
    app[INTEGRATIONS] = service
    if metrics is not None:
        metrics.register(IntegrationsCollector(service))
    app.add_subapp(PREFIX, create_events_api(service, sessions))

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.close()

    app.cleanup_ctx.append(lifecycle)
    return service
