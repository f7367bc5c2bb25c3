"""Writing audit events. Every write service calls :func:`audit_record` inside its own
transaction, so the event exists exactly when the change does."""

from __future__ import annotations

import datetime as dt
import re

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.models import AuditEvent
from common import context

_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|authorization|cookie", re.I)
MASK = "***"


def mask_secrets(value):
    """Replace the values of secret-looking keys, at any depth, with ``***``."""
    if isinstance(value, dict):
        return {
            key: MASK if _SECRET_KEY.search(str(key)) else mask_secrets(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(item) for item in value]
    return value


def _actor_label(actor) -> str:
    if actor is None:
        return "system"
    employee = getattr(actor, "employee", None)
    if employee is not None:
        return f"{actor.get_username()} ({employee.name})"
    return actor.get_username()


def audit_record(
    *,
    actor,
    action: str,
    organisation=None,
    target=None,
    target_type: str = "",
    target_id: str | int = "",
    data: dict | None = None,
) -> AuditEvent:
    """Append one audit event. ``target`` (a model instance) fills type and id."""
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
    request = context.current()
    return AuditEvent.objects.create(
        organisation=organisation,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=_actor_label(actor)[:200],
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        request_id=request.request_id,
        ip=request.ip,
        user_agent=request.user_agent,
        data=mask_secrets(data or {}),
    )


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@transaction.atomic
def audit_ensure_partitions(
    *, months_ahead: int | None = None, today: dt.date | None = None
) -> list[str]:
    """Create the monthly partitions from last month to ``months_ahead`` months ahead.

    Returns the names of the partitions it created (none when all exist), and records an
    audit event when it created any.
    """
    months_ahead = settings.AUDIT_PARTITION_MONTHS_AHEAD if months_ahead is None else months_ahead
    start = _add_months(_month_start(today or timezone.now().date()), -1)
    created = []
    with connection.cursor() as cursor:
        for offset in range(months_ahead + 2):
            month = _add_months(start, offset)
            cursor.execute("SELECT audit_ensure_partition(%s)", [month])
            name = cursor.fetchone()[0]
            if name:
                created.append(name)
    if created:
        audit_record(actor=None, action="audit.partitions.created", data={"partitions": created})
    return created
