"""Every call the tracker sees, written into the CRM, with nothing lost when the database is away.

- Events in: ``recorder`` (event -> typed entry -> journal -> ``crm_core``'s call rules;
  publishes ``InteractionRecorded``).
- Schemas: ``entries`` (the journal's typed entries, old shapes still read).
- Storage: ``spool`` (the durable local journal ahead of the database).
"""
