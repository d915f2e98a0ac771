"""The house rules of ../shared/ARCHITECTURE.md, checked on the code: who may import whom, and
what stands at the top of ``cti_server/``.

``agent_ui`` may use only the event vocabulary, the bus and the declared protocols of
``cti_server`` (``cti_server.control``), which import no implementation."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

UI_ALLOWED = ("cti_server.events", "cti_server.bus", "cti_server.control")
CONTROL_MAY_NOT_IMPORT = (  # the protocols declare; the implementations live elsewhere
    "cti_server.telephony",
    "cti_server.tracker",
    "cti_server.routing",
    "cti_server.speech",
    "cti_server.complaints",
    "cti_server.config",
)
TOP_OF_CTI_SERVER = {"__init__.py", "app.py", "config.py", "events.py"}


def _imports(package: str) -> dict[str, set[str]]:
    """Module -> the modules it imports (absolute names; ``from x import y`` gives x)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
        found[module] = names
    return found


def _within(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def test_crm_core_imports_neither_the_server_nor_the_ui() -> None:
    wrong = {
        module: sorted(n for n in names if _within(n, ("cti_server", "agent_ui")))
        for module, names in _imports("crm_core").items()
    }
    assert not {m: n for m, n in wrong.items() if n}


def test_the_ui_reaches_the_server_only_through_events_the_bus_and_the_control_protocols() -> None:
    reach = {
        module: sorted(
            n for n in names if _within(n, ("cti_server",)) and not _within(n, UI_ALLOWED)
        )
        for module, names in _imports("agent_ui").items()
    }
    reach = {module: names for module, names in reach.items() if names}
    assert not reach, f"agent_ui reaches into cti_server beyond events, bus and control: {reach}"


def test_the_control_package_declares_and_implements_nothing_of_the_server() -> None:
    wrong = {
        module: sorted(n for n in names if _within(n, CONTROL_MAY_NOT_IMPORT))
        for module, names in _imports("cti_server/control").items()
    }
    assert not {m: n for m, n in wrong.items() if n}


def test_the_top_of_cti_server_is_the_root_the_settings_the_events_and_feature_folders() -> None:
    top = {p.name for p in (ROOT / "cti_server").iterdir() if p.name != "__pycache__"}
    loose = {name for name in top if not (ROOT / "cti_server" / name).is_dir()}
    assert loose == TOP_OF_CTI_SERVER


def test_each_feature_folder_says_which_module_does_what() -> None:
    """A reader knows where a thing lives before opening a file: every module and subpackage of
    a folder of ``cti_server`` is named (``name``) in its package docstring, by its role."""
    unnamed: dict[str, list[str]] = {}
    for init in sorted((ROOT / "cti_server").rglob("__init__.py")):
        folder = init.parent
        if folder == ROOT / "cti_server":
            continue
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        parts = [
            p.stem if p.suffix == ".py" else p.name
            for p in folder.iterdir()
            if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").exists()
        ]
        missing = sorted(name for name in parts if f"``{name}``" not in doc)
        if missing:
            unnamed[str(folder.relative_to(ROOT))] = missing
    assert not unnamed, f"name these modules in their package's docstring: {unnamed}"
