"""The bus carries domain events between parts (in-process) and processes (Redis)."""

from cti_server.bus.memory import Bus, MemoryBus, Subscription

__all__ = ["Bus", "MemoryBus", "Subscription"]
