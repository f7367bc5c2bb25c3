"""Application errors and the one DRF exception handler that renders the error envelope."""

from __future__ import annotations

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import Error as DjangoDatabaseError
from django.http import Http404
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions as drf
from rest_framework.response import Response

from common import context as request_context
from common.metrics import count_api_error

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A refusal a client can act on: a stable code, an HTTP status and a message."""

    code = "APPLICATION_ERROR"
    status_code = 400
    default_message = _("The request could not be completed.")

    def __init__(self, message: str | None = None, *, details: dict | None = None):
        # Rendered now, in the language of the request that caused it.
        self.message = str(message or self.default_message)
        self.details = details or {}
        super().__init__(self.message)


class ValidationFailed(ApplicationError):
    code = "VALIDATION_ERROR"
    status_code = 400
    default_message = _("The request is not valid.")

    def __init__(self, message: str | None = None, *, fields: dict | None = None, **kwargs):
        details = kwargs.pop("details", None) or {}
        if fields:
            details["fields"] = {key: _as_list(value) for key, value in fields.items()}
        super().__init__(message, details=details)


class Unauthenticated(ApplicationError):
    code = "UNAUTHENTICATED"
    status_code = 401
    default_message = _("Authentication credentials were not provided or are not valid.")


class Forbidden(ApplicationError):
    code = "FORBIDDEN"
    status_code = 403
    default_message = _("You do not have permission to do this.")


class IpRestricted(ApplicationError):
    code = "IP_RESTRICTED"
    status_code = 403
    default_message = _("Your organisation does not allow access from this address.")


class NotFound(ApplicationError):
    code = "NOT_FOUND"
    status_code = 404
    default_message = _("Not found.")


class RateLimited(ApplicationError):
    code = "RATE_LIMITED"
    status_code = 429
    default_message = _("Too many requests; try again later.")

    def __init__(self, retry_after_seconds: float, message: str | None = None):
        self.retry_after_seconds = max(1, math.ceil(retry_after_seconds))
        super().__init__(message, details={"retryAfterMs": int(self.retry_after_seconds * 1000)})


class Busy(ApplicationError):
    """The database could not do this now: a lock was not had in time, a deadlock or a
    serialisation failure. Nothing was changed, and the same request later will most
    likely succeed, so the client is told when to retry."""

    code = "BUSY"
    status_code = 409
    default_message = _("Another change to the same data was in progress; retry.")
    # Long enough for the transaction that won to commit; short enough that a person
    # retrying by hand does not notice.
    default_retry_after_seconds = 1

    def __init__(
        self,
        message: str | None = None,
        *,
        retry_after_seconds: float | None = None,
        reason: str | None = None,
        details: dict | None = None,
    ):
        if retry_after_seconds is None:
            retry_after_seconds = self.default_retry_after_seconds
        # Retry-After takes whole seconds; rounding down could tell a client "0".
        self.retry_after_seconds = max(1, math.ceil(retry_after_seconds))
        self.reason = reason
        details = {**(details or {}), "retryAfterMs": self.retry_after_seconds * 1000}
        if reason:
            details["reason"] = reason
        super().__init__(message, details=details)


class DatabaseNotReady(ApplicationError):
    code = "DB_NOT_READY"
    status_code = 503
    default_message = _("The database is unreachable or its migrations are not applied.")


class RequestStateConflict(ApplicationError):
    code = "REQUEST_STATE_CONFLICT"
    status_code = 409
    default_message = _("The request is not in a state that allows this.")


class CheckInClosed(ApplicationError):
    code = "CHECKIN_CLOSED"
    status_code = 409
    default_message = _("Check-in for this event is not open.")


class NotRegistered(ApplicationError):
    code = "NOT_REGISTERED"
    status_code = 409
    default_message = _("This registration is cancelled or waitlisted; check-in is not possible.")


class InternalError(ApplicationError):
    """What the client sees of a bug: no detail of it, ever (the log has those)."""

    code = "INTERNAL_ERROR"
    status_code = 500
    default_message = _("An internal error occurred.")


def _as_list(value) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    return [str(value)]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _flatten_fields(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail → ``{"field.sub": [messages]}`` with camelCase keys."""
    if isinstance(detail, dict):
        fields: dict[str, list[str]] = {}
        for key, value in detail.items():
            name = "nonFieldErrors" if key == "non_field_errors" else _camel(str(key))
            fields.update(_flatten_fields(value, f"{prefix}{name}."))
        return fields
    if isinstance(detail, list) and detail and isinstance(detail[0], dict | list):
        fields = {}
        for index, value in enumerate(detail):
            fields.update(_flatten_fields(value, f"{prefix}{index}."))
        return fields
    return {prefix.rstrip(".") or "nonFieldErrors": _as_list(detail)}


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    """The error envelope. Every one the app answers is built here (the DRF handler, the
    middleware, the throttles, the API's 404 and 500 views), so here it is counted."""
    count_api_error(code)
    return {"ok": False, "error": {"code": code, "message": message, "details": details or {}}}


