"""API shapes. Input and output serializers are separate; JSON names are camelCase."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from attendance.choices import PunchKind, RecordStatus, RequestState
from attendance.services import ADJUSTABLE_STATUSES
from common import roles
from common.fields import (
    QueryBooleanField,
    QueryIntegerField,
    StrictCharField,
    StrictChoiceField,
    StrictDateField,
    StrictDateTimeField,
    StrictInputSerializer,
)

# The first year a month may name: dates start at year 1 (no year 0000).
MONTH_PATTERN = r"^([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-(0[1-9]|1[0-2])$"


class LocalDateTimeField(StrictDateTimeField):
    """ISO 8601 with the offset of the organisation's time zone (set in the context).

    On input, a time without an offset is read in that time zone too, not in UTC, and only
    between the years FIRST_YEAR and LAST_YEAR.
    """

    FIRST_YEAR, LAST_YEAR = 1970, 9000
    default_error_messages = {
        "out_of_range": _("Give a time between the years %(first)d and %(last)d."),
    }

    def to_internal_value(self, value):
        # Checked on the text, before DRF converts it: DRF's own time zone check overflows
        # (a 500) on a time at the very start or end of Python's calendar.
        year = value[:4] if isinstance(value, str) else ""
        if year.isascii() and year.isdigit() and not self.FIRST_YEAR <= int(year) <= self.LAST_YEAR:
            self.fail("out_of_range", first=self.FIRST_YEAR, last=self.LAST_YEAR)
        return super().to_internal_value(value)

    def default_timezone(self):
        return self.context.get("tz") or super().default_timezone()

    def to_representation(self, value):
        if value is None:
            return None
        tz = self.context.get("tz")
        return timezone.localtime(value, tz).isoformat() if tz else value.isoformat()


class EmployeeRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    employeeNo = serializers.CharField(source="employee_no")
    name = serializers.CharField()


class OrganisationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    timeZone = serializers.CharField(source="time_zone")


class MeSerializer(serializers.Serializer):
    userId = serializers.IntegerField(source="user.id")
    username = serializers.CharField(source="user.username")
    employee = serializers.SerializerMethodField()
    organisation = OrganisationSerializer(source="employee.organisation")
    roles = serializers.SerializerMethodField()

    def get_employee(self, obj) -> dict:
        employee = obj["employee"]
        return {
            "id": employee.pk,
            "employeeNo": employee.employee_no,
            "name": employee.name,
            "department": employee.department,
            "approverId": employee.approver_id,
        }

    def get_roles(self, obj) -> list[str]:
        return sorted(roles.user_roles(obj["user"]))


class RecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    employee = EmployeeRefSerializer()
    workDate = serializers.DateField(source="work_date")
    firstIn = LocalDateTimeField(source="first_in", allow_null=True)
    lastOut = LocalDateTimeField(source="last_out", allow_null=True)
    workMinutes = serializers.IntegerField(source="work_minutes")
    lateMinutes = serializers.IntegerField(source="late_minutes")
    earlyLeaveMinutes = serializers.IntegerField(source="early_leave_minutes")
    status = serializers.ChoiceField(choices=RecordStatus.choices)
    source = serializers.CharField()
    batchId = serializers.IntegerField(source="batch_id", allow_null=True)


class RecordFilterSerializer(serializers.Serializer):
    """Query of records and their export (also the schema's parameters for both)."""

    employee = QueryIntegerField(required=False, min_value=1, help_text="Employee id")
    status = StrictChoiceField(choices=RecordStatus.choices, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword, hence fields added by name.
        self.fields["from"] = StrictDateField(
            required=False, help_text="First work date (inclusive)"
        )
        self.fields["to"] = StrictDateField(required=False, help_text="Last work date (inclusive)")

    def validate(self, attrs):
        if attrs.get("from") and attrs.get("to") and attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"to": [gettext("Must not be before 'from'.")]})
        return attrs


class SummaryFilterSerializer(serializers.Serializer):
    month = serializers.RegexField(MONTH_PATTERN, help_text="YYYY-MM")
    employee = QueryIntegerField(required=False, min_value=1, help_text="Employee id")


class PunchInputSerializer(StrictInputSerializer):
    kind = StrictChoiceField(choices=[PunchKind.IN, PunchKind.OUT])
    clientId = StrictCharField(
        required=False,
        max_length=100,
        allow_blank=False,
        trim_whitespace=False,
        help_text="The client's own id of this punch: sending it again creates nothing.",
    )


class PunchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    occurredAt = LocalDateTimeField(source="occurred_at")
    receivedAt = LocalDateTimeField(source="received_at")
    workDate = serializers.DateField(source="work_date")
    source = serializers.CharField()


class PunchResultSerializer(serializers.Serializer):
    punch = PunchSerializer()
    day = RecordSerializer()
    created = serializers.BooleanField()


class RequestInputSerializer(StrictInputSerializer):
    workDate = StrictDateField(
        help_text=(
            "Not in the future and at most CORRECTION_MAX_AGE_DAYS (default 366) days back, "
            "in the organisation's time zone."
        )
    )
    firstIn = LocalDateTimeField(required=False, allow_null=True)
    lastOut = LocalDateTimeField(required=False, allow_null=True)
    status = StrictChoiceField(choices=ADJUSTABLE_STATUSES, required=False, allow_blank=True)
    reason = StrictCharField(max_length=2000)

    # At least one of a time or a status (the service refuses a request for nothing).
    schema_rules = {
        "anyOf": [
            {"required": ["firstIn"], "properties": {"firstIn": {"type": "string"}}},
            {"required": ["lastOut"], "properties": {"lastOut": {"type": "string"}}},
            {"required": ["status"], "properties": {"status": {"minLength": 1}}},
        ]
    }

    def validate_workDate(self, value):
        tz = self.context.get("tz")
        today = timezone.localdate(timezone=tz) if tz else timezone.localdate()
        oldest = today - dt.timedelta(days=settings.CORRECTION_MAX_AGE_DAYS)
        if value < oldest:
            raise serializers.ValidationError(
                _("Corrections can be asked for the last %(days)d days only.")
                % {"days": settings.CORRECTION_MAX_AGE_DAYS}
            )
        return value


class RequestFilterSerializer(serializers.Serializer):
    status = StrictChoiceField(choices=RequestState.choices, required=False)
    mine = QueryBooleanField(required=False, default=False, help_text="Only my own requests")


class DecisionInputSerializer(StrictInputSerializer):
    comment = StrictCharField(required=False, allow_blank=True, max_length=2000, default="")


class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()


class RequestSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    employee = EmployeeRefSerializer()
    workDate = serializers.DateField(source="work_date")
    firstIn = LocalDateTimeField(source="requested_first_in", allow_null=True)
    lastOut = LocalDateTimeField(source="requested_last_out", allow_null=True)
    status = serializers.CharField(source="requested_status")
    reason = serializers.CharField()
    state = serializers.ChoiceField(choices=RequestState.choices)
    createdBy = UserRefSerializer(source="created_by")
    createdAt = LocalDateTimeField(source="created_at")
    decidedBy = UserRefSerializer(source="decided_by", allow_null=True)
    decidedAt = LocalDateTimeField(source="decided_at", allow_null=True)
    comment = serializers.CharField(source="decision_comment")
