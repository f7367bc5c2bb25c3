"""Server-rendered pages: my month (punch, corrections, my requests) and the approval inbox.

Views only translate: reads go through ``selectors``, writes through ``services``, and every
``ApplicationError`` a service raises becomes a form error or a message, never a 500.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
import uuid
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from attendance import schedule, selectors, services
from attendance.choices import PunchKind, RecordStatus, RequestState
from attendance.forms import CorrectionForm, DecisionForm
from common import ratelimit, roles
from common.exceptions import ApplicationError, RateLimited, ValidationFailed

STATUS_LABELS = dict(RecordStatus.choices)
# Not a stored status: how pages show today until its scheduled end (schedule.day_in_progress).
IN_PROGRESS = "in_progress"
IN_PROGRESS_LABEL = gettext_lazy("In progress")
STATE_LABELS = dict(RequestState.choices)
# Days someone decided (an approved correction, a stated leave or day off) stay as decided.
CORRECTED_STATUSES = (RecordStatus.ADJUSTED, RecordStatus.LEAVE, RecordStatus.OFF)
MY_REQUESTS_LIMIT = 20
INBOX_LIMIT = 100
RECENTLY_DECIDED_LIMIT = 10
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


class RateLimitedLoginView(auth_views.LoginView):
    """Django's login. Its POSTs are rate limited per username and per client address
    (``common.throttles``) and failed sign-ins lock out (``attendance.lockouts``); both
    refusals draw this page again with ``request.refusal_message``, HTTP 429."""

    template_name = "registration/login.html"


# --- access ------------------------------------------------------------------------------


def _forbidden(request, title: str, message: str):
    return render(
        request, "attendance/forbidden.html", {"title": title, "message": message}, status=403
    )


def attendance_page(*, any_role: tuple[str, ...] = (), refusal: tuple[str, str] = ("", "")):
    """Every page: a logged-in user linked to an active employee; with ``any_role``, also one
    of those roles, else the 403 page with ``refusal`` (title, message). The view finds the
    employee on ``request.employee``. The organisation's IP allowlist is checked before, by
    ``common.middleware.OrganisationIpAllowlistMiddleware``, for pages and admin alike."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return auth_views.redirect_to_login(request.get_full_path())
            employee = getattr(request.user, "employee", None)
            if employee is None:
                return _forbidden(
                    request,
                    _("No employee record"),
                    _(
                        "Your login is not linked to an employee, so there is no attendance to "
                        "show. Ask an administrator to link it."
                    ),
                )
            if not employee.is_active:
                return _forbidden(
                    request,
                    _("Employee deactivated"),
                    _("Your employee record is deactivated."),
                )
            if any_role and not roles.has_any_role(request.user, *any_role):
                return _forbidden(request, *refusal)
            request.employee = employee
            with timezone.override(employee.organisation.tz):
                return view(request, *args, **kwargs)

        return wrapper

    return decorator


approver_page = attendance_page(
    any_role=(roles.APPROVER, roles.ADMIN),
    refusal=(
        gettext_lazy("Approvers only"),
        gettext_lazy("This page is for approvers and administrators."),
    ),
)


# --- small helpers -----------------------------------------------------------------------


def _local_today(organisation) -> dt.date:
    return timezone.localtime(timezone.now(), organisation.tz).date()


def _parse_month(value: str | None) -> dt.date | None:
    match = _MONTH.match(value or "")
    if not match:
        return None
    year, month = int(match[1]), int(match[2])
    if not (1 <= month <= 12 and 1900 <= year <= 2999):
        return None
    return dt.date(year, month, 1)


def _parse_date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value or "")
    except ValueError:
        return None


def _add_months(month_start: dt.date, months: int) -> dt.date:
    index = month_start.year * 12 + month_start.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _month_param(month_start: dt.date) -> str:
    return month_start.strftime("%Y-%m")


def _home_url(month_start: dt.date | None = None, anchor: str = "") -> str:
    url = reverse("attendance:home")
    if month_start is not None:
        url += f"?month={_month_param(month_start)}"
    return url + (f"#{anchor}" if anchor else "")


