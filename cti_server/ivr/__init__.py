"""What a caller meets on the phone: flows walked for each call.

- Events in: ``inbound`` (a call enters the inbound context; publishes ``CallArrived`` and
  ``IvrFinished``), ``identification`` (who is calling, once per call: ``CustomerIdentified``).
- Service: ``engine`` (walks a flow through a ``Channel``), ``flow`` (flows declared in YAML),
  ``registry`` (the flows in use, reloaded), ``calendar`` (business hours and holidays),
  ``customers`` (what the IVR asks the CRM), ``self_service`` (answers read back to a caller).
- ``channels``: the FastAGI and classic AGI transports over one AGI command layer.
"""
