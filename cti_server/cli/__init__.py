"""The ``cti`` command: ``main`` holds its command groups, ``users`` the CRM's user
administration."""
