"""Who may see which public event, and which topics a subscriber asked for.

The rule: supervisors, managers and admins see every event with every field (they see the same
on the wallboard and in complaint review). An agent sees only their own calls: a call ringing at
them, answered by them, transferred from or to them, and the end of and complaints about a call
they answered; never a call still in the IVR, never another agent's call or complaint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from crm_core.access import every_row
from cti_server.integrations.events import TYPES

_PATTERN = re.compile(r"^[a-z*]{1,40}(\.[a-z*]{1,40})?$")
MAX_TOPICS = 20


@dataclass(frozen=True, slots=True)
class Viewer:
    """A subscriber: a user of the API token (websocket), or a webhook (sees all)."""

    role: str
    extension: str | None = None

    def may_see(self, agents: frozenset[str]) -> bool:
        """``agents``: the extensions of the agents whose call the event is about."""
        if every_row(self.role, "events.watch"):  # the role matrix: crm_core.access
            return True
        return self.extension is not None and self.extension in agents


class BadTopics(ValueError):
    """Topic patterns that are malformed or match no event type; the message says which."""


@dataclass(frozen=True, slots=True)
class Topics:
    """Glob patterns over event types: ``call.*``, ``complaint.detected``, ``*``."""

    patterns: tuple[str, ...]

    @classmethod
    def parse(cls, patterns: list[str] | tuple[str, ...]) -> Topics:
        if not patterns:
            raise BadTopics("no topics: give at least one, e.g. 'call.*'")
        if len(patterns) > MAX_TOPICS:
            raise BadTopics(f"at most {MAX_TOPICS} topics")
        for pattern in patterns:
            if not isinstance(pattern, str) or not _PATTERN.match(pattern):
                raise BadTopics(f"not a topic pattern: {str(pattern)[:40]!r}")
            if not any(fnmatchcase(kind, pattern) for kind in TYPES):
                raise BadTopics(f"{pattern!r} matches no event; events: {', '.join(TYPES)}")
        return cls(tuple(dict.fromkeys(patterns)))

    def match(self, kind: str) -> bool:
        return any(fnmatchcase(kind, pattern) for pattern in self.patterns)
