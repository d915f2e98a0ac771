"""The tests' own house rule: what tests share lives in ``tests/support`` (or a conftest), so no
test module imports another test module; a helper found in one is moved, not borrowed."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

# (importer, imported) pairs being moved by their owner; this list may only shrink
KNOWN = {("tests/fuzz/test_ui_text.py", "tests.fuzz.test_hostile_input")}


def _imported_test_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("tests.") and n.rsplit(".", 1)[-1].startswith("test_")}


def test_no_test_module_imports_another() -> None:
    found = {
        (str(path.relative_to(TESTS.parent)), module)
        for path in sorted(TESTS.rglob("*.py"))
        for module in _imported_test_modules(path)
    }
    assert found <= KNOWN, f"move what these share to tests/support: {sorted(found - KNOWN)}"