def _clock(value: dt.datetime | None, tz, work_date: dt.date | None = None) -> str:
    """``HH:MM`` in the organisation's zone; ``+1`` when it falls on the next day."""
    if value is None:
        return ""
    local = timezone.localtime(value, tz)
    text = local.strftime("%H:%M")
    if work_date is not None and local.date() > work_date:
        text += f" +{(local.date() - work_date).days}"
    return text


def _duration(minutes: int) -> str:
    return f"{minutes // 60}:{minutes % 60:02d}" if minutes else ""


def _person(user) -> str:
    if user is None:
        return ""
    employee = getattr(user, "employee", None)
    return employee.name if employee is not None else user.get_full_name() or user.username


def _error_text(error: ApplicationError) -> str:
    fields = error.details.get("fields") if isinstance(error.details, dict) else None
    if not fields:
        return error.message
    return " ".join(message for messages_ in fields.values() for message in messages_)


# --- my month ----------------------------------------------------------------------------

CHART_STEP, CHART_BAR, CHART_HEIGHT = 24, 16, 160
CHART_LEFT, CHART_TOP, CHART_BOTTOM = 34, 12, 22


def _chart(days: list[dict], organisation) -> dict:
    """Bar geometry for the inline SVG: worked hours per day, with the scheduled shift."""
    start, end = schedule.shift_bounds(organisation, days[0]["date"])
    shift_hours = (end - start).total_seconds() / 3600
    longest = max([day["work_minutes"] / 60 for day in days] + [shift_hours, 1])
    top_hours = max(4, math.ceil(longest / 2) * 2)
    scale = CHART_HEIGHT / top_hours
    baseline = CHART_TOP + CHART_HEIGHT
    bars = []
    for index, day in enumerate(days):
        hours = day["work_minutes"] / 60
        height = round(hours * scale, 1)
        x = CHART_LEFT + index * CHART_STEP
        bars.append(
            {
                "x": x + (CHART_STEP - CHART_BAR) / 2,
                "y": round(baseline - height, 1),
                "width": CHART_BAR,
                "height": height,
                "label_x": x + CHART_STEP / 2,
                "day": day["date"].day,
                "status": day["status"] or "none",
                "title": _("%(date)s: %(hours)s h")
                % {
                    "date": day["date"].isoformat(),
                    "hours": _duration(day["work_minutes"]) or "0:00",
                }
                + (f" ({day['status_label']})" if day["status"] else ""),
                "offday": day["offday"],
            }
        )
    step = 2 if top_hours <= 12 else 4
    grid = [
        {"y": round(baseline - hours * scale, 1), "label": hours}
        for hours in range(0, top_hours + 1, step)
    ]
    return {
        "width": CHART_LEFT + len(days) * CHART_STEP + 8,
        "height": baseline + CHART_BOTTOM,
        "left": CHART_LEFT,
        "right": CHART_LEFT + len(days) * CHART_STEP,
        "baseline": baseline,
        "label_y": baseline + 15,
        "bars": bars,
        "grid": grid,
        "shift_y": round(baseline - shift_hours * scale, 1),
        "shift_label": _duration(round(shift_hours * 60)),
    }


