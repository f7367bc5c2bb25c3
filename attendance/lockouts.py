"""Login lockouts (django-axes) for ``/accounts/login/`` and ``/admin/login/``, and their
audited unlock.

Axes counts failed sign-ins in the database (``axes.AccessAttempt``: one row per username,
address and browser, with its failure count and last time). Within ``AXES_COOLOFF_TIME``
of the last failure, a username with ``AXES_FAILURE_LIMIT`` failures is locked wherever the
attempts come from (guessing one password from many addresses), and an address with
``LOGIN_ADDRESS_FAILURE_LIMIT`` failures is locked whichever usernames it tries (spraying
one password over many accounts). The address limit is the larger one: a whole office
behind one NAT shares it. While locked, even the right password is refused: the login page
again with the message, HTTP 429 and ``Retry-After`` (the moment enough failures have
aged out of the cool-off). Attempts during a lockout are not counted, so a person who waits
as told gets in.

The database handler (not the cache one): the rows are the evidence an administrator
looks at before unlocking, an unlock says how many it cleared, and a cache flush or a Redis
restart does not quietly lift every lockout.

Django's ``user_login_failed`` and ``user_logged_in`` signals fire as before (a locked-out
attempt is a failed login), so the audit log records them (``audit.signals``).
"""

from __future__ import annotations

import datetime as dt
import ipaddress

from axes.attempts import get_cool_off_threshold
from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet, Sum
from django.http import JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from audit.services import audit_record
from common import roles
from common.exceptions import Forbidden, RateLimited, ValidationFailed, error_body
from common.metrics import count_rate_limited
from common.throttles import render_page_again

LOCKOUT_GROUP = "login_lockout"


def address_failure_limit() -> int:
    # Never below the username limit: one address trying one username is locked by that.
    return max(settings.LOGIN_ADDRESS_FAILURE_LIMIT, settings.AXES_FAILURE_LIMIT)


class LockoutBackend(AxesStandaloneBackend):
    """Axes' gate, first in ``AUTHENTICATION_BACKENDS``: refuses to authenticate anybody
    while their username or address is locked. A login without a request (a shell, the test
    client's ``login()``) has no address to count and is not throttled."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


class LockoutHandler(AxesDatabaseHandler):
    """Axes' database handler with one limit per username and a larger one per address."""

    def _recent(self, request) -> QuerySet:
        return AccessAttempt.objects.filter(attempt_time__gte=get_cool_off_threshold(request))

    def _windows(self, request, credentials) -> list[tuple[QuerySet, int]]:
        """(recent attempts, limit) for the address and for the username."""
        recent = self._recent(request)
        windows = [(recent.filter(ip_address=request.axes_ip_address), address_failure_limit())]
        username = get_client_username(request, credentials)
        if username:
            windows.append((recent.filter(username=username), settings.AXES_FAILURE_LIMIT))
        return windows

    def get_failures(self, request, credentials=None) -> int:
        # Axes compares this number with AXES_FAILURE_LIMIT (the username's limit); the
        # address only counts once it has reached its own, larger limit.
        (by_address, address_limit), *by_username = (
            (window.aggregate(total=Sum("failures_since_start"))["total"] or 0, limit)
            for window, limit in self._windows(request, credentials)
        )
        username_failures = by_username[0][0] if by_username else 0
        if by_address >= address_limit:
            return max(by_address, username_failures)
        return username_failures

    def seconds_until_unlocked(self, request, credentials=None) -> float:
        """How long until the failures of every locked window have aged below its limit."""
        cool_off = get_cool_off(request) or dt.timedelta(0)
        unlocked_at = timezone.now()
        for window, limit in self._windows(request, credentials):
            rows = list(
                window.order_by("attempt_time").values_list("attempt_time", "failures_since_start")
            )
            remaining = sum(failures for _time, failures in rows)
            for attempt_time, failures in rows:
                if remaining < limit:
                    break
                remaining -= failures
                unlocked_at = max(unlocked_at, attempt_time + cool_off)
        return max(1.0, (unlocked_at - timezone.now()).total_seconds())


