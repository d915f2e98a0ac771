"""docker-compose.yml is checked by Docker Compose itself (`docker compose config`): the engine
cannot run here, but the client validates the file as a user's `docker compose up` would."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from cti_server.asterisk.render import InstanceDirs
from tests.support.compose import COMPOSE_FILE, ROOT, compose_config, compose_project

SERVICES = {"dialplan", "asterisk", "cti", "redis", "postgres"}


def test_docker_compose_config_accepts_the_file_with_every_service() -> None:
    project = compose_project()
    assert set(project["services"]) == SERVICES


def test_secrets_reach_the_containers_as_files_never_as_values() -> None:
    project = compose_project()
    secret_like = re.compile(r"(SECRET|PASSWORD|TOKEN)$")
    for name, service in project["services"].items():
        for variable in service.get("environment") or {}:
            assert not secret_like.search(variable), f"{name} gets {variable} as a value"
    for secret in project["secrets"].values():
        assert Path(secret["file"]).parent == ROOT / "secrets"
    assert "secrets/" in (ROOT / ".gitignore").read_text()


def test_a_broken_file_is_refused_with_the_reason(tmp_path: Path) -> None:
    text = COMPOSE_FILE.read_text()
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace("\n  redis:\n", "\n  redis:\n    restart: sometimes\n", 1))
    result = compose_config(broken, "-q")
    assert result.returncode != 0
    assert "restart" in result.stderr


def _mounts(service: dict[str, Any]) -> dict[PurePosixPath, dict[str, Any]]:
    """The service's named-volume mounts by container path (bind mounts would not survive a
    move to another host, anonymous volumes not a recreate)."""
    mounts = {}
    for mount in service.get("volumes") or []:
        assert mount["type"] == "volume", f"{mount['target']} is not a named volume"
        assert mount.get("source"), f"{mount['target']} is an anonymous volume"
        mounts[PurePosixPath(mount["target"])] = mount
    return mounts


def _volume_holding(service: dict[str, Any], path: PurePosixPath) -> dict[str, Any] | None:
    for target, mount in _mounts(service).items():
        if path == target or target in path.parents:
            return mount
    return None


def test_the_recorders_journal_survives_a_recreated_container() -> None:
    project = compose_project()
    cti = project["services"]["cti"]
    journal = PurePosixPath(cti["environment"]["CTI_RECORDER__SPOOL_PATH"])
    assert journal.is_absolute()  # not under the working directory of the image
    mount = _volume_holding(cti, journal)
    assert mount is not None, f"the journal {journal} is on no volume"
    assert not mount.get("read_only")
    assert mount["source"] in project["volumes"]


def test_recordings_that_asterisk_writes_are_what_cti_reads() -> None:
    project = compose_project()
    asterisk, cti = project["services"]["asterisk"], project["services"]["cti"]
    # Debian's asterisk.conf (kept by the image's entrypoint) spools into the default directory
    monitor = PurePosixPath(InstanceDirs().spool) / "monitor"
    written = _mounts(asterisk).get(monitor)
    assert written is not None, f"asterisk's {monitor} is on no volume"
    assert not written.get("read_only")
    recordings = PurePosixPath(cti["environment"]["CTI_TRANSCRIPTION__RECORDINGS_PATH"])
    read = _mounts(cti).get(recordings)
    assert read is not None, f"cti's recordings_path {recordings} is on no volume"
    assert read["source"] == written["source"]
    assert written["source"] in project["volumes"]


def test_production_renders_no_simulated_callers_or_agents() -> None:
    services = compose_project()["services"]
    for name in ("dialplan", "cti"):  # the renderer and the server agree on it
        assert services[name]["environment"]["CTI_DIALPLAN__SIMULATION"] == "false"


# A tag that names one release: a full version (PostgreSQL's are two numbers), a dated snapshot
# (Debian's), or a digest. A bare major version (postgres:15, python:3.11-slim) moves.
_EXACT = re.compile(
    r"[\w./-]+(@sha256:[0-9a-f]{64}"
    r"|:(\d+\.\d+\.\d+|[\w-]*\d{8})[\w.-]*"
    r"|(?<=postgres):\d+\.\d+[\w.-]*)"
)


def _bases(dockerfile: Path) -> list[str]:
    text = dockerfile.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.MULTILINE))
    return [args.get(base.strip("${}"), base) for base in re.findall(r"^FROM (\S+)", text, re.M)]


def test_the_exact_tag_check_refuses_moving_tags() -> None:
    for moving in ("postgres:15", "redis:7", "python:3.11-slim", "debian:sid-slim", "redis:latest"):
        assert not _EXACT.fullmatch(moving), moving
    for exact in (
        "postgres:15.10-bookworm",
        "python:3.11.11-slim-bookworm",
        "debian:sid-20250113-slim",
        "redis@sha256:" + "0" * 64,
    ):
        assert _EXACT.fullmatch(exact), exact


def test_every_image_is_an_exact_tag() -> None:
    """A rebuild or a pull next month starts from the same base."""
    for name, service in compose_project()["services"].items():
        if "build" not in service:
            assert _EXACT.fullmatch(service["image"]), f"{name}: {service['image']}"
    dockerfiles = sorted((ROOT / "docker").glob("*/Dockerfile"))
    assert len(dockerfiles) == 2
    for dockerfile in dockerfiles:
        bases = _bases(dockerfile)
        assert bases, dockerfile
        for base in bases:
            assert _EXACT.fullmatch(base), f"{dockerfile.relative_to(ROOT)}: FROM {base}"


def test_cti_is_probed_for_liveness_not_readiness() -> None:
    """A restart cures a stuck server, not an Asterisk that is down."""
    probe = " ".join(compose_project()["services"]["cti"]["healthcheck"]["test"])
    assert "/healthz" in probe
    assert "/status" not in probe
