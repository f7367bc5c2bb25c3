"""Monthly partitions of the audit table: created ahead of time, DEFAULT kept empty.

Every month is created in its own transaction (a savepoint when the caller already has
one): a month that fails (a lock not had in time, say) is logged and retried by the next
run, and does not stop the months after it — before, one transaction for all months meant
that one failure failed every later month on every run.

DEFAULT catches an event for a month without a partition rather than failing the write it
audits. Such rows are a trap: PostgreSQL then refuses to create that month's partition.
``audit_ensure_partition`` (SQL, SECURITY DEFINER) repairs it by moving the month's rows
out of DEFAULT into the new partition in one transaction; every month that has rows in
DEFAULT is repaired this way on each run, inside the window or not, and the move is
audited (``audit.partitions.repaired``).
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services.record import audit_record
from audit.services.verification import monthly_partitions

logger = logging.getLogger(__name__)

# /readyz warns (and the preflight gate fails) below this many months ready after this one.
MIN_MONTHS_AHEAD = 2
# DEFAULT's rows are counted up to this many: the probe stays cheap whatever it holds.
DEFAULT_ROWS_PROBE_CAP = 1000


class PartitionMaintenanceError(RuntimeError):
    """Some months could not be created; the others were."""


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _default_months() -> list[dt.date]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT audit_default_months()")
        return [row[0] for row in cursor.fetchall()]


def audit_ensure_partitions(
    *, months_ahead: int | None = None, today: dt.date | None = None
) -> list[str]:
    """Create the monthly partitions from last month to ``months_ahead`` months ahead
    (``AUDIT_PARTITION_MONTHS_AHEAD``), and the partition of every month whose rows sit in
    DEFAULT, moving those rows into it.

    Returns the names of the partitions it created, oldest first (none when all exist), and
    records ``audit.partitions.created`` when it created any, plus one
    ``audit.partitions.repaired`` per month moved out of DEFAULT. Raises
    :class:`PartitionMaintenanceError` after trying every month if any failed.
    """
    months_ahead = settings.AUDIT_PARTITION_MONTHS_AHEAD if months_ahead is None else months_ahead
    start = _add_months(_month_start(today or timezone.now().date()), -1)
    months = {_add_months(start, offset) for offset in range(months_ahead + 2)}
    months.update(_default_months())
    created, failed = [], {}
    for month in sorted(months):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT * FROM audit_ensure_partition(%s)", [month])
                name, was_created, moved_rows = cursor.fetchone()
                if moved_rows:
                    audit_record(
                        actor=None,
                        action="audit.partitions.repaired",
                        target_type="audit.partition",
                        target_id=name,
                        data={
                            "partition": name,
                            "month": month.isoformat(),
                            "movedRows": moved_rows,
                        },
                    )
        except DatabaseError as exc:
            logger.exception("audit partition for %s not created", month)
            failed[month.isoformat()] = str(exc).strip().splitlines()[0][:300]
            continue
        if was_created:
            created.append(name)
    if created or failed:
        with transaction.atomic():
            audit_record(
                actor=None,
                action="audit.partitions.created",
                data={"partitions": created, **({"failed": failed} if failed else {})},
            )
    if failed:
        raise PartitionMaintenanceError(
            _("Audit partitions not created for: %(months)s") % {"months": ", ".join(failed)}
        )
    return created


def audit_partition_health(*, today: dt.date | None = None) -> dict:
    """Whether the partitions are in shape, cheaply (for ``/readyz`` and the preflight
    gate): ``defaultRows`` (counted up to 1,000: any is a problem), ``monthsAhead`` (how
    many consecutive months after this one have a partition), ``ok`` and ``detail``."""
    this_month = _month_start(today or timezone.now().date())
    with connection.cursor() as cursor:
        cursor.execute("SELECT audit_default_rows(%s)", [DEFAULT_ROWS_PROBE_CAP])
        default_rows = cursor.fetchone()[0]
        months = set(monthly_partitions(cursor).values())
    months_ahead = 0
    while _add_months(this_month, months_ahead + 1) in months:
        months_ahead += 1
    problems = []
    if default_rows:
        count = f"{default_rows}+" if default_rows >= DEFAULT_ROWS_PROBE_CAP else default_rows
        problems.append(
            _(
                "the DEFAULT audit partition holds %(count)s event(s): run"
                " `manage.py audit_partitions` to move them into their months"
            )
            % {"count": count}
        )
    if months_ahead < MIN_MONTHS_AHEAD:
        problems.append(
            _("only %(ready)s future month(s) of audit partitions are ready (want %(want)s)")
            % {"ready": months_ahead, "want": MIN_MONTHS_AHEAD}
        )
    return {
        "defaultRows": default_rows,
        "monthsAhead": months_ahead,
        "ok": not problems,
        "detail": "; ".join(problems) or "ok",
    }
