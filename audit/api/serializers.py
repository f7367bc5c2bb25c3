"""Audit viewer API shapes: the filters (query parameters, validated here for the API and
the page alike) and the events. JSON names are camelCase."""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from audit import selectors

# A date alone means that whole day in the organisation's time zone.
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# "+08:00" in a query string unencoded arrives as " 08:00": read it as the offset it was.
_OFFSET_AS_SPACE = re.compile(r"^(\d{4}-\d{2}-\d{2}T[0-9:.]+) (\d{2}:?\d{2})$")
# RFC 3339 allows a leap second; Python's datetime does not.
_LEAP_SECOND = re.compile(r"^(.*[T ]\d{2}:\d{2}:)60(.*)$")
# PostgreSQL refuses NUL in text; said in the schema so that it promises only what is taken.
NO_NUL_PATTERN = r"^[^\x00]*$"


def _parse_datetime(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        leap = _LEAP_SECOND.match(text)
        if not leap:
            raise
        return dt.datetime.fromisoformat(f"{leap[1]}59{leap[2]}") + dt.timedelta(seconds=1)


class DateOrDateTimeField(serializers.Field):
    """An ISO 8601 date (``2026-05-01``) or date-time (``2026-05-01T09:30:00+08:00``); a
    date-time without an offset is read in the organisation's time zone (``tz`` in the
    serializer's context). Returns a date or an aware datetime."""

    default_error_messages = {
        "invalid": _("Enter an ISO 8601 date (YYYY-MM-DD) or date-time."),
    }

    def to_internal_value(self, data):
        if not isinstance(data, str) or len(data) > 64:
            self.fail("invalid")
        text = _OFFSET_AS_SPACE.sub(r"\1+\2", data.strip().upper())
        try:
            if _DATE_ONLY.match(text):
                return dt.date.fromisoformat(text)
            value = _parse_datetime(text)
            if timezone.is_naive(value):
                value = timezone.make_aware(value, self.context.get("tz") or dt.UTC)
            value.astimezone(dt.UTC)  # out of range once in UTC (year 1 or 9999 edges)
            return value
        except (ValueError, OverflowError):
            self.fail("invalid")

    def to_representation(self, value):
        return value.isoformat()


def _day_start(day: dt.date, tz) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min), tz)


def _text(max_length: int, help_text: str) -> serializers.CharField:
    return serializers.CharField(
        required=False, allow_blank=True, max_length=max_length, help_text=help_text
    )


