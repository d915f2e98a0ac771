"""The JSON Schema of every public event, written to ``docs/events`` from the models.

``python -m cti_server.integrations.schema_docs docs/events`` rewrites the files; a test checks
that the committed ones equal what the models give, so the documents cannot drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from cti_server.integrations.events import MODELS

DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schemas() -> dict[str, dict[str, Any]]:
    """File name → schema, e.g. ``call.arrived.v1.json``."""
    documents = {}
    for model in MODELS:
        kind = model.model_fields["type"].default
        version = model.model_fields["version"].default
        schema = {"$schema": DIALECT, **model.model_json_schema(mode="serialization")}
        schema["title"] = f"{kind} v{version}"
        documents[f"{kind}.v{version}.json"] = schema
    return documents


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = folder / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m cti_server.integrations.schema_docs FOLDER\n")
        return 2
    for path in write(Path(args[0])):
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
