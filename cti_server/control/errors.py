"""The one error the UI catches from the server's controls."""

from __future__ import annotations


class ControlError(Exception):
    """A request the server did not carry out; the message is for the user who asked.

    The implementations translate their own errors (a refused AMI action, a link that is down,
    a reply that never came, a router that says no) into this, once, at the edge.
    ``unanswered``: the phone system did not answer (not the user's doing)."""

    def __init__(self, message: str, *, unanswered: bool = False) -> None:
        super().__init__(message)
        self.unanswered = unanswered
