"""Which hosts may connect to a listener Asterisk uses (FastAGI, AudioSocket), and a peer's
address as both compare it: IPv4 mapped into IPv6 is the IPv4 address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address(host: str | None) -> IpAddress | None:
    """``host`` as an address, or None when it is none (a name, nothing)."""
    if host is None:
        return None
    try:
        found = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def peer_address(peername: Any) -> IpAddress | None:
    """The address of a socket's peer (``get_extra_info("peername")``)."""
    return address(str(peername[0])) if isinstance(peername, tuple) and peername else None


class AllowedPeers:
    """Addresses or networks from the settings (``allowed_peers``)."""

    def __init__(self, peers: Iterable[str]) -> None:
        self._networks = [ipaddress.ip_network(peer, strict=False) for peer in peers]

    def allow(self, peer: IpAddress | None) -> bool:
        return peer is not None and any(peer in network for network in self._networks)
