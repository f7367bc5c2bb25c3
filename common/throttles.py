"""Rate limits by route, in one place: which requests count against which limit.

``RateLimitMiddleware`` maps the resolved URL (its name, else its path) and the method of
every request to the limit groups it counts in, before the view runs, so a refused upload
is refused before a byte of its body is read and no view needs to know. Rates are settings
(``RATELIMIT_<GROUP>``, django-ratelimit's ``"count/period"``, e.g. ``"30/m"``; empty turns
a group off); counters live in the shared cache.

Groups (and who shares a budget):

- ``login`` (per username) and ``login_address`` (per client address): every POST to
  ``/accounts/login/`` and ``/admin/login/``; failures are also counted by django-axes
  (``attendance.lockouts``), which locks out after ``AXES_FAILURE_LIMIT``;
- ``api``: every request under ``/api/`` (per caller);
- ``upload``, ``preview`` (prepare, preview), ``commit`` (sync, async, rollback, also
  the rollback page), ``export`` (every CSV download: records, batch items, preview errors,
  the audit log): per caller;
- ``admin_write``: POST/PUT/PATCH/DELETE under ``/api/attendance-admin/`` and ``/admin/``
  (the admin's login and logout aside): per caller.

The caller is the logged-in user, else the bearer token (token authentication happens in
the view, after this middleware: the hash of the header stands in for its user), else the
client address. Refusals answer 429 with ``Retry-After``: the error envelope
``RATE_LIMITED`` with ``details.retryAfterMs`` under ``/api/``, the login page again with
the message on the logins, a page elsewhere.
"""

from __future__ import annotations

import copy
import hashlib
import math
from dataclasses import dataclass

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.translation import gettext as _

from common.exceptions import RateLimited, error_body
from common.net import client_ip
from common.ratelimit import seconds_over

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOGIN_VIEWS = frozenset({"login", "admin:login"})
ADMIN_WRITE_EXEMPT_VIEWS = frozenset({"admin:login", "admin:logout"})
ADMIN_API_PREFIX = "/api/attendance-admin/"

GROUP_BY_VIEW = {
    "import-api:upload": "upload",
    "import-api:prepare": "preview",
    "import-api:preview": "preview",
    "import-api:commit": "commit",
    "import-api:commit-async": "commit",
    "import-api:rollback": "commit",
    "imports:batch_rollback": "commit",
    "attendance-api:export": "export",
    "import-api:batch-export": "export",
    "import-api:preview-errors": "export",
}


# --- who shares a budget -------------------------------------------------------------------


def caller_key(group, request) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if authorization:
        return "credential:" + hashlib.sha256(authorization.encode()).hexdigest()[:32]
    return f"ip:{client_ip(request)}"


def login_username_key(group, request) -> str:
    username = request.POST.get("username", "").strip().lower()[:150]
    return f"username:{username}"


def address_key(group, request) -> str:
    return f"ip:{client_ip(request)}"


@dataclass(frozen=True)
class Limit:
    group: str
    rate_setting: str
    key: object  # django-ratelimit key: callable(group, request) -> str

    @property
    def rate(self) -> str:
        return getattr(settings, self.rate_setting, "") or ""


def _group_setting(group: str) -> str:
    return f"RATELIMIT_{group.upper()}"


def limits_for(request) -> list[Limit]:
    """The limits this request counts against, in the order they are checked."""
    match = getattr(request, "resolver_match", None)
    view_name = match.view_name if match is not None else ""
    path = request.path_info
    method = request.method
    if view_name in LOGIN_VIEWS:
        if method != "POST":
            return []
        return [
            Limit("login", "RATELIMIT_LOGIN", login_username_key),
            Limit("login_address", "RATELIMIT_LOGIN_ADDRESS", address_key),
        ]
    limits = []
    if path.startswith("/api/"):
        limits.append(Limit("api", "RATELIMIT_API", caller_key))
    group = GROUP_BY_VIEW.get(view_name)
    if group is None and (path.endswith(".csv") or view_name.endswith("export")):
        group = "export"
    if group is not None:
        limits.append(Limit(group, _group_setting(group), caller_key))
    if method in WRITE_METHODS and (
        path.startswith(ADMIN_API_PREFIX)
        or (view_name.startswith("admin:") and view_name not in ADMIN_WRITE_EXEMPT_VIEWS)
    ):
        limits.append(Limit("admin_write", "RATELIMIT_ADMIN_WRITE", caller_key))
    return limits


# --- answers -------------------------------------------------------------------------------


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def render_page_again(request, view_func, *, message: str, retry_after_seconds: float, status=429):
    """The page a refused form was posted to, drawn afresh (as the GET that shows its empty
    form) with ``request.refusal_message`` for the template to show; nothing of the post is
    processed. Used for the two login forms (``templates/registration/login.html``,
    ``templates/admin/login.html``)."""
    page_request = copy.copy(request)
    page_request.method = "GET"
    page_request.refusal_message = message
    response = view_func(page_request)
    if hasattr(response, "render"):
        response = response.render()
    response.status_code = status
    response["Retry-After"] = retry_after_header(retry_after_seconds)
    return response


def rate_limited_response(request, view_func, limit: Limit, time_left: float):
    error = RateLimited(time_left)
    if request.path_info.startswith("/api/"):
        response = JsonResponse(
            error_body(error.code, error.message, error.details), status=error.status_code
        )
        response["Retry-After"] = str(error.retry_after_seconds)
        return response
    if limit.group in ("login", "login_address"):
        return render_page_again(
            request,
            view_func,
            message=_("Too many attempts. Wait a minute and try again."),
            retry_after_seconds=error.retry_after_seconds,
        )
    response = render(
        request,
        "attendance/rate_limited.html",
        {"retry_after_seconds": error.retry_after_seconds},
        status=error.status_code,
    )
    response["Retry-After"] = str(error.retry_after_seconds)
    return response


class RateLimitMiddleware:
    """Counts each request against the limits of its route (see the module docstring) and
    answers 429 when one is over. Sits after the authentication middleware: a logged-in
    user's requests share one budget wherever they come from."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        for limit in limits_for(request):
            time_left = seconds_over(request, group=limit.group, rate=limit.rate, key=limit.key)
            if time_left is not None:
                return rate_limited_response(request, view_func, limit, time_left)
        return None
