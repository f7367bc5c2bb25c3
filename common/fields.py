"""Strict input fields and serializers: the API refuses exactly what its schema forbids.

DRF is lenient where a JSON Schema is not: a CharField takes ``0`` as ``"0"``, an
IntegerField takes ``"5"``, a BooleanField takes ``1`` and ``"yes"``, a UUIDField takes an
integer, a DateField takes ``20260504``, unknown keys in a body are silently dropped. Every
input serializer of the API is built from the fields here (and ``StrictInputSerializer``),
and the schema extensions at the bottom describe each of them as it really behaves, so the
OpenAPI document at ``/api/schema/`` and the fuzzing that reads it agree with the code.

Query parameters arrive as text: ``QueryIntegerField``/``QueryBooleanField`` read that
text, strictly too (ASCII digits, ``true``/``false``).
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiSerializerExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_basic_type
from drf_spectacular.types import OpenApiTypes
from rest_framework import serializers

# No NUL anywhere (DRF refuses it, PostgreSQL cannot store it).
NUL_FREE_PATTERN = r"^[^\x00]*$"
# Not blank once trimmed: a character that str.strip() keeps (Python's whitespace is
# Unicode's plus the separators \x1c-\x1f, which ECMA-262's \s lacks), and no NUL.
TEXT_PATTERN = r"^[^\x00]*[^\s\x00\x1c-\x1f][^\x00]*$"

_YEAR = r"([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_LEAP_YEAR = r"([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
# A real calendar date (year 1 to 9999), as Python's date can hold it.
DATE_PATTERN = (
    rf"({_YEAR}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    rf"|{_YEAR}-(0[13-9]|1[0-2])-(29|30)"
    rf"|{_YEAR}-(0[13578]|1[02])-31"
    rf"|{_LEAP_YEAR}-02-29)"
)
_CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]"
_SECONDS = r":[0-5][0-9](\.[0-9]{1,6})?"
_OFFSET = r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
# ISO 8601 without an offset: read in the organisation's time zone.
LOCAL_DATETIME_PATTERN = rf"^{DATE_PATTERN}T{_CLOCK}({_SECONDS})?$"
# RFC 3339 (the schema's "date-time").
RFC3339_DATETIME = re.compile(rf"^{DATE_PATTERN}T{_CLOCK}{_SECONDS}{_OFFSET}$")
LOCAL_DATETIME = re.compile(LOCAL_DATETIME_PATTERN)
DATE = re.compile(rf"^{DATE_PATTERN}$")
WALL_CLOCK_PATTERN = rf"^{_CLOCK}$"
WALL_CLOCK = re.compile(WALL_CLOCK_PATTERN)
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
QUERY_INTEGER = re.compile(r"^-?[0-9]{1,19}$")
# Ids are PostgreSQL bigints.
MAX_ID = 2**63 - 1
# Sorted once: the schema lists them as the enum of every time zone field.
TIME_ZONES = sorted(zoneinfo.available_timezones())


class StrictCharField(serializers.CharField):
    """Text only (never a number or a boolean made text), valid UTF-8 (no lone surrogate),
    ``max_length`` counted before trimming, as the schema's ``maxLength`` counts."""

    default_error_messages = {
        "invalid": _("Not a valid string."),
        "not_text": _("Not valid text (a lone surrogate)."),
    }

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if self.max_length is not None and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            self.fail("not_text")
        return super().to_internal_value(data)


class StrictChoiceField(serializers.ChoiceField):
    """A choice given as text (DRF would also take ``1`` for ``"1"``)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid_choice", input=data)
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON number with no fraction (``5`` or ``5.0``), never ``"5"`` or ``true``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        if isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        return super().to_internal_value(data)


class QueryIntegerField(serializers.IntegerField):
    """An integer in a query string: ASCII digits with an optional minus, nothing else."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_value", MAX_ID)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not QUERY_INTEGER.match(data):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """``true`` or ``false`` in a JSON body (DRF also takes ``1``, ``"yes"``, ``"on"``…)."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class QueryBooleanField(serializers.BooleanField):
    """``true`` or ``false`` in a query string, as the schema's boolean is written there."""

    def to_internal_value(self, data):
        if data not in ("true", "false"):
            self.fail("invalid", input=data)
        return data == "true"


