"""Import API shapes: separate input and output serializers, camelCase names."""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.fields import (
    TEXT_PATTERN,
    TIME_ZONES,
    StrictBooleanField,
    StrictCharField,
    StrictChoiceField,
    StrictInputSerializer,
    StrictIntegerField,
    StrictUUIDField,
)
from imports.models import ImportMode, ItemAction
from imports.selectors import EXPORT_TYPES


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {
            "type": "string",
            "minLength": 1,
            "maxLength": 200,
            "pattern": TEXT_PATTERN,
        },
        "maxProperties": 200,
    }
)
class MappingField(serializers.DictField):
    """Our column → the file's header."""

    child = StrictCharField(max_length=200)


class ImportSourceInputSerializer(StrictInputSerializer):
    fileId = StrictUUIDField(required=False, help_text="An upload's fileId, or give csvText")
    csvText = StrictCharField(
        required=False, trim_whitespace=False, allow_blank=True, help_text="Or give fileId"
    )
    format = StrictCharField(required=False, allow_blank=True, max_length=32)
    mapping = MappingField(required=False, help_text="At most 200 columns.")
    timezone = StrictChoiceField(
        choices=TIME_ZONES,
        required=False,
        allow_blank=True,
        help_text="The file's times are in this zone; default the organisation's.",
    )
    createMissingEmployees = StrictBooleanField(required=False, default=False)
    mode = StrictChoiceField(
        choices=ImportMode.choices, required=False, default=ImportMode.OVERRIDE
    )

    # Exactly one source: fileId or csvText.
    schema_rules = {"oneOf": [{"required": ["fileId"]}, {"required": ["csvText"]}]}

    def validate(self, attrs):
        has_file = attrs.get("fileId") is not None
        has_text = attrs.get("csvText") is not None
        if has_file == has_text:
            raise serializers.ValidationError(
                {"fileId": [gettext("Give exactly one of fileId or csvText.")]}
            )
        if len(attrs.get("mapping") or {}) > 200:  # maxProperties in the schema
            raise serializers.ValidationError({"mapping": [gettext("At most 200 columns.")]})
        return attrs


class PreviewInputSerializer(ImportSourceInputSerializer):
    previewLimit = StrictIntegerField(
        required=False,
        default=50,
        min_value=0,
        help_text="Rows of items answered; larger values are lowered to IMPORT_PREVIEW_LIMIT_MAX.",
    )

    def validate_previewLimit(self, value):
        return min(value, settings.IMPORT_PREVIEW_LIMIT_MAX)


class CommitInputSerializer(ImportSourceInputSerializer):
    commitToken = StrictCharField(required=False, allow_blank=True, max_length=200)
    idempotencyKey = StrictCharField(required=False, allow_blank=False, max_length=200)
    returnItems = StrictBooleanField(required=False, default=False)
    itemsLimit = StrictIntegerField(required=False, default=100, min_value=0, max_value=1000)


class UploadSerializer(serializers.Serializer):
    fileId = serializers.UUIDField(source="pk")
    filename = serializers.CharField()
    bytes = serializers.IntegerField()
    sha256 = serializers.CharField()
    format = serializers.CharField(allow_blank=True)
    encoding = serializers.CharField(allow_blank=True)
    container = serializers.CharField()
    rowCount = serializers.IntegerField(source="row_count")
    expiresAt = serializers.DateTimeField(source="expires_at")


class PrepareSerializer(serializers.Serializer):
    commitToken = serializers.CharField()
    expiresAt = serializers.DateTimeField()
    ttlSeconds = serializers.IntegerField()


class StatsSerializer(serializers.Serializer):
    insert = serializers.IntegerField()
    update = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    skip = serializers.IntegerField()
    invalid = serializers.IntegerField()
    duplicate = serializers.IntegerField()


class RowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    column = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class PreviewItemSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    employeeNo = serializers.CharField()
    name = serializers.CharField()
    workDate = serializers.DateField()
    firstIn = serializers.DateTimeField(allow_null=True)
    lastOut = serializers.DateTimeField(allow_null=True)
    workMinutes = serializers.IntegerField()
    lateMinutes = serializers.IntegerField()
    status = serializers.CharField()
    action = serializers.ChoiceField(choices=ItemAction.choices)


class ErrorCountSerializer(serializers.Serializer):
    code = serializers.CharField()
    count = serializers.IntegerField()


class PreviewSerializer(serializers.Serializer):
    format = serializers.CharField()
    rowCount = serializers.IntegerField()
    dayCount = serializers.IntegerField()
    stats = StatsSerializer()
    employeesToCreate = serializers.IntegerField()
    items = PreviewItemSerializer(many=True)
    errors = RowErrorSerializer(many=True)
    errorsTotal = serializers.IntegerField()
    errorsByCode = ErrorCountSerializer(
        many=True, help_text="Every problem of the file counted by code, most first."
    )
    truncated = serializers.BooleanField()


