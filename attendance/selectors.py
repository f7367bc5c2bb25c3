"""Every non-trivial attendance read: the same querysets serve API, pages and admin."""

from __future__ import annotations

import calendar
import datetime as dt

from django.db.models import Count, Q, QuerySet, Sum

from attendance.choices import RecordStatus, RequestState
from attendance.models import AdjustmentRequest, AttendanceRecord, Employee
from common import roles


def visible_employees(user) -> QuerySet[Employee]:
    """Employees the user may see: own; plus direct reports (approver); all (admin)."""
    employee = user.employee
    base = Employee.objects.filter(organisation_id=employee.organisation_id)
    if roles.has_any_role(user, roles.ADMIN):
        return base
    if roles.has_any_role(user, roles.APPROVER):
        return base.filter(Q(pk=employee.pk) | Q(approver_id=employee.pk))
    return base.filter(pk=employee.pk)


def record_list(
    *,
    user,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    employee_id: int | None = None,
    status: str | None = None,
) -> QuerySet[AttendanceRecord]:
    records = AttendanceRecord.objects.filter(employee__in=visible_employees(user)).select_related(
        "employee"
    )
    if date_from:
        records = records.filter(work_date__gte=date_from)
    if date_to:
        records = records.filter(work_date__lte=date_to)
    if employee_id:
        records = records.filter(employee_id=employee_id)
    if status:
        records = records.filter(status=status)
    return records.order_by("-work_date", "employee__employee_no")


def _month_end(month_start: dt.date) -> dt.date:
    """The last day of the month (no date arithmetic past it: December 9999 has an end)."""
    return month_start.replace(day=calendar.monthrange(month_start.year, month_start.month)[1])


def record_summary(*, user, month_start: dt.date, employee_id: int | None = None) -> dict:
    """Counts by status and minute totals for one month."""
    records = record_list(
        user=user,
        date_from=month_start,
        date_to=_month_end(month_start),
        employee_id=employee_id,
    )
    by_status = dict(records.order_by().values_list("status").annotate(n=Count("id")))
    totals = records.order_by().aggregate(
        work=Sum("work_minutes"), late=Sum("late_minutes"), early=Sum("early_leave_minutes")
    )
    return {
        "days": sum(by_status.values()),
        "byStatus": {status: by_status.get(status, 0) for status in RecordStatus.values},
        "workMinutes": totals["work"] or 0,
        "lateMinutes": totals["late"] or 0,
        "earlyLeaveMinutes": totals["early"] or 0,
    }


def request_list(
    *, user, state: str | None = None, mine: bool = False
) -> QuerySet[AdjustmentRequest]:
    """Own requests, plus those the user may decide (approver: reports; admin: everyone)."""
    requests = AdjustmentRequest.objects.select_related(
        "employee", "created_by", "decided_by"
    ).filter(organisation_id=user.employee.organisation_id)
    if mine:
        requests = requests.filter(employee_id=user.employee.pk)
    else:
        requests = requests.filter(employee__in=visible_employees(user))
    if state:
        requests = requests.filter(state=state)
    return requests.order_by("-created_at", "-id")


def approval_inbox(*, user) -> QuerySet[AdjustmentRequest]:
    """Pending requests this user can decide (never their own)."""
    return (
        request_list(user=user, state=RequestState.PENDING)
        .exclude(employee_id=user.employee.pk)
        .order_by("created_at", "id")
    )


def month_records(*, employee: Employee, month_start: dt.date) -> dict[dt.date, AttendanceRecord]:
    records = AttendanceRecord.objects.filter(
        employee=employee, work_date__gte=month_start, work_date__lte=_month_end(month_start)
    )
    return {record.work_date: record for record in records}


TEAM_PAGE_SIZE = 50


def team_employees(
    *, user, department: str = "", query: str = "", status: str = "", month_start: dt.date
) -> QuerySet[Employee]:
    """The people of the team month: the user's reports (approver) or everyone (admin), the
    user left out, filtered by department, a name/number search and a status held on at
    least one day of the month."""
    people = (
        visible_employees(user)
        .filter(is_active=True)
        .exclude(pk=user.employee.pk)
        .order_by("department", "employee_no", "pk")
    )
    if department:
        people = people.filter(department=department)
    if query:
        people = people.filter(Q(name__icontains=query) | Q(employee_no__icontains=query))
    if status:
        people = people.filter(
            records__work_date__gte=month_start,
            records__work_date__lte=_month_end(month_start),
            records__status=status,
        ).distinct()
    return people


def team_departments(*, user) -> list[str]:
    return list(
        visible_employees(user)
        .exclude(department="")
        .order_by("department")
        .values_list("department", flat=True)
        .distinct()
    )


def team_records(
    *, employee_ids: list[int], month_start: dt.date
) -> dict[int, dict[dt.date, AttendanceRecord]]:
    """The month's records of a page of people, in one query, by person then date."""
    grid: dict[int, dict[dt.date, AttendanceRecord]] = {pk: {} for pk in employee_ids}
    records = AttendanceRecord.objects.filter(
        employee_id__in=employee_ids,
        work_date__gte=month_start,
        work_date__lte=_month_end(month_start),
    ).only(
        "employee_id",
        "work_date",
        "status",
        "work_minutes",
        "late_minutes",
        "early_leave_minutes",
        "first_in",
        "last_out",
    )
    for record in records:
        grid[record.employee_id][record.work_date] = record
    return grid


def pending_request_counts(*, employee_ids: list[int]) -> dict[int, int]:
    return dict(
        AdjustmentRequest.objects.filter(employee_id__in=employee_ids, state=RequestState.PENDING)
        .order_by()
        .values_list("employee_id")
        .annotate(n=Count("id"))
    )
