"""What the server writes to its log: level, text or JSON lines, and the HTTP access log.

Configured by the ``cti`` command (flags, then ``[logging]`` settings), never on import.
The JSON form is one object per line for log shippers (journald, Docker, Loki): ``time`` (UTC,
ISO 8601), ``level``, ``logger``, ``message``, ``exception`` (the traceback text, when there is
one) and any ``extra`` fields the call gave.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
ACCESS_LOGGER = "aiohttp.access"
_HANDLER = "cti"  # the name of the root handler configure_logging owns
# attributes every LogRecord has: anything else on a record came from ``extra=``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a traceback stays inside its line as ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: int, log_format: LogFormat) -> None:
    """Send every logger to standard error at ``level`` in the chosen format.

    Called again, it replaces what it set before (flags after the command name and the settings
    refine what the group set). Where someone else already handles the root logger (a test
    runner, a program embedding the CLI), it leaves logging alone, as ``basicConfig`` does.
    """
    root = logging.getLogger()
    ours = [handler for handler in root.handlers if handler.get_name() == _HANDLER]
    if len(ours) < len(root.handlers):
        return
    for handler in ours:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER)
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # chatty at INFO on every start


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log, one line per request, with the path but never the query string
    (tokens and phone numbers travel there); the fields are also ``extra`` for JSON lines."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %d %.3fs',
            request.remote or "-",
            request.method,
            request.path,
            response.status,
            response.body_length,
            time,
            extra={
                "remote": request.remote,
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "bytes": response.body_length,
                "seconds": round(time, 6),
            },
        )
