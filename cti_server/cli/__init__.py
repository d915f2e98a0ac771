"""The ``cti`` command: ``main`` builds the group; each command group has its module
(``serve``, ``asterisk``, ``agents``, ``sim``, ``speech``, ``ivr``, ``routing``, ``crm`` with
``users``, ``staffing``); ``common`` holds the options and helpers they share."""
