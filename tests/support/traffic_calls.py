"""Recorded calls for simulator tests, built by hand: one caller of the bank's regular class
who waited for nothing in the record and was served."""

from __future__ import annotations

import math

from cti_server.routing.traffic import TrafficCall


def recorded_call(
    call_id: str,
    arrival: float,
    *,
    handle: float,
    klass: int = 1,
    kind: str = "PS",
    patience: float = math.inf,
) -> TrafficCall:
    return TrafficCall(
        id=call_id,
        arrival=arrival,
        klass=klass,
        kind=kind,
        handle=handle,
        after_call=0.0,
        patience=patience,
        observed_wait=0.0,
        observed="served",
        customer=None,
    )
