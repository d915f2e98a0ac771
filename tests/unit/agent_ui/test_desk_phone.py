"""The browser phone at the desk, without a browser: whose desk loads it and may reach its
server, what the desk socket gives it (the HA1, never a password), and a phone without a
microphone keeping its agent from being offered calls."""

from __future__ import annotations

import pytest

from agent_ui.desk_phone import NO_MICROPHONE
from agent_ui.phone_accounts import BrowserPhones
from cti_server.asterisk.sip_digests import REALM, ha1
from tests.support.desk import ALICE, NODE, Ui, next_of
from tests.support.live_model import member

ALICE_HA1 = ha1("8101", "alice's own password")


@pytest.fixture
def digests() -> dict[str, str]:
    """The SIP password hashes file, as the server reads it now."""
    return {"8101": ALICE_HA1}


@pytest.fixture
def desk_phones(digests: dict[str, str]) -> BrowserPhones:
    """alice (8101) has a browser phone and a SIP password of her own; bob (8102) a desk phone."""
    return BrowserPhones(frozenset({"8101"}), "127.0.0.1", 8089, REALM, lambda: digests)


async def _desktop(ui: Ui) -> tuple[str, str]:
    async with ui.http.get(f"{ui.base}/ui/desktop") as page:
        assert page.status == 200
        return await page.text(), page.headers["Content-Security-Policy"]


@pytest.mark.asyncio
async def test_only_a_browser_phone_agents_desk_loads_the_phone_and_may_reach_its_server(
    ui: Ui,
) -> None:
    await ui.desk("alice")
    page, policy = await _desktop(ui)
    assert 'data-server="wss://127.0.0.1:8089/ws"' in page
    assert 'data-uri="sip:8101@127.0.0.1"' in page
    assert "/ui/static/vendor/jssip.min.js" in page
    assert "connect-src 'self' wss://127.0.0.1:8089;" in policy
    assert ALICE_HA1 not in page  # the secret comes over the socket only

    await ui.desk("bob")
    page, policy = await _desktop(ui)
    assert 'id="phone"' not in page
    assert "jssip" not in page
    assert "connect-src 'self';" in policy


@pytest.mark.asyncio
async def test_the_desk_socket_gives_the_phone_its_ha1(ui: Ui) -> None:
    alice = await ui.desk("alice")
    assert await next_of(alice, "phone") == {"type": "phone", "ha1": ALICE_HA1}


@pytest.mark.asyncio
async def test_a_phone_without_its_own_password_says_who_gives_one(
    ui: Ui, digests: dict[str, str]
) -> None:
    digests.clear()
    alice = await ui.desk("alice")
    said = await next_of(alice, "phone")
    assert "cti agent secret rotate 8101" in said["problem"]


@pytest.mark.asyncio
async def test_no_microphone_pauses_the_agent_and_keeps_them_from_going_available(ui: Ui) -> None:
    alice = await ui.desk("alice")
    await next_of(alice, "phone")
    member(ui.tracker, NODE, "support", ALICE, "PJSIP/8101")
    await alice.send_json({"type": "phone", "working": False, "problem": "refused"})
    await alice.send_json({"type": "state", "state": "available"})
    refused = await next_of(alice, "error")
    assert refused["message"] == (
        "Your phone cannot take calls: the microphone was refused in this browser. "
        "Fix it, then try again."
    )
    assert ui.ami.asked == [("pause", "PJSIP/8101", NO_MICROPHONE)]

    # it works again: the agent goes available when they choose to
    await alice.send_json({"type": "phone", "working": True})
    await alice.send_json({"type": "state", "state": "available"})
    await alice.send_json({"type": "phone", "working": "maybe"})
    assert "phone reports say" in (await next_of(alice, "error"))["message"]
    assert ("unpause", "PJSIP/8101") in ui.ami.asked


def test_a_wildcard_listener_is_reached_at_the_host_the_page_was_reached_at() -> None:
    def phones(bind: str) -> BrowserPhones:
        return BrowserPhones(frozenset({"8101"}), bind, 8089, REALM, dict)

    assert phones("0.0.0.0").account("8101", "cti.example.com").server == (
        "wss://cti.example.com:8089/ws"
    )
    assert phones("::").account("8101", "::1").origin == "wss://[::1]:8089"
    named = phones("pbx.example.com").account("8101", "cti.example.com")
    assert named.server == "wss://pbx.example.com:8089/ws"
    assert named.uri == "sip:8101@pbx.example.com"
