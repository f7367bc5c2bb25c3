"""Participants: adding them, check-in (idempotent by nonce), an organiser's marks."""

from __future__ import annotations

import datetime as dt

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import audit_record
from common.exceptions import CheckInClosed, NotRegistered, RequestStateConflict, ValidationFailed
from events.choices import Attendance, EventStatus, Registration
from events.models import Event, EventCheckIn, EventParticipant
from events.selectors import check_in_open, check_in_window
from events.services.common import (
    FINISHED_STATES,
    NONCE_MAX_LENGTH,
    PARTICIPANTS_PER_AUDIT_EVENT,
    _lock_event,
    _lock_participant,
)

# --- participants ---------------------------------------------------------------------


def participants_add(*, actor, event, employee_nos: list[str]) -> dict:
    """Register active employees of the event's organisation by number. Numbers already on
    the event are ``unchanged`` (whatever their registration); unknown or inactive numbers
    are ``missing``. Set-based (one INSERT … ON CONFLICT), so large lists stay fast."""
    wanted = list(dict.fromkeys(str(no).strip() for no in employee_nos if str(no).strip()))
    with transaction.atomic():
        locked = _lock_event(event)
        if locked.status in FINISHED_STATES:
            raise RequestStateConflict(
                _("Participants cannot be added to a completed or cancelled event.")
            )
        with connection.cursor() as cursor:
            cursor.execute(
                """
                WITH candidates AS (
                    SELECT id, employee_no FROM attendance_employee
                    WHERE organisation_id = %s AND is_active AND employee_no = ANY(%s)
                ), inserted AS (
                    INSERT INTO events_eventparticipant
                        (event_id, employee_id, registration, attendance,
                         marked_by_organiser, notes, created_at)
                    SELECT %s, id, %s, %s, false, '', now() FROM candidates
                    ON CONFLICT (event_id, employee_id) DO NOTHING
                    RETURNING employee_id
                )
                SELECT c.employee_no, i.employee_id IS NOT NULL
                FROM candidates c LEFT JOIN inserted i ON i.employee_id = c.id
                """,
                [
                    locked.organisation_id,
                    wanted,
                    locked.pk,
                    Registration.REGISTERED,
                    Attendance.UNKNOWN,
                ],
            )
            found = dict(cursor.fetchall())
        added = [no for no in wanted if found.get(no) is True]
        unchanged = [no for no in wanted if found.get(no) is False]
        missing = [no for no in wanted if no not in found]
        for start in range(0, max(len(added), 1), PARTICIPANTS_PER_AUDIT_EVENT):
            chunk = added[start : start + PARTICIPANTS_PER_AUDIT_EVENT]
            if not chunk and start:
                break
            audit_record(
                actor=actor,
                action="events.participants.added",
                organisation=locked.organisation,
                target=locked,
                data={
                    "added": chunk,
                    "addedTotal": len(added),
                    "unchanged": len(unchanged),
                    "missing": missing[:PARTICIPANTS_PER_AUDIT_EVENT] if not start else [],
                    "missingTotal": len(missing),
                },
            )
    return {"added": added, "unchanged": unchanged, "missing": missing}


def _late_after(event: Event) -> dt.datetime:
    return event.starts_at + dt.timedelta(minutes=event.late_grace_minutes)


def participant_check_in(
    *, actor, participant, nonce: str | None = None, now=None
) -> EventParticipant:
    """Check a participant in: ``present``, or ``late`` after start + grace.

    The participant row is locked first, so two requests with one nonce queue up and the
    second finds the first one's :class:`EventCheckIn` and answers it without writing.
    A check-in changes only an attendance nobody decided yet (``unknown``, or an automatic
    ``absent``); an organiser's mark or an earlier check-in stays. The returned participant
    carries ``check_in`` (the row answered) and ``replayed`` (True for a resend).
    """
    now = now or timezone.now()
    if nonce is not None:
        nonce = str(nonce).strip()
        if not nonce or len(nonce) > NONCE_MAX_LENGTH:
            raise ValidationFailed(
                _("The nonce is 1 to 64 characters."),
                fields={"nonce": _("1 to 64 characters.")},
            )
    with transaction.atomic():
        locked = _lock_participant(participant)
        if nonce is not None:
            earlier = EventCheckIn.objects.filter(participant=locked, nonce=nonce).first()
            if earlier is not None:
                locked.check_in, locked.replayed = earlier, True
                return locked
        if locked.registration != Registration.REGISTERED:
            raise NotRegistered()
        event = locked.event
        if not check_in_open(event, now):
            opens, closes = check_in_window(event)
            raise CheckInClosed(
                details={"opensAt": opens.isoformat(), "closesAt": closes.isoformat()}
            )
        target = Attendance.LATE if now > _late_after(event) else Attendance.PRESENT
        previous = locked.attendance
        undecided = previous in (None, Attendance.UNKNOWN) or (
            previous == Attendance.ABSENT and not locked.marked_by_organiser
        )
        if undecided:
            locked.attendance = target
            locked.marked_at = now
            locked.marked_by = actor if getattr(actor, "pk", None) else None
            locked.attendance_updated_at = now
            locked.save(
                update_fields=["attendance", "marked_at", "marked_by", "attendance_updated_at"]
            )
            audit_record(
                actor=actor,
                action="events.attendance.checked_in",
                organisation=event.organisation,
                target=locked,
                data={"from": previous, "to": target, "nonce": nonce, "at": now.isoformat()},
            )
        check_in = None
        if nonce is not None:
            check_in = EventCheckIn.objects.create(
                participant=locked,
                nonce=nonce,
                attendance=locked.attendance,
                checked_in_at=now,
                checked_in_by=actor if getattr(actor, "pk", None) else None,
            )
        locked.check_in, locked.replayed = check_in, False
    return locked


