"""Auto-absence, and the backfill of unknown attendance.

Auto-absence rules (see :func:`auto_absence_run`): an event is due once it is completed and
the organisation's ``auto_absence_delay_minutes`` have passed since its completion (since its
end when the beat completed it). Then registered participants whose attendance is still
``unknown`` and who were not marked by an organiser become ``absent``, in batches of
``EVENTS_AUTO_ABSENCE_BATCH``, each batch its own transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.services import audit_record
from common.exceptions import ValidationFailed
from events.choices import Attendance, EventStatus, Registration
from events.metrics import AUTO_ABSENCE_BATCHES, AUTO_ABSENCE_MARKED
from events.models import Event, EventParticipant

logger = logging.getLogger("events.auto_absence")


# --- auto-absence ---------------------------------------------------------------------

# Registered, still unknown, not decided by an organiser: the only rows auto-absence may
# touch. The same condition guards the UPDATE, so a row that changed between the SELECT
# and the UPDATE (it cannot while locked, but the guard does not rely on that) is left.
_PICK_BATCH_SQL = """
    SELECT id FROM events_eventparticipant
    WHERE event_id = %s AND registration = 'registered'
      AND attendance = 'unknown' AND NOT marked_by_organiser
    ORDER BY id
    LIMIT %s
    FOR UPDATE SKIP LOCKED
"""
# The cast matters: psycopg sends a list of Python ints as numeric[], which turns
# ``id = ANY(…)`` into a scan (100k participants: 19 s instead of 3 s).
_MARK_BATCH_SQL = """
    UPDATE events_eventparticipant
    SET attendance = 'absent', marked_at = %s, marked_by_id = NULL, attendance_updated_at = %s
    WHERE id = ANY(%s::bigint[]) AND attendance = 'unknown' AND NOT marked_by_organiser
    RETURNING id
"""
_DUE_EVENTS_SQL = """
    SELECT e.id FROM events_event e
    JOIN attendance_organisation o
      ON o.id = e.organisation_id
    WHERE e.status = 'completed' AND e.completed_at IS NOT NULL
      AND (CASE WHEN e.completed_by_id IS NULL THEN LEAST(e.ends_at, e.completed_at)
                ELSE e.completed_at END)
          + make_interval(mins => o.auto_absence_delay_minutes) <= %s
