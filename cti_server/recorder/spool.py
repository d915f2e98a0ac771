"""A durable local journal of interaction writes, ahead of the database.

Every write is appended here first (JSON lines) and dropped once the database has it, so neither
a crash of the process nor an unreachable database loses one. An append is a plain ``write``
(it survives a killed process); :meth:`sync` fsyncs, for power loss, before the database is tried.
The journal holds callers' numbers and names: it is created readable by its owner only (0600, in
a 0700 folder when the folder is new).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)


class Spool:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._handle: TextIO | None = None
        self._entries, damaged = self._load()
        if damaged:
            # rewritten without the cut line: the next append must not continue it (that line
            # would hold both and be unreadable, losing a write that was acknowledged)
            self._rewrite()

    def _load(self) -> tuple[list[dict[str, Any]], bool]:
        """The readable entries, and whether a line was not (cut by a crash mid-write)."""
        if not self.path.exists():
            return [], False
        text = self.path.read_text(encoding="utf-8", errors="replace")
        damaged = bool(text) and not text.endswith("\n")
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                # a line cut by a crash mid-write: only the last one can be, the rest are intact
                log.warning("spool %s: unreadable line %d skipped", self.path, number)
                damaged = True
        if entries:
            log.info("spool %s holds %d interaction writes to replay", self.path, len(entries))
        return entries, damaged

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
        if self._handle is None:
            self._handle = _private(self.path, os.O_APPEND)
        self._handle.write(line)
        self._handle.flush()  # in the kernel now: a killed process loses nothing
        self._entries.append(entry)

    def sync(self) -> None:
        if self._handle is not None:
            os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def entries(self) -> list[dict[str, Any]]:
        return list(self._entries)

    def drop(self, count: int) -> None:
        """Forget the oldest ``count`` entries, now safely in the database.

        A crash before this rewrite replays them again, which the idempotent writes absorb.
        """
        if count:
            del self._entries[:count]
            self._rewrite()

    def _rewrite(self) -> None:
        self.close()
        temporary = self.path.with_suffix(".tmp")
        with _private(temporary, os.O_TRUNC) as handle:
            for entry in self._entries:
                handle.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)


def _private(path: Path, mode: int) -> TextIO:
    """``path`` opened for writing, created 0600 whatever the umask (an existing file keeps its
    mode; the rewrite's temporary file is new each time, so the journal becomes private)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | mode, 0o600)
    return os.fdopen(descriptor, "a" if mode & os.O_APPEND else "w", encoding="utf-8")