class AuditFilterSerializer(serializers.Serializer):
    """The filters shared by the list, the page and the export. ``from`` is inclusive,
    ``to`` too (a date ``to`` includes that whole day). ``from`` after ``to`` selects
    nothing (it is not an error)."""

    q = _text(200, "Text in the action, actor label, target type or id, or the data (as JSON)")
    action = _text(100, "The action, exactly (imports.batch.committed)")
    actionPrefix = _text(100, "The start of the action (imports.)")
    actor = _text(200, "The actor's user id (digits), else text in the actor's label")
    targetType = _text(100, "The target type, exactly (imports.importbatch)")
    targetId = _text(100, "The target id, exactly")
    status = serializers.ChoiceField(
        choices=selectors.STATUSES,
        required=False,
        allow_blank=True,
        help_text="failed: data with errorCode/error or ok:false, or an action ending in "
        ".failed/.denied; ok: every other event",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # "from" is a Python keyword, hence the explicit field names.
        self.fields["from"] = DateOrDateTimeField(required=False)
        self.fields["to"] = DateOrDateTimeField(required=False)

    def described(self) -> dict:
        """The filters that were set, by their API names, JSON-ready (for the export's
        audit event: who exported what)."""
        return {
            name: value.isoformat() if isinstance(value, dt.date) else value
            for name, value in self.validated_data.items()
            if value not in ("", None)
        }

    def filters(self) -> selectors.AuditFilters:
        """The validated filters as the selectors take them (call after is_valid)."""
        data = self.validated_data
        tz = self.context.get("tz") or dt.UTC
        occurred_from = data.get("from")
        if isinstance(occurred_from, dt.date) and not isinstance(occurred_from, dt.datetime):
            occurred_from = _day_start(occurred_from, tz)
        occurred_before = data.get("to")
        try:
            if isinstance(occurred_before, dt.datetime):
                occurred_before += dt.timedelta(microseconds=1)  # "to" is inclusive
            elif isinstance(occurred_before, dt.date):
                occurred_before = _day_start(occurred_before + dt.timedelta(days=1), tz)
        except OverflowError:
            occurred_before = None  # the end of the calendar: no upper bound
        return selectors.AuditFilters(
            q=data.get("q", ""),
            action=data.get("action", ""),
            action_prefix=data.get("actionPrefix", ""),
            actor=data.get("actor", ""),
            target_type=data.get("targetType", ""),
            target_id=data.get("targetId", ""),
            status=data.get("status", ""),
            occurred_from=occurred_from,
            occurred_before=occurred_before,
        )


class AuditListQuerySerializer(AuditFilterSerializer):
    cursor = serializers.RegexField(
        selectors.CURSOR_PATTERN,
        required=False,
        help_text="nextCursor of the previous page, as given",
        error_messages={"invalid": _("Not a cursor this list gave.")},
    )
    pageSize = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=selectors.MAX_PAGE_SIZE,
        default=selectors.DEFAULT_PAGE_SIZE,
    )

    def cursor_position(self) -> selectors.Cursor | None:
        return selectors.Cursor.decode(self.validated_data.get("cursor") or "")


class AuditSummaryQuerySerializer(serializers.Serializer):
    windowMinutes = serializers.IntegerField(
        required=False, min_value=1, max_value=10080, default=60
    )


class LocalDateTimeField(serializers.DateTimeField):
    """ISO 8601 with the offset of the organisation's time zone (``tz`` in the context)."""

    def to_representation(self, value):
        return timezone.localtime(value, self.context["tz"]).isoformat()


class ActorSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="actor_id", allow_null=True)
    label = serializers.CharField(source="actor_label")


class AuditEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    occurredAt = LocalDateTimeField(source="occurred_at")
    action = serializers.CharField()
    status = serializers.SerializerMethodField()
    errorCode = serializers.SerializerMethodField()
    actor = ActorSerializer(source="*")
    targetType = serializers.CharField(source="target_type")
    targetId = serializers.CharField(source="target_id")
    targetUrl = serializers.SerializerMethodField()
    requestId = serializers.CharField(source="request_id")
    ip = serializers.CharField(allow_null=True)
    userAgent = serializers.CharField(source="user_agent")
    data = serializers.JSONField()

    def get_status(self, event) -> str:
        return selectors.event_status(event)

    def get_errorCode(self, event) -> str | None:
        return selectors.event_error_code(event)

    def get_targetUrl(self, event) -> str | None:
        return selectors.target_url(event.target_type, event.target_id)


class AuditPageSerializer(serializers.Serializer):
    items = AuditEventSerializer(many=True)
    pageSize = serializers.IntegerField()
    nextCursor = serializers.CharField(allow_null=True)


class ActionCountSerializer(serializers.Serializer):
    action = serializers.CharField()
    count = serializers.IntegerField()


class ErrorCodeCountSerializer(serializers.Serializer):
    code = serializers.CharField(allow_null=True)
    count = serializers.IntegerField()


class AuditSummarySerializer(serializers.Serializer):
    windowMinutes = serializers.IntegerField()
    # Named by their JSON keys; "from" is a Python keyword (see __init__).
    total = serializers.IntegerField()
    failed = serializers.IntegerField()
    byAction = ActionCountSerializer(many=True)
    byErrorCode = ErrorCodeCountSerializer(many=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["from"] = LocalDateTimeField()
        self.fields["to"] = LocalDateTimeField()