def lockout_response(request, original_response=None, credentials=None):
    """``AXES_LOCKOUT_CALLABLE``: the login page that was posted to, drawn again with the
    lockout message, HTTP 429 and ``Retry-After``."""
    handler = AxesProxyHandler.get_implementation()
    seconds = (
        handler.seconds_until_unlocked(request, credentials)
        if isinstance(handler, LockoutHandler)
        else get_cool_off(request).total_seconds()
    )
    count_rate_limited(LOCKOUT_GROUP)
    error = RateLimited(seconds)
    minutes = max(1, round(error.retry_after_seconds / 60))
    message = ngettext(
        "Too many failed sign-ins: signing in is locked for this account or address. "
        "Try again in %(minutes)d minute, or ask an administrator to unlock it.",
        "Too many failed sign-ins: signing in is locked for this account or address. "
        "Try again in %(minutes)d minutes, or ask an administrator to unlock it.",
        minutes,
    ) % {"minutes": minutes}
    match = getattr(request, "resolver_match", None)
    if request.path_info.startswith("/api/") or match is None:
        response = JsonResponse(error_body(error.code, message, error.details), status=429)
        response["Retry-After"] = str(error.retry_after_seconds)
        return response
    return render_page_again(
        request, match.func, message=message, retry_after_seconds=error.retry_after_seconds
    )


# --- the audited unlock --------------------------------------------------------------------


def _organisation_of_username(username: str):
    user = (
        get_user_model()
        .objects.filter(username=username)
        .select_related("employee__organisation")
        .first()
    )
    employee = getattr(user, "employee", None) if user is not None else None
    return employee.organisation if employee is not None else None


def _check_may_unlock(actor, *, username_organisation, ip) -> None:
    """Superusers (and the system: ``actor`` None) unlock anything; an attendance admin
    unlocks the usernames of their own organisation. An address is shared by whoever calls
    from it, so unlocking one is for superusers."""
    if actor is None or actor.is_superuser:
        return
    employee = getattr(actor, "employee", None)
    if employee is None or not roles.has_any_role(actor, roles.ADMIN):
        raise Forbidden(_("Only administrators can unlock sign-ins."))
    if ip:
        raise Forbidden(_("Only a superuser can unlock an address."))
    if username_organisation is None or username_organisation.pk != employee.organisation_id:
        raise Forbidden(_("You can unlock only the users of your organisation."))


def login_lockout_reset(*, actor, username: str | None = None, ip: str | None = None) -> int:
    """Clear the failed sign-ins of ``username`` and/or of the address ``ip`` (which lifts
    their lockout) and record ``security.lockout.reset``; the number of attempt rows
    cleared."""
    username = (username or "").strip() or None
    ip = (ip or "").strip() or None
    if username is None and ip is None:
        raise ValidationFailed(_("Give a username or an address to unlock."))
    if ip is not None:
        try:
            ip = str(ipaddress.ip_address(ip))
        except ValueError:
            message = _("%(ip)r is not an IP address.") % {"ip": ip}
            raise ValidationFailed(fields={"ip": [message]}) from None
    organisation = _organisation_of_username(username) if username else None
    _check_may_unlock(actor, username_organisation=organisation, ip=ip)
    with transaction.atomic():
        cleared = 0
        if username is not None:
            cleared += AxesProxyHandler.reset_attempts(username=username)
        if ip is not None:
            cleared += AxesProxyHandler.reset_attempts(ip_address=ip)
        audit_record(
            actor=actor,
            action="security.lockout.reset",
            organisation=organisation,
            target_type="security.login",
            target_id=username or ip,
            data={"username": username, "ip": ip, "attemptsCleared": cleared},
        )
    return cleared
