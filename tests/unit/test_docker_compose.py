"""docker-compose.yml is checked by Docker Compose itself (`docker compose config`): the engine
cannot run here, but the client validates the file as a user's `docker compose up` would."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"dialplan", "asterisk", "cti", "redis", "postgres"}


def _compose() -> list[str]:
    """Compose v2: the docker CLI plugin, else the standalone program scripts/bootstrap puts
    into the venv (from Debian sid's package)."""
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
        pytest.skip("no Docker Compose v2 client (scripts/bootstrap installs one)")
    return [found]


def _config(compose_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_compose(), "-f", str(compose_file), "config", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_docker_compose_config_accepts_the_file_with_every_service() -> None:
    result = _config(ROOT / "docker-compose.yml", "--format", "json")
    assert result.returncode == 0, result.stderr
    project = json.loads(result.stdout)
    assert set(project["services"]) == SERVICES


def test_secrets_reach_the_containers_as_files_never_as_values() -> None:
    project = json.loads(_config(ROOT / "docker-compose.yml", "--format", "json").stdout)
    secret_like = re.compile(r"(SECRET|PASSWORD|TOKEN)$")
    for name, service in project["services"].items():
        for variable in service.get("environment") or {}:
            assert not secret_like.search(variable), f"{name} gets {variable} as a value"
    for secret in project["secrets"].values():
        assert Path(secret["file"]).parent == ROOT / "secrets"
    assert "secrets/" in (ROOT / ".gitignore").read_text()


def test_a_broken_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace("\n  redis:\n", "\n  redis:\n    restart: sometimes\n", 1))
    result = _config(broken, "-q")
    assert result.returncode != 0
    assert "restart" in result.stderr
