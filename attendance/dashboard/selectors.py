"""The admin dashboard's reads: a few aggregate queries whose number does not grow with the
organisation (each tile is one COUNT … FILTER over a join, never a loop over people).

Today is the organisation's date. While the day is in progress
(``schedule.day_in_progress``) a workday employee without a punch is "not yet in", never
absent; once the scheduled end has passed they count as absent, together with the day
records stored as absent (an import or the auto-absence run may have written them). Day
records of leave or a day off are neither absent nor expected in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, FilteredRelation, Q, QuerySet
from django.utils import timezone

from attendance import schedule
from attendance.choices import RecordStatus
from attendance.models import Employee, Organisation
from audit.models import AuditEvent
from imports.models import ImportBatch

RECENT_BATCHES = 5
AUDIT_WINDOW = dt.timedelta(hours=24)
# Today's categories, each a tile and a list (the tile's link).
PRESENT, LATE, ABSENT, NOT_YET_IN = "present", "late", "absent", "not_yet_in"
CATEGORIES = (PRESENT, LATE, ABSENT, NOT_YET_IN)
_EXCUSED = (RecordStatus.LEAVE, RecordStatus.OFF)
_UNSTATED = tuple(
    status for status in RecordStatus.values if status not in (RecordStatus.ABSENT, *_EXCUSED)
)


@dataclass(frozen=True)
class Today:
    date: dt.date
    workday: bool
    in_progress: bool
    employees: int
    present: int
    late: int
    absent: int
    not_yet_in: int
    excused: int

    def count(self, category: str) -> int:
        return getattr(self, category)


def _with_today(organisation: Organisation, day: dt.date) -> QuerySet[Employee]:
    """Active employees, each joined (LEFT JOIN) to their day record of ``day`` as ``today``."""
    return Employee.objects.filter(organisation=organisation, is_active=True).annotate(
        today=FilteredRelation("records", condition=Q(records__work_date=day))
    )


def _conditions() -> dict[str, Q]:
    """Positive conditions only: a negated condition on the joined record would become a
    subquery per row (a multi-valued relation), a cost that grows with the organisation."""
    punched = Q(today__first_in__isnull=False) | Q(today__last_out__isnull=False)
    no_times = Q(today__first_in__isnull=True) & Q(today__last_out__isnull=True)
    return {
        PRESENT: punched,
        LATE: Q(today__late_minutes__gt=0),
        "stored_absent": Q(today__status=RecordStatus.ABSENT) & no_times,
        "excused": Q(today__status__in=_EXCUSED),
        # No punch and nothing stated for the day (no record, or one without times that is
        # neither an absence nor leave): expected in while the day runs, absent after it.
        "no_punch": Q(today__id__isnull=True) | (no_times & Q(today__status__in=_UNSTATED)),
    }


def local_now(organisation: Organisation) -> dt.datetime:
    return timezone.localtime(timezone.now(), organisation.tz)


def today_counts(*, organisation: Organisation, now: dt.datetime | None = None) -> Today:
    """Today's figures in one query."""
    now = now or timezone.now()
    day = timezone.localtime(now, organisation.tz).date()
    workday = schedule.is_workday(organisation, day)
    in_progress = schedule.day_in_progress(organisation, day, now)
    figures = _with_today(organisation, day).aggregate(
        employees=Count("pk"),
        **{name: Count("pk", filter=condition) for name, condition in _conditions().items()},
    )
    no_punch = figures["no_punch"] if workday else 0
    return Today(
        date=day,
        workday=workday,
        in_progress=in_progress,
        employees=figures["employees"],
        present=figures[PRESENT],
        late=figures[LATE],
        absent=figures["stored_absent"] + (0 if in_progress else no_punch),
        not_yet_in=no_punch if in_progress else 0,
        excused=figures["excused"],
    )


def today_people(
    *, organisation: Organisation, category: str, now: dt.datetime | None = None
) -> QuerySet[Employee]:
    """The employees behind one of today's tiles (same rules as ``today_counts``), with
    their day record's values as ``today_*`` attributes, ordered by employee number."""
    now = now or timezone.now()
    day = timezone.localtime(now, organisation.tz).date()
    workday = schedule.is_workday(organisation, day)
    in_progress = schedule.day_in_progress(organisation, day, now)
    conditions = _conditions()
    nobody = Q(pk__in=[])
    if category == ABSENT:
        condition = conditions["stored_absent"]
        if workday and not in_progress:
            condition |= conditions["no_punch"]
    elif category == NOT_YET_IN:
        condition = conditions["no_punch"] if workday and in_progress else nobody
    else:
        condition = conditions[category]
    return (
        _with_today(organisation, day)
        .filter(condition)
        .values(
            "pk",
            "employee_no",
            "name",
            "department",
            "today__first_in",
            "today__last_out",
            "today__late_minutes",
            "today__status",
        )
        .order_by("employee_no", "pk")
    )


def pending_corrections(*, user) -> int:
    """The pending corrections the approvals inbox lists for this admin (not their own)."""
    from attendance.selectors import approval_inbox

    return approval_inbox(user=user).count()


def recent_batches(*, organisation: Organisation) -> list[ImportBatch]:
    return list(
        ImportBatch.objects.filter(organisation=organisation)
        .select_related("created_by")
        .order_by("-created_at", "-id")[:RECENT_BATCHES]
    )


def audit_last_day(*, organisation: Organisation, now: dt.datetime | None = None) -> dict:
    """The organisation's audit events of the last 24 hours: how many, and since when."""
    since = (now or timezone.now()) - AUDIT_WINDOW
    count = AuditEvent.objects.filter(organisation=organisation, occurred_at__gte=since).count()
    return {"count": count, "since": since}
