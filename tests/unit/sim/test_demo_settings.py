"""What `cti demo` adds to the user's settings, and the agents' profiles it gives the router."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.database import make_engine
from crm_core.models import InteractionParty
from crm_core.routing import agent_profiles
from cti_server.asterisk.sip_digests import read_digests
from cti_server.config import Settings, load_settings
from cti_server.routing.inputs import personal_queue
from cti_server.sim.demo import (
    DEMO_EXTENSION,
    SIM_AGENTS,
    demo_phone,
    demo_settings,
    phone_lines,
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

    off = demo_settings(_settings(tmp_path, "[routing]\nenabled = false\n"))
    assert not off.routing.enabled


def _phones(settings: Settings) -> dict[str, bool]:
    dialplan = settings.dialplan
    return {agent.extension: dialplan.browser_phone(agent) for agent in dialplan.agents}


def test_the_demos_agent_answers_in_the_browser_unless_the_configuration_gives_a_phone(
    tmp_path: Path,
) -> None:
    settings = demo_settings(_settings(tmp_path))
    assert settings.ui.agent_interface == "PJSIP/{extension}"  # the browser phone's endpoint
    phones = _phones(settings)
    assert phones[DEMO_EXTENSION]
    assert not any(phones[extension] for extension in SIM_AGENTS)
    assert not phones["1002"], "the other agents keep their desk phones"

    desk = '[[dialplan.agents]]\nextension = "1001"\nname = "Li Na"\nphone = "desk"\n'
    assert not _phones(demo_settings(_settings(tmp_path, desk)))[DEMO_EXTENSION]
    alone = '[[dialplan.agents]]\nextension = "2001"\nname = "Li Na"\n'
    assert _phones(demo_settings(_settings(tmp_path, alone))) == {
        DEMO_EXTENSION: True,
        "2001": False,
        **dict.fromkeys(SIM_AGENTS, False),
    }


def test_the_demos_browser_phone_gets_a_password_once_and_the_demo_says_how_to_answer(
    tmp_path: Path,
) -> None:
    digests = tmp_path / "etc" / "sip-digests.json"
    settings = demo_phone(demo_settings(_settings(tmp_path)), digests)
    assert settings.dialplan.sip_digests == digests, "the desk reads the hashes Asterisk reads"
    first = read_digests(digests)
    assert set(first) == {DEMO_EXTENSION}
    demo_phone(demo_settings(_settings(tmp_path)), digests)
    assert read_digests(digests) == first, "a second start keeps the password: the page works on"

    said = "\n".join(phone_lines(settings, "http://127.0.0.1:8080"))
    assert "http://127.0.0.1:8080/ui/" in said
    assert "sign in as agent" in said
    assert "allow the microphone when the browser asks" in said
    assert f"https://127.0.0.1:{settings.dialplan.wss_port}/ws" in said

    desk = '[[dialplan.agents]]\nextension = "1001"\nname = "Li Na"\nphone = "desk"\n'
    deskbound = demo_settings(_settings(tmp_path, desk))
    assert demo_phone(deskbound, tmp_path / "none.json") == deskbound
    assert not (tmp_path / "none.json").exists()
    assert phone_lines(deskbound, "http://127.0.0.1:8080") == []


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
