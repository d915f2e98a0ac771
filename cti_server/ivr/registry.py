"""The flows in use, reloaded when their files change; a broken change keeps the old flow."""

from __future__ import annotations

import logging
from pathlib import Path

from cti_server.ivr.flow import Flow, FlowError, load_flow

log = logging.getLogger(__name__)


class FlowRegistry:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._flows: dict[str, tuple[float, Flow]] = {}
        self.errors: dict[str, str] = {}

    def get(self, name: str) -> Flow | None:
        """The flow ``name``, re-read if its file changed since (a stat per call, no more)."""
        path = self.directory / f"{name}.yaml"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            log.error("IVR flow %s: no file %s", name, path)
            cached = self._flows.get(name)
            return cached[1] if cached else None
        cached = self._flows.get(name)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        prompts = self.directory / "prompts"
        try:
            flow = load_flow(path, prompts if prompts.is_dir() else None)
        except FlowError as exc:
            self.errors[name] = str(exc)
            log.error("IVR flow change refused, the old one keeps serving: %s", exc)
            if cached is not None:
                self._flows[name] = (mtime, cached[1])  # do not re-read until it changes again
                return cached[1]
            return None
        self.errors.pop(name, None)
        self._flows[name] = (mtime, flow)
        log.info("IVR flow %s loaded from %s", name, path)
        return flow
