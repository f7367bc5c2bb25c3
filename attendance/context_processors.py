from common import roles as role_names


def roles(request):
    """Template flags for the navigation: which role-only pages this user may open."""
    user = getattr(request, "user", None)
    user_roles = role_names.user_roles(user) if user is not None else frozenset()
    return {
        "is_attendance_admin": role_names.ADMIN in user_roles,
        "is_attendance_approver": bool(user_roles & {role_names.APPROVER, role_names.ADMIN}),
        "is_attendance_importer": bool(user_roles & {role_names.IMPORTER, role_names.ADMIN}),
    }