def _month_days(employee, month_start: dt.date, today: dt.date) -> list[dict]:
    organisation = employee.organisation
    tz = organisation.tz
    records = selectors.month_records(employee=employee, month_start=month_start)
    today_in_progress = schedule.day_in_progress(organisation, today, timezone.now())
    days = []
    for number in range(1, calendar.monthrange(month_start.year, month_start.month)[1] + 1):
        day = month_start.replace(day=number)
        record = records.get(day)
        in_progress = day == today and today_in_progress
        status = record.status if record else ""
        status_label = STATUS_LABELS.get(record.status, record.status) if record else ""
        early_leave_minutes = record.early_leave_minutes if record else 0
        if in_progress and status not in CORRECTED_STATUSES:
            # Not judged before the scheduled end: an out-punch so far is no early leave and
            # no punch yet is no absence (the stored record keeps its status).
            status, status_label, early_leave_minutes = IN_PROGRESS, IN_PROGRESS_LABEL, 0
        days.append(
            {
                "date": day,
                "record": record,
                "first_in": _clock(record.first_in, tz, day) if record else "",
                "last_out": _clock(record.last_out, tz, day) if record else "",
                "has_first_in": bool(record and record.first_in),
                "work_minutes": record.work_minutes if record else 0,
                "worked": _duration(record.work_minutes) if record else "",
                "late_minutes": record.late_minutes if record else 0,
                "early_leave_minutes": early_leave_minutes,
                "status": status,
                "status_label": status_label,
                "stored_status": record.status if record else "",
                "in_progress": status == IN_PROGRESS,
                "is_today": day == today,
                "future": day > today,
                "offday": not schedule.is_workday(organisation, day),
            }
        )
    return days


def _summary_without_today(summary: dict, today_record: dict | None) -> dict:
    """The month's counts with today shown as in progress: its stored status (an early leave
    or absence judged from the punches so far) and early-leave minutes are not counted yet."""
    if not today_record or not today_record["in_progress"]:
        return summary
    summary = {**summary, "byStatus": dict(summary["byStatus"])}
    stored = today_record["stored_status"]
    if stored:
        summary["byStatus"][stored] = max(0, summary["byStatus"].get(stored, 0) - 1)
        record = today_record["record"]
        summary["earlyLeaveMinutes"] = max(
            0, summary["earlyLeaveMinutes"] - record.early_leave_minutes
        )
    summary["byStatus"][IN_PROGRESS] = 1
    summary["days"] = sum(summary["byStatus"].values())
    return summary


def _request_rows(requests, tz) -> list[dict]:
    return [
        {
            "obj": obj,
            "first_in": _clock(obj.requested_first_in, tz, obj.work_date),
            "last_out": _clock(obj.requested_last_out, tz, obj.work_date),
            "status_label": STATUS_LABELS.get(obj.requested_status, obj.requested_status),
            "state_label": STATE_LABELS.get(obj.state, obj.state),
            "decided_by": _person(obj.decided_by),
            "pending": obj.state == RequestState.PENDING,
        }
        for obj in requests
    ]


def _correction_initial(request, employee, today: dt.date) -> dict:
    day = _parse_date(request.GET.get("correct"))
    if day is None or day > today:
        return {"work_date": today - dt.timedelta(days=1)}
    initial = {"work_date": day}
    record = selectors.month_records(employee=employee, month_start=day.replace(day=1)).get(day)
    if record is not None:
        tz = employee.organisation.tz
        if record.first_in:
            initial["first_in"] = timezone.localtime(record.first_in, tz).time()
        if record.last_out:
            initial["last_out"] = timezone.localtime(record.last_out, tz).time()
    return initial


def _home_context(request, employee, month_start: dt.date, form: CorrectionForm) -> dict:
    organisation = employee.organisation
    tz = organisation.tz
    today = _local_today(organisation)
    days = _month_days(employee, month_start, today)
    this_month = today.replace(day=1)
    today_record = (
        next((day for day in days if day["is_today"]), None)
        if month_start == this_month
        else _month_days(employee, this_month, today)[today.day - 1]
    )
    summary = selectors.record_summary(
        user=request.user, month_start=month_start, employee_id=employee.pk
    )
    if month_start == this_month:
        summary = _summary_without_today(summary, today_record)
    labels = {**STATUS_LABELS, IN_PROGRESS: IN_PROGRESS_LABEL}
    status_counts = [
        {"status": status, "label": labels[status], "count": count}
        for status, count in summary["byStatus"].items()
        if count
    ]
    mine = selectors.request_list(user=request.user, mine=True).select_related(
        "decided_by__employee"
    )[:MY_REQUESTS_LIMIT]
    return {
        "employee": employee,
        "organisation": organisation,
        "time_zone": organisation.time_zone,
        "today": today,
        "today_record": today_record,
        "month_start": month_start,
        "month_param": _month_param(month_start),
        "prev_month": _month_param(_add_months(month_start, -1)),
        "next_month": _month_param(_add_months(month_start, 1)),
        "is_this_month": month_start == this_month,
        "this_month": _month_param(this_month),
        "days": days,
        "chart": _chart(days, organisation),
        "summary": summary,
        "worked_total": _duration(summary["workMinutes"]) or "0:00",
        "status_counts": status_counts,
        "status_legend": [{"status": value, "label": label} for value, label in labels.items()],
        # In until the first in is there, then out (again, to move the last out).
        "punch_kind": PunchKind.OUT if today_record["has_first_in"] else PunchKind.IN,
        "punch_in_id": uuid.uuid4().hex,
        "punch_out_id": uuid.uuid4().hex,
        "form": form,
        "my_requests": _request_rows(mine, tz),
    }


