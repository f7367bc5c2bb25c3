from __future__ import annotations

import ipaddress
import logging

from django.conf import settings

logger = logging.getLogger(__name__)


def client_ip(request) -> str | None:
    """The client address, trusting only ``TRUSTED_PROXY_COUNT`` X-Forwarded-For hops."""
    remote = request.META.get("REMOTE_ADDR") or None
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if hops and forwarded:
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if len(chain) >= hops:
            remote = chain[-hops]
    try:
        return str(ipaddress.ip_address(remote)) if remote else None
    except ValueError:
        return None


def parse_network(entry: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``10.0.0.0/8``, ``10.1.2.3`` (one host) …; ValueError when it is not an IP network."""
    if not isinstance(entry, str):
        raise ValueError(f"{entry!r} is not an IP network.")
    return ipaddress.ip_network(entry.strip(), strict=False)


def ip_allowed(ip: str | None, allowlist: list[str]) -> bool:
    """True when the list is empty (no restriction) or the address is in one of its networks.

    An entry that is not a network (stored by hand, bypassing validation) matches nothing:
    the list stays closed instead of failing every request of the organisation.
    """
    if not allowlist:
        return True
    if ip is None:
        return False
    address = ipaddress.ip_address(ip)
    for entry in allowlist:
        try:
            network = parse_network(entry)
        except ValueError:
            logger.warning("Ignoring invalid IP allowlist entry %r", entry)
            continue
        if address in network:
            return True
    return False
