"""The ``cti`` command: the group and its commands, one module per command group.

``serve`` and ``demo`` (:mod:`.serve`), ``dialplan`` and ``asterisk`` (:mod:`.asterisk`),
``agent`` (:mod:`.agents`), ``call`` and ``simulate`` (:mod:`.sim`), ``speech``, ``ivr``,
``routing``, ``crm`` and ``staffing`` (their modules); what they share (settings, logging
flags) is in :mod:`.common`.
"""

from __future__ import annotations

import click

from cti_server.cli.agents import agent
from cti_server.cli.asterisk import asterisk, dialplan
from cti_server.cli.common import Group, apply_logging
from cti_server.cli.crm import crm
from cti_server.cli.ivr import ivr
from cti_server.cli.routing import routing
from cti_server.cli.serve import demo, serve
from cti_server.cli.sim import call, simulate
from cti_server.cli.speech import speech
from cti_server.cli.staffing import staffing
from cti_server.health.version import PACKAGE


@click.group(
    cls=Group,
    commands=[
        serve,
        demo,
        dialplan,
        asterisk,
        agent,
        call,
        simulate,
        speech,
        ivr,
        routing,
        crm,
        staffing,
    ],
)
@click.version_option(package_name=PACKAGE, prog_name="cti", message="%(prog)s %(version)s")
def main() -> None:
    """Contact-center CTI server beside Asterisk."""
    apply_logging()