@attendance_page()
@require_http_methods(["GET", "POST"])
def home(request):
    """My month. GET shows it; POST is the correction form (re-rendered here on errors)."""
    employee = request.employee
    organisation = employee.organisation
    today = _local_today(organisation)
    correct = _parse_date(request.GET.get("correct"))
    month_start = (
        _parse_month(request.GET.get("month"))
        or (correct.replace(day=1) if correct else None)
        or today.replace(day=1)
    )
    if request.method != "POST":
        form = CorrectionForm(initial=_correction_initial(request, employee, today))
        return render(
            request, "attendance/home.html", _home_context(request, employee, month_start, form)
        )

    form = CorrectionForm(request.POST)
    if form.is_valid():
        arguments = form.service_arguments(organisation.tz)
        try:
            created = services.adjustment_request_create(
                actor=request.user, employee=employee, **arguments
            )
        except ValidationFailed as error:
            form.add_service_errors(error.details.get("fields") or {})
            if not error.details.get("fields"):
                form.add_error(None, error.message)
        except ApplicationError as error:
            form.add_error(None, error.message)
        else:
            messages.success(
                request,
                _("Correction for %(date)s sent for approval.")
                % {"date": date_format(created.work_date, _("D d M Y"))},
            )
            return redirect(_home_url(created.work_date.replace(day=1), "my-requests"))
        month_start = arguments["work_date"].replace(day=1)
    return render(
        request, "attendance/home.html", _home_context(request, employee, month_start, form)
    )


def _refuse_a_second_in(employee) -> None:
    """A second in-punch would turn the first in into the last out; the page offers out once
    the day has its first in, and a stale page or a resend is refused here likewise."""
    organisation = employee.organisation
    today = _local_today(organisation)
    record = selectors.month_records(employee=employee, month_start=today.replace(day=1)).get(today)
    if record is not None and record.first_in is not None:
        raise ApplicationError(
            _("You punched in at %(time)s already; punch out when you leave.")
            % {"time": _clock(record.first_in, organisation.tz)}
        )


@attendance_page()
@require_POST
def punch(request):
    employee = request.employee
    tz = employee.organisation.tz
    kind = request.POST.get("kind", "")
    try:
        client_id = uuid.UUID(request.POST.get("client_id", "")).hex
    except ValueError:
        client_id = None  # no idempotency without a valid id, but the punch still counts
    try:
        ratelimit.enforce(request, group="attendance.punch", rate=settings.RATELIMIT_PUNCH)
        if kind == PunchKind.IN:
            _refuse_a_second_in(employee)
        created_punch, record, created = services.punch_create(
            actor=request.user,
            employee=employee,
            kind=kind if kind in (PunchKind.IN, PunchKind.OUT) else "",
            client_id=client_id,
        )
    except RateLimited as limited:
        messages.error(
            request,
            _("Too many punches in a short time. Try again in %(seconds)s s.")
            % {"seconds": limited.retry_after_seconds},
        )
    except ApplicationError as error:
        messages.error(request, _error_text(error))
    else:
        at = _clock(created_punch.occurred_at, tz)
        punched_in = created_punch.kind == PunchKind.IN
        values = {
            "time": at,
            "date": date_format(record.work_date, _("D d M")),
            "status": STATUS_LABELS.get(record.status, record.status),
        }
        if created:
            text = (
                _("Punched in at %(time)s. %(date)s: %(status)s.")
                if punched_in
                else _("Punched out at %(time)s. %(date)s: %(status)s.")
            )
            messages.success(request, text % values)
        else:
            text = (
                _("That punch in at %(time)s was already recorded.")
                if punched_in
                else _("That punch out at %(time)s was already recorded.")
            )
            messages.info(request, text % values)
    return redirect(_home_url())


