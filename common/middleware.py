from __future__ import annotations

import logging
import re
import uuid

from django.db import Error as DjangoDatabaseError
from django.http import HttpResponse, JsonResponse

from common import context, db_errors
from common.exceptions import Busy, DatabaseNotReady, error_body
from common.net import client_ip

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
            )
        )
        try:
            response = self.get_response(request)
        finally:
            context.reset(token)
        response["X-Request-ID"] = request_id
        return response


class DatabaseNotReadyMiddleware:
    """Database errors outside DRF (pages, the admin) answer what happened: 503 when the
    database is unreachable or unmigrated, 409 with ``Retry-After`` when a lock was not had
    in time, a deadlock or a serialisation failure (BUSY); anything else is left to Django's
    500 handling."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
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
        elif isinstance(error, Busy):
            response = HttpResponse(
                "<h1>Busy</h1><p>Someone was changing the same data (an import may be running)."
                " Nothing was changed; try again in a moment.</p>",
                status=error.status_code,
            )
        else:
            response = HttpResponse(
                "<h1>Service unavailable</h1><p>The database is not ready. Try again shortly.</p>",
                status=503,
            )
        if isinstance(error, Busy):
            response["Retry-After"] = str(error.retry_after_seconds)
        return response
