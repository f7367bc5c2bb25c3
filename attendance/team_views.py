"""The team month (approvers: their reports; admins: everyone), a person's month, and the
exports of both views (CSV and XLSX, formulas neutralised).

Reads go through ``selectors``: one query for the page's people, one for their month's
records, one for their pending corrections, whatever the number of people on the page.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io

from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from attendance import schedule, selectors, services
from attendance.choices import RecordStatus
from attendance.models import Employee
from attendance.views import (
    CORRECTED_STATUSES,
    IN_PROGRESS,
    IN_PROGRESS_LABEL,
    STATUS_LABELS,
    _add_months,
    _clock,
    _duration,
    _forbidden,
    _local_today,
    _month_days,
    _month_param,
    _parse_month,
    approver_page,
    attendance_page,
)
from common.csv_export import neutralise, streaming_csv_response

EXPORT_FORMATS = ("csv", "xlsx")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _month_from(request, today: dt.date) -> dt.date:
    return _parse_month(request.GET.get("month")) or today.replace(day=1)


def _filters(request) -> dict:
    status = request.GET.get("status", "")
    return {
        "department": request.GET.get("department", "").strip(),
        "query": request.GET.get("q", "").strip()[:100],
        "status": status if status in RecordStatus.values else "",
    }


def _cell(record, day: dt.date, organisation, now) -> tuple[str, str]:
    """The status shown for one person's day: today before its scheduled end is in progress
    (a decided day keeps its status)."""
    status = record.status if record else ""
    if schedule.day_in_progress(organisation, day, now) and status not in CORRECTED_STATUSES:
        return IN_PROGRESS, str(IN_PROGRESS_LABEL)
    return status, str(STATUS_LABELS.get(status, status))


def _person_row(person, records: dict, days: list[dt.date], organisation, now) -> dict:
    cells, worked, late, early, absent, leave = [], 0, 0, 0, 0, 0
    for day in days:
        record = records.get(day)
        status, label = _cell(record, day, organisation, now)
        cells.append({"date": day, "status": status, "label": label})
        if record is None:
            continue
        worked += record.work_minutes
        late += record.late_minutes
        if status != IN_PROGRESS:
            early += record.early_leave_minutes
        absent += status == RecordStatus.ABSENT
        leave += status == RecordStatus.LEAVE
    return {
        "person": person,
        "cells": cells,
        "worked": _duration(worked) or "0:00",
        "late_minutes": late,
        "early_leave_minutes": early,
        "absent_days": absent,
        "leave_days": leave,
    }


def _month_dates(month_start: dt.date) -> list[dt.date]:
    last = calendar.monthrange(month_start.year, month_start.month)[1]
    return [month_start.replace(day=number) for number in range(1, last + 1)]


@approver_page
@require_GET
def team(request):
    organisation = request.employee.organisation
    today = _local_today(organisation)
    month_start = _month_from(request, today)
    filters = _filters(request)
    people = selectors.team_employees(user=request.user, month_start=month_start, **filters)
    page = Paginator(people, selectors.TEAM_PAGE_SIZE).get_page(request.GET.get("page"))
    ids = [person.pk for person in page.object_list]
    records = selectors.team_records(employee_ids=ids, month_start=month_start)
    pending = selectors.pending_request_counts(employee_ids=ids)
    days = _month_dates(month_start)
    now = timezone.now()
    rows = [
        {
            **_person_row(person, records[person.pk], days, organisation, now),
            "pending": pending.get(person.pk, 0),
        }
        for person in page.object_list
    ]
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "attendance/team.html",
        {
            "rows": rows,
            "page": page,
            "days": days,
            "today": today,
            "filters": filters,
            "departments": selectors.team_departments(user=request.user),
            "statuses": RecordStatus.choices,
            "month_start": month_start,
            "month_param": _month_param(month_start),
            "prev_month": _month_param(_add_months(month_start, -1)),
            "next_month": _month_param(_add_months(month_start, 1)),
            "query_string": query.urlencode(),
            "time_zone": organisation.time_zone,
        },
    )


@attendance_page()
@require_GET
def person_month(request, employee_id: int):
    """One person's month, read-only: for the person, their approver and admins. Anyone
    else gets 403 whether or not the person exists (the answer tells nothing)."""
    person = (
        selectors.visible_employees(request.user).filter(pk=employee_id).select_related().first()
    )
    if person is None:
        return _forbidden(
            request,
            _("Not your team"),
            _("Only this person's approver and administrators may see their month."),
        )
    organisation = person.organisation
    today = _local_today(organisation)
    month_start = _month_from(request, today)
    days = _month_days(person, month_start, today)
    return render(
        request,
        "attendance/person_month.html",
        {
            "person": person,
            "days": days,
            "month_start": month_start,
            "month_param": _month_param(month_start),
            "prev_month": _month_param(_add_months(month_start, -1)),
            "next_month": _month_param(_add_months(month_start, 1)),
            "worked_total": _duration(sum(day["work_minutes"] for day in days)) or "0:00",
            "late_total": sum(day["late_minutes"] for day in days),
            "early_total": sum(day["early_leave_minutes"] for day in days),
            "time_zone": organisation.time_zone,
        },
    )


# --- exports -------------------------------------------------------------------------------


def _export_header() -> list[str]:
    return [
        _("Employee no."),
        _("Name"),
        _("Department"),
        _("Date"),
        _("Status"),
        _("First in"),
        _("Last out"),
        _("Worked (minutes)"),
        _("Late (minutes)"),
        _("Early leave (minutes)"),
    ]


def _export_rows(people, month_start: dt.date, organisation):
    """One row per person and day with a record, a page of people at a time (bounded
    memory for the whole organisation)."""
    tz, now = organisation.tz, timezone.now()
    paginator = Paginator(people, 500)
    for number in paginator.page_range:
        batch = list(paginator.page(number).object_list)
        grid = selectors.team_records(
            employee_ids=[person.pk for person in batch], month_start=month_start
        )
        for person in batch:
            for day, record in sorted(grid[person.pk].items()):
                _status, label = _cell(record, day, organisation, now)
                early = 0 if _status == IN_PROGRESS else record.early_leave_minutes
                yield [
                    person.employee_no,
                    person.name,
                    person.department,
                    day.isoformat(),
                    label,
                    _clock(record.first_in, tz, day),
                    _clock(record.last_out, tz, day),
                    record.work_minutes,
                    record.late_minutes,
                    early,
                ]


def _xlsx_response(filename: str, header: list[str], rows) -> HttpResponse:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet()
    sheet.append(header)
    for row in rows:
        sheet.append([neutralise(value) for value in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    response = HttpResponse(buffer.getvalue(), content_type=XLSX_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _export(request, people, month_start: dt.date, stem: str, fmt: str, filters: dict):
    if fmt not in EXPORT_FORMATS:
        raise Http404
    organisation = request.employee.organisation
    services.attendance_records_export_audit(
        actor=request.user, filters={**filters, "month": _month_param(month_start)}
    )
    filename = f"{stem}-{_month_param(month_start)}.{fmt}"
    rows = _export_rows(people, month_start, organisation)
    if fmt == "csv":
        return streaming_csv_response(filename, _export_header(), rows)
    return _xlsx_response(filename, _export_header(), rows)


@approver_page
@require_GET
def team_export(request, fmt: str):
    today = _local_today(request.employee.organisation)
    month_start = _month_from(request, today)
    filters = _filters(request)
    people = selectors.team_employees(user=request.user, month_start=month_start, **filters)
    return _export(request, people, month_start, "team", fmt, filters)


@attendance_page()
@require_GET
def my_export(request, fmt: str):
    today = _local_today(request.employee.organisation)
    month_start = _month_from(request, today)
    people = Employee.objects.filter(pk=request.employee.pk)
    return _export(request, people, month_start, "my-month", fmt, {"mine": True})
