from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from attendance import services
from attendance.api import admin_serializers as s
from common import roles
from common.api import query_params, validated
from common.exceptions import NotFound
from common.pagination import PageNumberPagination
from common.permissions import IsAdmin
from common.schema import PAGED, operation_doc

User = get_user_model()

ADMINS = "admins of the organisation (role admin); others are refused (FORBIDDEN)."
ADMIN_WRITE = (
    "RATE_LIMITED (429) past RATELIMIT_ADMIN_WRITE (every write under "
    "/api/attendance-admin/ counts)"
)
ROLE_DOC = (
    "`role` is a short name (employee, approver, importer, admin) or the group's name "
    "(attendance_admin, …); the answer names the group."
)


def organisation_users(request):
    organisation_id = request.user.employee.organisation_id
    return (
        User.objects.filter(employee__organisation_id=organisation_id)
        .select_related("employee")
        .prefetch_related("groups")
        .order_by("username")
    )


def _organisation_user(request, pk: int):
    return get_object_or_404(organisation_users(request), pk=pk)


def _action(action: str) -> bool:
    if action not in ("assign", "unassign"):
        raise NotFound()
    return action == "assign"


class UserListView(APIView):
    permission_classes = [IsAdmin]
    pagination_class = PageNumberPagination  # read by the schema generator

    @extend_schema(
        operation_id="admin_users_list",
        tags=["admin"],
        summary="List the organisation's users",
        description=operation_doc(
            "The users linked to an employee of the caller's organisation, by username, each "
            "with their employee and roles.",
            who=ADMINS,
            paging=f"{PAGED} Filter: `q`, text (any case) in the username, the employee's "
            "name or number.",
            errors="VALIDATION_ERROR (400): `q` over 200 characters, a page or pageSize "
            "out of range.",
        ),
        parameters=[s.UserFilterSerializer],
        responses=s.AdminUserSerializer(many=True),
    )
    def get(self, request):
        users = organisation_users(request)
        query = validated(s.UserFilterSerializer, query_params(request)).get("q", "").strip()
        if query:
            users = users.filter(
                Q(username__icontains=query)
                | Q(employee__name__icontains=query)
                | Q(employee__employee_no__icontains=query)
            )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(users, request, view=self)
        return paginator.get_paginated_response(s.AdminUserSerializer(page, many=True).data)


class UserAccessView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="admin_user_access",
        tags=["admin"],
        summary="Get what a user may do",
        description=operation_doc(
            "One user as in the list, plus what their access rests on: the staff and "
            "superuser flags, whether they may open the admin centre, how many direct "
            "reports they approve for and how many API tokens they hold unrevoked.",
            who=ADMINS,
            errors="NOT_FOUND (404): no such user in the caller's organisation.",
        ),
        responses=s.UserAccessSerializer,
    )
    def get(self, request, pk: int):
        return Response(s.UserAccessSerializer(_organisation_user(request, pk)).data)


class UserRoleView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="admin_user_role_change",
        tags=["admin"],
        summary="Assign or unassign one user's role",
        description=operation_doc(
            "`assign` or `unassign` (the path's `action`) one role of one user; `changed` is "
            "false when the user had (or lacked) it already, `roles` lists their roles now. "
            f"{ROLE_DOC} Every change is audited.",
            who=ADMINS,
            errors="VALIDATION_ERROR (400): an unknown role; FORBIDDEN (403): unassigning "
            "one's own admin role; NOT_FOUND (404): no such user in the organisation, or "
            f"an action other than assign/unassign; {ADMIN_WRITE}.",
        ),
        parameters=[
            OpenApiParameter("action", str, OpenApiParameter.PATH, enum=["assign", "unassign"])
        ],
        request=s.RoleInputSerializer,
        responses=s.RoleChangeResultSerializer,
    )
    def post(self, request, pk: int, action: str):
        assign = _action(action)
        data = validated(s.RoleInputSerializer, request.data)
        user = _organisation_user(request, pk)
        service = services.role_assign if assign else services.role_unassign
        changed = service(actor=request.user, user=user, role=data["role"])
        user.__dict__.pop("_attendance_roles", None)
        return Response(
            {
                "userId": user.pk,
                "role": roles.normalise(data["role"]),
                "changed": changed,
                "roles": sorted(roles.user_roles(user)),
            }
        )


class BatchRoleView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="admin_users_batch_role_change",
        tags=["admin"],
        summary="Assign or unassign a role for many users",
        description=operation_doc(
            "One role for everybody named by `userIds` and/or `employeeNos` (up to 5,000 "
            "each). The answer sorts the identifiers as sent into `updated`, `unchanged`, "
            "`missing` (nobody with a login in the organisation) and `inactive` (left "
            "alone); the caller's own admin role is never removed (it is `unchanged`). "
            f"{ROLE_DOC} One audit event sums the batch up.",
            who=ADMINS,
            errors="VALIDATION_ERROR (400): an unknown role, neither userIds nor "
            f"employeeNos; NOT_FOUND (404): an action other than assign/unassign; "
            f"{ADMIN_WRITE}.",
        ),
        parameters=[
            OpenApiParameter("action", str, OpenApiParameter.PATH, enum=["assign", "unassign"])
        ],
        request=s.BatchRoleInputSerializer,
        responses=s.BatchRoleResultSerializer,
    )
    def post(self, request, action: str):
        assign = _action(action)
        data = validated(s.BatchRoleInputSerializer, request.data)
        result = services.roles_batch_apply(
            actor=request.user,
            organisation=request.user.employee.organisation,
            role=data["role"],
            assign=assign,
            user_ids=data.get("userIds", []),
            employee_nos=data.get("employeeNos", []),
        )
        return Response(result)


class SettingsView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="admin_settings_get",
        tags=["admin"],
        summary="Get the organisation's settings",
        description=operation_doc(
            "The caller's organisation: its time zone, working hours and workdays, grace "
            "minutes, IP allowlist, auto-absence delay of events and audit retention.",
            who=ADMINS,
        ),
        responses=s.SettingsSerializer,
    )
    def get(self, request):
        return Response(s.SettingsSerializer(request.user.employee.organisation).data)

    @extend_schema(
        operation_id="admin_settings_update",
        tags=["admin"],
        summary="Change the organisation's settings",
        description=operation_doc(
            "A partial update: send any subset of the fields, the others stay as they are. "
            "Answers the settings as saved; the change is audited with the values before "
            "and after.",
            who=ADMINS,
            errors="VALIDATION_ERROR (400): a field that is not a setting, an unknown time "
            "zone, an allowlist entry that is not an IP network or an allowlist that would "
            "shut out the caller's own address, an audit retention below the deployment's "
            f"AUDIT_RETENTION_DAYS, no workday; {ADMIN_WRITE}.",
        ),
        # A partial update: any subset of the fields.
        request=s.SettingsSerializer(partial=True),
        responses=s.SettingsSerializer,
    )
    def put(self, request):
        organisation = request.user.employee.organisation
        changes = validated(s.SettingsSerializer, request.data, partial=True)
        organisation = services.organisation_settings_update(
            actor=request.user, organisation=organisation, **changes
        )
        return Response(s.SettingsSerializer(organisation).data)
