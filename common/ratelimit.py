"""Rate limits on the shared cache (django-ratelimit), answered as RATE_LIMITED + Retry-After.

Views that limit one action (a punch) call ``enforce``; the limits by route (login, API,
uploads, exports, admin writes …) are counted centrally in ``common.throttles``. Every
refusal is counted in ``attendance_rate_limited_total{group}``.
"""

from __future__ import annotations

from django.conf import settings
from django_ratelimit.core import get_usage

from common.exceptions import RateLimited
from common.metrics import count_rate_limited


def seconds_over(request, *, group: str, rate: str, key) -> float | None:
    """Count this request against ``rate``; the seconds until the window ends when it is
    over the limit, else None."""
    if not settings.RATELIMIT_ENABLE or not rate:
        return None
    usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    if usage and usage["should_limit"]:
        count_rate_limited(group)
        return usage["time_left"]
    return None


def enforce(request, *, group: str, rate: str, key: str = "user_or_ip") -> None:
    """Count this request against ``rate`` and raise RateLimited when it is over."""
    time_left = seconds_over(request, group=group, rate=rate, key=key)
    if time_left is not None:
        raise RateLimited(time_left)