def as_application_error(exc: Exception) -> ApplicationError | None:
    """Translate framework exceptions into application errors; None when unknown."""
    if isinstance(exc, ApplicationError):
        return exc
    if isinstance(exc, Ratelimited):
        return RateLimited(60)
    if isinstance(exc, drf.ValidationError):
        return ValidationFailed(fields=_flatten_fields(exc.detail))
    if isinstance(exc, drf.ParseError):
        return ValidationFailed(
            gettext("Malformed request body: %(detail)s") % {"detail": exc.detail}
        )
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return Unauthenticated(str(exc.detail))
    if isinstance(exc, drf.PermissionDenied | DjangoPermissionDenied):
        message = str(getattr(exc, "detail", "")) or None
        return Forbidden(message)
    if isinstance(exc, drf.NotFound | Http404):
        return NotFound()
    if isinstance(exc, drf.Throttled):
        return RateLimited(exc.wait or 1)
    if isinstance(exc, drf.MethodNotAllowed):
        error = ApplicationError(str(exc.detail))
        error.code, error.status_code = "METHOD_NOT_ALLOWED", 405
        return error
    if isinstance(exc, drf.UnsupportedMediaType):
        error = ApplicationError(str(exc.detail))
        error.code, error.status_code = "UNSUPPORTED_MEDIA_TYPE", 415
        return error
    if isinstance(exc, drf.NotAcceptable):
        error = ApplicationError(str(exc.detail))
        error.code, error.status_code = "NOT_ACCEPTABLE", 406
        return error
    # Imported here: db_errors builds its answers from the classes of this module.
    from common import db_errors

    return db_errors.classify(exc)


def render_application_error(error: ApplicationError) -> Response:
    response = Response(
        error_body(error.code, error.message, error.details), status=error.status_code
    )
    retry_after = getattr(error, "retry_after_seconds", None)
    if retry_after is not None:
        response["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


def _request_id(request) -> str:
    return request_context.current().request_id or getattr(request, "request_id", "") or "-"


def envelope_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every failure under /api/ leaves in the error envelope."""
    error = as_application_error(exc)
    request = context.get("request")
    unhandled = error is None
    if unhandled:
        # The request id goes on the record itself, not only through the console handler's
        # filter, so any handler (error tracker, test capture) can tie the trace to the
        # answer the client got.
        logger.error(
            "Unhandled error in %s %s %r",
            context.get("view").__class__.__name__,
            getattr(request, "method", "-"),
            getattr(request, "path", "-"),
            exc_info=exc,
            extra={"request_id": _request_id(request)},
        )
        error = InternalError()
    elif isinstance(exc, DjangoDatabaseError):
        from common import db_errors

        # One line: the server's DETAIL and HINT (other processes' ids, queries) are noise
        # at the rate lock timeouts can come.
        summary = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        logger.warning(
            "Database error answered as %s (SQLSTATE %s): %s",
            error.code,
            db_errors.sqlstate_of(exc),
            summary,
            extra={"request_id": _request_id(request)},
        )
    response = render_application_error(error)
    if unhandled:
        # Logged above with the trace and the request id. Django would log the 500 again
        # after the middleware chain, where the request id is no longer bound: a second,
        # anonymous line for the same failure. Django's own flag for "already logged".
        response._has_been_logged = True
    auth_header = getattr(exc, "auth_header", None)
    if error.status_code == 401:
        response["WWW-Authenticate"] = auth_header or 'Bearer realm="api"'
    return response
