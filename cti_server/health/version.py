"""The installed release of this package, for ``cti --version``, ``/status`` and ``/healthz``."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

PACKAGE = "cti-server"


def release() -> str:
    """The version the installed package declares; "unknown" in a source tree never installed."""
    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"
