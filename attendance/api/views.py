from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from attendance import selectors, services
from attendance.api import serializers as s
from attendance.models import AdjustmentRequest
from common import ratelimit
from common.api import query_params, validated
from common.csv_export import streaming_csv_response
from common.pagination import PageNumberPagination
from common.schema import ANY_USER, PAGED, operation_doc

STATE_CONFLICT = OpenApiResponse(
    description="REQUEST_STATE_CONFLICT: the request is not pending (or a pending one exists); "
    "BUSY: the day was locked by a running import or another writer (retry after Retry-After)"
)
BUSY = OpenApiResponse(
    description="BUSY: the day was locked by a running import or another writer longer than "
    "DB_LOCK_TIMEOUT; nothing was written, retry after Retry-After"
)

# The filter serializer is the parameters' schema: what it refuses, the schema forbids.
RECORD_FILTERS = [s.RecordFilterSerializer]

RECORD_SCOPE = (
    ANY_USER + ". Employees see their own days, approvers theirs and their direct reports', "
    "admins everyone's in the organisation."
)
RECORD_FILTER_DOC = (
    "Filters: `from` and `to` (work dates, inclusive), `employee` (an employee id; one the "
    "caller may not see gives nothing), `status`."
)
RECORD_FILTER_ERRORS = (
    "VALIDATION_ERROR (400): a malformed date, `to` before `from`, an unknown status"
)
REQUEST_SCOPE = (
    ANY_USER + ". Each sees their own requests and those they may decide: approvers their "
    "direct reports', admins the organisation's."
)
DECIDER = (
    "the employee's approver or an admin of the organisation, never the employee who asked "
    "(FORBIDDEN)."
)
DECISION_ERRORS = (
    "NOT_FOUND (404): a request the caller cannot see; REQUEST_STATE_CONFLICT (409): the "
    "request is not pending; BUSY (409): the day is locked by a running import or another "
    "writer, nothing was written, retry after `Retry-After`."
)


def _context(request) -> dict:
    return {"tz": request.user.employee.organisation.tz, "request": request}


class MeView(APIView):
    @extend_schema(
        operation_id="attendance_me",
        tags=["records"],
        summary="Get the caller's employee, organisation and roles",
        description=operation_doc(
            "Who the session or bearer token belongs to: the user id and username, the "
            "employee, the organisation with its time zone (every time in the API is given "
            "in it) and the caller's roles.",
            who=ANY_USER + ".",
        ),
        responses=s.MeSerializer,
    )
    def get(self, request):
        payload = {"user": request.user, "employee": request.user.employee}
        return Response(s.MeSerializer(payload, context=_context(request)).data)


class PunchView(APIView):
    @extend_schema(
        operation_id="attendance_punch",
        tags=["records"],
        summary="Punch in or out",
        description=operation_doc(
            "Records a punch of the caller at the time the server receives it (`kind`: `in` "
            "or `out`) and answers it with the day rebuilt from the day's punches. A new "
            "punch answers 201. With a `clientId`, a resend of the same punch (after a "
            "timeout, from an offline queue) answers the first one with 200 and "
            "`created: false`, so a punch is never counted twice.",
            who=ANY_USER + ", for themself; an inactive employee is refused (FORBIDDEN).",
            errors="VALIDATION_ERROR (400); RATE_LIMITED (429) past RATELIMIT_PUNCH (20 a "
            "minute by default) with `Retry-After`; BUSY (409): the day is locked by a "
            "running import, nothing was written, retry after `Retry-After`.",
        ),
        request=s.PunchInputSerializer,
        responses={201: s.PunchResultSerializer, 200: s.PunchResultSerializer, 409: BUSY},
    )
    def post(self, request):
        ratelimit.enforce(request, group="attendance.punch", rate=settings.RATELIMIT_PUNCH)
        data = validated(s.PunchInputSerializer, request.data)
        punch, record, created = services.punch_create(
            actor=request.user,
            employee=request.user.employee,
            kind=data["kind"],
            client_id=data.get("clientId"),
        )
        record.employee = request.user.employee
        body = s.PunchResultSerializer(
            {"punch": punch, "day": record, "created": created}, context=_context(request)
        ).data
        return Response(body, status=201 if created else 200)


class RecordListView(APIView):
    pagination_class = PageNumberPagination  # read by the schema generator

    @extend_schema(
        operation_id="attendance_records",
        tags=["records"],
        summary="List attendance records",
        description=operation_doc(
            "The attendance days (one record per employee and work date), the latest work "
            "date first, then by employee number. Times are ISO 8601 with the offset of the "
            "organisation's time zone; `source` tells where a day comes from (punches, an "
            "import batch, an approved correction).",
            who=RECORD_SCOPE,
            paging=f"{PAGED} {RECORD_FILTER_DOC}",
            errors=f"{RECORD_FILTER_ERRORS}, a page or pageSize out of range.",
        ),
        parameters=RECORD_FILTERS,
        responses=s.RecordSerializer(many=True),
    )
    def get(self, request):
        filters = validated(s.RecordFilterSerializer, query_params(request))
        records = selectors.record_list(
            user=request.user,
            date_from=filters.get("from"),
            date_to=filters.get("to"),
            employee_id=filters.get("employee"),
            status=filters.get("status"),
        )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(records, request, view=self)
        data = s.RecordSerializer(page, many=True, context=_context(request)).data
        return paginator.get_paginated_response(data)


