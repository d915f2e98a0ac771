"""Forecast and staffing from the centre's own history.

* ``history``: the contacts a forecast learns from (CRM interactions or a traffic file),
  counted per queue and interval; ``crm_history`` reads them from the CRM's database;
* ``forecast``: offered calls and handle time per queue and interval ahead, with the weekly
  and daily pattern and the calendar's holidays and hours;
* ``patience``: callers' mean patience fitted from abandons, censored properly;
* ``erlang`` and ``targets``: Erlang C and Erlang A, and the agents a target needs;
* ``confidence``: the agents that meet the target in a chosen share of intervals, the
  forecast's error (fitted from the history) and the few callers' scatter counted;
* ``plan``: per interval, the forecast and the agents each model needs, with what-ifs;
* ``replay``: a staffing proved on recorded calls, through the routing simulator;
* ``whatif``: a plan beside its what-if (the same agents, fewer of them, or more calls);
* ``service``: plans from the CRM's history for the API, the supervisor's page and the
  wallboard; ``http``: ``GET /api/staffing/plan``.

Pure functions over plain data (but ``crm_history``): the CLI (``cti staffing``), the API and
the wallboard call them.
"""
