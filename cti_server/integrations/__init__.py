"""Domain events for other systems (a CRM, a ticketing tool, a BI pipeline): a versioned public
envelope, an authenticated websocket stream and signed webhooks with retries.

``events`` is the public vocabulary (pydantic models, the JSON Schemas in ``docs/events``),
``translate`` maps the internal events onto it, ``access`` says who may see what, ``service``
subscribes to the bus and fans out to ``stream`` (websocket) and ``webhooks``.

Also: ``plugin`` (mounts it in the composition root), ``http`` (the ``/api/events`` routes),
``customers`` (the customer the IVR identified, read by id), ``settings``, ``signing`` (webhook
signatures), ``metrics``, ``schema_docs`` (the JSON Schemas written to ``docs/events``).
"""
