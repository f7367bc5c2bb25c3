"""Every API operation is documented for the developers who call it: a summary, a
description that says who may call it, and the tag of its area (the Swagger UI at
/api/docs/ groups operations by tag)."""

from __future__ import annotations

from collections import defaultdict

import pytest
from drf_spectacular.generators import SchemaGenerator

HTTP_METHODS = {"get", "put", "post", "patch", "delete", "head", "options", "trace"}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture(scope="module")
def operations(schema):
    found = [
        (f"{method.upper()} {path} ({operation.get('operationId')})", operation)
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
        if method in HTTP_METHODS
    ]
    assert found, "the schema has no operations"
    return found


def test_every_operation_has_a_summary_a_description_and_an_area_tag(schema, operations):
    # Without tags=[...] drf-spectacular tags an operation with its first path segment
    # ("attendance" for records and imports alike): only the declared areas count.
    areas = {tag["name"] for tag in schema.get("tags", []) if tag.get("description")}
    offenders = []
    for name, operation in operations:
        missing = [
            key for key in ("summary", "description") if not (operation.get(key) or "").strip()
        ]
        tags = operation.get("tags") or []
        if not tags or not set(tags) <= areas:
            missing.append(f"an area tag (has {tags})")
        if missing:
            offenders.append(f"{name}: {', '.join(missing)}")
    assert not offenders, f"{len(offenders)} of {len(operations)} operations lack:\n" + "\n".join(
        offenders
    )


def test_no_two_operations_share_a_summary(operations):
    by_summary = defaultdict(list)
    for name, operation in operations:
        summary = (operation.get("summary") or "").strip()
        if summary:
            by_summary[summary.casefold()].append(name)
    shared = {summary: names for summary, names in by_summary.items() if len(names) > 1}
    assert not shared, "summaries shared by several operations:\n" + "\n".join(
        f"{summary!r}: {', '.join(names)}" for summary, names in shared.items()
    )


def test_summaries_are_short_and_descriptions_say_who_may_call(operations):
    too_long = [name for name, op in operations if len(op.get("summary") or "") > 60]
    assert not too_long, "summaries over 60 characters:\n" + "\n".join(too_long)
    silent = [
        name
        for name, op in operations
        if (op.get("description") or "").strip() and "Who may call:" not in op["description"]
    ]
    assert not silent, "descriptions that do not say who may call:\n" + "\n".join(silent)
