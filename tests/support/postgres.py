"""A throw-away PostgreSQL cluster of our own, from the Debian packages' binaries.

It never touches the system cluster Debian's ``postgresql`` package may have created:
``initdb`` makes a fresh data directory in a work dir, ``postgres`` runs as our child on a
free loopback port with its socket in that work dir, and ``stop()`` removes it all.
PostgreSQL refuses to run as root, so as root every server-side program runs as the
``postgres`` OS user (``runuser``) and the work dir is handed to that user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from tests.support.ports import free_port

PG_ROOT = Path("/usr/lib/postgresql")
SERVER_PROGRAMS = ("initdb", "postgres", "pg_ctl", "pg_isready")
CLIENT_PROGRAMS = ("createdb", "dropdb")
SUPERUSER = "cti"
OS_USER = "postgres"
_DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """``/usr/lib/postgresql/15/bin`` -> (15,); unparsable versions sort lowest."""
    try:
        return tuple(int(part) for part in bin_dir.parent.name.split("."))
    except ValueError:
        return (-1,)


def find_bin_dir() -> Path | None:
    """The newest installed ``/usr/lib/postgresql/*/bin`` with every program we run."""
    candidates = sorted(PG_ROOT.glob("*/bin"), key=_version_key, reverse=True)
    for bin_dir in candidates:
        if all((bin_dir / p).is_file() for p in SERVER_PROGRAMS + CLIENT_PROGRAMS):
            return bin_dir
    return None


