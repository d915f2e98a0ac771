"""The call recording (``cti-record``: MixMonitor, what post-call transcription and the review
page play) starts only after the IVR's AGI step, where card numbers and PINs are typed, and
only just before the caller waits for an agent; nothing else in the dialplan records."""

from __future__ import annotations

import pytest

from cti_server.asterisk.render import render_config
from cti_server.config import load_settings
from tests.support.asterisk_conf import conf_sections


@pytest.mark.parametrize("transport", ["fastagi", "agi"])
@pytest.mark.parametrize("routed", [False, True])
def test_recording_starts_after_the_ivr_and_before_the_queue(transport: str, routed: bool) -> None:
    settings = load_settings(
        None, ami={"secret": "s3cret"}, ivr={"transport": transport}, routing={"enabled": routed}
    )
    contexts = conf_sections(render_config(settings)["extensions.conf"])
    flow = contexts["[cti-inbound-call]"]
    ivr = [i for i, line in enumerate(flow) if "AGI(" in line and "inbound" in line]
    records = [i for i, line in enumerate(flow) if "Gosub(cti-record," in line]
    waits = [i for i, line in enumerate(flow) if "Queue(" in line or "Gosub(cti-routed," in line]
    assert (len(ivr), len(records), len(waits)) == (1, 2, 2), flow
    for record, wait in zip(records, waits, strict=True):
        assert ivr[0] < record  # after the IVR (the fallback too: reached past it)
        assert wait == record + 1  # and straight into the queue
    recording = [
        name for name, lines in contexts.items() if any("MixMonitor(" in line for line in lines)
    ]
    assert recording == ["[cti-record]"]
    callers = [
        name for name, lines in contexts.items() if any("cti-record," in line for line in lines)
    ]
    assert callers == ["[cti-inbound-call]"]
