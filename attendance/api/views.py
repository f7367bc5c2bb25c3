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


def _context(request) -> dict:
    return {"tz": request.user.employee.organisation.tz, "request": request}


class MeView(APIView):
    @extend_schema(operation_id="attendance_me", responses=s.MeSerializer)
    def get(self, request):
        payload = {"user": request.user, "employee": request.user.employee}
        return Response(s.MeSerializer(payload, context=_context(request)).data)


class PunchView(APIView):
    @extend_schema(
        operation_id="attendance_punch",
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
    @extend_schema(operation_id="attendance_requests_detail", responses=s.RequestSerializer)
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
        request=s.DecisionInputSerializer,
        responses={200: s.RequestSerializer, 409: STATE_CONFLICT},
    )
    def post(self, request, pk: int):
        return super().post(request, pk)


class RequestRejectView(_DecisionView):
    service = staticmethod(services.adjustment_request_reject)

    @extend_schema(
        operation_id="attendance_requests_reject",
        request=s.DecisionInputSerializer,
        responses={200: s.RequestSerializer, 409: STATE_CONFLICT},
    )
    def post(self, request, pk: int):
        return super().post(request, pk)


class RequestCancelView(APIView):
    @extend_schema(
        operation_id="attendance_requests_cancel",
        request=None,
        responses={200: s.RequestSerializer, 409: STATE_CONFLICT},
    )
    def post(self, request, pk: int):
        adjustment = _visible_request(request, pk)
        cancelled = services.adjustment_request_cancel(actor=request.user, request=adjustment)
        cancelled = selectors.request_list(user=request.user).get(pk=cancelled.pk)
        return Response(s.RequestSerializer(cancelled, context=_context(request)).data)
