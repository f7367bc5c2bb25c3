"""Small helpers shared by the API views."""

from __future__ import annotations

from django.utils.translation import gettext
from rest_framework import serializers

from common.exceptions import ValidationFailed


def validated(serializer_class: type[serializers.Serializer], data, **kwargs) -> dict:
    """Validate input with a serializer; failures become VALIDATION_ERROR."""
    serializer = serializer_class(data=data, **kwargs)
    if not serializer.is_valid():
        raise serializers.ValidationError(serializer.errors)
    return serializer.validated_data


def query_params(request) -> dict:
    """Query parameters as a plain dict (the last value wins), for input serializers."""
    return {key: request.query_params.get(key) for key in request.query_params}


def parse_int(value, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(fields={field: [gettext("A valid integer is required.")]}) from exc
