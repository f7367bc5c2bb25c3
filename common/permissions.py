"""API permissions: every endpoint needs an attendance user of an organisation, within the
organisation's IP allowlist; role permissions narrow that further."""

from django.utils.translation import gettext
from rest_framework.permissions import BasePermission

from common import roles
from common.exceptions import Forbidden, IpRestricted, Unauthenticated
from common.net import client_ip, ip_allowed


def organisation_of(user):
    employee = getattr(user, "employee", None) if user.is_authenticated else None
    return employee.organisation if employee is not None else None


class IsAttendanceUser(BasePermission):
    def has_permission(self, request, view):
        user = request.user
        if not user or not user.is_authenticated:
            raise Unauthenticated()
        organisation = organisation_of(user)
        if organisation is None or not user.employee.is_active:
            raise Forbidden(
                gettext("Your account is not linked to an active employee of an organisation.")
            )
        if not ip_allowed(client_ip(request), organisation.ip_allowlist):
            raise IpRestricted()
        return True


class _HasRole(IsAttendanceUser):
    allowed_roles: tuple[str, ...] = ()

    def has_permission(self, request, view):
        super().has_permission(request, view)
        if not roles.has_any_role(request.user, *self.allowed_roles):
            raise Forbidden()
        return True


class IsAdmin(_HasRole):
    allowed_roles = (roles.ADMIN,)


class IsApproverOrAdmin(_HasRole):
    allowed_roles = (roles.APPROVER, roles.ADMIN)


class IsImporterOrAdmin(_HasRole):
    allowed_roles = (roles.IMPORTER, roles.ADMIN)
