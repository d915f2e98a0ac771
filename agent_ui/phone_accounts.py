"""Where an agent's browser phone registers, and what its desk page is given to register.

The page is given Asterisk's WSS listener, the agent's SIP user and the HA1 form of its SIP
password, over its signed-in session only: the password itself is stored nowhere (``cti agent
secret rotate`` shows it once and keeps the hash). The HA1 is read from the digests file on every
greeting, so a rotated password reaches the next page or socket at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

# the request key of a page that runs the phone: its WSS origin joins the page's connect-src
PHONE_SERVER = web.RequestKey("ui_phone_server", str)


@dataclass(frozen=True)
class PhoneAccount:
    """What the desk page needs to register, besides the secret (sent over the socket)."""

    server: str  # wss://host:port/ws
    origin: str  # wss://host:port, for the page's Content-Security-Policy
    user: str
    uri: str
    realm: str

    def page_data(self) -> dict[str, str]:
        return {"server": self.server, "user": self.user, "uri": self.uri, "realm": self.realm}


@dataclass(frozen=True)
class BrowserPhones:
    """Which agents' phones are the browser, where their phones register, and their HA1s."""

    extensions: frozenset[str]
    wss_bind: str  # Asterisk's WSS listener; a wildcard means: the host the page was reached at
    wss_port: int
    realm: str
    digests: Callable[[], Mapping[str, str]]  # {extension: HA1}, read when asked

    def has(self, extension: str | None) -> bool:
        return extension is not None and extension in self.extensions

    def account(self, extension: str, page_host: str) -> PhoneAccount:
        host = page_host if _wildcard(self.wss_bind) else self.wss_bind
        shown = f"[{host}]" if ":" in host else host
        origin = f"wss://{shown}:{self.wss_port}"
        return PhoneAccount(
            f"{origin}/ws", origin, extension, f"sip:{extension}@{shown}", self.realm
        )

    async def secret_message(self, extension: str) -> dict[str, Any]:
        """The greeting's ``phone`` message: the HA1, or why the phone cannot register."""
        try:
            digests = await asyncio.to_thread(self.digests)
        except (OSError, ValueError) as exc:  # the file is the operator's to mend: say where
            log.error("the browser phones' SIP digests cannot be read: %s", exc)
            return {
                "type": "phone",
                "problem": "Your phone's SIP password cannot be read on "
                "the server: tell an administrator (the server's log says why).",
            }
        ha1 = digests.get(extension)
        if ha1 is None:
            return {
                "type": "phone",
                "problem": f"Your phone has no SIP password yet: an administrator gives it one "
                f"(cti agent secret rotate {extension}).",
            }
        return {"type": "phone", "ha1": ha1}


def _wildcard(bind: str) -> bool:
    try:
        return ipaddress.ip_address(bind).is_unspecified
    except ValueError:
        return False  # a host name
