"""A command's coroutine runs to its end and leaves no thread to die after the loop is closed."""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from aiosqlite import core

from cti_server.cli.common import run


class _CloseHeldBack(queue.SimpleQueue[Any]):
    """A connection thread's work queue that holds back the second item (the close aiosqlite
    queues after a failed connect) until released: a loaded machine's slow thread."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release
        self.taken = 0

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        item = super().get(block, timeout)
        self.taken += 1
        if self.taken == 2:
            self.release.wait(10)
        return item


def test_a_failed_sqlite_connection_has_closed_before_the_command_ends(tmp_path: Path) -> None:
    """aiosqlite queues a failed connection's close on its thread without waiting for it; the
    loop must stay open until that thread has handed its result back."""
    (tmp_path / "a-file").write_text("not a directory\n")
    died: list[BaseException | None] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: died.append(args.exc_value)
    release = threading.Event()

    async def command() -> None:
        connection = aiosqlite.connect(tmp_path / "a-file" / "cti.db")
        work = connection._tx = _CloseHeldBack(release)
        connection._thread = threading.Thread(
            target=core._connection_worker_thread,
            args=(work,),
            name="Thread-0 (_connection_worker_thread)",
        )
        with pytest.raises(Exception, match="unable to open database file"):
            await connection
        threading.Timer(0.2, release.set).start()  # after the command has ended
        raise LookupError("the command failed")

    try:
        with pytest.raises(LookupError):
            run(command)
    finally:
        threading.excepthook = previous
        release.set()
    assert not died
    assert not [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]
