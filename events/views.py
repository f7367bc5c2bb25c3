"""Server-rendered event pages: the organisers' list and event page (participants, check-in,
marking, bulk marking, completion) and the employees' "My events".

Views only translate: reads go through ``events.selectors``, writes through
``events.services``; every ``ApplicationError`` a service raises becomes a message on the
page it came from, never a 500. Times are shown in the organisation's zone
(``attendance_page`` activates it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from attendance.views import attendance_page
from common.exceptions import ApplicationError
from events import selectors, services
from events.choices import Attendance, EventStatus, Registration
from events.models import Event, EventParticipant

PARTICIPANTS_PER_PAGE = 50
EVENTS_PER_PAGE = 50
MY_EVENTS_PAST_LIMIT = 50
# The order of the chart's segments and of the legend.
CHART_ORDER = (
    Attendance.PRESENT,
    Attendance.LATE,
    Attendance.EXCUSED,
    Attendance.ABSENT,
    Attendance.UNKNOWN,
)
ATTENDANCE_LABELS = dict(Attendance.choices)
STATUS_LABELS = dict(EventStatus.choices)
REGISTRATION_LABELS = dict(Registration.choices)
TABS = (
    ("running", gettext_lazy("Running")),
    ("upcoming", gettext_lazy("Upcoming")),
    ("past", gettext_lazy("Past")),
)
OPEN_STATUSES = (EventStatus.SCHEDULED, EventStatus.IN_PROGRESS)
CLOSED_STATUSES = (EventStatus.COMPLETED, EventStatus.CANCELLED)


is_organiser = selectors.is_organiser


organiser_page = attendance_page(
    any_role=selectors.ORGANISER_ROLES,
    refusal=(
        gettext_lazy("Organisers only"),
        gettext_lazy("This page is for event organisers (approvers and administrators)."),
    ),
)


# --- forms -------------------------------------------------------------------------------


class MarkForm(forms.Form):
    status = forms.ChoiceField(choices=Attendance.choices)
    notes = forms.CharField(required=False, max_length=2000)


class BulkMarkForm(MarkForm):
    participant = forms.TypedMultipleChoiceField(coerce=int, choices=(), required=True)

    def __init__(self, data, **kwargs):
        super().__init__(data, **kwargs)
        # Any integer: the service answers which ids are not participants of the event.
        self.fields["participant"].choices = [
            (value, value) for value in data.getlist("participant") if value.isdigit()
        ]


# --- small helpers -----------------------------------------------------------------------


def _next_url(request, fallback: str) -> str:
    """Back to the page the form was on (its filters and page), when it is one of ours."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return fallback


def _chart(counts: dict[str, int] | None) -> dict:
    """A stacked bar: each attendance's share as a whole percentage (CSS classes ``w-N``;
    the policy refuses style attributes), a non-zero share at least 1 %."""
    counts = counts or {}
    total = sum(counts.get(status, 0) for status in CHART_ORDER)
    segments = []
    for status in CHART_ORDER:
        count = counts.get(status, 0)
        percent = max(1, round(count * 100 / total)) if count else 0
        segments.append(
            {
                "status": status,
                "label": ATTENDANCE_LABELS[status],
                "count": count,
                "percent": percent,
            }
        )
    return {"total": total, "segments": segments}


def _check_in_state(participant: EventParticipant, now: dt.datetime) -> dict:
    """Whether the check-in button is live, and why not when it is not."""
    event = participant.event
    opens, closes = selectors.check_in_window(event)
    tz = timezone.get_current_timezone()
    reason = ""
    if participant.attendance in (Attendance.PRESENT, Attendance.LATE):
        reason = _("Checked in (%(status)s).") % {
            "status": ATTENDANCE_LABELS[participant.attendance]
        }
    elif participant.registration == Registration.WAITLISTED:
        reason = _("You are on the waiting list.")
    elif participant.registration == Registration.CANCELLED:
        reason = _("Your registration is cancelled.")
    elif event.status == EventStatus.CANCELLED:
        reason = _("The event is cancelled.")
    elif event.status == EventStatus.COMPLETED:
        reason = _("The event is completed.")
    elif participant.attendance in (Attendance.ABSENT, Attendance.EXCUSED):
        reason = _("Marked %(status)s by an organiser.") % {
            "status": ATTENDANCE_LABELS[participant.attendance]
        }
    elif not selectors.check_in_open(event, now=now):
        if now < opens:
            reason = _("Check-in opens at %(time)s.") % {
                "time": timezone.localtime(opens, tz).strftime("%d %b %H:%M")
            }
        else:
            reason = _("Check-in closed at %(time)s.") % {
                "time": timezone.localtime(closes, tz).strftime("%d %b %H:%M")
            }
    return {"live": not reason, "reason": reason}


