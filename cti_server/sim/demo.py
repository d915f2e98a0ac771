"""The living demo: a seeded CRM, demo accounts, simulated agents and a gentle flow of calls.

Everything here drives the real system: real Asterisk calls through the real inbound path, with
the callers drawn from the seeded CRM, so agents' screen pops and the wallboard show real data.
Routing is on (unless the settings say otherwise): the router gives each call to an agent by
value, skill and language, the virtual agents and the person signed in as ``agent`` alike, each
with skills in the CRM. Unhappy simulated customers rate their call low and call again about
the same thing, so complaint cases appear from the calls' facts even without a speech model.

The person signed in as ``agent`` answers in the browser: the demo's agent extension is a
browser phone (WebRTC over Asterisk's WSS listener), given a SIP password of its own that
nobody needs to type (the desk registers with its hash), so a newcomer hears the simulated
customer say their line (espeak-ng) and talks back.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import random
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from crm_core.customers import create_customer
from crm_core.migrate import upgrade
from crm_core.models import Customer, User
from crm_core.people import create_user, set_password, set_skill
from crm_core.schemas import CustomerIn
from crm_core.seed import seed_crm
from cti_server.asterisk.sip_digests import read_digests, rotate
from cti_server.config import AgentEndpointSettings, Settings
from cti_server.sim.arrivals import poisson
from cti_server.sim.callers import load_callers
from cti_server.sim.runner import CallSimulator

log = logging.getLogger(__name__)

DEMO_ROLES = ("agent", "supervisor", "manager", "admin")
DEMO_CUSTOMER = ("张伟", "+8613800138000")
SIM_AGENTS = ("1901", "1902", "1903")  # virtual agents beside the people who sign in
DEMO_EXTENSION = "1001"  # the demo account "agent", whose phone is the browser
CALL_BACK_AFTER = 45.0  # seconds before an unhappy customer calls again about the same thing
CUSTOMER_STAYS = 300.0  # seconds a customer stays on the line after their line: time to talk
# What the router reads of each agent (the CRM user with that extension): skills from 1 to 10
# (the IVR asks for billing or sales; the default policy wants 5 in the first 30 s of a wait, 3
# until 60 s, then anyone) and the languages they take calls in.
AGENT_PROFILES: dict[str, tuple[dict[str, int], list[str]]] = {
    DEMO_EXTENSION: ({"billing": 7, "sales": 7}, ["en", "zh"]),
    "1901": ({"billing": 9, "sales": 3}, ["en", "zh"]),
    "1902": ({"billing": 4, "sales": 8}, ["en", "zh"]),
    "1903": ({"billing": 6, "sales": 6}, ["zh"]),
}


@dataclass(frozen=True)
class DemoAccount:
    username: str
    role: str
    password: str


def demo_settings(settings: Settings) -> Settings:
    """The settings with what the demo needs, where the user's configuration does not say:

    - routing on: calls wait for the router, which gives each to an agent by value and skill;
    - the virtual agents among the dialplan's agents (each has a queue of their own to be
      rung through when routing is on);
    - the demo's agent extension is a browser phone, unless the settings give it a phone.
    """
    update: dict[str, object] = {}
    if "enabled" not in settings.routing.model_fields_set:
        update["routing"] = settings.routing.model_copy(update={"enabled": True})
    agents = [
        agent.model_copy(update={"phone": "browser"})
        if agent.extension == DEMO_EXTENSION and agent.phone is None
        else agent
        for agent in settings.dialplan.agents
    ]
    known = {agent.extension for agent in agents}
    if DEMO_EXTENSION not in known:
        agents.insert(
            0, AgentEndpointSettings(extension=DEMO_EXTENSION, name="Demo agent", phone="browser")
        )
    agents += [
        AgentEndpointSettings(extension=extension, name=f"Virtual agent {extension}")
        for extension in SIM_AGENTS
        if extension not in known
    ]
    if tuple(agents) != settings.dialplan.agents:
        update["dialplan"] = settings.dialplan.model_copy(update={"agents": tuple(agents)})
    return settings.model_copy(update=update)


def demo_phone(settings: Settings, digests: Path) -> Settings:
    """The settings with the agents' SIP password hashes at ``digests`` (the local Asterisk's
    file, which the desk reads too), the demo's agent given a password of their own there when
    their phone is the browser and they have none yet. Only its hash is kept: the desk
    registers with the hash, so nobody needs the password, and it is not shown."""
    if not _browser_agent(settings):
        return settings
    if DEMO_EXTENSION not in read_digests(digests):
        rotate(digests, DEMO_EXTENSION)
    if settings.dialplan.sip_digests is not None:
        return settings
    dialplan = settings.dialplan.model_copy(update={"sip_digests": digests})
    return settings.model_copy(update={"dialplan": dialplan})


def _browser_agent(settings: Settings) -> bool:
    """Whether the demo's agent answers in the browser."""
    dialplan = settings.dialplan
    return any(
        agent.extension == DEMO_EXTENSION and dialplan.browser_phone(agent)
        for agent in dialplan.agents
    )