class StrictUUIDField(serializers.UUIDField):
    """A UUID written 8-4-4-4-12 (DRF also takes integers, bare hex, braces, ``urn:``)."""

    def to_internal_value(self, data):
        if not isinstance(data, str) or not UUID.match(data):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class StrictDateField(serializers.DateField):
    """``YYYY-MM-DD`` only (Python would also read ``20260504`` and week dates)."""

    def to_internal_value(self, value):
        if not isinstance(value, str) or not DATE.match(value):
            self.fail("invalid", format="YYYY-MM-DD")
        return dt.date.fromisoformat(value)


class StrictDateTimeField(serializers.DateTimeField):
    """RFC 3339 with an offset, or the same without one (read in the field's time zone)."""

    def to_internal_value(self, value):
        if not isinstance(value, str) or not (
            RFC3339_DATETIME.match(value) or LOCAL_DATETIME.match(value)
        ):
            self.fail("invalid", format="YYYY-MM-DDThh:mm[:ss][±hh:mm|Z]")
        return super().to_internal_value(value)


class WallClockTimeField(serializers.TimeField):
    """A time of day on the organisation's clock, ``HH:MM`` both ways (no offset, no
    seconds: a schedule, not an instant)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("format", "%H:%M")
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        if not isinstance(value, str) or not WALL_CLOCK.match(value):
            self.fail("invalid", format="HH:MM")
        return dt.time.fromisoformat(value)


class StrictInputSerializer(serializers.Serializer):
    # A request body of known keys: any other key is VALIDATION_ERROR (the schema says
    # ``additionalProperties: false``). ``schema_rules`` (JSON Schema keywords such as
    # ``anyOf``) states in the schema the cross-field rules that ``validate()`` or the
    # service enforces. (Comments, not a docstring: the schema would show it on every body.)

    schema_rules: dict = {}
    default_error_messages = {"unknown_field": _("Unknown field.")}

    def to_internal_value(self, data):
        if hasattr(data, "keys"):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                message = self.error_messages["unknown_field"]
                raise serializers.ValidationError({key: [message] for key in unknown})
        return super().to_internal_value(data)


# --- how the schema describes them ---------------------------------------------------------


def _base(auto_schema, field, direction) -> dict:
    return auto_schema._map_serializer_field(field, direction, bypass_extensions=True)


class StrictCharFieldSchema(OpenApiSerializerFieldExtension):
    target_class = StrictCharField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = _base(auto_schema, self.target, direction)
        if direction == "request" and "enum" not in schema and "pattern" not in schema:
            blank_refused = not self.target.allow_blank and self.target.trim_whitespace
            schema["pattern"] = TEXT_PATTERN if blank_refused else NUL_FREE_PATTERN
            if not self.target.allow_blank:
                schema["minLength"] = 1
        return schema


class StrictDateTimeFieldSchema(OpenApiSerializerFieldExtension):
    target_class = StrictDateTimeField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = _base(auto_schema, self.target, direction)
        if direction == "request":
            schema.pop("format", None)
            schema["anyOf"] = [{"format": "date-time"}, {"pattern": LOCAL_DATETIME_PATTERN}]
            schema.setdefault(
                "description", "RFC 3339; without an offset, in the organisation's time zone."
            )
        return schema


class WallClockTimeFieldSchema(OpenApiSerializerFieldExtension):
    target_class = WallClockTimeField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        schema = _base(auto_schema, self.target, direction)
        schema.pop("format", None)
        schema.update(build_basic_type(OpenApiTypes.STR))
        schema.update({"pattern": WALL_CLOCK_PATTERN, "example": "09:00"})
        return schema


class StrictInputSerializerSchema(OpenApiSerializerExtension):
    target_class = StrictInputSerializer
    match_subclasses = True

    def map_serializer(self, auto_schema, direction):
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
            schema.update(getattr(self.target, "schema_rules", {}) or {})
        return schema
