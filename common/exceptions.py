"""Application errors and the one DRF exception handler that renders the error envelope."""

from __future__ import annotations

import logging
import math

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError, ProgrammingError
from django.http import Http404
from django_ratelimit.exceptions import Ratelimited
from rest_framework import exceptions as drf
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class ApplicationError(Exception):
    """A refusal a client can act on: a stable code, an HTTP status and a message."""

    code = "APPLICATION_ERROR"
    status_code = 400
    default_message = "The request could not be completed."

    def __init__(self, message: str | None = None, *, details: dict | None = None):
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message)


class ValidationFailed(ApplicationError):
    code = "VALIDATION_ERROR"
    status_code = 400
    default_message = "The request is not valid."

    def __init__(self, message: str | None = None, *, fields: dict | None = None, **kwargs):
        details = kwargs.pop("details", None) or {}
        if fields:
            details["fields"] = {key: _as_list(value) for key, value in fields.items()}
        super().__init__(message, details=details)


class Unauthenticated(ApplicationError):
    code = "UNAUTHENTICATED"
    status_code = 401
    default_message = "Authentication credentials were not provided or are not valid."


class Forbidden(ApplicationError):
    code = "FORBIDDEN"
    status_code = 403
    default_message = "You do not have permission to do this."


class IpRestricted(ApplicationError):
    code = "IP_RESTRICTED"
    status_code = 403
    default_message = "Your organisation does not allow access from this address."


class NotFound(ApplicationError):
    code = "NOT_FOUND"
    status_code = 404
    default_message = "Not found."


class RateLimited(ApplicationError):
    code = "RATE_LIMITED"
    status_code = 429
    default_message = "Too many requests; try again later."

    def __init__(self, retry_after_seconds: float, message: str | None = None):
        self.retry_after_seconds = max(1, math.ceil(retry_after_seconds))
        super().__init__(message, details={"retryAfterMs": int(self.retry_after_seconds * 1000)})


class DatabaseNotReady(ApplicationError):
    code = "DB_NOT_READY"
    status_code = 503
    default_message = "The database is unreachable or its migrations are not applied."


class RequestStateConflict(ApplicationError):
    code = "REQUEST_STATE_CONFLICT"
    status_code = 409
    default_message = "The request is not in a state that allows this."


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
        return ValidationFailed(f"Malformed request body: {exc.detail}")
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
    if isinstance(exc, OperationalError | InterfaceError):
        return DatabaseNotReady()
    if isinstance(exc, ProgrammingError) and "does not exist" in str(exc):
        return DatabaseNotReady("The database schema is not migrated.")
    return None


def render_application_error(error: ApplicationError) -> Response:
    response = Response(
        error_body(error.code, error.message, error.details), status=error.status_code
    )
    if isinstance(error, RateLimited):
        response["Retry-After"] = str(error.retry_after_seconds)
    return response


def envelope_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every failure under /api/ leaves in the error envelope."""
    error = as_application_error(exc)
    if error is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        error = ApplicationError("An internal error occurred.")
        error.code, error.status_code = "INTERNAL_ERROR", 500
    response = render_application_error(error)
    auth_header = getattr(exc, "auth_header", None)
    if error.status_code == 401:
        response["WWW-Authenticate"] = auth_header or 'Bearer realm="api"'
    return response