class CommitSerializer(serializers.Serializer):
    batchId = serializers.IntegerField()
    idempotent = serializers.BooleanField()
    stats = StatsSerializer()
    rowCount = serializers.IntegerField()
    changedDuringImport = serializers.IntegerField(
        help_text="Days left alone because they changed after the plan (counted in skip; "
        "their rows have code CHANGED_DURING_IMPORT)."
    )
    elapsedMs = serializers.IntegerField()
    items = PreviewItemSerializer(many=True, required=False)


class JobSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    status = serializers.CharField()
    processed = serializers.IntegerField()
    total = serializers.IntegerField()
    progressPercent = serializers.IntegerField(source="progress_percent")
    batchId = serializers.IntegerField(source="batch_id", allow_null=True)
    attempts = serializers.IntegerField()
    result = serializers.JSONField(allow_null=True)
    error = serializers.JSONField(allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)


class JobEnvelopeSerializer(serializers.Serializer):
    # ``job`` is null (and ``result`` given) when commit-async replays a key whose first
    # commit ran synchronously.
    job = JobSerializer(allow_null=True)
    idempotent = serializers.BooleanField(required=False)
    result = serializers.JSONField(required=False)


class BatchSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    format = serializers.CharField()
    filename = serializers.CharField()
    sha256 = serializers.CharField()
    mode = serializers.CharField()
    status = serializers.CharField()
    rowCount = serializers.IntegerField(source="row_count")
    stats = StatsSerializer()
    changedDuringImport = serializers.SerializerMethodField()
    elapsedMs = serializers.IntegerField(source="elapsed_ms")
    createdAt = serializers.DateTimeField(source="created_at")
    createdBy = serializers.CharField(source="created_by.username", default=None, allow_null=True)
    createdEmployees = serializers.SerializerMethodField()

    def get_changedDuringImport(self, batch) -> int:
        return (batch.stats or {}).get("changedDuringImport", 0)

    rolledBackAt = serializers.DateTimeField(source="rolled_back_at", allow_null=True)
    rolledBackBy = serializers.CharField(
        source="rolled_back_by.username", default=None, allow_null=True
    )
    rollback = serializers.JSONField(source="rollback_stats")

    def get_createdEmployees(self, batch) -> int:
        return len(batch.created_employee_ids or [])


class ItemSerializer(serializers.Serializer):
    row = serializers.IntegerField()
    action = serializers.CharField()
    code = serializers.CharField()
    column = serializers.CharField()
    message = serializers.CharField()
    employeeId = serializers.IntegerField(source="employee_id", allow_null=True)
    employeeRef = serializers.CharField(source="employee_ref")
    workDate = serializers.DateField(source="work_date", allow_null=True)
    firstIn = serializers.DateTimeField(source="first_in", allow_null=True)
    lastOut = serializers.DateTimeField(source="last_out", allow_null=True)
    status = serializers.CharField()
    prior = serializers.SerializerMethodField()

    def get_prior(self, item) -> dict | None:
        if item.action != "updated":
            return None
        return {
            "firstIn": item.prior_first_in.isoformat() if item.prior_first_in else None,
            "lastOut": item.prior_last_out.isoformat() if item.prior_last_out else None,
            "workMinutes": item.prior_work_minutes,
            "lateMinutes": item.prior_late_minutes,
            "status": item.prior_status,
            "source": item.prior_source,
            "batchId": item.prior_batch_id,
        }


class ItemFilterSerializer(serializers.Serializer):
    action = StrictChoiceField(choices=ItemAction.choices, required=False)


class ExportFilterSerializer(serializers.Serializer):
    type = StrictChoiceField(choices=list(EXPORT_TYPES), required=False, default="all")


class RollbackSerializer(serializers.Serializer):
    batchId = serializers.IntegerField()
    status = serializers.CharField()
    restored = serializers.IntegerField()
    deleted = serializers.IntegerField()


class FormatColumnSerializer(serializers.Serializer):
    header = serializers.CharField()
    required = serializers.BooleanField()
    description = serializers.CharField()


class FormatSerializer(serializers.Serializer):
    name = serializers.CharField()
    label = serializers.CharField()
    kind = serializers.CharField()
    containers = serializers.ListField(child=serializers.CharField())
    columns = FormatColumnSerializer(many=True)
    templateAvailable = serializers.BooleanField()


class TemplateFilterSerializer(serializers.Serializer):
    format = StrictChoiceField(
        choices=["standard", "dingtalk_daily"], required=False, default="standard"
    )
