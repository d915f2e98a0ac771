"""Playing Asterisk's side of a classic AGI call: its pipes written in advance and closed."""

from __future__ import annotations

import contextlib
import io
import os
import signal
from collections.abc import Iterator

from asterisk.agi import AGI

from cti_server.ivr.channels.agi import AgiCall


class Discard:
    """pyst2's stderr: it writes the whole environment there."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        return None


class AgiPipes:
    """Asterisk's side written in advance (the environment, then the answers) and closed: more
    commands meet EOF. :meth:`commands` is what the script sent."""

    def __init__(self) -> None:
        self._opened: list[io.TextIOWrapper] = []
        self._stdout: io.TextIOWrapper | None = None
        self._sent: io.TextIOWrapper | None = None

    def call(self, head: str, answers: list[str]) -> AgiCall:
        to_script_r, to_script_w = os.pipe()
        from_script_r, from_script_w = os.pipe()
        with open(to_script_w, "w", encoding="utf-8") as asterisk_side:
            asterisk_side.write(head + "".join(f"{a}\n" for a in answers))
        stdin = open(to_script_r, encoding="utf-8", newline="\n")  # noqa: SIM115
        self._stdout = open(from_script_w, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        self._sent = open(from_script_r, encoding="utf-8")  # noqa: SIM115
        self._opened.extend([stdin, self._stdout, self._sent])
        return AgiCall(AGI(stdin=stdin, stdout=self._stdout, stderr=Discard()))

    def commands(self) -> list[str]:
        assert self._stdout is not None
        assert self._sent is not None
        self._stdout.close()
        return self._sent.read().splitlines()

    def close(self) -> None:
        for handle in self._opened:
            handle.close()


@contextlib.contextmanager
def sighup_kept() -> Iterator[None]:
    """pyst2 installs its own SIGHUP handler: the test's is put back afterwards."""
    before = signal.getsignal(signal.SIGHUP)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, before)