def _validate_status(status: str) -> str:
    if status not in Attendance.values:
        raise ValidationFailed(
            _("Unknown attendance status."),
            fields={"status": _("One of: %s.") % ", ".join(Attendance.values)},
        )
    return status


def participant_mark(*, actor, participant, status: str, notes: str = "") -> EventParticipant:
    """An organiser sets the attendance. The row lock orders it with auto-absence: either
    the batch skips this row (locked) or this mark waits for the batch and then overwrites
    its ``absent``; the organiser's word is last either way. Marking ``unknown`` hands the
    participant back to the automatic rules."""
    _validate_status(status)
    notes = (notes or "").strip()
    with transaction.atomic():
        locked = _lock_participant(participant)
        if locked.event.status == EventStatus.CANCELLED:
            raise RequestStateConflict(_("The event is cancelled."))
        if locked.registration != Registration.REGISTERED:
            raise NotRegistered()
        now = timezone.now()
        previous, previous_notes = locked.attendance, locked.notes
        locked.attendance = status
        locked.marked_by_organiser = status != Attendance.UNKNOWN
        locked.marked_at = now
        locked.marked_by = actor if getattr(actor, "pk", None) else None
        locked.notes = notes
        locked.attendance_updated_at = now
        locked.save(
            update_fields=[
                "attendance",
                "marked_by_organiser",
                "marked_at",
                "marked_by",
                "notes",
                "attendance_updated_at",
            ]
        )
        audit_record(
            actor=actor,
            action="events.attendance.marked",
            organisation=locked.event.organisation,
            target=locked,
            data={"from": previous, "to": status, "notes": notes, "previousNotes": previous_notes},
        )
    return locked


def participants_mark_bulk(
    *, actor, event, participant_ids: list[int], status: str, notes: str = ""
) -> dict:
    """Mark many registered participants of one event at once: one audit event for the
    call. ``unchanged``: already marked with this status by an organiser; ``missing``: not a
    registered participant of this event. Empty notes keep each participant's notes."""
    _validate_status(status)
    notes = (notes or "").strip()
    try:
        wanted = list(dict.fromkeys(int(pk) for pk in participant_ids))
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(
            _("Participant ids are numbers."), fields={"participantIds": _("Numbers only.")}
        ) from exc
    with transaction.atomic():
        locked_event = _lock_event(event)
        if locked_event.status == EventStatus.CANCELLED:
            raise RequestStateConflict(_("The event is cancelled."))
        # Locked in id order, as auto-absence's batches take them: no deadlock between them.
        rows = list(
            EventParticipant.objects.select_for_update()
            .filter(event=locked_event, pk__in=wanted, registration=Registration.REGISTERED)
            .order_by("pk")
        )
        by_id = {row.pk: row for row in rows}
        organiser_set = status != Attendance.UNKNOWN
        to_update = [
            row
            for row in rows
            if not (row.attendance == status and row.marked_by_organiser == organiser_set)
            or (notes and row.notes != notes)
        ]
        now = timezone.now()
        previous = {str(row.pk): row.attendance for row in to_update}
        for row in to_update:
            row.attendance = status
            row.marked_by_organiser = organiser_set
            row.marked_at = now
            row.marked_by = actor if getattr(actor, "pk", None) else None
            row.attendance_updated_at = now
            if notes:
                row.notes = notes
        EventParticipant.objects.bulk_update(
            to_update,
            [
                "attendance",
                "marked_by_organiser",
                "marked_at",
                "marked_by",
                "attendance_updated_at",
                "notes",
            ],
            batch_size=1000,
        )
        updated = [row.pk for row in to_update]
        if updated:
            audit_record(
                actor=actor,
                action="events.attendance.bulk_marked",
                organisation=locked_event.organisation,
                target=locked_event,
                data={"to": status, "notes": notes, "participants": updated, "from": previous},
            )
    updated_set = set(updated)
    return {
        "updated": updated,
        "unchanged": [pk for pk in wanted if pk in by_id and pk not in updated_set],
        "missing": [pk for pk in wanted if pk not in by_id],
    }


def participant_registration_set(*, actor, participant, registration: str) -> EventParticipant:
    """Change a participant's registration (the admin's import), audited in the same
    transaction."""
    if registration not in Registration.values:
        raise ValidationFailed(fields={"registration": [_("Unknown registration.")]})
    with transaction.atomic():
        locked = (
            EventParticipant.objects.select_for_update(of=("self",))
            .select_related("event__organisation")
            .get(pk=participant.pk)
        )
        previous = locked.registration
        if previous == registration:
            return locked
        locked.registration = registration
        locked.save(update_fields=["registration"])
        audit_record(
            actor=actor,
            action="events.participant.registration_changed",
            organisation=locked.event.organisation,
            target=locked,
            data={"from": previous, "to": registration},
        )
    return locked
