"""Forecast and staffing from the centre's own history.

* :mod:`.history`: the contacts a forecast learns from (CRM interactions or a traffic file),
  counted per queue and interval;
* :mod:`.forecast`: offered calls and handle time per queue and interval ahead, with the
  weekly and daily pattern and the calendar's holidays;
* :mod:`.patience`: callers' mean patience fitted from abandons, censored properly;
* :mod:`.erlang` and :mod:`.targets`: Erlang C and Erlang A, and the agents a target needs;
* :mod:`.plan`: per interval, the forecast and the agents each model needs, with what-ifs.

Pure functions over plain data: the CLI (``cti staffing``), the API and the wallboard call them.
"""
