"""JSON log lines a log shipper can read, and the logging flags wherever the user types them."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from click.testing import CliRunner

from cti_server.cli.main import main
from cti_server.health.logs import JsonFormatter


def _record(**extra: object) -> logging.LogRecord:
    try:
        raise ValueError("line one\nline two")
    except ValueError:
        record = logging.getLogger("cti_server.sim.demo").makeRecord(
            "cti_server.sim.demo",
            logging.ERROR,
            __file__,
            1,
            "call %s failed",
            ("1700000000.1",),
            exc_info=sys.exc_info(),
            extra=extra,
        )
    return record


def test_a_json_line_carries_time_level_logger_message_and_the_traceback() -> None:
    line = JsonFormatter().format(_record())

    assert "\n" not in line  # one object per line, the traceback inside it
    entry = json.loads(line)
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "cti_server.sim.demo"
    assert entry["message"] == "call 1700000000.1 failed"
    assert entry["time"].endswith("+00:00")
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: line one\nline two" in entry["exception"]


def test_extra_fields_become_keys_of_the_json_line() -> None:
    entry = json.loads(JsonFormatter().format(_record(path="/status", status=503)))

    assert (entry["path"], entry["status"]) == ("/status", 503)


@pytest.mark.parametrize(
    "args",
    [
        ["-v", "ivr", "check"],
        ["ivr", "check", "-v"],
        ["ivr", "-v", "check", "--log-format", "json"],
        ["--log-format", "json", "ivr", "check", "--verbose"],
    ],
)
def test_logging_flags_before_or_after_the_command(args: list[str]) -> None:
    result = CliRunner().invoke(main, args)

    assert result.exit_code == 0, result.output
    assert "flow 'main' ok" in result.output


def test_an_unknown_log_format_names_the_choices() -> None:
    result = CliRunner().invoke(main, ["ivr", "check", "--log-format", "xml"])

    assert result.exit_code == 2
    assert "'text', 'json'" in result.output