def phone_lines(settings: Settings, base: str) -> list[str]:
    """What the demo prints about answering calls in the browser."""
    dialplan = settings.dialplan
    if not _browser_agent(settings):
        return []
    host = dialplan.wss_bind
    with contextlib.suppress(ValueError):  # a wildcard: the phone uses the page's own host
        if ipaddress.ip_address(host).is_unspecified:
            host = urlsplit(base).hostname or "127.0.0.1"
    certificate = "" if dialplan.tls_cert is not None else " (self-signed)"
    return [
        f"  Answer calls in the browser: open {base}/ui/ in Chrome or Firefox, sign in as agent",
        "  and allow the microphone when the browser asks (the page calls through it), then",
        "  press Available: simulated customers ring in the page and say why they call.",
        f"  The phone connects to Asterisk at wss://{host}:{dialplan.wss_port}/ws{certificate}: if",
        f"  the desk says it cannot connect, open https://{host}:{dialplan.wss_port}/ws once and",
        "  accept the certificate.",
    ]


async def prepare_demo_data(
    engine: AsyncEngine, settings: Settings, customers: int = 2000
) -> list[DemoAccount]:
    """Migrate, give each demo account a fresh random password, and seed the CRM once."""
    await upgrade(engine)
    async with AsyncSession(engine) as session:
        count = await session.scalar(select(func.count()).select_from(Customer))
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
                    extension=DEMO_EXTENSION if role == "agent" else None,
                )
            else:
                await set_password(session, role, password)
            accounts.append(DemoAccount(role, role, password))
        await _agent_profiles(session)
    # after the users: the seeded calls between desks name them
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
    return accounts


async def _agent_profiles(session: AsyncSession) -> None:
    """The virtual agents as CRM users (nobody signs in as them), and every demo agent's
    skills and languages, as the router reads them."""
    for extension, (skills, languages) in AGENT_PROFILES.items():
        user = await session.scalar(select(User).where(User.extension == extension))
        if user is None:
            user = await create_user(
                session,
                username=f"virtual{extension}",
                password=secrets.token_urlsafe(16),
                role="agent",
                display_name=f"Virtual agent {extension}",
                extension=extension,
            )
        user.languages = list(languages)
        for skill, level in skills.items():
            await set_skill(session, user.id, skill, level)


async def demo_traffic(engine: AsyncEngine, settings: Settings, every: float = 20.0) -> None:
    """Virtual agents answer; customers from the CRM (and strangers) call every ~``every`` s,
    walk the IVR (saying their menu choice as they key it), wait, say their persona's line
    (complaints included) to the agent and stay on the line for them to answer, rate the call
    once the agent has hung up, and, unhappy, call again about it a little later."""
    async with AsyncSession(engine) as session:
        callers = await load_callers(session)
    rng = random.Random()  # noqa: S311 - demo traffic, not security
    simulator = CallSimulator(
        settings,
        callers,
        agents=SIM_AGENTS,
        call_back_after=CALL_BACK_AFTER,
        stay=CUSTOMER_STAYS,  # a virtual agent hangs up sooner: the survey follows, then the end
        say_choices=True,
    )
    await simulator.run(poisson(60.0 / every, rng))
