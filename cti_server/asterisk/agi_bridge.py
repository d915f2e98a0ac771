"""Classic AGI across the chroot wall: Asterisk's pipes in the chroot, ``cti-agi`` on the host.

The test bed's Asterisk runs in a Debian sid chroot, while ``cti-agi`` lives in the project's venv
on the host (another Python, another libc). Rather than install a second Python and the package in
the chroot (and keep it in step with the checkout), the chroot gets a shell shim in its agi-bin,
named ``cti-agi`` (:data:`SHIM`): Asterisk runs it per call as it would run ``cti-agi``, and
``socat`` joins its stdin/stdout to this bridge's UNIX socket in the instance's run directory.
The bridge is inetd-style: for each connection it starts the real ``cti-agi`` with the connection
itself as stdin and stdout, so ``cti-agi`` stays a plain classic AGI program, the same one a
deployment without a chroot runs straight from the venv.

AGI scripts report through their exit status (non-zero: ``AGISTATUS=FAILURE``), which socat
cannot carry. So the bridge writes ``cti-agi``'s status to ``cti-agi.<pid>.status`` beside the
socket, ``<pid>`` being the connecting socat (the kernel's peer credentials, not a claim), before
it closes the connection; the shim exits with it, or with 1 when the bridge never answered.

Only root (Asterisk runs as root in the chroot) may connect: the socket is mode 0600.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import struct
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

log = logging.getLogger(__name__)

SOCKET_NAME = "cti-agi.sock"
STATUS_FILE = "cti-agi.{pid}.status"

# Asterisk runs this as AGI(cti-agi,...); AST_RUN_DIR is the instance's run directory (Asterisk
# sets it for every AGI program). The shim ignores SIGHUP (the hang-up signal is meant for the AGI
# program: cti-agi learns of the hang-up from Asterisk's answers instead), runs socat as a child
# so that it can exit with cti-agi's status, and closes its own copies of the AGI pipes so that
# Asterisk sees the end of the script when socat ends.
SHIM = """#!/bin/sh
# cti-agi for the test bed's chrooted Asterisk: the real cti-agi runs outside the chroot,
# behind the bridge socket (cti_server/asterisk/agi_bridge.py). Installed by `cti asterisk up`.
trap '' HUP
exec 3<&0
socat -t 0.1 STDIO "UNIX-CONNECT:$AST_RUN_DIR/cti-agi.sock" <&3 3<&- &
link=$!
exec 3<&- 0<&- 1>&-
wait "$link"
status=1
done_file="$AST_RUN_DIR/cti-agi.$link.status"
if [ -s "$done_file" ]; then
  status=$(cat "$done_file")
  rm -f "$done_file"
fi
exit "$status"
"""


def cti_agi_command() -> list[str]:
    """``cti-agi`` from this venv (the console script beside this Python), else the module."""
    script = shutil.which("cti-agi", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "cti_server.ivr.channels.agi_main"]


def peer_pid(conn: socket.socket) -> int:
    """The process at the other end of a UNIX socket, as the kernel knows it."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, _uid, _gid = struct.unpack("3i", raw)
    return int(pid)


class AgiBridge:
    """Listens on ``socket_path``; each connection runs ``command`` with it as stdin/stdout."""

    def __init__(
        self,
        socket_path: Path,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        max_calls: int = 200,
    ) -> None:
        self.socket_path = socket_path
        self.command = list(command or cti_agi_command())
        self.env = dict(os.environ if env is None else env)
        self.log_path = log_path
        self.max_calls = max_calls
        self.calls = 0
        self.statuses: list[int] = []  # cti-agi's exit statuses, in order of ending
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.socket_path.unlink(missing_ok=True)
            listener.bind(str(self.socket_path))
        except OSError as exc:
            listener.close()
            raise OSError(f"AGI bridge cannot listen on {self.socket_path}: {exc}") from exc
        self.socket_path.chmod(0o600)
        listener.listen(64)
        listener.setblocking(False)
        self._listener = listener
        self._accepting = asyncio.create_task(self._accept(listener), name="agi-bridge")
        log.info("AGI bridge listening on %s", self.socket_path)

    async def stop(self) -> None:
        """Stop listening; calls still running are ended (their cti-agi terminated)."""
        owned = [t for t in (self._accepting, *self._running) if t is not None]
        for task in owned:
            task.cancel()
        for task in owned:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._accepting = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
            self.socket_path.unlink(missing_ok=True)

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            if len(self._running) >= self.max_calls:
                log.warning("AGI bridge: %d calls running, one refused", self.max_calls)
                conn.close()  # the shim exits 1: the dialplan's fallback takes the call
                continue
            task = asyncio.create_task(self._serve(conn), name="agi-bridge-call")
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _serve(self, conn: socket.socket) -> None:
        self.calls += 1
        try:
            pid = peer_pid(conn)
            conn.setblocking(True)  # cti-agi reads and writes it as plain blocking stdio
            status = await self._run(conn)
            self.statuses.append(status)
            done = self.socket_path.with_name(STATUS_FILE.format(pid=pid))
            partial = done.with_suffix(".partial")
            partial.write_text(f"{status}\n", encoding="ascii")
            partial.replace(done)  # before the link closes: the shim reads it once socat ends
        except OSError as exc:
            log.warning("AGI bridge: a call failed: %s", exc)
        finally:
            conn.close()

    async def _run(self, conn: socket.socket) -> int:
        with contextlib.ExitStack() as stack:
            err = stack.enter_context(self.log_path.open("ab")) if self.log_path else None
            process = await asyncio.create_subprocess_exec(
                *self.command,
                stdin=conn.fileno(),
                stdout=conn.fileno(),
                stderr=err,
                env=self.env,
            )
            try:
                code = await process.wait()
            except asyncio.CancelledError:
                await _end(process)
                raise
        return code if code >= 0 else 128 - code  # killed by a signal: as a shell reports it


async def _end(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), 5.0)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def serve_forever(bridge: AgiBridge) -> None:
    """Run until SIGTERM or SIGINT (``cti asterisk down`` stops it with the instance)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await bridge.start()
    try:
        await stop.wait()
    finally:
        await bridge.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m cti_server.asterisk.agi_bridge --socket PATH``: the bridge on its own, as
    ``cti asterisk up`` starts it beside an instance whose dialplan uses classic AGI."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", type=Path, required=True)
    parser.add_argument("--log", type=Path, default=None, help="cti-agi's stderr (appended)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s agi-bridge: %(message)s")
    asyncio.run(serve_forever(AgiBridge(args.socket, log_path=args.log)))


if __name__ == "__main__":
    main()
