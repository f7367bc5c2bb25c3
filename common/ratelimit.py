"""Rate limits on the shared cache (django-ratelimit), answered as RATE_LIMITED + Retry-After."""

from __future__ import annotations

from django.conf import settings
from django_ratelimit.core import get_usage

from common.exceptions import RateLimited


def enforce(request, *, group: str, rate: str, key: str = "user_or_ip") -> None:
    """Count this request against ``rate`` and raise RateLimited when it is over."""
    if not settings.RATELIMIT_ENABLE:
        return
    usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    if usage and usage["should_limit"]:
        raise RateLimited(usage["time_left"])