class SummaryView(APIView):
    @extend_schema(
        operation_id="attendance_summary",
        tags=["records"],
        summary="Summarise a month of attendance",
        description=operation_doc(
            "Over one `month` (YYYY-MM, required): the number of days, the days by status, "
            "and the worked, late and early-leave minutes, of every record the caller may "
            "see or of one `employee` (an employee id).",
            who=RECORD_SCOPE,
            errors="VALIDATION_ERROR (400): no month, or not a YYYY-MM month.",
        ),
        parameters=[s.SummaryFilterSerializer],
        responses={200: dict},
    )
    def get(self, request):
        filters = validated(s.SummaryFilterSerializer, query_params(request))
        month_start = dt.date.fromisoformat(filters["month"] + "-01")
        summary = selectors.record_summary(
            user=request.user, month_start=month_start, employee_id=filters.get("employee")
        )
        return Response({"month": filters["month"], **summary})


EXPORT_COLUMNS = [
    "employee_no",
    "name",
    "department",
    "work_date",
    "first_in",
    "last_out",
    "work_minutes",
    "late_minutes",
    "early_leave_minutes",
    "status",
    "source",
    "batch_id",
]


class RecordExportView(APIView):
    @extend_schema(
        operation_id="attendance_export_csv",
        tags=["records"],
        summary="Export attendance records as CSV",
        description=operation_doc(
            "The records the filters select (as the list, unpaged), streamed as CSV in "
            "UTF-8 with a BOM, columns `employee_no, name, department, work_date, first_in, "
            "last_out, work_minutes, late_minutes, early_leave_minutes, status, source, "
            "batch_id`; times as in the list, text a spreadsheet would run as a formula "
            "prefixed with `'`. Every export is audited with its filters.",
            who=RECORD_SCOPE,
            paging=RECORD_FILTER_DOC,
            errors=f"{RECORD_FILTER_ERRORS}; RATE_LIMITED (429) past RATELIMIT_EXPORT.",
        ),
        parameters=RECORD_FILTERS,
        responses={(200, "text/csv"): str},
    )
    def get(self, request):
        filters = validated(s.RecordFilterSerializer, query_params(request))
        services.attendance_records_export_audit(actor=request.user, filters=filters)
        records = selectors.record_list(
            user=request.user,
            date_from=filters.get("from"),
            date_to=filters.get("to"),
            employee_id=filters.get("employee"),
            status=filters.get("status"),
        )
        tz = request.user.employee.organisation.tz

        def local(moment):
            return timezone.localtime(moment, tz).isoformat() if moment else ""

        rows = (
            (
                employee_no,
                name,
                department,
                work_date.isoformat(),
                local(first_in),
                local(last_out),
                work,
                late,
                early,
                status,
                source,
                batch_id or "",
            )
            for (
                employee_no,
                name,
                department,
                work_date,
                first_in,
                last_out,
                work,
                late,
                early,
                status,
                source,
                batch_id,
            ) in records.values_list(
                "employee__employee_no",
                "employee__name",
                "employee__department",
                "work_date",
                "first_in",
                "last_out",
                "work_minutes",
                "late_minutes",
                "early_leave_minutes",
                "status",
                "source",
                "batch_id",
            ).iterator(chunk_size=5000)
        )
        return streaming_csv_response("attendance.csv", EXPORT_COLUMNS, rows)


