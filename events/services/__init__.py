"""Every write of the events app, each atomic and audited in its own transaction:
events (lifecycle), participants and attendance (participation), auto-absence and the
backfill (auto_absence)."""

from events.services.auto_absence import (
    attendance_backfill,
    attendance_backfill_pending,
    auto_absence_due_at,
    auto_absence_run,
)
from events.services.common import EDITABLE_FIELDS, FINISHED_STATES, NONCE_MAX_LENGTH
from events.services.lifecycle import (
    event_cancel,
    event_complete,
    event_create,
    event_update,
    events_complete_due,
    events_start_due,
)
from events.services.participation import (
    participant_check_in,
    participant_mark,
    participant_registration_set,
    participants_add,
    participants_mark_bulk,
)

__all__ = [
    "EDITABLE_FIELDS",
    "FINISHED_STATES",
    "NONCE_MAX_LENGTH",
    "attendance_backfill",
    "attendance_backfill_pending",
    "auto_absence_due_at",
    "auto_absence_run",
    "event_cancel",
    "event_complete",
    "event_create",
    "event_update",
    "events_complete_due",
    "events_start_due",
    "participant_check_in",
    "participant_mark",
    "participant_registration_set",
    "participants_add",
    "participants_mark_bulk",
]
