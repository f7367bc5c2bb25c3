from __future__ import annotations

import logging
import re
import uuid

from django.conf import settings
from django.db import Error as DjangoDatabaseError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from common import context, db_errors
from common.exceptions import Busy, DatabaseNotReady, IpRestricted, error_body
from common.net import client_ip, ip_allowed

logger = logging.getLogger(__name__)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    """Gives every request an id (the caller's ``X-Request-ID`` when sane), binds it with the
    client address for logs and audit events, and echoes it on the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = context.bind(
            context.RequestContext(
                request_id=request_id,
                ip=client_ip(request),
                user_agent=request.headers.get("User-Agent", "")[:512],
                request=request,
            )
        )
        try:
            response = self.get_response(request)
        finally:
            context.reset(token)
        response["X-Request-ID"] = request_id
        return response


def database_error_response(request, exception):
    """What a database error that reached no handler of its own answers: 503 when the
    database is unreachable or unmigrated, 409 with ``Retry-After`` when a lock was not had
    in time, a deadlock or a serialisation failure (BUSY); the envelope under ``/api/``, a
    plain page elsewhere (no template: rendering one may need the database again). None for
    any other exception, left to Django's 500 handling."""
    if not isinstance(exception, DjangoDatabaseError):
        return None
    error = db_errors.classify(exception)
    if not isinstance(error, DatabaseNotReady | Busy):
        return None
    logger.warning("%s: %s", error.code, exception)
    if request.path.startswith("/api/"):
        response = JsonResponse(
            error_body(error.code, error.message, error.details), status=error.status_code
        )
    else:
        if isinstance(error, Busy):
            title = _("Busy")
            message = _(
                "Someone was changing the same data (an import may be running)."
                " Nothing was changed; try again in a moment."
            )
        else:
            title = _("Service unavailable")
            message = _("The database is not ready. Try again shortly.")
        response = HttpResponse(f"<h1>{title}</h1><p>{message}</p>", status=error.status_code)
    if isinstance(error, Busy):
        response["Retry-After"] = str(error.retry_after_seconds)
    return response


class DatabaseNotReadyMiddleware:
    """Database errors of views outside DRF (pages, the admin) answer what happened (see
    :func:`database_error_response`). An error raised in a middleware (the session read
    for ``request.user`` while the database is away) never reaches ``process_exception``:
    ``common.views.server_error`` (handler500) answers those the same way."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        return database_error_response(request, exception)


class OrganisationIpAllowlistMiddleware:
    """The organisation's IP allowlist for every session: the API, the pages and the admin
    centre (including the page that edits the list). A logged-in user linked to an employee
    whose organisation does not allow the client address gets 403: ``IP_RESTRICTED`` under
    ``/api/``, the app's 403 page elsewhere. Logging out and the health and metrics
    endpoints stay open.

    Bearer-token calls are authenticated inside the API view, after this middleware: the
    API's permission (``common.permissions.IsAttendanceUser``) checks them. The employee
    and organisation loaded here stay cached on ``request.user`` for the view.
    """

    OPEN_PATHS = ("/livez", "/readyz", "/metrics")

    def __init__(self, get_response):
        self.get_response = get_response
        self._logout_path = None

    def __call__(self, request):
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        return self.get_response(request)

    def _open_paths(self) -> tuple[str, ...]:
        if self._logout_path is None:
            self._logout_path = (reverse("logout"), reverse("admin:logout"))
        return self._logout_path

    def _refusal(self, request):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        path = request.path_info
        if path in self.OPEN_PATHS or path in self._open_paths():
            return None
        if settings.STATIC_URL and path.startswith(settings.STATIC_URL):
            return None
        employee = getattr(user, "employee", None)
        if employee is None:
            return None
        organisation = employee.organisation
        address = client_ip(request)
        if ip_allowed(address, organisation.ip_allowlist):
            return None
        if path.startswith("/api/"):
            error = IpRestricted()
            return JsonResponse(
                error_body(error.code, error.message, error.details), status=error.status_code
            )
        page = render(
            request,
            "attendance/forbidden.html",
            {
                "title": _("Access from this address is not allowed"),
                "message": _(
                    "%(organisation)s does not allow access from this address (%(address)s). "
                    "Connect from the office network or VPN."
                )
                % {"organisation": organisation.name, "address": address or _("unknown")},
            },
            status=403,
        )
        page.error_code = IpRestricted.code  # read by audit.middleware for its event
        return page


class AdminOrganisationTimeZoneMiddleware:
    """The admin centre shows, and reads typed-in, times in the signed-in admin's organisation's
    time zone, as the pages and the API do (the server's zone, UTC, otherwise). A user without
    an organisation (a bare superuser) keeps the server's zone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(reverse("admin:index")):
            return self.get_response(request)
        zone = _organisation_zone(getattr(request, "user", None))
        if zone is None:
            return self.get_response(request)
        with timezone.override(zone):
            return self.get_response(request)


def _organisation_zone(user):
    from django.core.exceptions import ObjectDoesNotExist

    if user is None or not user.is_authenticated:
        return None
    try:
        return user.employee.organisation.tz
    except ObjectDoesNotExist:
        return None