class RequestListCreateView(APIView):
    pagination_class = PageNumberPagination  # read by the schema generator

    @extend_schema(
        operation_id="attendance_requests_list",
        tags=["requests"],
        summary="List correction requests",
        description=operation_doc(
            "Requests to correct a day (the pages call them corrections), the newest "
            "first, with who decided them, when and with which comment.",
            who=REQUEST_SCOPE,
            paging=f"{PAGED} Filters: `status` (the request's state: pending, approved, "
            "rejected, cancelled), `mine=true` for the caller's own only.",
            errors="VALIDATION_ERROR (400): an unknown status, `mine` not a boolean.",
        ),
        parameters=[s.RequestFilterSerializer],
        responses=s.RequestSerializer(many=True),
    )
    def get(self, request):
        filters = validated(s.RequestFilterSerializer, query_params(request))
        requests = selectors.request_list(
            user=request.user, state=filters.get("status"), mine=filters["mine"]
        )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(requests, request, view=self)
        data = s.RequestSerializer(page, many=True, context=_context(request)).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        operation_id="attendance_requests_create",
        tags=["requests"],
        summary="Ask for a correction of a day",
        description=operation_doc(
            "Asks for one of the caller's days (`workDate`) to be corrected: a `firstIn`, a "
            "`lastOut` and/or a `status` (at least one), with a `reason`. The request stays "
            "pending until the employee's approver or an admin approves or rejects it; "
            "the day is unchanged until then. Answers 201 with the request.",
            who=ANY_USER + ", for their own days.",
            errors="VALIDATION_ERROR (400): a future `workDate` or one older than "
            "CORRECTION_MAX_AGE_DAYS, no reason, none of firstIn/lastOut/status, times "
            "outside the day; REQUEST_STATE_CONFLICT (409): a pending request for that day "
            "exists already.",
        ),
        request=s.RequestInputSerializer,
        responses={201: s.RequestSerializer, 409: STATE_CONFLICT},
    )
    def post(self, request):
        data = validated(s.RequestInputSerializer, request.data, context=_context(request))
        adjustment = services.adjustment_request_create(
            actor=request.user,
            employee=request.user.employee,
            work_date=data["workDate"],
            first_in=data.get("firstIn"),
            last_out=data.get("lastOut"),
            status=data.get("status") or "",
            reason=data["reason"],
        )
        return Response(s.RequestSerializer(adjustment, context=_context(request)).data, status=201)


def _visible_request(request, pk: int) -> AdjustmentRequest:
    return get_object_or_404(selectors.request_list(user=request.user), pk=pk)


class RequestDetailView(APIView):
    @extend_schema(
        operation_id="attendance_requests_detail",
        tags=["requests"],
        summary="Get a correction request",
        description=operation_doc(
            "One correction request, as in the list.",
            who=REQUEST_SCOPE,
            errors="NOT_FOUND (404): no such request, or one the caller cannot see.",
        ),
        responses=s.RequestSerializer,
    )
    def get(self, request, pk: int):
        adjustment = _visible_request(request, pk)
        return Response(s.RequestSerializer(adjustment, context=_context(request)).data)


class _DecisionView(APIView):
    service = None

    def post(self, request, pk: int):
        data = validated(s.DecisionInputSerializer, request.data)
        adjustment = _visible_request(request, pk)
        decided = type(self).service(
            actor=request.user, request=adjustment, comment=data["comment"]
        )
        decided = selectors.request_list(user=request.user).get(pk=decided.pk)
        return Response(s.RequestSerializer(decided, context=_context(request)).data)


class RequestApproveView(_DecisionView):
    service = staticmethod(services.adjustment_request_approve)

    @extend_schema(
        operation_id="attendance_requests_approve",
        tags=["requests"],
        summary="Approve a correction request",
        description=operation_doc(
            "Applies the correction to the day (the asked times over the day's own, the "
            "asked status or else `adjusted`, source `adjustment`) and marks the request "
            "approved, with the optional `comment`; the change is audited with the day "
            "before and after.",
            who=DECIDER,
            errors=DECISION_ERRORS + " Also REQUEST_STATE_CONFLICT when the corrected times "
            "would end before they start.",
        ),
        request=s.DecisionInputSerializer,
        responses={200: s.RequestSerializer, 409: STATE_CONFLICT},
    )
    def post(self, request, pk: int):
        return super().post(request, pk)


class RequestRejectView(_DecisionView):
    service = staticmethod(services.adjustment_request_reject)

    @extend_schema(
        operation_id="attendance_requests_reject",
        tags=["requests"],
        summary="Reject a correction request",
        description=operation_doc(
            "Marks the request rejected, with the optional `comment`; the day stays as it was.",
            who=DECIDER,
            errors=DECISION_ERRORS,
        ),
        request=s.DecisionInputSerializer,
        responses={200: s.RequestSerializer, 409: STATE_CONFLICT},
    )
    def post(self, request, pk: int):
        return super().post(request, pk)


class RequestCancelView(APIView):
    @extend_schema(
        operation_id="attendance_requests_cancel",
        tags=["requests"],
        summary="Cancel one's own correction request",
        description=operation_doc(
            "Withdraws a pending request; the day stays as it was.",
            who="the employee who asked, nobody else (FORBIDDEN).",
            errors="NOT_FOUND (404): a request the caller cannot see; "
            "REQUEST_STATE_CONFLICT (409): the request is not pending.",
        ),
        request=None,
        responses={200: s.RequestSerializer, 409: STATE_CONFLICT},
    )
    def post(self, request, pk: int):
        adjustment = _visible_request(request, pk)
        cancelled = services.adjustment_request_cancel(actor=request.user, request=adjustment)
        cancelled = selectors.request_list(user=request.user).get(pk=cancelled.pk)
        return Response(s.RequestSerializer(cancelled, context=_context(request)).data)
