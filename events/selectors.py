"""Every non-trivial read of the events app, for the API, the pages and the admin alike."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from audit.models import AuditEvent
from common import roles
from events.choices import Attendance, EventStatus, Registration
from events.models import Event, EventParticipant

CHECK_IN_OPENS_BEFORE_START = dt.timedelta(minutes=30)
ORGANISER_ROLES = (roles.ADMIN, roles.APPROVER)
# Audit events that name many participants at once in ``data.participants``.
_BULK_ACTIONS = ("events.attendance.bulk_marked", "events.attendance.auto_absent")


def is_organiser(user) -> bool:
    return roles.has_any_role(user, *ORGANISER_ROLES)


def _employee_of(user):
    if not getattr(user, "is_authenticated", False):
        return None
    return getattr(user, "employee", None)


def events_visible_to(user) -> QuerySet[Event]:
    """Organisers: every event of their organisation; employees: the events they take
    part in (any registration); anyone else: none."""
    employee = _employee_of(user)
    if employee is None:
        return Event.objects.none()
    events = Event.objects.filter(organisation_id=employee.organisation_id).select_related(
        "organisation"
    )
    if is_organiser(user):
        return events
    takes_part = EventParticipant.objects.filter(event=OuterRef("pk"), employee=employee)
    return events.filter(Exists(takes_part))


def event_counts(event_ids) -> dict[int, dict[str, int]]:
    """Attendance counts of registered participants per event, in one query. A NULL
    attendance (before the backfill) counts as ``unknown``."""
    event_ids = list(event_ids)
    counts = {event_id: dict.fromkeys(Attendance.values, 0) for event_id in event_ids}
    rows = (
        EventParticipant.objects.filter(
            event_id__in=event_ids, registration=Registration.REGISTERED
        )
        .values("event_id", "attendance")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in rows:
        counts[row["event_id"]][row["attendance"] or Attendance.UNKNOWN] += row["n"]
    return counts


def participants_of(event, *, attendance=None, q=None) -> QuerySet[EventParticipant]:
    participants = EventParticipant.objects.filter(event=event).select_related(
        "employee", "marked_by"
    )
    if attendance:
        if attendance == Attendance.UNKNOWN:
            participants = participants.filter(
                Q(attendance=Attendance.UNKNOWN) | Q(attendance__isnull=True)
            )
        else:
            participants = participants.filter(attendance=attendance)
    q = (q or "").strip()
    if q:
        participants = participants.filter(
            Q(employee__name__icontains=q) | Q(employee__employee_no__icontains=q)
        )
    return participants


def my_participations(employee) -> QuerySet[EventParticipant]:
    return (
        EventParticipant.objects.filter(employee=employee)
        .select_related("event", "event__organisation")
        .order_by("-event__starts_at", "-event_id")
    )


def participant_history(participant) -> list[dict]:
    """The participant's attendance changes, oldest first, straight from the audit log:
    its own events (check-in, mark) and the event-wide ones that name it (bulk marks,
    auto-absence batches; found by jsonb containment on ``data.participants``)."""
    own = Q(target_type="events.eventparticipant", target_id=str(participant.pk))
    named = Q(
        target_type="events.event",
        target_id=str(participant.event_id),
        action__in=_BULK_ACTIONS,
        data__contains={"participants": [participant.pk]},
    )
    audit_events = (
        AuditEvent.objects.filter(own | named)
        .filter(action__startswith="events.attendance.")
        .select_related("actor")
        .order_by("occurred_at", "id")
    )
    history = []
    for audit_event in audit_events:
        data = audit_event.data or {}
        previous = data.get("from")
        if isinstance(previous, dict):  # a bulk mark keeps each participant's own "from"
            previous = previous.get(str(participant.pk))
        history.append(
            {
                "at": audit_event.occurred_at,
                "actor": audit_event.actor_label or "system",
                "action": audit_event.action,
                "from": previous,
                "to": data.get("to"),
                "notes": data.get("notes", ""),
            }
        )
    return history


def check_in_window(event) -> tuple[dt.datetime, dt.datetime]:
    """(opens, closes): the event's own times, else 30 minutes before the start and the
    end."""
    opens = event.check_in_opens_at or event.starts_at - CHECK_IN_OPENS_BEFORE_START
    closes = event.check_in_closes_at or event.ends_at
    return opens, closes


def check_in_open(event, now=None) -> bool:
    if event.status in (EventStatus.COMPLETED, EventStatus.CANCELLED):
        return False
    now = now or timezone.now()
    opens, closes = check_in_window(event)
    return opens <= now < closes
