"""The flows in use, reloaded when their files change; a broken change keeps the old flow."""

from __future__ import annotations

import logging
from pathlib import Path

from cti_server.ivr.calendar import CALENDAR_FILE, Calendar, CalendarError, load_calendar
from cti_server.ivr.flow import Flow, FlowError, load_flow

log = logging.getLogger(__name__)


class FlowRegistry:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._flows: dict[str, tuple[float, Flow]] = {}
        self._calendar: tuple[float, Calendar] = (-1.0, Calendar())
        self.errors: dict[str, str] = {}

    def calendar(self) -> Calendar:
        """``calendar.yaml`` beside the flows, re-read when it changes; a broken change is
        refused and the previous calendar stays (none at all: open around the clock)."""
        path = self.directory / CALENDAR_FILE
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return Calendar()
        if mtime != self._calendar[0]:
            try:
                self._calendar = (mtime, load_calendar(path))
                self.errors.pop("calendar", None)
            except CalendarError as exc:
                self.errors["calendar"] = str(exc)
                log.error("calendar change refused, the old one stays: %s", exc)
                self._calendar = (mtime, self._calendar[1])
        return self._calendar[1]

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
