"""Every log line carries where it came from: the request id, the user and their
organisation (once authenticated), or the Celery task and the import job it runs."""

import logging

from django.utils.functional import empty

from common import context


def _known_user(request):
    """The request's user if authentication already resolved it: a log line never triggers
    a query (a lazy user not yet evaluated is left alone)."""
    user = getattr(request, "user", None)
    user = getattr(user, "_wrapped", user)
    if user is None or user is empty or not getattr(user, "is_authenticated", False):
        return None
    return user


def _organisation_id(user):
    cache = getattr(getattr(user, "_state", None), "fields_cache", {})
    employee = cache.get("employee")
    return getattr(employee, "organisation_id", None)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id``, ``user``, ``organisation``, ``task_id`` and ``job_id`` (``-`` when
    unknown) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = context.current()
        record.request_id = current.request_id or "-"
        user = _known_user(current.request)
        record.user = user.get_username() if user is not None else "-"
        organisation = _organisation_id(user) if user is not None else None
        record.organisation = organisation if organisation is not None else "-"
        record.task_id = current.task_id or "-"
        record.task_name = current.task_name or "-"
        record.job_id = current.job_id or getattr(record, "job_id", "-")
        return True
