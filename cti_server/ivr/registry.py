"""The flows in use, reloaded when their files change; a broken change keeps the old flow."""

from __future__ import annotations

import logging
from collections.abc import Collection
from pathlib import Path

from cti_server.ivr.calendar import CALENDAR_FILE, Calendar, CalendarError, load_calendar
from cti_server.ivr.flow import Flow, FlowError, load_flow
from cti_server.ivr.self_service import FUNCTIONS

log = logging.getLogger(__name__)

PROMPTS = "prompts"


def check_flow_file(path: Path, functions: Collection[str] | None = None) -> Flow:
    """What ``cti ivr check`` runs on one file: :func:`load_flow` against the prompts beside it
    and the lookup functions the server registers (default: the built-in ones). A flow with no
    prompts directory beside it is refused: its prompts could not be checked."""
    prompts = path.parent / PROMPTS
    known = set(FUNCTIONS) if functions is None else functions
    missing = (
        ""
        if prompts.is_dir()
        else f"no prompts directory {PROMPTS}/ beside it: its prompt files cannot be checked"
    )
    try:
        flow = load_flow(path, prompts if not missing else None, known)
    except FlowError as exc:
        raise FlowError(f"{exc}; {missing}" if missing else str(exc)) from None
    if missing:
        raise FlowError(f"{path.name}: {missing}")
    return flow


class FlowRegistry:
    def __init__(self, directory: Path, functions: Collection[str] | None = None) -> None:
        self.directory = directory
        self._functions = set(FUNCTIONS) if functions is None else set(functions)
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
        prompts = self.directory / PROMPTS
        try:
            flow = load_flow(path, prompts if prompts.is_dir() else None, self._functions)
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
