"""The supervisor's staffing page (``/ui/staffing``): a queue's forecast and the agents it
needs, and a what-if beside it, as charts and a table.

A plain form sent with GET (the address is the question: bookmarked, shared, reloaded); the
answer is rendered on the server, charts as inline SVG, so the page runs no script. The plan
comes from ``UiDeps.staffing`` (:class:`~cti_server.control.staffing.StaffingPlans`), the same
as ``GET /api/staffing/plan`` answers.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from markupsafe import Markup
from pydantic import ValidationError

from agent_ui.auth import UI_SESSION, pages, render
from agent_ui.deps import DEPS, TEMPLATES
from agent_ui.staffing_charts import plan_charts
from crm_core.access import least
from cti_server.control.staffing import PlanOut, PlanQuery, PlanRefused

FIELDS = (
    "queue",
    "day",
    "days",
    "target",
    "shrinkage",
    "interval",
    "confidence",
    "fewer",
    "from",
    "scale",
    "on",
)
NOT_OFFERED = "This server does not offer the staffing plan."


@pages.route("GET", "/staffing", least("staffing.plan"), name="staffing")
async def staffing_page(request: web.Request) -> web.StreamResponse:
    """The form, and the plan it asks for (a 422 with the fields to mend when it is wrong)."""
    asked = {name: request.query[name].strip() for name in FIELDS if name in request.query}
    problems: dict[str, str] = {}
    plan: PlanOut | None = None
    planner = request.app[DEPS].staffing
    if planner is None:
        problems[""] = NOT_OFFERED
    else:
        try:
            query = PlanQuery.model_validate({k: v for k, v in asked.items() if v})
            plan = await planner.plan(query)
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False):
                field = ".".join(str(p) for p in error["loc"])
                problems[field] = str(error["msg"]).removeprefix("Value error, ")
        except PlanRefused as exc:
            problems[exc.field] = str(exc)
    return render(
        request,
        "staffing.html",
        status=422 if problems and planner is not None else 200,
        user=request[UI_SESSION].display_name,
        asked=asked,
        problems=problems,
        plan=plan,
        charts=_charts(request, plan) if plan is not None else {},
        rows=[r for r in plan.intervals if r.offered or (r.what_if and r.what_if.offered)]
        if plan is not None
        else [],
    )


def _charts(request: web.Request, plan: PlanOut) -> dict[str, Any]:
    """Each chart's SVG, rendered (and escaped) by its template, to place inline."""
    template = request.app[TEMPLATES].get_template("staffing_chart.svg")
    return {name: Markup(template.render(**g)) for name, g in plan_charts(plan).items()}  # noqa: S704 - the template escaped every value
