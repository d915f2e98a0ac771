"""Flow files: the shipped ones are valid; broken ones are refused naming file, step, problem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from cti_server.asterisk.data import data_dir
from cti_server.cli.main import main
from cti_server.ivr.flow import FlowError, load_flow
from cti_server.ivr.registry import FlowRegistry

FLOWS = data_dir("ivr_flows")


def test_shipped_flows_are_valid() -> None:
    result = CliRunner().invoke(main, ["ivr", "check"])
    assert result.exit_code == 0, result.output
    assert "main.yaml: flow 'main' ok" in result.output


def _write(tmp_path: Path, flow: dict[str, object], name: str = "broken.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(flow, allow_unicode=True), encoding="utf-8")
    return path


def _base() -> dict[str, object]:
    main_flow = yaml.safe_load((FLOWS / "main.yaml").read_text(encoding="utf-8"))
    assert isinstance(main_flow, dict)
    return main_flow


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda f: f["steps"]["menu"]["choices"].update({"3": "nowhere"}),
            "step 'menu': goes to unknown step 'nowhere'",
        ),
        (
            lambda f: f["steps"].update(
                {"orphan": {"type": "play", "prompt": "welcome", "next": "menu"}}
            ),
            "step 'orphan': unreachable",
        ),
        (
            lambda f: f["steps"].update(
                {"menu": {"type": "play", "prompt": "welcome", "next": "welcome"}}
            ),
            "loops with no way to a transfer or hang-up",
        ),
        (lambda f: f["steps"]["welcome"].update({"type": "dance"}), "step 'welcome'"),
        (lambda f: f["steps"]["menu"].update({"timeout": "soon"}), "step 'menu', timeout"),
        (lambda f: f.update({"start": "nope"}), "start: unknown step 'nope'"),
        (
            lambda f: f["steps"]["welcome"].update({"prompt": "no_such_prompt"}),
            "step 'welcome': prompt 'no_such_prompt' missing in 'en'",
        ),
    ],
)
def test_broken_flows_are_refused_with_the_step_and_problem(
    tmp_path: Path, change: object, expected: str
) -> None:
    flow = _base()
    change(flow)  # type: ignore[operator]
    path = _write(tmp_path, flow)
    with pytest.raises(FlowError) as raised:
        load_flow(path, FLOWS / "prompts")
    assert str(raised.value).startswith("broken.yaml:")
    assert expected in str(raised.value)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [unclosed", encoding="utf-8")
    with pytest.raises(FlowError, match=r"bad\.yaml: not valid YAML"):
        load_flow(bad)
    bad.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(FlowError, match="a flow is a mapping"):
        load_flow(bad)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda f: f["steps"]["menu"]["choices"].update({"3": "nowhere"}),
            "step 'menu': goes to unknown step 'nowhere'",
        ),
        (
            lambda f: f["steps"].update(
                {"orphan": {"type": "play", "prompt": "welcome", "next": "menu"}}
            ),
            "step 'orphan': unreachable from 'identify'",
        ),
        (
            lambda f: f["steps"]["closed"].update({"prompt": "nope"}),
            "step 'closed': prompt 'nope' missing in 'en'",
        ),
        (
            lambda f: f["steps"].update(
                {"menu": {"type": "play", "prompt": "welcome", "next": "welcome"}}
            ),
            "step 'menu': loops with no way to a transfer or hang-up",
        ),
        (
            lambda f: f["steps"]["menu"].update({"retries": "many"}),
            "step 'menu', retries: Input should be a valid integer",
        ),
        (
            lambda f: f["steps"]["last_order"].update({"function": "horoscope"}),
            "step 'last_order': lookup function 'horoscope' is not registered",
        ),
        (
            lambda f: f["steps"]["english"].update({"attributes": {"language": "fr"}}),
            "step 'english': sets language 'fr', not one of the flow's languages (en, zh)",
        ),
    ],
    ids=[
        "unknown-step",
        "unreachable-step",
        "missing-prompt",
        "loop-without-exit",
        "wrong-type",
        "unregistered-lookup",
        "language-outside-flow",
    ],
)
def test_cli_check_names_file_step_and_problem_for_every_kind(
    tmp_path: Path, change: object, expected: str
) -> None:
    (tmp_path / "prompts").symlink_to(FLOWS / "prompts")
    flow = _base()
    change(flow)  # type: ignore[operator]
    path = _write(tmp_path, flow)
    result = CliRunner().invoke(main, ["ivr", "check", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("broken.yaml: ")
    assert expected in result.output


def test_cli_check_says_a_flow_without_prompts_cannot_be_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, _base())
    result = CliRunner().invoke(main, ["ivr", "check", str(path)])
    assert result.exit_code == 1
    assert "broken.yaml: no prompts directory prompts/ beside it" in result.output
    (tmp_path / "prompts").symlink_to(FLOWS / "prompts")
    result = CliRunner().invoke(main, ["ivr", "check", str(path)])
    assert result.exit_code == 0, result.output


def test_cli_check_exits_1_naming_the_problem(tmp_path: Path) -> None:
    flow = _base()
    flow["start"] = "nope"
    _write(tmp_path, flow)
    result = CliRunner().invoke(main, ["ivr", "check", str(tmp_path / "broken.yaml")])
    assert result.exit_code == 1
    assert "start: unknown step 'nope'" in result.output


def test_a_broken_change_keeps_the_old_flow_serving(tmp_path: Path) -> None:
    path = _write(tmp_path, _base(), "main.yaml")
    registry = FlowRegistry(tmp_path)
    first = registry.get("main")
    assert first is not None
    path.write_text("name: main\nsteps: {}\n", encoding="utf-8")
    os.utime(path, (1, 1))  # a different mtime, whatever the clock's resolution
    assert registry.get("main") is first
    assert "main" in registry.errors
    fixed = _base()
    fixed["steps"]["welcome"]["prompt"] = "please_hold"  # type: ignore[index]
    _write(tmp_path, fixed, "main.yaml")
    os.utime(path, (2, 2))
    reloaded = registry.get("main")
    assert reloaded is not None
    assert reloaded is not first
    assert "main" not in registry.errors
