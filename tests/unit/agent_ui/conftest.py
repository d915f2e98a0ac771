"""The desk harness's fixture (alice and bob at their desks, Asterisk faked) for these tests."""

from tests.support.desk import desk_phones, ui

__all__ = ["desk_phones", "ui"]