def _phase_filter(phase: str, now: dt.datetime) -> Q:
    running = Q(status=EventStatus.IN_PROGRESS) | Q(
        status=EventStatus.SCHEDULED, starts_at__lte=now, ends_at__gt=now
    )
    if phase == "running":
        return running
    if phase == "upcoming":
        return Q(status=EventStatus.SCHEDULED, starts_at__gt=now)
    return Q(status__in=CLOSED_STATUSES) | Q(status=EventStatus.SCHEDULED, ends_at__lte=now)


def _phase_of(event: Event, now: dt.datetime) -> str:
    if event.status in CLOSED_STATUSES:
        return "past"
    if event.status == EventStatus.IN_PROGRESS or event.starts_at <= now < event.ends_at:
        return "running"
    return "upcoming" if event.starts_at > now else "past"


def _organiser_event(request, event_id: int) -> Event:
    """The event, when it is the organiser's organisation's (another one's: 404)."""
    event = (
        selectors.events_visible_to(request.user)
        .filter(pk=event_id, organisation_id=request.employee.organisation_id)
        .first()
    )
    if event is None:
        raise Http404(_("No such event."))
    return event


def _organisation_participant(request, participant_id: int) -> EventParticipant:
    participant = (
        EventParticipant.objects.select_related("event", "employee")
        .filter(pk=participant_id, event__organisation_id=request.employee.organisation_id)
        .first()
    )
    if participant is None:
        raise Http404(_("No such participant."))
    return participant


# --- organisers: the list ----------------------------------------------------------------


@require_GET
@attendance_page()
def event_list(request):
    if not is_organiser(request.user):
        return redirect("events:mine")
    now = timezone.now()
    organisation = request.employee.organisation
    given = {name: request.GET.get(name, "").strip() for name in ("tab", "status", "q", "page")}
    events = selectors.events_visible_to(request.user).filter(organisation_id=organisation.pk)
    if given["status"] in STATUS_LABELS:
        events = events.filter(status=given["status"])
    else:
        given["status"] = ""
    if given["q"]:
        events = events.filter(Q(title__icontains=given["q"]) | Q(location__icontains=given["q"]))
    tab_counts = events.aggregate(
        **{name: Count("pk", filter=_phase_filter(name, now)) for name, _label in TABS}
    )
    tab = given["tab"] if given["tab"] in dict(TABS) else ""
    if not tab:
        tab = "running" if tab_counts["running"] else "upcoming"
    # Upcoming: soonest first; running and past: the latest first.
    ordering = ("starts_at", "id") if tab == "upcoming" else ("-starts_at", "-id")
    page = Paginator(
        events.filter(_phase_filter(tab, now)).order_by(*ordering), EVENTS_PER_PAGE
    ).get_page(given["page"] or 1)
    shown = list(page.object_list)
    counts = selectors.event_counts([event.pk for event in shown]) if shown else {}
    participants = dict(
        EventParticipant.objects.filter(event_id__in=[event.pk for event in shown])
        .values("event_id")
        .annotate(n=Count("pk"))
        .values_list("event_id", "n")
    )
    filters = {"status": given["status"], "q": given["q"]}
    return render(
        request,
        "events/list.html",
        {
            "tabs": [
                {
                    "name": name,
                    "label": label,
                    "count": tab_counts[name],
                    "query": urlencode({**filters, "tab": name}),
                    "current": name == tab,
                }
                for name, label in TABS
            ],
            "tab": tab,
            "given": given,
            "statuses": EventStatus.choices,
            "rows": [
                {
                    "event": event,
                    "status_label": STATUS_LABELS.get(event.status, event.status),
                    "participants": participants.get(event.pk, 0),
                    "chart": _chart(counts.get(event.pk)),
                }
                for event in shown
            ],
            "page": page,
            "page_query": urlencode({**filters, "tab": tab}),
            "filtered": any(filters.values()),
            "time_zone": organisation.time_zone,
        },
    )