@attendance_page()
@require_POST
def request_cancel(request, pk: int):
    month_start = _parse_month(request.POST.get("month"))
    obj = selectors.request_list(user=request.user, mine=True).filter(pk=pk).first()
    if obj is None:
        messages.error(request, _("That request was not found."))
    else:
        try:
            services.adjustment_request_cancel(actor=request.user, request=obj)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                _("Correction for %(date)s cancelled.")
                % {"date": date_format(obj.work_date, _("D d M Y"))},
            )
    return redirect(_home_url(month_start, "my-requests"))


# --- approvals ---------------------------------------------------------------------------


@approver_page
@require_http_methods(["GET"])
def approvals(request):
    employee = request.employee
    tz = employee.organisation.tz
    inbox_queryset = selectors.approval_inbox(user=request.user)
    inbox = list(inbox_queryset[:INBOX_LIMIT])
    total = len(inbox) if len(inbox) < INBOX_LIMIT else inbox_queryset.count()
    current = {}
    if inbox:
        records = selectors.record_list(
            user=request.user,
            date_from=min(obj.work_date for obj in inbox),
            date_to=max(obj.work_date for obj in inbox),
        ).filter(employee_id__in={obj.employee_id for obj in inbox})
        current = {(record.employee_id, record.work_date): record for record in records}
    rows = []
    for row in _request_rows(inbox, tz):
        obj = row["obj"]
        record = current.get((obj.employee_id, obj.work_date))
        row["record"] = record
        if record is not None:
            row["current_in"] = _clock(record.first_in, tz, obj.work_date)
            row["current_out"] = _clock(record.last_out, tz, obj.work_date)
            row["current_worked"] = _duration(record.work_minutes)
            row["current_status_label"] = STATUS_LABELS.get(record.status, record.status)
        rows.append(row)
    recent = (
        selectors.request_list(user=request.user)
        .filter(state__in=[RequestState.APPROVED, RequestState.REJECTED])
        .exclude(employee_id=employee.pk)
        .select_related("decided_by__employee")
        .order_by("-decided_at", "-id")[:RECENTLY_DECIDED_LIMIT]
    )
    return render(
        request,
        "attendance/approvals.html",
        {
            "rows": rows,
            "total": total,
            "shown": len(rows),
            "recent": _request_rows(recent, tz),
            "time_zone": employee.organisation.time_zone,
        },
    )


@approver_page
@require_POST
def request_decide(request, pk: int):
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, _("Choose approve or reject; a comment is at most 2000 characters.")
        )
        return redirect("attendance:approvals")
    obj = selectors.request_list(user=request.user).filter(pk=pk).first()
    if obj is None:
        messages.error(request, _("That request is not in your inbox."))
        return redirect("attendance:approvals")
    decide = (
        services.adjustment_request_approve
        if form.cleaned_data["decision"] == "approve"
        else services.adjustment_request_reject
    )
    try:
        decided = decide(actor=request.user, request=obj, comment=form.cleaned_data["comment"])
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("%(state)s: %(name)s's correction for %(date)s.")
            % {
                "state": STATE_LABELS[decided.state],
                "name": obj.employee.name,
                "date": date_format(obj.work_date, _("D d M Y")),
            },
        )
    return redirect("attendance:approvals")
