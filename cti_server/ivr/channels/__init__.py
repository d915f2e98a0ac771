"""The IVR's two ways onto a call: FastAGI (a session of ``cti serve``) and classic AGI
(``cti-agi``, a process per call that reaches the server over its HTTP port)."""
