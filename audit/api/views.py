"""The audit viewer's API (role admin): the list, its CSV export and a summary. The
organisation is always the caller's; events of other organisations and system events (no
organisation) are never shown here."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import selectors
from audit.api import serializers as s
from audit.services import audit_record
from common.api import query_params
from common.csv_export import copy_csv_response
from common.permissions import IsAdmin
from common.schema import operation_doc

EXPORT_ACTION = "audit.events.exported"
ADMINS = (
    "admins of the organisation (role admin); others are refused (FORBIDDEN). Only the "
    "organisation's own events are shown, never another's or the system's."
)
FILTER_DOC = (
    "Filters (all optional, combined): `q`, `action`, `actionPrefix`, `actor`, "
    "`targetType`, `targetId`, `status` (ok or failed), `from`, `to`."
)
FILTER_ERRORS = (
    "VALIDATION_ERROR (400): a filter too long or holding a NUL, a malformed date or "
    "date-time, an unknown status"
)


def _text_parameter(name: str, max_length: int, description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name,
        {"type": "string", "maxLength": max_length, "pattern": s.NO_NUL_PATTERN},
        description=description,
    )


_WHEN = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]}
FILTER_PARAMETERS = [
    _text_parameter("q", 200, "Text (any case) in the action, actor label, target or data"),
    _text_parameter("action", 100, "The action, exactly"),
    _text_parameter("actionPrefix", 100, "The start of the action, e.g. `imports.`"),
    _text_parameter("actor", 200, "A user id (digits only), else text in the actor's label"),
    _text_parameter("targetType", 100, "The target type, exactly, e.g. `imports.importbatch`"),
    _text_parameter("targetId", 100, "The target id, exactly"),
    OpenApiParameter(
        "status",
        str,
        enum=["", *selectors.STATUSES],
        description="`failed`: the data carries a non-null `errorCode` or `error`, or "
        "`ok: false`, or the action ends in `.failed` or `.denied`; `ok`: every other event",
    ),
    OpenApiParameter(
        "from",
        _WHEN,
        description="From this date (that day's start) or date-time, inclusive; without an "
        "offset in the organisation's time zone",
    ),
    OpenApiParameter(
        "to",
        _WHEN,
        description="Up to this date (the whole day) or date-time, inclusive; without an "
        "offset in the organisation's time zone. After `from`: nothing matches",
    ),
]
LIST_PARAMETERS = [
    *FILTER_PARAMETERS,
    OpenApiParameter(
        "cursor",
        {"type": "string", "pattern": selectors.CURSOR_PATTERN},
        description="`nextCursor` of the previous page, passed back as given",
    ),
    OpenApiParameter(
        "pageSize",
        {
            "type": "integer",
            "minimum": 1,
            "maximum": selectors.MAX_PAGE_SIZE,
            "default": selectors.DEFAULT_PAGE_SIZE,
        },
    ),
]


def _organisation(request):
    return request.user.employee.organisation


def _validated(serializer_class, request, organisation):
    serializer = serializer_class(data=query_params(request), context={"tz": organisation.tz})
    serializer.is_valid(raise_exception=True)
    return serializer


class AuditLogListView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="admin_audit_logs_list",
        tags=["audit"],
        summary="List the organisation's audit events",
        description=operation_doc(
            "Who did what, when, to which target, with the event's data; the newest first. "
            "Times in the organisation's time zone.",
            who=ADMINS,
            paging=(
                "Keyset-paged, not page/total: follow `nextCursor` (null on the last page) "
                "with the same filters, `pageSize` up to "
                f"{selectors.MAX_PAGE_SIZE}. No total is counted: over millions of events a "
                "count costs more than the page. Items are ordered by (occurredAt, id), "
                "newest first, so events with equal times are neither repeated nor skipped "
                f"across pages. {FILTER_DOC}"
            ),
            errors=f"{FILTER_ERRORS}, a cursor that is not one given by a previous page.",
        ),
        parameters=LIST_PARAMETERS,
        responses=s.AuditPageSerializer,
    )
    def get(self, request):
        organisation = _organisation(request)
        query = _validated(s.AuditListQuerySerializer, request, organisation)
        page = selectors.audit_event_page(
            organisation_id=organisation.pk,
            filters=query.filters(),
            cursor=query.cursor_position(),
            page_size=query.validated_data["pageSize"],
        )
        payload = {"items": page.events, "pageSize": page.page_size, "nextCursor": page.next_cursor}
        return Response(s.AuditPageSerializer(payload, context={"tz": organisation.tz}).data)


class AuditLogExportView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="admin_audit_logs_export_csv",
        tags=["audit"],
        summary="Export audit events as CSV",
        description=operation_doc(
            "Every event the filters select, newest first, streamed by PostgreSQL as CSV in "
            "UTF-8 with a BOM: times in the organisation's time zone with their offset, "
            "text cells that a spreadsheet would run as a formula prefixed with `'`. The "
            f"export is itself audited (`{EXPORT_ACTION}`, with the filters).",
            who=ADMINS,
            paging=f"Not paged. {FILTER_DOC}",
            errors=f"{FILTER_ERRORS}; RATE_LIMITED (429) past RATELIMIT_EXPORT.",
        ),
        parameters=FILTER_PARAMETERS,
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with a BOM")
        },
    )
    def get(self, request):
        organisation = _organisation(request)
        query = _validated(s.AuditFilterSerializer, request, organisation)
        filters = query.filters()
        audit_record(
            actor=request.user,
            action=EXPORT_ACTION,
            organisation=organisation,
            data={"format": "csv", "filters": query.described()},
        )
        sql, params = selectors.audit_export_sql(
            organisation_id=organisation.pk, time_zone=organisation.time_zone, filters=filters
        )
        stamp = timezone.localtime(timezone.now(), organisation.tz).strftime("%Y%m%d-%H%M%S")
        return copy_csv_response(f"audit-{organisation.slug}-{stamp}.csv", sql, params)


class AuditLogSummaryView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="admin_audit_logs_summary",
        tags=["audit"],
        summary="Count audit events by action and error code",
        description=operation_doc(
            "Over the last `windowMinutes` (default 60, at most 7 days) ending now: the "
            "window's `from` and `to`, the number of events and of failed ones, and the "
            "counts by action and by error code.",
            who=ADMINS,
            errors="VALIDATION_ERROR (400): windowMinutes not a whole number from 1 to 10080.",
        ),
        parameters=[
            OpenApiParameter(
                "windowMinutes",
                {"type": "integer", "minimum": 1, "maximum": 10080, "default": 60},
                description="The window ending now, in minutes (at most 7 days)",
            )
        ],
        responses=s.AuditSummarySerializer,
    )
    def get(self, request):
        organisation = _organisation(request)
        window = _validated(s.AuditSummaryQuerySerializer, request, organisation)
        summary = selectors.audit_summary(
            organisation_id=organisation.pk,
            window_minutes=window.validated_data["windowMinutes"],
            now=dt.datetime.now(dt.UTC),
        )
        return Response(s.AuditSummarySerializer(summary, context={"tz": organisation.tz}).data)
