"""The living demo: a seeded CRM, demo accounts, simulated agents and a gentle flow of calls.

Everything here drives the real system: real Asterisk calls through the real inbound path, with
the callers drawn from the seeded CRM, so agents' screen pops and the wallboard show real data.
"""

from __future__ import annotations

import logging
import random
import secrets
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from crm_core.customers import create_customer
from crm_core.migrate import upgrade
from crm_core.models import Customer, User
from crm_core.people import create_user, set_password
from crm_core.schemas import CustomerIn
from crm_core.seed import seed_crm
from cti_server.callsim.arrivals import poisson
from cti_server.callsim.callers import load_callers
from cti_server.callsim.runner import CallSimulator
from cti_server.config import Settings

log = logging.getLogger(__name__)

DEMO_ROLES = ("agent", "supervisor", "manager", "admin")
DEMO_CUSTOMER = ("张伟", "+8613800138000")
SIM_AGENTS = ("1901", "1902", "1903")  # virtual agents beside the people who sign in
DEMO_PHONE = "Local/{extension}@cti-sim-agent-long/n"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    password: str


def demo_settings(settings: Settings) -> Settings:
    """People who sign in to the demo have no phone: theirs is simulated (it answers and
    stays on the line until they hang up in the desktop), unless the settings name one."""
    if settings.ui.agent_interface != type(settings.ui)().agent_interface:
        return settings
    ui = settings.ui.model_copy(update={"agent_interface": DEMO_PHONE})
    return settings.model_copy(update={"ui": ui})


async def prepare_demo_data(
    engine: AsyncEngine, settings: Settings, customers: int = 2000
) -> list[DemoAccount]:
    """Migrate, seed the CRM once, and give each demo account a fresh random password."""
    await upgrade(engine)
    async with AsyncSession(engine) as session:
        count = await session.scalar(select(func.count()).select_from(Customer))
    if not count:
        report = await seed_crm(
            engine, customers, region=settings.crm.default_region, policy=settings.crm.value
        )
        log.info("seeded the demo CRM with %d customers", report.customers)
        async with AsyncSession(engine) as session, session.begin():
            name, number = DEMO_CUSTOMER
            await create_customer(
                session,
                CustomerIn.model_validate(
                    {
                        "name": name,
                        "phones": [{"number": number}],
                        "language": "zh",
                        "tags": ["demo"],
                    }
                ),
                settings.crm.default_region,
            )
    accounts = []
    async with AsyncSession(engine) as session, session.begin():
        for role in DEMO_ROLES:
            password = secrets.token_urlsafe(9)
            exists = await session.scalar(select(User.id).where(User.username == role))
            if exists is None:
                await create_user(
                    session,
                    username=role,
                    password=password,
                    role=role,
                    display_name=f"Demo {role}",
                    extension="1001" if role == "agent" else None,
                )
            else:
                await set_password(session, role, password)
            accounts.append(DemoAccount(role, role, password))
    return accounts


async def demo_traffic(engine: AsyncEngine, settings: Settings, every: float = 20.0) -> None:
    """Virtual agents answer; customers from the CRM (and strangers) call every ~``every`` s,
    walk the IVR, wait, and say their persona's line (complaints included) to the agent."""
    async with AsyncSession(engine) as session:
        callers = await load_callers(session)
    rng = random.Random()  # noqa: S311 - demo traffic, not security
    simulator = CallSimulator(settings, callers, agents=SIM_AGENTS)
    await simulator.run(poisson(60.0 / every, rng))
