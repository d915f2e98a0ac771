"""In real Chromium beside real Asterisk: an agent transfers a real call from the desktop with a
note, and the target's desk shows the hand-over panel: who handed the customer over, how, why,
and what was said so far (the live transcript as the bus carried it, redacted, hostile text
shown as text) with the complaint alert. Then a hand-over the tracker reports (the customer
handed back): the desk left says where the customer went, the new one pops with the panel.

The transcript is published on the server's bus as the transcription service would publish it
(no speech model runs here), and so is the hand-back (as the tracker publishes a phone's
transfer); the first transfer is Asterisk's."""

from __future__ import annotations

import dataclasses

import pytest
from playwright.async_api import expect

from cti_server.app import AMI, BUS
from cti_server.events import ComplaintDetected, TranscriptPartial
from cti_server.sim.simulation import place_customer_call
from tests.browser.conftest import UiServer, add_customer
from tests.support import domain_events as make

pytestmark = [pytest.mark.browser, pytest.mark.asterisk, pytest.mark.slow]

HOSTILE = '<img src=x onerror="document.title=1">it broke'
CARD = "4111 1111 1111 1111"


@pytest.mark.asyncio
async def test_a_transfer_shows_the_hand_over_with_what_was_said_on_the_targets_desk(
    ui_server: UiServer,
) -> None:
    server = ui_server
    await add_customer(server.db, "Said Before", "+8613700005555")
    dee = await server.signed_in("dee")
    alice = await server.signed_in("alice")
    await expect(alice.page.locator("#state")).to_have_text("logged out")
    await alice.page.click("#go-available")
    await expect(alice.page.locator("#state")).to_have_text("available")
    call = await place_customer_call(
        server.app[AMI],
        context=server.node.settings.dialplan.inbound_context,
        number="+8613700005555",
        name="Said Before",
        dtmf="1",
        pre_wait=3,
        patience=60,
    )
    await expect(alice.page.locator("#pop-call-state")).to_have_text("connected", timeout=30_000)

    node, linkedid = server.node.settings.ami.node, call.uniqueid
    for n, (speaker, text) in enumerate(
        [
            ("agent", "thank you for calling"),
            ("customer", HOSTILE),
            ("customer", f"my card is {CARD}"),
        ]
    ):
        server.app[BUS].publish(
            TranscriptPartial(
                node=node,
                linkedid=linkedid,
                speaker=speaker,
                text=text,
                final=True,
                start=2.0 * n,
                end=2.0 * n + 1,
            )
        )
    alert = make.complaint(linkedid, during_call=True)
    server.app[BUS].publish(
        ComplaintDetected(
            node=node,
            linkedid=linkedid,
            probability=alert.probability,
            threshold=alert.threshold,
            category=alert.category,
            severity=alert.severity,
            language=alert.language,
            evidence=alert.evidence,
            during_call=True,
        )
    )

    await alice.page.fill("#transfer-to", "7002")  # dee's phone: it answers and stays on
    await alice.page.fill("#transfer-note", "wants the <b>double charge</b> refunded")
    await alice.page.click("#transfer")

    handover = dee.page.locator("#handover")
    await expect(handover).to_be_visible(timeout=15_000)
    await expect(handover).to_have_attribute("data-linkedid", linkedid)
    await expect(dee.page.locator("#pop-name")).to_have_text("Said Before")
    await expect(dee.page.locator("#handover-from")).to_have_text("alice (8101)")
    await expect(dee.page.locator("#handover-how")).to_have_text("blind transfer")
    await expect(dee.page.locator("#handover-note")).to_have_text(
        "wants the <b>double charge</b> refunded"
    )
    lines = dee.page.locator("#handover-transcript li")
    await expect(lines).to_have_count(3)
    await expect(lines.nth(1)).to_have_text(f"customer: {HOSTILE}")
    await expect(lines.nth(2)).to_have_text("customer: my card is [CARD]")
    await expect(dee.page.locator("#handover-complaints")).to_contain_text(
        "billing · high · 91% · “you charged me twice”"
    )
    await expect(alice.page.locator("#wrapup")).to_be_visible(timeout=15_000)

    # This bed's desk phones are the dialplan answering the transferred channel itself: no phone
    # takes the customer over, so the tracker has nothing to say. It is said here as the tracker
    # says a phone's hand-over (the real-Asterisk transfer tests check the tracker's side).
    server.app[BUS].publish(
        dataclasses.replace(
            make.transferred(linkedid, "agent-8101", "agent-7002", "blind"), node=node
        )
    )
    await expect(dee.page.locator("#pop-call-state")).to_have_text("connected")
    await expect(dee.page.locator("#handover-note")).to_have_text(  # kept for the hand-over
        "wants the <b>double charge</b> refunded"
    )
    await expect(alice.page.locator("#pop-left")).to_have_text("dee (7002) · blind transfer")

    # dee hands the customer back (as the tracker says a phone's transfer): her desk says where
    # the customer went and wraps up, alice's pops again with the hand-over from dee
    server.app[BUS].publish(
        dataclasses.replace(
            make.transferred(linkedid, "agent-7002", "agent-8101", "attended"), node=node
        )
    )
    await expect(dee.page.locator("#pop-left")).to_have_text("alice (8101) · attended transfer")
    await expect(dee.page.locator("#wrapup")).to_be_visible(timeout=15_000)
    await expect(alice.page.locator("#handover-from")).to_have_text("dee (7002)")
    await expect(alice.page.locator("#handover-how")).to_have_text("attended transfer")
    await expect(alice.page.locator("#handover-note-line")).to_be_hidden()  # alice's own note
    await expect(alice.page.locator("#handover-transcript li")).to_have_count(3)
    await expect(alice.page.locator("#pop-call-state")).to_have_text("connected")

    assert "4111" not in await dee.page.locator("#pop").inner_text()
    assert await dee.page.locator("#pop img, #pop b").count() == 0
    assert await dee.page.title() != "1"
    for tab in (alice, dee):
        assert tab.dialogs == []
        assert tab.errors == []