# --- organisers: one event ---------------------------------------------------------------


@require_GET
@organiser_page
def event_detail(request, event_id: int):
    event = _organiser_event(request, event_id)
    now = timezone.now()
    attendance = request.GET.get("attendance", "").strip()
    if attendance not in ATTENDANCE_LABELS:
        attendance = ""
    q = request.GET.get("q", "").strip()[:200]
    participants = selectors.participants_of(event, attendance=attendance or None, q=q or None)
    page = Paginator(participants, PARTICIPANTS_PER_PAGE).get_page(request.GET.get("page") or 1)
    window_open = selectors.check_in_open(event, now=now)
    # Organisers still mark after completion (a no-show who was excused after all); a
    # cancelled event is frozen.
    editable = event.status != EventStatus.CANCELLED
    rows = [
        {
            "participant": participant,
            "attendance_label": ATTENDANCE_LABELS.get(participant.attendance or "", "—"),
            "registration_label": REGISTRATION_LABELS.get(participant.registration, ""),
            "registered": participant.registration == Registration.REGISTERED,
            "nonce": uuid.uuid4().hex,
        }
        for participant in page.object_list
    ]
    opens, closes = selectors.check_in_window(event)
    filters = {"attendance": attendance, "q": q}
    return render(
        request,
        "events/detail.html",
        {
            "event": event,
            "status_label": STATUS_LABELS.get(event.status, event.status),
            "phase": _phase_of(event, now),
            "chart": _chart(selectors.event_counts([event.pk]).get(event.pk)),
            "rows": rows,
            "page": page,
            "given": filters,
            "page_query": urlencode({key: value for key, value in filters.items() if value}),
            "filtered": any(filters.values()),
            "attendance_choices": Attendance.choices,
            "window_open": window_open,
            "opens": opens,
            "closes": closes,
            "editable": editable,
            "can_complete": event.status not in CLOSED_STATUSES,
            "here": request.get_full_path(),
            "time_zone": request.employee.organisation.time_zone,
        },
    )


@require_GET
@organiser_page
def participant_detail(request, participant_id: int):
    participant = _organisation_participant(request, participant_id)
    history = selectors.participant_history(participant)
    return render(
        request,
        "events/participant.html",
        {
            "participant": participant,
            "event": participant.event,
            "attendance_label": ATTENDANCE_LABELS.get(participant.attendance or "", "—"),
            "registration_label": REGISTRATION_LABELS.get(participant.registration, ""),
            "history": [
                {
                    **entry,
                    "from_label": ATTENDANCE_LABELS.get(entry.get("from") or "", "—"),
                    "to_label": ATTENDANCE_LABELS.get(entry.get("to") or "", "—"),
                }
                for entry in history
            ],
            "attendance_choices": Attendance.choices,
            "editable": participant.event.status != EventStatus.CANCELLED,
            "here": request.get_full_path(),
            "time_zone": request.employee.organisation.time_zone,
        },
    )


@require_POST
@organiser_page
def event_complete(request, event_id: int):
    event = _organiser_event(request, event_id)
    try:
        services.event_complete(actor=request.user, event=event)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        delay = request.employee.organisation.auto_absence_delay_minutes
        messages.success(
            request,
            _(
                "%(title)s is completed. Participants still unknown are marked absent "
                "%(minutes)s minutes after completion."
            )
            % {"title": event.title, "minutes": delay},
        )
    return redirect(_next_url(request, reverse("events:detail", args=[event.pk])))


