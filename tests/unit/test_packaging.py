"""What a user installs: the locks in requirements/ (scripts/lock) hold every dependency at one
version with its hashes, and the wheel ships what runs (the models and resources the server
loads) but not the complaint models' training corpora, which stay in the repository."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
LOCKS = {
    "runtime": (ROOT / "requirements" / "runtime.txt", ("postgres",)),
    "dev": (ROOT / "requirements" / "dev.txt", ("postgres", "dev", "embeddings")),
}
DATA = "cti_server/complaints/data"
TRAINING_ONLY = re.compile(rf"^{DATA}/(train_[a-z]+\.csv(\.gz)?|calls_[a-z]+\.csv|training\.yaml)$")
NPM_FILES = ("agent_ui/package.json", "agent_ui/package-lock.json")  # bootstrap's, not the wheel's
PHONE_BUNDLE = "agent_ui/static/vendor/jssip.min.js"  # scripts/bootstrap bundles it; git ignores it
INSTALL_SCRIPTS = {"preinstall", "install", "postinstall", "prepare", "preprepare", "postprepare"}


def _pins(lock: Path) -> dict[str, list[str]]:
    """``{package: [version, ...]}`` (a universal lock may pin two versions behind markers)."""
    pins: dict[str, list[str]] = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", line)
        if match:
            pins.setdefault(canonicalize_name(match[1]), []).append(match[2])
    return pins


def _requirements(extras: tuple[str, ...]) -> Iterator[Requirement]:
    project = PYPROJECT["project"]
    for line in [
        *project["dependencies"],
        *(d for e in extras for d in project["optional-dependencies"][e]),
    ]:
        yield Requirement(line)


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_the_lock_pins_every_dependency_of_pyproject(name: str) -> None:
    """A dependency added to pyproject.toml without `scripts/lock` fails here, not on a fresh
    machine where bootstrap would install without it."""
    lock, extras = LOCKS[name]
    pins = _pins(lock)
    missing = [str(r) for r in _requirements(extras) if canonicalize_name(r.name) not in pins]
    assert not missing, f"{lock.name} lacks {missing}: run scripts/lock"
    for requirement in _requirements(extras):
        for version in pins[canonicalize_name(requirement.name)]:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{lock.name} pins {requirement.name}=={version}, pyproject asks {requirement}"
            )


@pytest.mark.parametrize("name", sorted(LOCKS))
def test_every_pin_is_exact_hashed_and_names_no_local_index(name: str) -> None:
    lock, _ = LOCKS[name]
    text = lock.read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2].strip())
    assert len(entries) > 20
    for entry in entries:
        assert re.match(r"^[A-Za-z0-9._-]+==\S+", entry), entry.splitlines()[0]
        assert "--hash=sha256:" in entry, f"{entry.splitlines()[0]} has no hash"
    # only packages: no machine's own index, find-links, path or editable
    assert not re.search(r"file:|^-e |^--(index-url|extra-index-url|find-links)|^/", text, re.M)
    assert "torch" not in _pins(lock)


def test_runtime_and_dev_agree_on_every_version() -> None:
    runtime, dev = _pins(LOCKS["runtime"][0]), _pins(LOCKS["dev"][0])
    assert set(runtime) <= set(dev)
    assert {n: v for n, v in runtime.items() if dev[n] != v} == {}


def test_the_browser_phone_library_is_pinned_hashed_and_runs_nothing_at_install() -> None:
    """`npm ci` installs exactly the lock: every package at one version with its sha512, fetched
    from the registry npm is configured with (no machine's path or mirror in the lock), and no
    package script of ours runs at install."""
    manifest = json.loads((ROOT / NPM_FILES[0]).read_text(encoding="utf-8"))
    lock = json.loads((ROOT / NPM_FILES[1]).read_text(encoding="utf-8"))
    assert manifest["private"] is True
    wanted = {**manifest["dependencies"], **manifest["devDependencies"]}
    assert set(wanted) == {"jssip", "esbuild"}
    assert [v for v in wanted.values() if not re.fullmatch(r"\d+\.\d+\.\d+", v)] == []
    assert set(manifest.get("scripts", {})) & INSTALL_SCRIPTS == set()
    packages = lock["packages"]
    assert lock["lockfileVersion"] == 3
    root = packages.pop("")
    assert {**root["dependencies"], **root["devDependencies"]} == wanted
    for name, version in wanted.items():
        assert packages[f"node_modules/{name}"]["version"] == version, f"lock is stale: {name}"
    assert len(packages) > 5
    for path, package in packages.items():
        assert package["integrity"].startswith("sha512-"), f"{path} has no hash"
        assert not package.get("resolved", "https://registry.npmjs.org/").startswith(
            ("file:", "/", "http://")
        ), path


# -- the wheel --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this tree, offline (hatchling comes with the dev lock)."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("cti_server-*.whl")
    return built


def _tracked(*paths: str) -> list[str]:
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--", *paths],
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return listed.stdout.split()


@pytest.mark.slow
def test_the_wheel_ships_what_runs_and_not_the_training_corpora(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    # what the server loads at run time: every tracked file of the packages ...
    shipped = [
        p for p in _tracked("cti_server", "crm_core", "agent_ui") if not TRAINING_ONLY.match(p)
    ]
    shipped = [p for p in shipped if not p.endswith("/LICENSES.md") and p not in NPM_FILES]
    assert [p for p in shipped if p not in names] == []
    for model in ("model_en.json.gz", "model_en_e5.json.gz", "model_zh.json.gz", "cues.yaml"):
        assert f"{DATA}/{model}" in names
    # ... and the Asterisk templates and IVR flows beside them
    assert "cti_server/_data/dialplans/extensions.conf.j2" in names
    assert "cti_server/_data/ivr_flows/main.yaml" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    # the corpora and what only trains stay in the repository
    corpora = [p for p in _tracked(DATA) if TRAINING_ONLY.match(p)]
    assert len(corpora) == 6
    assert all((ROOT / p).is_file() for p in corpora)
    assert [n for n in names if TRAINING_ONLY.match(n) or n.endswith("/LICENSES.md")] == []
    # nor what npm installs the browser phone's library from
    assert [n for n in names if n in NPM_FILES or "node_modules" in n] == []


@pytest.mark.slow
def test_the_wheel_ships_the_browser_phone_library_bootstrap_bundled(wheel: Path) -> None:
    """git ignores the bundle, hatch's artifacts bring it into the wheel: the desk's phone works
    from an installed wheel with nothing fetched."""
    built = ROOT / PHONE_BUNDLE
    assert built.is_file(), f"{PHONE_BUNDLE} is not built: run scripts/bootstrap"
    assert zipfile.ZipFile(wheel).read(PHONE_BUNDLE) == built.read_bytes()
    assert _tracked(PHONE_BUNDLE) == []


@pytest.mark.slow
def test_the_installed_wheel_loads_the_complaint_models(wheel: Path, tmp_path: Path) -> None:
    """Installed apart from the source tree (the venv's other packages beside it), the detector
    reads its lexicons, weights and every model, the embedding one too, and judges a text."""
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    script = (
        "import cti_server\n"
        "from cti_server.complaints.detector import ComplaintDetector\n"
        "print(cti_server.__file__)\n"
        "for embeddings in (False, True):\n"
        "    detector = ComplaintDetector(embeddings=embeddings)\n"
        "    detector.load()\n"
        "    for text in (COMPLAINT, REQUEST):\n"
        "        p = detector.text_probability(text, 'en')\n"
        "        print(p >= detector.threshold('en'))\n"
    ).replace("COMPLAINT", repr("this is unacceptable, I have been charged twice and nobody helps"))
    script = script.replace("REQUEST", repr("hello, I would like to check my order status please"))
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    where, *judged = run.stdout.split()
    assert Path(where).is_relative_to(site)
    assert judged == ["True", "False"] * 2  # the linear model, then the embedding one


@pytest.mark.slow
def test_the_source_distribution_keeps_the_corpora_and_no_venv(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "--target", "sdist", "--directory", tmp_path],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (sdist,) = tmp_path.glob("cti_server-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    assert [n for n in _tracked(DATA) if TRAINING_ONLY.match(n) and n not in names] == []
    assert "LICENSE" in names
    assert f"{DATA}/LICENSES.md" in names
    assert [n for n in names if n.startswith(".venv")] == []
