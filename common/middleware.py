from __future__ import annotations

import logging
import re
import uuid

from django.db import InterfaceError, OperationalError, ProgrammingError
from django.http import HttpResponse, JsonResponse

from common import context
from common.exceptions import DatabaseNotReady, error_body
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
    """An unreachable or unmigrated database answers 503 DB_NOT_READY, not a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        not_migrated = isinstance(exception, ProgrammingError) and "does not exist" in str(
            exception
        )
        if not (isinstance(exception, OperationalError | InterfaceError) or not_migrated):
            return None
        logger.error("Database not ready: %s", exception)
        error = DatabaseNotReady()
        if request.path.startswith("/api/"):
            return JsonResponse(error_body(error.code, error.message), status=503)
        return HttpResponse(
            "<h1>Service unavailable</h1><p>The database is not ready. Try again shortly.</p>",
            status=503,
        )