@require_POST
@organiser_page
def participant_mark(request, participant_id: int):
    participant = _organisation_participant(request, participant_id)
    fallback = reverse("events:detail", args=[participant.event_id])
    form = MarkForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose an attendance; notes are at most 2000 characters."))
        return redirect(_next_url(request, fallback))
    try:
        marked = services.participant_mark(
            actor=request.user,
            participant=participant,
            status=form.cleaned_data["status"],
            notes=form.cleaned_data["notes"],
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("%(name)s marked %(status)s.")
            % {"name": participant.employee.name, "status": ATTENDANCE_LABELS[marked.attendance]},
        )
    return redirect(_next_url(request, fallback))


@require_POST
@organiser_page
def participants_mark_bulk(request, event_id: int):
    event = _organiser_event(request, event_id)
    fallback = reverse("events:detail", args=[event.pk])
    form = BulkMarkForm(request.POST)
    if not form.is_valid():
        if "participant" in form.errors:
            messages.error(request, _("Tick at least one participant to mark."))
        else:
            messages.error(request, _("Choose an attendance; notes are at most 2000 characters."))
        return redirect(_next_url(request, fallback))
    try:
        result = services.participants_mark_bulk(
            actor=request.user,
            event=event,
            participant_ids=form.cleaned_data["participant"],
            status=form.cleaned_data["status"],
            notes=form.cleaned_data["notes"],
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request,
            _("Marked %(updated)s as %(status)s (%(unchanged)s unchanged, %(missing)s not found).")
            % {
                "updated": len(result.get("updated", [])),
                "status": ATTENDANCE_LABELS[form.cleaned_data["status"]],
                "unchanged": len(result.get("unchanged", [])),
                "missing": len(result.get("missing", [])),
            },
        )
    return redirect(_next_url(request, fallback))


# --- check-in (the employee themself, or an organiser for someone) -----------------------


@require_POST
@attendance_page()
def participant_check_in(request, participant_id: int):
    participant = _organisation_participant(request, participant_id)
    own = participant.employee_id == request.employee.pk
    if not own and not is_organiser(request.user):
        raise Http404(_("No such participant."))  # someone else's: as if it did not exist
    fallback = (
        reverse("events:mine") if own else reverse("events:detail", args=[participant.event_id])
    )
    nonce = request.POST.get("nonce", "").strip()[:64] or None
    try:
        checked = services.participant_check_in(
            actor=request.user, participant=participant, nonce=nonce
        )
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        status = ATTENDANCE_LABELS.get(checked.attendance or "", checked.attendance)
        if own:
            text = _("Checked in to %(title)s: %(status)s.") % {
                "title": participant.event.title,
                "status": status,
            }
        else:
            text = _("%(name)s checked in: %(status)s.") % {
                "name": participant.employee.name,
                "status": status,
            }
        messages.success(request, text)
    return redirect(_next_url(request, fallback))


# --- employees: my events ----------------------------------------------------------------


@require_GET
@attendance_page()
def my_events(request):
    now = timezone.now()
    sections = {name: [] for name, _label in TABS}
    participations = selectors.my_participations(request.employee)
    past_shown = 0
    for participant in participations:
        phase = _phase_of(participant.event, now)
        if phase == "past":
            past_shown += 1
            if past_shown > MY_EVENTS_PAST_LIMIT:
                continue
        opens, closes = selectors.check_in_window(participant.event)
        sections[phase].append(
            {
                "participant": participant,
                "event": participant.event,
                "status_label": STATUS_LABELS.get(participant.event.status, ""),
                "attendance_label": ATTENDANCE_LABELS.get(participant.attendance or "", "—"),
                "registration_label": REGISTRATION_LABELS.get(participant.registration, ""),
                "check_in": _check_in_state(participant, now),
                "opens": opens,
                "closes": closes,
                "nonce": uuid.uuid4().hex,
            }
        )
    sections["upcoming"].sort(key=lambda row: row["event"].starts_at)
    return render(
        request,
        "events/mine.html",
        {
            "sections": [
                {"name": name, "label": label, "rows": sections[name]} for name, label in TABS
            ],
            "is_organiser": is_organiser(request.user),
            "past_truncated": past_shown > MY_EVENTS_PAST_LIMIT,
            "past_limit": MY_EVENTS_PAST_LIMIT,
            "time_zone": request.employee.organisation.time_zone,
        },
    )
