"""Where the data folders shipped with the product live (repo checkout or installed wheel)."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # cti_server/


def data_dir(name: str) -> Path:
    """The ``dialplans`` or ``ivr_flows`` folder: in the wheel, or beside the package."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the {name!r} folder is missing from this installation")
