"""How a day is judged: punches → first in, last out, minutes and status.

Pure functions over an organisation's schedule (start, end, grace, workdays), so the same
rules serve web punches, imports and the demo data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from attendance.choices import PunchKind, RecordStatus


@dataclass(frozen=True)
class DayResult:
    first_in: dt.datetime | None
    last_out: dt.datetime | None
    work_minutes: int
    late_minutes: int
    early_leave_minutes: int
    status: str

    def record_fields(self) -> dict:
        """The judged values under the names of AttendanceRecord's fields."""
        return {
            "first_in": self.first_in,
            "last_out": self.last_out,
            "work_minutes": self.work_minutes,
            "late_minutes": self.late_minutes,
            "early_leave_minutes": self.early_leave_minutes,
            "status": self.status,
        }


def whole_minutes(delta: dt.timedelta) -> int:
    return max(0, int(delta.total_seconds() // 60))


def shift_bounds(organisation, work_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Scheduled start and end of a work date; an end at or before the start is next day."""
    tz = organisation.tz
    start = dt.datetime.combine(work_date, organisation.work_start, tzinfo=tz)
    end_date = (
        work_date + dt.timedelta(days=1)
        if organisation.work_end <= organisation.work_start
        else work_date
    )
    end = dt.datetime.combine(end_date, organisation.work_end, tzinfo=tz)
    return start, end


def is_workday(organisation, work_date: dt.date) -> bool:
    return work_date.weekday() in set(organisation.workdays)


def judge_day(
    organisation, work_date: dt.date, punches: list[tuple[dt.datetime, str]]
) -> DayResult:
    """Judge one employee's day from its punches ``[(occurred_at, kind), …]``.

    firstIn is the earliest punch and lastOut the latest when there are two distinct times;
    a single punch is an in-punch unless it was explicitly an out-punch. Lateness counts from
    the scheduled start once it exceeds the grace; early leave likewise to the scheduled end.
    """
    workday = is_workday(organisation, work_date)
    ordered = sorted(punches)
    if not ordered:
        status = RecordStatus.ABSENT if workday else RecordStatus.OFF
        return DayResult(None, None, 0, 0, 0, status)

    start, end = shift_bounds(organisation, work_date)
    grace = dt.timedelta(minutes=organisation.grace_minutes)
    distinct_times = sorted({moment for moment, _ in ordered})
    first_in: dt.datetime | None = distinct_times[0]
    last_out: dt.datetime | None = distinct_times[-1] if len(distinct_times) > 1 else None
    if last_out is None and all(kind == PunchKind.OUT for _, kind in ordered):
        first_in, last_out = None, distinct_times[0]

    late = whole_minutes(first_in - start) if first_in and first_in - start > grace else 0
    early = whole_minutes(end - last_out) if last_out and end - last_out > grace else 0
    worked = whole_minutes(last_out - first_in) if first_in and last_out else 0

    if not workday:
        status = RecordStatus.OFF
    elif first_in is None or last_out is None:
        status = RecordStatus.PARTIAL
    elif late and early:
        status = RecordStatus.LATE_EARLY
    elif late:
        status = RecordStatus.LATE
    elif early:
        status = RecordStatus.EARLY_LEAVE
    else:
        status = RecordStatus.NORMAL
    return DayResult(first_in, last_out, worked, late, early, status)


def day_in_progress(organisation, work_date: dt.date, now: dt.datetime) -> bool:
    """A workday whose scheduled end has not come yet is not judged: until then a missing
    punch is not an absence and an out-punch is not an early leave (the stored status, judged
    from the punches so far, stays as it is; readers show the day as in progress)."""
    if not is_workday(organisation, work_date):
        return False
    _, end = shift_bounds(organisation, work_date)
    return work_date <= now.astimezone(organisation.tz).date() and now < end