"""


def auto_absence_due_at(event: Event) -> dt.datetime | None:
    """When auto-absence may mark this event's no-shows: the organisation's delay after
    an organiser completed it, or after its end when the beat completed it. None while it
    is not completed."""
    if event.status != EventStatus.COMPLETED or event.completed_at is None:
        return None
    base = event.completed_at
    if event.completed_by_id is None:
        base = min(event.ends_at, event.completed_at)
    return base + dt.timedelta(minutes=event.organisation.auto_absence_delay_minutes)


def _log(payload: dict) -> None:
    # The message itself is JSON, so a reader (or a test) parses it whatever the formatter.
    logger.info(json.dumps(payload, sort_keys=True), extra={"auto_absence": payload})


def _count_pending(event_id: int) -> int:
    return EventParticipant.objects.filter(
        event_id=event_id,
        registration=Registration.REGISTERED,
        attendance=Attendance.UNKNOWN,
        marked_by_organiser=False,
    ).count()


def _auto_absence_event(event: Event, *, now, batch_size: int) -> dict:
    started = time.monotonic()
    marked_total = batches = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_PICK_BATCH_SQL, [event.pk, batch_size])
            ids = [row[0] for row in cursor.fetchall()]
            if not ids:
                break
            cursor.execute(_MARK_BATCH_SQL, [now, now, ids])
            marked = sorted(row[0] for row in cursor.fetchall())
            batches += 1
            if marked:
                audit_record(
                    actor=None,
                    action="events.attendance.auto_absent",
                    organisation=event.organisation,
                    target=event,
                    data={
                        "from": Attendance.UNKNOWN,
                        "to": Attendance.ABSENT,
                        "batch": batches,
                        "participants": marked,
                    },
                )
        marked_total += len(marked)
        AUTO_ABSENCE_BATCHES.inc()
        AUTO_ABSENCE_MARKED.inc(len(marked))
        _log({"op": "events.auto_absence.batch", "event": event.pk, "batch": batches,
              "marked": len(marked)})  # fmt: skip
    # Rows skipped because someone held them (an organiser marking, a concurrent run) are
    # picked up by the next run: the event is finished only when none is left.
    remaining = _count_pending(event.pk)
    elapsed_ms = int((time.monotonic() - started) * 1000)
    with transaction.atomic():
        finished = remaining == 0
        if finished:
            Event.objects.filter(pk=event.pk, absences_marked_at__isnull=True).update(
                absences_marked_at=now
            )
        audit_record(
            actor=None,
            action="events.auto_absence.completed",
            organisation=event.organisation,
            target=event,
            data={
                "marked": marked_total,
                "batches": batches,
                "elapsedMs": elapsed_ms,
                "remaining": remaining,
                "finished": finished,
            },
        )
    _log({"op": "events.auto_absence.summary", "event": event.pk, "marked": marked_total,
          "batches": batches, "elapsedMs": elapsed_ms, "remaining": remaining})  # fmt: skip
    return {"marked": marked_total, "batches": batches, "elapsedMs": elapsed_ms}


def auto_absence_run(*, event=None, dry_run=False, now=None, batch_size=None) -> dict:
    """Mark the no-shows of every due event (or of ``event`` only, if it is due). Safe to
    run twice and concurrently: rows are taken ``FOR UPDATE SKIP LOCKED`` and updated only
    while still ``unknown`` and not marked by an organiser. ``dry_run`` writes nothing and
    reports ``wouldMark``. ``skipped`` lists the events asked for that are not due."""
    now = now or timezone.now()
    batch_size = int(batch_size or settings.EVENTS_AUTO_ABSENCE_BATCH)
    if batch_size < 1:
        raise ValidationFailed(_("The batch size must be at least 1."))
    started = time.monotonic()
    with connection.cursor() as cursor:
        if event is not None:
            cursor.execute(_DUE_EVENTS_SQL + " AND e.id = %s", [now, event.pk])
        else:
            cursor.execute(_DUE_EVENTS_SQL + " AND e.absences_marked_at IS NULL", [now])
        due_ids = sorted(row[0] for row in cursor.fetchall())
    skipped = [] if event is None or due_ids else [event.pk]
    events = Event.objects.select_related("organisation").filter(pk__in=due_ids).order_by("pk")
    result = {"events": due_ids, "marked": 0, "batches": 0, "skipped": skipped}
    if dry_run:
        per_event = {evt.pk: _count_pending(evt.pk) for evt in events}
        result.update(wouldMark=sum(per_event.values()), perEvent=per_event)
    else:
        for evt in events:
            outcome = _auto_absence_event(evt, now=now, batch_size=batch_size)
            result["marked"] += outcome["marked"]
            result["batches"] += outcome["batches"]
    result["elapsedMs"] = int((time.monotonic() - started) * 1000)
    return result


# --- backfill -------------------------------------------------------------------------

# Migration 0002 keeps its own copy of this statement on purpose: a migration must do
# forever what it did when it was written, so it cannot import code that may change.
_BACKFILL_SQL = """
    UPDATE events_eventparticipant SET attendance = 'unknown'
    WHERE id IN (
        SELECT id FROM events_eventparticipant
        WHERE attendance IS NULL AND registration = 'registered'
        LIMIT %s
    )
"""
BACKFILL_BATCH = 10_000


def attendance_backfill_pending() -> int:
    return EventParticipant.objects.filter(
        registration=Registration.REGISTERED, attendance__isnull=True
    ).count()


def attendance_backfill(*, batch_size: int = BACKFILL_BATCH) -> int:
    """Set ``unknown`` on registered participants without an attendance, one transaction
    per batch. Returns how many rows it changed."""
    total = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_BACKFILL_SQL, [batch_size])
            total += cursor.rowcount
            if cursor.rowcount < batch_size:
                return total
