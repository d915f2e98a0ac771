"""The house rules of ../shared/ARCHITECTURE.md, checked on the code: who may import whom, and
what stands at the top of ``cti_server/``.

``agent_ui`` may use only the event vocabulary, the bus and declared protocols of ``cti_server``;
the modules it still reaches beyond that are listed in ``UI_DEBT`` (issue 16 puts the UI behind
one interface): the list may only shrink, and a new reach fails here."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

UI_ALLOWED = ("cti_server.events", "cti_server.bus")
UI_DEBT = {  # module of agent_ui -> the cti_server modules it still imports beyond the rule
    "agent_ui.customers": {"cti_server.telephony.agent_actions"},
    "agent_ui.deps": {
        "cti_server.config",
        "cti_server.telephony.ami_client",
        "cti_server.tracker.tracker",
    },
    "agent_ui.desktop": {
        "cti_server.routing.inputs",
        "cti_server.telephony",
        "cti_server.tracker.model",
    },
    "agent_ui.handover": {"cti_server.speech.text_redaction"},
    "agent_ui.review": {"cti_server.complaints.signals", "cti_server.speech.transcription"},
    "agent_ui.wallboard": {
        "cti_server.routing.router",
        "cti_server.telephony",
        "cti_server.tracker.model",
    },
    "agent_ui.ws": {"cti_server.telephony.agent_actions", "cti_server.telephony.ami_client"},
}
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


def test_the_ui_reaches_the_server_only_through_events_the_bus_and_known_debts() -> None:
    reach = {
        module: {n for n in names if _within(n, ("cti_server",)) and not _within(n, UI_ALLOWED)}
        for module, names in _imports("agent_ui").items()
    }
    reach = {module: names for module, names in reach.items() if names}
    new = {
        m: sorted(n - UI_DEBT.get(m, set())) for m, n in reach.items() if n - UI_DEBT.get(m, set())
    }
    assert not new, f"agent_ui reaches into cti_server beyond events and the bus: {new}"
    paid = {
        m: sorted(d - reach.get(m, set())) for m, d in UI_DEBT.items() if d - reach.get(m, set())
    }
    assert not paid, f"these no longer hold: take them off UI_DEBT: {paid}"


def test_the_top_of_cti_server_is_the_root_the_settings_the_events_and_feature_folders() -> None:
    top = {p.name for p in (ROOT / "cti_server").iterdir() if p.name != "__pycache__"}
    loose = {name for name in top if not (ROOT / "cti_server" / name).is_dir()}
    assert loose == TOP_OF_CTI_SERVER
