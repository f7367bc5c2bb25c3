from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext, gettext_lazy
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common import roles
from common.fields import (
    TIME_ZONES,
    StrictCharField,
    StrictChoiceField,
    StrictInputSerializer,
    StrictIntegerField,
    WallClockTimeField,
)
from common.net import parse_network


class UserFilterSerializer(serializers.Serializer):
    q = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text="username, name or employee number",
    )


class RoleInputSerializer(StrictInputSerializer):
    role = StrictChoiceField(choices=[*roles.SHORT_NAMES, *roles.ALL])


class BatchRoleInputSerializer(RoleInputSerializer):
    userIds = serializers.ListField(
        child=StrictIntegerField(min_value=1), required=False, max_length=5000
    )
    employeeNos = serializers.ListField(
        child=StrictCharField(max_length=64), required=False, max_length=5000
    )

    # Somebody to change: a non-empty userIds or employeeNos.
    schema_rules = {
        "anyOf": [
            {"required": ["userIds"], "properties": {"userIds": {"minItems": 1}}},
            {"required": ["employeeNos"], "properties": {"employeeNos": {"minItems": 1}}},
        ]
    }

    def validate(self, attrs):
        if not attrs.get("userIds") and not attrs.get("employeeNos"):
            raise serializers.ValidationError(
                {"userIds": [gettext("Give userIds or employeeNos.")]}
            )
        return attrs


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class IdentifierField(serializers.Field):
    """A userId (integer) or an employeeNo (text), answered as the caller sent it."""

    def to_representation(self, value):
        return value


class BatchRoleResultSerializer(serializers.Serializer):
    role = serializers.CharField()
    requested = serializers.IntegerField()
    updated = serializers.ListField(child=IdentifierField())
    unchanged = serializers.ListField(child=IdentifierField())
    missing = serializers.ListField(child=IdentifierField())
    inactive = serializers.ListField(child=IdentifierField())


class AdminUserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.CharField()
    isActive = serializers.BooleanField(source="is_active")
    lastLogin = serializers.DateTimeField(source="last_login", allow_null=True)
    employee = serializers.SerializerMethodField()
    roles = serializers.SerializerMethodField()

    def get_employee(self, user) -> dict | None:
        employee = getattr(user, "employee", None)
        if employee is None:
            return None
        return {
            "id": employee.pk,
            "employeeNo": employee.employee_no,
            "name": employee.name,
            "department": employee.department,
            "isActive": employee.is_active,
        }

    def get_roles(self, user) -> list[str]:
        # Groups are prefetched by the selector: no query per user.
        return sorted(group.name for group in user.groups.all() if group.name in roles.ALL)


class UserAccessSerializer(AdminUserSerializer):
    isStaff = serializers.BooleanField(source="is_staff")
    isSuperuser = serializers.BooleanField(source="is_superuser")
    canUseAdminCentre = serializers.SerializerMethodField()
    reportsCount = serializers.SerializerMethodField()
    activeTokens = serializers.SerializerMethodField()

    def get_canUseAdminCentre(self, user) -> bool:
        return user.is_active and user.is_staff

    def get_reportsCount(self, user) -> int:
        employee = getattr(user, "employee", None)
        return employee.reports.count() if employee else 0

    def get_activeTokens(self, user) -> int:
        return user.api_tokens.filter(revoked_at__isnull=True).count()


class RoleChangeResultSerializer(serializers.Serializer):
    userId = serializers.IntegerField()
    role = serializers.CharField()
    changed = serializers.BooleanField()
    roles = serializers.ListField(child=serializers.CharField())


class SettingsSerializer(StrictInputSerializer):
    """Organisation settings; PUT accepts any subset (a partial update)."""

    name = serializers.CharField(read_only=True)
    timeZone = StrictChoiceField(source="time_zone", choices=TIME_ZONES)
    workStart = WallClockTimeField(source="work_start")
    workEnd = WallClockTimeField(source="work_end")
    graceMinutes = StrictIntegerField(source="grace_minutes", min_value=0, max_value=240)
    workdays = serializers.ListField(
        child=StrictIntegerField(min_value=0, max_value=6),
        min_length=1,
        max_length=7,
        allow_empty=False,
        help_text="0 = Monday … 6 = Sunday; at least one.",
    )
    ipAllowlist = serializers.ListField(
        source="ip_allowlist", child=StrictCharField(max_length=64), max_length=200
    )
    autoAbsenceDelayMinutes = StrictIntegerField(
        source="auto_absence_delay_minutes", min_value=0, max_value=7 * 24 * 60
    )
    # Its minimum is the deployment's AUDIT_RETENTION_DAYS (an organisation may only
    # lengthen it), read when the serializer is built: see get_fields.
    auditRetentionDays = StrictIntegerField(
        source="audit_retention_days", min_value=30, max_value=3650
    )

    def get_fields(self):
        fields = super().get_fields()
        fields["auditRetentionDays"] = StrictIntegerField(
            source="audit_retention_days",
            min_value=max(30, settings.AUDIT_RETENTION_DAYS),
            max_value=3650,
            help_text=gettext_lazy(
                "Days audit events are kept; at least the deployment's AUDIT_RETENTION_DAYS."
            ),
        )
        return fields

    def validate_ipAllowlist(self, value):
        for entry in value:
            try:
                parse_network(entry)
            except ValueError as exc:
                raise serializers.ValidationError(f"{entry!r} is not an IP network.") from exc
        return value

    def validate_workdays(self, value):
        return sorted(set(value))
