"""``GET /api/staffing/plan``: a queue's forecast and staffing per interval, with a what-if.

Mounted in the CRM API (``create_api(..., extra=[staffing_api(planner)])``) so that it takes the
same bearer tokens, refuses the same way (401, 403 below a supervisor, 422 naming the field)
and is listed in the same OpenAPI document.
"""

from __future__ import annotations

from aiohttp import web

from crm_core.access import least
from crm_core.api.http import InvalidQuery, RouteTable, query_of
from cti_server.control.staffing import PlanOut, PlanQuery, PlanRefused, StaffingPlans


def staffing_api(plans: StaffingPlans) -> RouteTable:
    """The route, answered by ``plans``."""
    table = RouteTable()

    @table.route(
        "GET",
        "/staffing/plan",
        "A queue's forecast and the agents it needs per interval (Erlang C, Erlang A, after "
        "shrinkage), with what a what-if (fewer agents from a time, calls scaled on a day) "
        "does to the service level",
        response=PlanOut,
        min_role=least("staffing.plan"),
        query=PlanQuery,
    )
    async def plan(request: web.Request) -> PlanOut:
        try:
            return await plans.plan(query_of(request, PlanQuery))
        except PlanRefused as exc:
            raise InvalidQuery(exc.field, str(exc)) from None

    return table
