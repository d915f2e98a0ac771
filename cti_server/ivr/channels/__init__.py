"""The IVR's two ways onto a call: FastAGI (a session of ``cti serve``) and classic AGI
(``cti-agi``, a process per call that reaches the server over its HTTP port).

- ``commands``: the IVR's ``Channel`` in AGI commands, shared by both transports.
- ``fastagi``: the FastAGI link and listening (the server's own AudioSocket listener).
- ``agi``: the classic AGI link (pyst2) and listening (asks the server over HTTP).
- ``agi_main``: the ``cti-agi`` program; ``agi_client``: what it asks of the server;
  ``agi_api``: the server's side of those requests (``/agi``).
"""
