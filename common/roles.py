"""The four roles. They are Django groups (created by a migration, re-created on demand).

The group names are internal: people are shown ``label(role)``."""

from django.utils.translation import gettext_lazy as _

EMPLOYEE = "attendance_employee"
APPROVER = "attendance_approver"
IMPORTER = "attendance_importer"
ADMIN = "attendance_admin"

ALL = (EMPLOYEE, APPROVER, IMPORTER, ADMIN)
ROLE_LABELS = {
    EMPLOYEE: _("Employee"),
    APPROVER: _("Approver"),
    IMPORTER: _("Importer"),
    ADMIN: _("Attendance admin"),
}
SHORT_NAMES = {"employee": EMPLOYEE, "approver": APPROVER, "importer": IMPORTER, "admin": ADMIN}


def normalise(role: str) -> str | None:
    """Accept ``admin`` or ``attendance_admin``; None for anything else."""
    role = (role or "").strip()
    if role in ALL:
        return role
    return SHORT_NAMES.get(role)


def label(role: str) -> str:
    """What a person reads for a role (``admin`` or ``attendance_admin``); the text given
    back unchanged when it is no role."""
    return ROLE_LABELS.get(normalise(role) or "", role)


def user_roles(user) -> frozenset[str]:
    """The user's attendance roles, cached on the user object for the request."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_attendance_roles", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ALL).values_list("name", flat=True))
        user._attendance_roles = cached
    return cached


def has_any_role(user, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))
