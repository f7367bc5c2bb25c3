"""The gates API (API.md "Gates"): the stored runs, the dashboard and the go/no-go packet.

Who may read them: administrators (the ``attendance_admin`` role) of any organisation,
within their organisation's IP allowlist, as every admin API. The gates describe the
deployment, not an organisation: every organisation's admins read the same runs. Nothing
in a run is an organisation's data (the runner stores no token; the smoke and perf gates
work on rows they generate), and the admins of a deployment are the people who decide
whether it ships. Employees, approvers and importers are refused (FORBIDDEN).

Reads only; a run is written by ``manage.py gates`` and by beat, never through the API.
Times are ISO 8601 with the offset of the caller's organisation's time zone.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import query_params, validated
from common.pagination import PageNumberPagination
from common.permissions import IsAdmin
from common.schema import PAGED, operation_doc
from gates.api import serializers as s
from gates.models import GateRun
from gates.selectors import run_as_dict
from gates.services.dashboard import dashboard
from gates.services.decision import decide

WHO = (
    "admins (role admin) of any organisation: the gates describe the deployment, not an "
    "organisation. Others are refused (FORBIDDEN)."
)
TIMES = "Times in the caller's organisation's time zone."
UNAUTHENTICATED = OpenApiResponse(description="UNAUTHENTICATED: no or bad credentials")
FORBIDDEN = OpenApiResponse(
    description="FORBIDDEN: not an administrator; IP_RESTRICTED: the organisation's IP "
    "allowlist refuses the client address"
)
ACCESS_ERRORS = {401: UNAUTHENTICATED, 403: FORBIDDEN}


def _context(request) -> dict:
    return {"tz": request.user.employee.organisation.tz, "request": request}


def _runs(filters: dict):
    runs = GateRun.objects.select_related("triggered_by").order_by("-started_at", "-id")
    if "gate" in filters:
        runs = runs.filter(gate=filters["gate"])
    if "drill" in filters:
        runs = runs.filter(drill=filters["drill"])
    return runs


class GateRunListView(APIView):
    permission_classes = [IsAdmin]
    pagination_class = PageNumberPagination  # read by the schema generator

    @extend_schema(
        operation_id="gates_runs_list",
        tags=["gates"],
        summary="List gate runs",
        description=operation_doc(
            "Every stored run of every gate, the newest first, drills included unless "
            f"filtered, without its log (the detail has it). {TIMES}",
            who=WHO,
            paging=f"{PAGED} Filters: `gate` (a registered gate), `drill` (`true` or `false`).",
            errors="VALIDATION_ERROR (400): an unknown gate, a drill that is not "
            "true/false, a page or pageSize out of range.",
        ),
        parameters=[s.RunFilterSerializer],
        responses={
            200: s.RunSerializer(many=True),
            400: OpenApiResponse(
                description="VALIDATION_ERROR: an unknown gate, a drill that is not "
                "true/false, a page or pageSize out of range"
            ),
            **ACCESS_ERRORS,
        },
    )
    def get(self, request):
        filters = validated(s.RunFilterSerializer, query_params(request))
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(_runs(filters), request, view=self)
        items = [run_as_dict(run, log=False) for run in page]
        data = s.RunSerializer(items, many=True, context=_context(request)).data
        return paginator.get_paginated_response(data)


class GateRunDetailView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="gates_runs_detail",
        tags=["gates"],
        summary="Get a gate run with its checks, evidence and log",
        description=operation_doc(
            f"A run as in the list, plus its log. {TIMES}",
            who=WHO,
            errors="NOT_FOUND (404): no run with this id.",
        ),
        responses={
            200: s.RunDetailSerializer,
            404: OpenApiResponse(description="NOT_FOUND: no run with this id"),
            **ACCESS_ERRORS,
        },
    )
    def get(self, request, pk: int):
        run = get_object_or_404(GateRun.objects.select_related("triggered_by"), pk=pk)
        return Response(s.RunDetailSerializer(run_as_dict(run), context=_context(request)).data)


class GateDashboardView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="gates_dashboard",
        tags=["gates"],
        summary="Get the gates dashboard",
        description=operation_doc(
            "What `/gates/` and `manage.py gates dashboard --json` show: per gate its latest "
            "real run, age and effective status (stale after GATES_STALE_HOURS for P0/P1, "
            "GATES_STALE_HOURS_P2 for P2) and its latest drill apart (drills never count), "
            f"the open escalations, the perf phases over time and the recent history. {TIMES}",
            who=WHO,
        ),
        responses={200: s.DashboardSerializer, **ACCESS_ERRORS},
    )
    def get(self, request):
        return Response(s.DashboardSerializer(dashboard(), context=_context(request)).data)


class GateDecisionView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="gates_decision",
        tags=["gates"],
        summary="Get the go/no-go decision packet",
        description=operation_doc(
            "What `/gates/decision/` and `manage.py gates decide --json` show, computed now "
            "from the stored runs (drills never count): each criterion blocking or not, its "
            "status and evidence, the score `n/m` of blocking criteria met and the verdict "
            "GO, CONDITIONAL or NO-GO with its rationale, rollback triggers and post-rollout "
            f"monitoring checklist. {TIMES}",
            who=WHO,
        ),
        responses={200: s.DecisionSerializer, **ACCESS_ERRORS},
    )
    def get(self, request):
        return Response(s.DecisionSerializer(decide(), context=_context(request)).data)
