"""API shapes of events. Input and output serializers are separate; JSON names are camelCase;
times are ISO 8601 with the offset of the organisation's time zone (``tz`` in the context)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from attendance.api.serializers import EmployeeRefSerializer, LocalDateTimeField, UserRefSerializer
from common.fields import (
    StrictCharField,
    StrictChoiceField,
    StrictDateField,
    StrictInputSerializer,
    StrictIntegerField,
)
from events.choices import Attendance, EventStatus, Registration

# The largest late grace the database allows (constraint event_late_grace_max_4h).
MAX_LATE_GRACE_MINUTES = 240
# One request adds or marks at most this many (a bigger list is a spreadsheet: the admin's
# participant import takes those).
MAX_BATCH = 5000
# Instants outside these years are refused: a check-in window computed around year 1 or
# 9999 would leave what Python's datetime can hold, and no event happens there.

# JSON field → model field, for the bodies of create and patch.
EVENT_FIELDS = {
    "title": "title",
    "location": "location",
    "startsAt": "starts_at",
    "endsAt": "ends_at",
    "checkInOpensAt": "check_in_opens_at",
    "checkInClosesAt": "check_in_closes_at",
    "lateGraceMinutes": "late_grace_minutes",
}
MODEL_TO_JSON = {model: json for json, model in EVENT_FIELDS.items()}


# --- output ---------------------------------------------------------------------------------


class AttendanceCountsSerializer(serializers.Serializer):
    unknown = serializers.IntegerField(min_value=0)
    present = serializers.IntegerField(min_value=0)
    late = serializers.IntegerField(min_value=0)
    absent = serializers.IntegerField(min_value=0)
    excused = serializers.IntegerField(min_value=0)


class EventSerializer(serializers.Serializer):
    """An event; ``counts`` is read from ``event.attendance_counts`` (the view sets it for a
    whole page from one query, ``selectors.event_counts``)."""

    id = serializers.IntegerField()
    title = serializers.CharField()
    location = serializers.CharField()
    startsAt = LocalDateTimeField(source="starts_at")
    endsAt = LocalDateTimeField(source="ends_at")
    checkInOpensAt = LocalDateTimeField(
        source="check_in_opens_at",
        allow_null=True,
        help_text="null: 30 minutes before the start.",
    )
    checkInClosesAt = LocalDateTimeField(
        source="check_in_closes_at", allow_null=True, help_text="null: at the end."
    )
    lateGraceMinutes = serializers.IntegerField(source="late_grace_minutes")
    status = serializers.ChoiceField(choices=EventStatus.choices)
    completedAt = LocalDateTimeField(source="completed_at", allow_null=True)
    counts = AttendanceCountsSerializer(source="attendance_counts")


class ParticipantSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    employee = EmployeeRefSerializer()
    registration = serializers.ChoiceField(choices=Registration.choices)
    attendance = serializers.ChoiceField(
        choices=Attendance.choices,
        allow_null=True,
        help_text="null only for rows from before the backfill of 'unknown'.",
    )
    markedAt = LocalDateTimeField(source="marked_at", allow_null=True)
    markedBy = UserRefSerializer(source="marked_by", allow_null=True)
    notes = serializers.CharField()


class MyEventSerializer(EventSerializer):
    """An event of the caller's, with the caller's own participant row."""

    participant = ParticipantSerializer(source="my_participant")


class ParticipantsAddResultSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.CharField(), help_text="Employee numbers")
    unchanged = serializers.ListField(
        child=serializers.CharField(), help_text="Already participants"
    )
    missing = serializers.ListField(
        child=serializers.CharField(),
        help_text="No active employee of the organisation has this number",
    )


class BulkMarkResultSerializer(serializers.Serializer):
    updated = serializers.ListField(child=serializers.IntegerField(), help_text="Participant ids")
    unchanged = serializers.ListField(
        child=serializers.IntegerField(), help_text="Already had this status and notes"
    )
    missing = serializers.ListField(
        child=serializers.IntegerField(), help_text="No participant of this event has this id"
    )


# --- input ----------------------------------------------------------------------------------


def _title(**kwargs) -> StrictCharField:
    return StrictCharField(max_length=200, **kwargs)


def _location(**kwargs) -> StrictCharField:
    return StrictCharField(max_length=200, allow_blank=True, **kwargs)


def _late_grace(**kwargs) -> StrictIntegerField:
    return StrictIntegerField(min_value=0, max_value=MAX_LATE_GRACE_MINUTES, **kwargs)


class EventCreateInputSerializer(StrictInputSerializer):
    title = _title()
    startsAt = LocalDateTimeField()
    endsAt = LocalDateTimeField(help_text="After startsAt.")
    location = _location(required=False, default="")
    checkInOpensAt = LocalDateTimeField(
        required=False, allow_null=True, help_text="Empty: 30 minutes before the start."
    )
    checkInClosesAt = LocalDateTimeField(
        required=False, allow_null=True, help_text="Empty: at the end; after checkInOpensAt."
    )
    lateGraceMinutes = _late_grace(required=False, default=5)


class EventUpdateInputSerializer(StrictInputSerializer):
    """Only the keys given change; a scheduled or running event only."""

    title = _title(required=False)
    startsAt = LocalDateTimeField(required=False)
    endsAt = LocalDateTimeField(required=False)
    location = _location(required=False)
    checkInOpensAt = LocalDateTimeField(required=False, allow_null=True)
    checkInClosesAt = LocalDateTimeField(required=False, allow_null=True)
    lateGraceMinutes = _late_grace(required=False)


class EventFilterSerializer(serializers.Serializer):
    """Query of the event list (also the schema's parameters)."""

    status = StrictChoiceField(choices=EventStatus.choices, required=False)
    q = StrictCharField(
        required=False, allow_blank=True, max_length=200, help_text="title or location"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword, hence fields added by name.
        self.fields["from"] = StrictDateField(
            required=False,
            help_text="Events still running on or after this day (organisation's zone)",
        )
        self.fields["to"] = StrictDateField(
            required=False, help_text="Events starting on or before this day (organisation's zone)"
        )

    def validate(self, attrs):
        if attrs.get("from") and attrs.get("to") and attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"to": [_("Must not be before 'from'.")]})
        return attrs


class ParticipantFilterSerializer(serializers.Serializer):
    attendance = StrictChoiceField(choices=Attendance.choices, required=False)
    q = StrictCharField(
        required=False, allow_blank=True, max_length=200, help_text="employee number or name"
    )


class ParticipantsAddInputSerializer(StrictInputSerializer):
    employeeNos = serializers.ListField(
        child=StrictCharField(max_length=64), min_length=1, max_length=MAX_BATCH
    )


class CheckInInputSerializer(StrictInputSerializer):
    nonce = StrictCharField(
        required=False,
        max_length=64,
        allow_blank=False,
        help_text="The client's id of this check-in: sending it again answers the first result.",
    )


class MarkInputSerializer(StrictInputSerializer):
    status = StrictChoiceField(choices=Attendance.choices)
    notes = StrictCharField(required=False, allow_blank=True, max_length=2000, default="")

    # Sent with PATCH, which drf-spectacular describes as a partial body (nothing
    # required); this body needs its status all the same.
    schema_rules = {"required": ["status"]}


class BulkMarkInputSerializer(MarkInputSerializer):
    schema_rules = {}  # a POST: the schema's own required keys hold

    participantIds = serializers.ListField(
        child=StrictIntegerField(min_value=1), min_length=1, max_length=MAX_BATCH
    )
