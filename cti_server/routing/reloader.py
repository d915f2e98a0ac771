"""The policy in force, re-read when its file changes; a broken change keeps the old policy."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cti_server.routing.policy import Policy, PolicyError, load_policy

log = logging.getLogger(__name__)


class PolicyReloader:
    """Hands out the policy in ``path``, re-reading the file when its mtime or size changes.

    Cheap enough to ask before every decision (one ``stat``). The first load must succeed
    (a router without a valid policy should not start); later, an invalid or missing file is
    logged, kept in :attr:`error` for ``/status``, and the previous policy stays in force until
    the file changes again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None
        self._stamp = self._stat()
        self._policy = load_policy(path)

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def current(self) -> Policy:
        stamp = self._stat()
        if stamp == self._stamp:
            return self._policy
        self._stamp = stamp
        try:
            policy = load_policy(self.path)
        except PolicyError as exc:
            self.error = str(exc)
            log.error(
                "routing policy change refused, %r stays in force: %s", self._policy.name, exc
            )
            return self._policy
        self.error = None
        if policy != self._policy:
            log.info("routing policy %r loaded from %s", policy.name, self.path)
        self._policy = policy
        return policy
