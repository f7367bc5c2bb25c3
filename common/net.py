from __future__ import annotations

import ipaddress
import logging

from django.conf import settings

logger = logging.getLogger(__name__)


def client_ip(request) -> str | None:
    """The client address, trusting only ``TRUSTED_PROXY_COUNT`` X-Forwarded-For hops.

    Each trusted proxy appends the address it was called from, so the client is the
    ``TRUSTED_PROXY_COUNT``-th entry from the right; anything further left was written by
    the client itself and is ignored. With no trusted proxy the header is never read. A
    header with fewer entries than trusted hops did not come through every proxy: the
    socket's address is used. None when the address is not an IP (a Unix socket).
    """
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


def ratelimit_ip(request) -> str:
    """django-ratelimit's ``RATELIMIT_IP_META_KEY``: the same address as everywhere else, and
    one shared bucket (``0.0.0.0``) for requests whose address is unknown."""
    return client_ip(request) or "0.0.0.0"  # noqa: S104 (a bucket name, not a bind address)


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
