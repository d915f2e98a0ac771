"""Docker Compose v2 as a user runs it, to check docker-compose.yml without a Docker engine:
`docker compose config` validates the file and prints the project it describes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"


def compose_command() -> list[str]:
    """Compose v2: the docker CLI plugin, else the standalone program scripts/bootstrap puts
    into the venv (from Debian sid's package). Without either the install is incomplete: the
    test fails and says so rather than skip, since scripts/bootstrap always provides one."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    beside = Path(sys.executable).parent / "docker-compose"
    found = str(beside) if beside.exists() else shutil.which("docker-compose")
    if not found:
        pytest.fail("no Docker Compose v2 client: run scripts/bootstrap (it installs one)")
    return [found]


def compose_config(compose_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*compose_command(), "-f", str(compose_file), "config", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def compose_project(compose_file: Path = COMPOSE_FILE) -> dict[str, Any]:
    """The project as Compose resolves it (anchors merged, paths absolute, volumes long-form)."""
    result = compose_config(compose_file, "--format", "json")
    assert result.returncode == 0, result.stderr
    project: dict[str, Any] = json.loads(result.stdout)
    return project
