"""How busy each agent has been lately: the second tie-break after the longest idle.

Occupancy is the share of signed-in time spent ringing, on a call or wrapping up. Recent time
weighs most (an exponential decay with a half-life), so an agent who took a flood of calls an
hour ago is not held back all day. Fed by the agents' state changes, read at decision time.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from cti_server.events import AgentState

BUSY = frozenset({AgentState.RINGING, AgentState.ON_CALL, AgentState.WRAP_UP})


@dataclass
class _Account:
    state: AgentState
    since: float
    busy: float = 0.0
    present: float = 0.0


class Occupancy:
    """Decayed busy and signed-in seconds per agent (any hashable key)."""

    def __init__(self, half_life: float = 1800.0) -> None:
        if half_life <= 0:
            raise ValueError("half_life must be positive")
        self._half_life = half_life
        self._accounts: dict[Hashable, _Account] = {}

    def update(self, key: Hashable, state: AgentState, at: float) -> None:
        """The agent ``key`` is in ``state`` from ``at`` on."""
        account = self._accounts.get(key)
        if account is None:
            self._accounts[key] = _Account(state, at)
            return
        account.busy, account.present = self._totals(account, at)
        account.state = state
        account.since = max(account.since, at)

    def of(self, key: Hashable, now: float) -> float:
        """0..1; 0 for an agent not seen signed in yet."""
        account = self._accounts.get(key)
        if account is None:
            return 0.0
        busy, present = self._totals(account, now)
        return min(1.0, busy / present) if present > 0 else 0.0

    def _totals(self, account: _Account, now: float) -> tuple[float, float]:
        elapsed = max(0.0, now - account.since)
        fade = 0.5 ** (elapsed / self._half_life)
        busy = account.busy * fade + (elapsed if account.state in BUSY else 0.0)
        signed_in = account.state is not AgentState.LOGGED_OUT
        present = account.present * fade + (elapsed if signed_in else 0.0)
        return busy, present
