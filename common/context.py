"""Per-request context (request id, client address, user agent) for logs and audit events.

Stored in context variables so services, which never see the request, can still stamp
their audit events with where a write came from.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""
    # The request itself, for the logs' user and organisation once authentication has
    # run (DRF sets the token's user on it too); never read by services.
    request: object = field(default=None, compare=False, repr=False)
    # In a Celery task: its id and name, and the import job it runs.
    task_id: str = ""
    task_name: str = ""
    job_id: str = ""


_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "attendance_request_context",
    default=RequestContext(),  # noqa: B039 (frozen, so sharing it is safe)
)


def current() -> RequestContext:
    return _current.get()


def bind(context: RequestContext) -> contextvars.Token:
    return _current.set(context)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)
