"""`cti serve` as an operator starts it, no Asterisk needed: a part that cannot start is one line
on standard error and exit 1, never a hang, on Python 3.11 (.venv) and 3.12 (.venv-3.12)."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from cti_server.config import Settings, load_settings, serve_environment
from tests.support.ports import free_port

REPO = Path(__file__).resolve().parents[2]
HANG = 60.0  # seconds: a start-up failure slower than this is a hang
TROUBLE = ("Traceback", "Task was destroyed", "Unclosed", "was never awaited")


@pytest.fixture(params=["venv", "venv-3.12"])
def cti(request: pytest.FixtureRequest) -> str:
    """The `cti` program of the test's interpreter, then of .venv-3.12 (scripts/bootstrap)."""
    if request.param == "venv":
        return str(Path(sys.executable).parent / "cti")
    program = REPO / ".venv-3.12" / "bin" / "cti"
    if not program.exists():
        if shutil.which("python3.12") is None:  # (a pyenv shim counts: the version is there)
            pytest.skip("no Python 3.12 on this machine to try `cti serve` with")
        pytest.fail(".venv-3.12 is missing: scripts/bootstrap builds it (Python 3.12, project)")
    return str(program)


def _settings(tmp_path: Path, **overrides: Mapping[str, object]) -> Settings:
    parts: dict[str, dict[str, object]] = {
        "ami": {"secret": "x", "port": free_port()},  # nothing listens there: AMI stays down
        "agi": {"port": free_port()},
        "http": {"port": free_port()},
        "speech": {"port": free_port()},
        "database": {"url": f"sqlite+aiosqlite:///{tmp_path / 'cti.db'}"},
        "recorder": {"spool_path": str(tmp_path / "spool.jsonl")},
    }
    for section, values in overrides.items():
        parts[section] = {**parts.get(section, {}), **values}
    return load_settings(None, **parts)


@pytest.fixture
def held_port() -> Iterator[tuple[socket.socket, int]]:
    """A loopback port another program already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock, sock.getsockname()[1]


def _serve(cti: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    try:
        result = subprocess.run(
            [cti, "serve"],
            env={**env, "PYTHONASYNCIODEBUG": "1"},  # asyncio reports pending tasks, leaks
            capture_output=True,
            text=True,
            timeout=HANG,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"cti serve hung for {HANG:g} s:\n{exc.stderr!r}") from None
    assert result.returncode == 1, (time.monotonic() - started, result.stderr)
    return result


def _the_one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The failure as the operator reads it: last, alone, without a traceback or a leak."""
    said = [line for line in result.stderr.splitlines() if line.startswith("cti serve:")]
    assert len(said) == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == said[0]
    for trouble in TROUBLE:
        assert trouble not in result.stderr, result.stderr
    return said[0]


@pytest.mark.parametrize(
    ("listener", "section"),
    [("FastAGI", "agi"), ("HTTP", "http"), ("AudioSocket", "speech")],
)
def test_a_taken_port_is_one_line_and_exit_1_not_a_hang(
    cti: str,
    tmp_path: Path,
    held_port: tuple[socket.socket, int],
    listener: str,
    section: str,
) -> None:
    _, port = held_port
    model = tmp_path / "model"
    (model / "am").mkdir(parents=True)  # AudioSocket listens only where a model is configured
    settings = _settings(tmp_path, **{section: {"port": port}})
    env = serve_environment(settings)
    env["CTI_SPEECH__MODELS"] = f'{{"ko": "{model}"}}'
    env["CTI_SPEECH__PORT"] = str(port if section == "speech" else settings.speech.port)

    line = _the_one_line(_serve(cti, env))

    assert line == (
        f"cti serve: cannot start: {listener} cannot listen on 127.0.0.1:{port} "
        f"({section}.host, {section}.port): Address already in use"
    )


@pytest.mark.parametrize(
    ("database", "reason"),
    [
        ("{tmp}/a-file/cti.db", "unable to open database file"),
        ("file:{tmp}/read-only.db?mode=ro&uri=true", "attempt to write a readonly database"),
    ],
    ids=["path-under-a-file", "read-only"],
)
def test_a_database_that_cannot_be_written_is_one_line_and_exit_1(
    tmp_path: Path, database: str, reason: str
) -> None:
    (tmp_path / "a-file").write_text("not a directory\n")
    sqlite3.connect(tmp_path / "read-only.db").close()
    url = "sqlite+aiosqlite:///" + database.format(tmp=tmp_path)
    env = serve_environment(_settings(tmp_path, database={"url": url}))

    line = _the_one_line(_serve(str(Path(sys.executable).parent / "cti"), env))

    assert line.startswith("cti serve: cannot start: database sqlite+aiosqlite:///")
    assert line.endswith(f"(database.url): {reason}")
