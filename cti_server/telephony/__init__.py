"""The only code that speaks AMI and FastAGI.

- Events in: ``ami_client`` (one AMI connection per node, reconnecting), ``ami_events`` (typed
  AMI events, what the tracker needs), ``fastagi`` (the FastAGI server Asterisk connects to).
- Actions out: ``ami_actions`` (actions built safely from untrusted text), ``agent_actions``
  (what an agent or supervisor does, as checked AMI actions), ``agent_control`` (the desks'
  ``AgentControl`` and its wrap-up).
- Shared: ``peers`` (which hosts may connect), ``tasks`` (stopping background tasks safely).
"""
