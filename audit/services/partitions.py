"""Monthly partitions of the audit table, created ahead of time."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from audit.services.record import audit_record


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
