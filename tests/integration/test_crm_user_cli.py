"""`cti crm user`: create (the old form kept), change, disable, re-enable, list and audit users
from the command line, with passwords from the environment only."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from cti_server.cli.main import main

SECRET = "a password nobody types on argv"


class Cli:
    def __init__(self, url: str) -> None:
        self.env = {"CTI_DATABASE__URL": url, "CTI_NEW_PASSWORD": SECRET}

    def __call__(self, *args: str, **env: str) -> Result:
        return CliRunner().invoke(main, ["crm", "user", *args], env={**self.env, **env})


@pytest.fixture
def cli(crm_database_url: str) -> Cli:
    return Cli(crm_database_url)


def test_users_are_created_changed_disabled_and_listed_and_every_change_is_audited(
    cli: Cli,
) -> None:
    created = cli("alice", "--role", "agent", "--extension", "8101")  # as scripts do today
    assert created.exit_code == 0, created.output
    assert created.output.startswith("user 'alice' (agent) created with id ")
    assert cli("create", "root", "--role", "admin").exit_code == 0

    again = cli("alice", "--role", "admin")
    assert again.exit_code == 1
    assert "user 'alice' exists already (to change it: cti crm user set alice ...)" in (
        again.output
    )

    steps = [
        (["set", "alice", "--role", "admin"], "user 'alice' (admin, active)"),
        (["set", "alice", "--extension", "8102", "--name", "Alice Wong"], "(admin, active)"),
        (["set", "alice", "--no-extension"], "(admin, active)"),
        (["set", "alice", "--password"], "(admin, active)"),
        (["disable", "alice"], "user 'alice' (admin, disabled)"),
    ]
    for args, said in steps:
        result = cli(*args, CTI_NEW_PASSWORD="another long secret")
        assert result.exit_code == 0, (args, result.output)
        assert said in result.output, args

    listed = cli("list").output.splitlines()
    assert listed[0].split() == ["USERNAME", "ROLE", "EXTENSION", "STATUS", "NAME"]
    assert listed[1].split() == ["alice", "admin", "-", "disabled", "Alice", "Wong"]
    assert listed[2].split() == ["root", "admin", "-", "active", "root"]

    assert cli("enable", "alice").exit_code == 0
    audit = cli("audit", "alice").output.splitlines()
    assert audit[0].split()[:5] == ["WHEN", "(UTC)", "BY", "USER", "ACTION"]
    what = [line.split(None, 5)[5] for line in audit[1:]]  # after date, time, by, user, action
    assert what == [
        "active: False -> True",
        "active: True -> False",
        "password: changed",
        "extension: 8102 -> None",
        "extension: 8101 -> 8102, display_name: alice -> Alice Wong",
        "role: agent -> admin",
        "role=agent, extension=8101, display_name=alice",
    ]
    assert all(line.split()[2].startswith("cli:") for line in audit[1:])
    everything = cli("audit").output
    assert "root" in everything
    assert SECRET not in everything
    assert "another long secret" not in everything


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["set", "alice"], 2, "say what to change"),
        (["set", "alice", "--extension", "12", "--no-extension"], 2, "exclude each other"),
        (["set", "alice", "--role", "boss"], 2, "'boss' is not one of"),
        (["set", "alice", "--extension", "12ab"], 1, "extension: 2 to 10 digits"),
        (["set", "nobody", "--role", "agent"], 1, "user 'nobody' does not exist"),
        (["disable", "alice"], 1, "'alice' is the last active admin"),
        (["set", "alice", "--password", "hunter2hunter2"], 2, "unexpected extra argument"),
    ],
)
def test_bad_requests_say_why_and_change_nothing(
    cli: Cli, args: list[str], code: int, said: str
) -> None:
    assert cli("alice", "--role", "admin").exit_code == 0
    result = cli(*args)
    assert result.exit_code == code, result.output
    assert said in result.output
    audit = cli("audit").output.splitlines()
    assert len(audit) == 2  # the header and the creation
