"""The live model of calls, agents and queues, and its only writer.

- Events in, events out: ``tracker`` (typed AMI events in, the model updated, domain events
  published).
- Model: ``model`` (calls with legs and hand-overs, agents, queues, as state machines).
- After each AMI login: ``resync`` (Asterisk's snapshot turned into the events we missed).
"""
