"""API shapes. Input and output serializers are separate; JSON names are camelCase."""

from __future__ import annotations

from django.utils import timezone
from rest_framework import serializers

from attendance.choices import PunchKind, RecordStatus, RequestState
from attendance.services import ADJUSTABLE_STATUSES
from common import roles


class LocalDateTimeField(serializers.DateTimeField):
    """ISO 8601 with the offset of the organisation's time zone (set in the context).

    On input, a time without an offset is read in that time zone too, not in UTC.
    """

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
    # "from" is a Python keyword, hence the explicit field names.
    employee = serializers.IntegerField(required=False, min_value=1)
    status = serializers.ChoiceField(choices=RecordStatus.choices, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from"] = serializers.DateField(required=False)
        self.fields["to"] = serializers.DateField(required=False)

    def validate(self, attrs):
        if attrs.get("from") and attrs.get("to") and attrs["from"] > attrs["to"]:
            raise serializers.ValidationError({"to": ["Must not be before 'from'."]})
        return attrs


class SummaryFilterSerializer(serializers.Serializer):
    month = serializers.RegexField(r"^\d{4}-(0[1-9]|1[0-2])$", help_text="YYYY-MM")
    employee = serializers.IntegerField(required=False, min_value=1)

    def validate_month(self, value):
        if value.startswith("0000"):  # the regex lets year 0 through; dates start at year 1
            raise serializers.ValidationError("Not a valid month.")
        return value


class PunchInputSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=[PunchKind.IN, PunchKind.OUT])
    clientId = serializers.CharField(required=False, max_length=100, allow_blank=False)


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


class RequestInputSerializer(serializers.Serializer):
    workDate = serializers.DateField()
    firstIn = LocalDateTimeField(required=False, allow_null=True)
    lastOut = LocalDateTimeField(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=ADJUSTABLE_STATUSES, required=False, allow_blank=True)
    reason = serializers.CharField(max_length=2000)


class RequestFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=RequestState.choices, required=False)
    mine = serializers.BooleanField(required=False, default=False)


class DecisionInputSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


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
