"""Every 403 the application answers becomes a ``security.access.denied`` event.

It sits right after ``AuthenticationMiddleware`` and before the IP allowlist middleware, so
it sees every refusal made after the session was read: the API's envelopes (``FORBIDDEN``,
``IP_RESTRICTED``, ``COMMIT_TOKEN_INVALID`` …), the pages' 403 page, the admin centre's
``PermissionDenied``, the IP allowlist's refusals and CSRF failures. A 401 (not logged in,
bad token) is not a denial: nobody was identified to be refused.

The event: actor = the user (DRF puts a token's user on the request too), organisation =
their employee's, ``data = {path, method, code, status}``. ``code`` is, in order: the
response's ``error_code`` attribute (any middleware or view answering a 403 outside the
envelope may set it: the IP allowlist's page does), the envelope's ``error.code``,
``CSRF_FAILED`` when Django's CSRF check refused the request before any view ran (or DRF's
session authentication did, "CSRF Failed: …"), else ``FORBIDDEN``.

Flood bound: at most one event per (user, or client address when anonymous; path; code)
per :data:`DENIAL_WINDOW_SECONDS`, remembered in the shared cache (``cache.add`` is atomic
on Redis and on the database cache). A script hammering a forbidden endpoint therefore
writes one event a minute, not one per request; a different path or code is a new event.
If the cache is unreachable the event is written anyway (a denial lost is worse than a few
extra rows).

The write never fails the request: it runs in its own transaction (a savepoint when the
caller's transaction is open), and any error is logged and the 403 answered as it was.
"""

from __future__ import annotations

import hashlib
import json
import logging

from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db import transaction

from audit.services import audit_record
from common.net import client_ip

logger = logging.getLogger(__name__)

ACTION = "security.access.denied"
DENIAL_WINDOW_SECONDS = 60
CSRF_FAILED = "CSRF_FAILED"
DEFAULT_CODE = "FORBIDDEN"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# An error envelope is a few hundred bytes; a larger JSON body is not one worth parsing.
_ENVELOPE_MAX_BYTES = 64 * 1024


def _envelope_code(response) -> str | None:
    data = getattr(response, "data", None)
    if data is None and not getattr(response, "streaming", False):
        content_type = response.get("Content-Type", "")
        if content_type.startswith("application/json") and len(response.content) <= (
            _ENVELOPE_MAX_BYTES
        ):
            try:
                data = json.loads(response.content)
            except ValueError:
                return None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        code = data["error"].get("code")
        # DRF's session authentication refuses a missing CSRF token as a plain 403; its
        # message (never translated) tells the two apart.
        if code == DEFAULT_CODE and str(data["error"].get("message", "")).startswith("CSRF Failed"):
            return CSRF_FAILED
        return str(code)[:100] if code else None
    return None


def denial_code(request, response) -> str:
    code = getattr(response, "error_code", None) or _envelope_code(response)
    if code:
        return str(code)
    # The URL was resolved (the handler had started) but process_view below, which runs
    # right after CsrfViewMiddleware's, did not: a process_view before it refused, and the
    # only one that does is the CSRF check. (A middleware refusing in its __call__, such as
    # the IP allowlist, answers before the URL is resolved.)
    refused_before_view = getattr(request, "resolver_match", None) is not None and not getattr(
        request, "_audit_view_reached", False
    )
    if refused_before_view and request.method not in _SAFE_METHODS:
        return CSRF_FAILED
    return DEFAULT_CODE


def _window_key(who: str, path: str, code: str) -> str:
    digest = hashlib.sha256(f"{who}\n{path}\n{code}".encode()).hexdigest()[:32]
    return f"audit:denied:{digest}"


def _first_in_window(key: str) -> bool:
    try:
        return cache.add(key, 1, timeout=DENIAL_WINDOW_SECONDS)
    except Exception:  # the cache is an optimisation, never a reason to lose an event
        logger.warning("Cache unreachable: access denial audited without the flood bound")
        return True


def _forget_window(key: str) -> None:
    """The event was not written: the next refusal should try again, not wait a minute."""
    try:
        cache.delete(key)
    except Exception:
        logger.warning("Cache unreachable: could not reopen the access denial window")


def _organisation_of(user):
    employee = getattr(user, "employee", None) if user is not None else None
    return employee.organisation if employee is not None else None


def record_denial(request, response) -> None:
    user = getattr(request, "user", None) or AnonymousUser()
    authenticated = user.is_authenticated
    code = denial_code(request, response)
    who = f"user:{user.pk}" if authenticated else f"ip:{client_ip(request) or '-'}"
    key = _window_key(who, request.path, code)
    if not _first_in_window(key):
        return
    try:
        _write_denial(request, response, user, code)
    except Exception:
        _forget_window(key)
        raise


def _write_denial(request, response, user, code: str) -> None:
    authenticated = user.is_authenticated
    with transaction.atomic():
        audit_record(
            actor=user,
            action=ACTION,
            organisation=_organisation_of(user) if authenticated else None,
            data={
                "path": request.path[:500],
                "method": request.method,
                "code": code,
                "status": response.status_code,
                "username": user.get_username() if authenticated else "",
            },
        )


class AccessDeniedAuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code == 403:
            try:
                record_denial(request, response)
            except Exception:
                # The refusal stands whatever happened to its record (database down, …).
                logger.exception("Could not audit the access denial of %s", request.path)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        request._audit_view_reached = True
        return None
