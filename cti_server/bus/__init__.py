"""The bus carries domain events between parts (in-process) and processes (Redis).

``memory`` (in-process, a bounded queue per subscriber), ``redis`` (shared by several
processes through Redis pub/sub), ``lease`` (one leader among processes).
"""

from cti_server.bus.memory import Bus, MemoryBus, Subscription

__all__ = ["Bus", "MemoryBus", "Subscription"]
