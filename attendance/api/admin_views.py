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

User = get_user_model()


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

    @extend_schema(operation_id="admin_user_access", responses=s.UserAccessSerializer)
    def get(self, request, pk: int):
        return Response(s.UserAccessSerializer(_organisation_user(request, pk)).data)


class UserRoleView(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(
        operation_id="admin_user_role_change",
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

    @extend_schema(operation_id="admin_settings_get", responses=s.SettingsSerializer)
    def get(self, request):
        return Response(s.SettingsSerializer(request.user.employee.organisation).data)

    @extend_schema(
        operation_id="admin_settings_update",
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
