"""The integrations' tests share the event stream's server (tests/support/event_stream.py)."""

from tests.support.event_stream import stream

__all__ = ["stream"]  # a fixture
