"""The JSON Schema of every public event, and an AsyncAPI 3.0 document of the stream and the
webhooks, written to ``docs/events`` from the models.

``python -m cti_server.integrations.schema_docs docs/events`` rewrites the files; a test checks
that the committed ones equal what the models give, so the documents cannot drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from cti_server.integrations.events import MODELS
from cti_server.integrations.signing import HEADER

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


def _kind(model: type[Any]) -> str:
    return str(model.model_fields["type"].default)


def asyncapi() -> dict[str, Any]:
    """The stream and the webhooks as AsyncAPI 3.0: one message per event type."""
    _, top = models_json_schema(
        [(model, "serialization") for model in MODELS],
        ref_template="#/components/schemas/{model}",
    )
    messages = {
        _kind(model): {
            "name": _kind(model),
            "title": f"{_kind(model)} v1",
            "summary": (model.__doc__ or "").strip(),
            "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        }
        for model in MODELS
    }
    refs = {kind: {"$ref": f"#/components/messages/{kind}"} for kind in messages}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "cti-server events",
            "version": "1",
            "description": "Versioned call and complaint events for other systems; see README.md.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "cti": {
                "host": "cti.example.com",
                "protocol": "wss",
                "description": "The CTI server (behind its TLS proxy).",
                "security": [{"$ref": "#/components/securitySchemes/apiToken"}],
            }
        },
        "channels": {
            "stream": {
                "address": "/api/events/stream",
                "description": "Topics by ?topics=call.* or a subscribe message.",
                "servers": [{"$ref": "#/servers/cti"}],
                "messages": refs,
            },
            "webhook": {
                "address": None,
                "description": "POSTed to each configured receiver, signed with its secret.",
                "messages": refs,
            },
        },
        "operations": {
            "receiveEvents": {
                "action": "receive",
                "channel": {"$ref": "#/channels/stream"},
                "messages": [{"$ref": f"#/channels/stream/messages/{kind}"} for kind in messages],
            },
            "deliverWebhook": {
                "action": "send",
                "channel": {"$ref": "#/channels/webhook"},
                "description": f"One POST per event; {HEADER}: t=<unix time>,v1=<hex HMAC>.",
                "messages": [{"$ref": f"#/channels/webhook/messages/{kind}"} for kind in messages],
            },
        },
        "components": {
            "schemas": top["$defs"],
            "messages": messages,
            "securitySchemes": {
                "apiToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A CRM API token (POST /api/tokens).",
                }
            },
        },
    }


def documents() -> dict[str, dict[str, Any]]:
    """Every file of ``docs/events`` that the code writes."""
    return {**schemas(), "asyncapi.json": asyncapi()}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in documents().items():
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
