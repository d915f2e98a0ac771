"""What `cti demo` adds to the user's settings, and the agents' profiles it gives the router."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.database import make_engine
from crm_core.models import InteractionParty
from crm_core.routing import agent_profiles
from cti_server.config import Settings, load_settings
from cti_server.routing.inputs import personal_queue
from cti_server.sim.demo import (
    DEMO_EXTENSION,
    DEMO_PHONE,
    SIM_AGENTS,
    demo_settings,
    prepare_demo_data,
)


def _settings(tmp_path: Path, toml: str = "") -> Settings:
    path = tmp_path / "cti.toml"
    path.write_text(toml, encoding="utf-8")
    return load_settings(path, ami={"secret": "demo-secret"})


def test_the_demo_routes_unless_the_configuration_says_otherwise(tmp_path: Path) -> None:
    settings = demo_settings(_settings(tmp_path))
    assert settings.routing.enabled
    extensions = [agent.extension for agent in settings.dialplan.agents]
    assert DEMO_EXTENSION in extensions
    assert set(SIM_AGENTS) <= set(extensions), "each virtual agent has a queue of their own"
    assert settings.ui.agent_interface == DEMO_PHONE

    off = demo_settings(_settings(tmp_path, "[routing]\nenabled = false\n"))
    assert not off.routing.enabled
    phone = demo_settings(_settings(tmp_path, '[ui]\nagent_interface = "PJSIP/{extension}"\n'))
    assert phone.ui.agent_interface == "PJSIP/{extension}"
    assert phone.routing.enabled


@pytest.mark.asyncio
async def test_every_demo_agent_has_skills_and_languages_the_router_reads(tmp_path: Path) -> None:
    settings = demo_settings(_settings(tmp_path))
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}", None)
    try:
        for _ in range(2):  # a second start keeps one user per agent
            accounts = await prepare_demo_data(engine, settings, customers=10)
        async with AsyncSession(engine) as session:
            profiles = await agent_profiles(session)
            parties = (await session.execute(select(InteractionParty.agent_id))).all()
    finally:
        await engine.dispose()
    assert [a.username for a in accounts] == ["agent", "supervisor", "manager", "admin"]
    assert set(profiles) == {DEMO_EXTENSION, *SIM_AGENTS}
    for profile in profiles.values():
        assert profile.languages
        assert set(profile.skills) == {"billing", "sales"}
    # the person signed in takes calls of both skills in the first seconds of a wait (level 5)
    assert min(profiles[DEMO_EXTENSION].skills.values()) >= 5
    assert profiles[DEMO_EXTENSION].languages == {"en", "zh"}
    assert personal_queue(DEMO_EXTENSION) == "agent-1001"
    # the seeded calls handed between desks name the demo's users (the users come first)
    assert parties
    assert all(agent_id is not None for (agent_id,) in parties)