def _clean_env() -> dict[str, str]:
    """Our environment without PG* settings that would redirect the client programs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"  # program messages we may quote in errors stay in English
    return env


def _utf8_locale_name() -> str | None:
    """The C.UTF-8 locale if this system has it (glibc lists it as ``C.utf8``)."""
    try:
        listed = subprocess.run(
            ["locale", "-a"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    names = {line.strip().lower().replace("-", "") for line in listed.splitlines()}
    return "C.UTF-8" if "c.utf8" in names else None


class PostgresError(RuntimeError):
    """The throw-away cluster could not be set up, started or used."""


class PostgresServer:
    """One PostgreSQL cluster in ``workdir``: ``start()``, ``create_database()``, ``stop()``.

    ``workdir`` must be empty or missing and, when running as root, reachable by the
    ``postgres`` OS user (pytest's own 0700 temp root is not; use ``tempfile.mkdtemp()``).
    ``stop()`` removes ``workdir``.
    """

    def __init__(self, workdir: Path) -> None:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PostgresError(self.unavailable_reason() or "no PostgreSQL binaries")
        self.bin_dir = bin_dir
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.socket_dir = workdir / "sock"
        self.log_path = workdir / "postgres.log"
        self.port = 0
        self.host = "127.0.0.1"
        self.init_seconds = 0.0  # how long initdb took
        self.start_seconds = 0.0  # from spawning postgres until it accepted connections
        self._as_root = os.geteuid() == 0
        self._process: subprocess.Popen[bytes] | None = None

    # -- availability -------------------------------------------------------------------

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why a cluster cannot be started here, or None when it can."""
        if find_bin_dir() is None:
            return (
                f"PostgreSQL server binaries not found under {PG_ROOT}/*/bin "
                "(apt-get install postgresql, or run scripts/bootstrap)"
            )
        if os.geteuid() == 0:
            try:
                pwd.getpwnam(OS_USER)
            except KeyError:
                return f"running as root but there is no '{OS_USER}' OS user to run PostgreSQL"
            if _runuser() is None:
                return "running as root but runuser (util-linux) is missing"
        return None

    @classmethod
    def available(cls) -> bool:
        """False when no PostgreSQL server binaries are installed (or cannot be used)."""
        return cls.unavailable_reason() is None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def version(self) -> str:
        return self.bin_dir.parent.name

    def start(self, timeout: float = 30.0, port: int | None = None) -> None:
        """initdb a fresh cluster and start it (on ``port`` if given); wait until it answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if self._as_root:
            entry = pwd.getpwnam(OS_USER)
            for path in (self.workdir, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self._check_reachable()
        began = time.monotonic()
        self._initdb()
        self.init_seconds = time.monotonic() - began
        # free_port() can race with another process taking the port; retry on a new one.
        for attempt in range(3):
            self.port = port or free_port()
            began = time.monotonic()
            if self._spawn_and_wait(timeout, last_attempt=attempt == 2):
                self.start_seconds = time.monotonic() - began
                return

    def stop(self) -> None:
        """Fast shutdown (disconnects clients), wait for it, then remove the work dir."""
        try:
            if self._process is not None and self._process.poll() is None:
                self._shutdown(self._process)
        finally:
            self._process = None
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- databases ----------------------------------------------------------------------

    def url(self, name: str) -> str:
        return f"postgresql+asyncpg://{SUPERUSER}@{self.host}:{self.port}/{name}"

    def create_database(self, name: str, template: str = "template0") -> str:
        """Create database ``name`` (a copy of ``template``) and return its SQLAlchemy URL."""
        self._check_name(name)
        self._check_name(template)
        self._client("createdb", "--encoding=UTF8", f"--template={template}", "--", name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, disconnecting anyone still using it."""
        self._check_name(name)
        self._client("dropdb", "--if-exists", "--force", "--", name)

    # -- internals ----------------------------------------------------------------------

    def _command(self, program: str, *args: str) -> list[str]:
        """A server-side program's argv, run as the postgres OS user when we are root."""
        return self._as_os_user([str(self.bin_dir / program), *args])

    def _as_os_user(self, argv: list[str]) -> list[str]:
        if not self._as_root:
            return argv
        runuser = _runuser()
        assert runuser is not None  # unavailable_reason() checked
        return [runuser, "-u", OS_USER, "--", *argv]

    def _check_reachable(self) -> None:
        probe = subprocess.run(
            self._as_os_user(["test", "-w", str(self.workdir)]),
            env=_clean_env(),
            check=False,
            timeout=30,
        )
        if probe.returncode != 0:
            raise PostgresError(
                f"the '{OS_USER}' OS user cannot write {self.workdir}: is a parent directory "
                "private to root? (use tempfile.mkdtemp() rather than pytest's tmp_path)"
            )

    def _initdb(self) -> None:
        locale = _utf8_locale_name() or "C"
        result = subprocess.run(
            self._command(
                "initdb",
                f"--pgdata={self.data_dir}",
                "--auth=trust",
                f"--username={SUPERUSER}",
                "--encoding=UTF8",
                f"--locale={locale}",
                "--no-instructions",
            ),
            cwd=self.workdir,
            env=_clean_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if result.returncode != 0:
            raise PostgresError(
                f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )

    def _spawn_and_wait(self, timeout: float, *, last_attempt: bool) -> bool:
        """Start postgres on ``self.port``; True once ready, False if the port was taken."""
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                self._command(
                    "postgres",
                    "-D",
                    str(self.data_dir),
                    "-p",
                    str(self.port),
                    "-k",
                    str(self.socket_dir),
                    "-c",
                    f"listen_addresses={self.host}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ),
                cwd=self.workdir,
                env=_clean_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._process = process
        deadline = time.monotonic() + timeout
        while True:
            if self._ready():
                return True
            if process.poll() is not None:
                self._process = None
                output = self._log_since(log_start)
                if "could not bind" in output and not last_attempt:
                    return False
                raise PostgresError(f"postgres exited ({process.returncode}):\n{output}")
            if time.monotonic() >= deadline:
                self._shutdown(process)
                self._process = None
                raise PostgresError(
                    f"postgres not ready within {timeout} s:\n{self._log_since(log_start)}"
                )
            time.sleep(0.02)

    def _ready(self) -> bool:
        result = subprocess.run(
            [
                str(self.bin_dir / "pg_isready"),
                "--quiet",
                f"--host={self.host}",
                f"--port={self.port}",
                f"--username={SUPERUSER}",
                "--dbname=postgres",
                "--timeout=1",
            ],
            env=_clean_env(),
            check=False,
            timeout=10,
        )
        return result.returncode == 0

    def _shutdown(self, process: subprocess.Popen[bytes]) -> None:
        subprocess.run(
            self._command("pg_ctl", "stop", f"--pgdata={self.data_dir}", "-m", "fast", "-w"),
            cwd=self.workdir,
            env=_clean_env(),
            capture_output=True,
            check=False,
            timeout=60,
        )
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            # runuser does not pass SIGKILL on: hit the postmaster itself, then runuser.
            pid = self._postmaster_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGQUIT)
            process.kill()
            process.wait(10)

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def _client(self, program: str, *args: str) -> None:
        """A client program (createdb, dropdb) against our server, as the cti superuser."""
        result = subprocess.run(
            [
                str(self.bin_dir / program),
                f"--host={self.host}",
                f"--port={self.port}",
                f"--username={SUPERUSER}",
                "--no-password",
                *args,
            ],
            env=_clean_env(),
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise PostgresError(f"{program} {' '.join(args)} failed: {result.stderr.strip()}")

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as log:
                log.seek(offset)
                return log.read().decode(errors="replace")
        except OSError:
            return "(no log)"

    @staticmethod
    def _check_name(name: str) -> None:
        if not _DB_NAME.fullmatch(name):
            raise ValueError(f"database name {name!r} must match {_DB_NAME.pattern}")


def _runuser() -> str | None:
    return shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if Path(p).is_file()), None
    )
