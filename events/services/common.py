"""What the events services share: the fields an organiser may edit, bounds, audit
targets and the row locks."""

from __future__ import annotations

import datetime as dt

from events.choices import EventStatus
from events.models import Event, EventParticipant

EDITABLE_FIELDS = (
    "title",
    "location",
    "starts_at",
    "ends_at",
    "check_in_opens_at",
    "check_in_closes_at",
    "late_grace_minutes",
)
MAX_LATE_GRACE_MINUTES = 240
NONCE_MAX_LENGTH = 64
# The participants of one audit event of ``participants_add`` (a 100k-person event would
# otherwise be one multi-megabyte row).
PARTICIPANTS_PER_AUDIT_EVENT = 1000
FINISHED_STATES = (EventStatus.COMPLETED, EventStatus.CANCELLED)
PARTICIPANT_TARGET = "events.eventparticipant"
EVENT_TARGET = "events.event"


def _audit_value(value):
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _lock_event(event: Event) -> Event:
    return Event.objects.select_for_update().select_related("organisation").get(pk=event.pk)


def _lock_participant(participant: EventParticipant) -> EventParticipant:
    return (
        EventParticipant.objects.select_for_update(of=("self",))
        .select_related("event", "event__organisation", "employee")
        .get(pk=participant.pk)
    )
