"""Events: create, edit, cancel, complete (by an organiser or, once ended, by beat)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from attendance.models import Organisation
from audit.services import audit_record
from common.exceptions import RequestStateConflict, ValidationFailed
from events.choices import EventStatus
from events.models import Event
from events.services.common import (
    EDITABLE_FIELDS,
    EVENT_TARGET,
    FINISHED_STATES,
    _audit_value,
    _lock_event,
)

# --- events ---------------------------------------------------------------------------


def _validate_event_fields(values: dict) -> None:
    errors: dict[str, str] = {}
    if not str(values.get("title") or "").strip():
        errors["title"] = _("A title is required.")
    for name in ("starts_at", "ends_at", "check_in_opens_at", "check_in_closes_at"):
        value = values.get(name)
        if value is None:
            if name in ("starts_at", "ends_at"):
                errors[name] = _("This time is required.")
        elif not isinstance(value, dt.datetime) or timezone.is_naive(value):
            errors[name] = _("A date and time with a time zone is required.")
    if errors:
        raise ValidationFailed(_("The event is not valid."), fields=errors)
    if values["ends_at"] <= values["starts_at"]:
        errors["ends_at"] = _("The end must be after the start.")
    opens, closes = values.get("check_in_opens_at"), values.get("check_in_closes_at")
    effective_opens = opens or values["starts_at"] - dt.timedelta(minutes=30)
    effective_closes = closes or values["ends_at"]
    if effective_closes <= effective_opens:
        errors["check_in_closes_at"] = _("Check-in must close after it opens.")
    grace = values.get("late_grace_minutes")
    if not isinstance(grace, int) or isinstance(grace, bool) or not 0 <= grace <= 240:
        errors["late_grace_minutes"] = _("The late grace is a whole number of minutes, 0 to 240.")
    if errors:
        raise ValidationFailed(_("The event is not valid."), fields=errors)


def event_create(
    *,
    actor,
    organisation,
    title,
    starts_at,
    ends_at,
    location="",
    check_in_opens_at=None,
    check_in_closes_at=None,
    late_grace_minutes=5,
) -> Event:
    values = {
        "title": (title or "").strip(),
        "location": (location or "").strip(),
        "starts_at": starts_at,
        "ends_at": ends_at,
        "check_in_opens_at": check_in_opens_at,
        "check_in_closes_at": check_in_closes_at,
        "late_grace_minutes": late_grace_minutes,
    }
    _validate_event_fields(values)
    with transaction.atomic():
        event = Event.objects.create(
            organisation=organisation,
            created_by=actor if getattr(actor, "pk", None) else None,
            **values,
        )
        audit_record(
            actor=actor,
            action="events.event.created",
            organisation=organisation,
            target=event,
            data={key: _audit_value(value) for key, value in values.items()},
        )
    return event


def event_update(*, actor, event, **changes) -> Event:
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise ValidationFailed(
            _("These fields cannot be changed here."),
            fields={name: _("Not an editable field.") for name in unknown},
        )
    if "title" in changes:
        changes["title"] = (changes["title"] or "").strip()
    if "location" in changes:
        changes["location"] = (changes["location"] or "").strip()
    with transaction.atomic():
        locked = _lock_event(event)
        if locked.status in FINISHED_STATES:
            raise RequestStateConflict(_("A completed or cancelled event cannot be changed."))
        current = {name: getattr(locked, name) for name in EDITABLE_FIELDS}
        _validate_event_fields({**current, **changes})
        changed = {
            name: [_audit_value(current[name]), _audit_value(value)]
            for name, value in changes.items()
            if current[name] != value
        }
        if not changed:
            return locked
        for name in changed:
            setattr(locked, name, changes[name])
        locked.save(update_fields=[*changed, "updated_at"])
        audit_record(
            actor=actor,
            action="events.event.updated",
            organisation=locked.organisation,
            target=locked,
            data={"changes": changed},
        )
    return locked


def event_cancel(*, actor, event) -> Event:
    with transaction.atomic():
        locked = _lock_event(event)
        if locked.status in FINISHED_STATES:
            raise RequestStateConflict(_("The event is already completed or cancelled."))
        previous = locked.status
        locked.status = EventStatus.CANCELLED
        locked.save(update_fields=["status", "updated_at"])
        audit_record(
            actor=actor,
            action="events.event.cancelled",
            organisation=locked.organisation,
            target=locked,
            data={"from": previous, "to": locked.status},
        )
    return locked


def event_complete(*, actor, event, now=None) -> Event:
    now = now or timezone.now()
    with transaction.atomic():
        locked = _lock_event(event)
        if locked.status in FINISHED_STATES:
            raise RequestStateConflict(_("The event is already completed or cancelled."))
        previous = locked.status
        locked.status = EventStatus.COMPLETED
        locked.completed_at = now
        locked.completed_by = actor if getattr(actor, "pk", None) else None
        locked.save(update_fields=["status", "completed_at", "completed_by", "updated_at"])
        audit_record(
            actor=actor,
            action="events.event.completed",
            organisation=locked.organisation,
            target=locked,
            data={"from": previous, "to": locked.status, "completedAt": now.isoformat()},
        )
    return locked


def events_complete_due(*, now=None) -> list[int]:
    """Complete (as the system) every scheduled or running event whose end has passed.
    Each event in its own transaction; an event another process holds is left for the next
    beat rather than waited for."""
    now = now or timezone.now()
    due_ids = list(
        Event.objects.filter(
            status__in=[EventStatus.SCHEDULED, EventStatus.IN_PROGRESS], ends_at__lte=now
        )
        .order_by("ends_at", "id")
        .values_list("id", flat=True)
    )
    completed = []
    for event_id in due_ids:
        with transaction.atomic():
            event = (
                Event.objects.select_for_update(skip_locked=True)
                .select_related("organisation")
                .filter(pk=event_id, status__in=[EventStatus.SCHEDULED, EventStatus.IN_PROGRESS])
                .first()
            )
            if event is None:
                continue
            previous = event.status
            event.status = EventStatus.COMPLETED
            event.completed_at = now
            event.completed_by = None
            event.save(update_fields=["status", "completed_at", "completed_by", "updated_at"])
            audit_record(
                actor=None,
                action="events.event.completed",
                organisation=event.organisation,
                target=event,
                data={"from": previous, "to": event.status, "completedAt": now.isoformat()},
            )
            completed.append(event_id)
    return completed


def events_start_due(*, now=None) -> list[int]:
    """Mark ``in_progress`` (as the system) every scheduled event that has started and not
    yet ended, so its status says what the clock says. One statement; one audit event per
    organisation naming its events (a bulk write logs once)."""
    now = now or timezone.now()
    with transaction.atomic():
        started = list(
            Event.objects.filter(status=EventStatus.SCHEDULED, starts_at__lte=now, ends_at__gt=now)
            .select_for_update(skip_locked=True)
            .values_list("id", "organisation_id")
        )
        if not started:
            return []
        Event.objects.filter(pk__in=[pk for pk, _org in started]).update(
            status=EventStatus.IN_PROGRESS, updated_at=now
        )
        by_organisation: dict[int, list[int]] = {}
        for pk, organisation_id in started:
            by_organisation.setdefault(organisation_id, []).append(pk)
        for organisation_id, event_ids in by_organisation.items():
            audit_record(
                actor=None,
                action="events.events.started",
                organisation=Organisation(pk=organisation_id),
                target_type=EVENT_TARGET,
                data={
                    "from": EventStatus.SCHEDULED,
                    "to": EventStatus.IN_PROGRESS,
                    "events": event_ids,
                },
            )
    return [pk for pk, _org in started]
