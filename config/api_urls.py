from django.urls import include, path, re_path

from attendance.api import admin_views
from attendance.api.urls import admin_urlpatterns, attendance_urlpatterns
from audit.api.urls import urlpatterns as audit_urlpatterns
from common.views import api_not_found
from gates.api.urls import urlpatterns as gates_urlpatterns
from imports.api.urls import urlpatterns as import_urlpatterns

admin_role_patterns = [
    re_path(
        r"^users/(?P<pk>\d+)/roles/(?P<action>assign|unassign)$",
        admin_views.UserRoleView.as_view(),
        name="user-roles",
    ),
    re_path(
        r"^users/batch/roles/(?P<action>assign|unassign)$",
        admin_views.BatchRoleView.as_view(),
        name="batch-roles",
    ),
]

urlpatterns = [
    path("attendance/import/", include((import_urlpatterns, "imports"), namespace="import-api")),
    path(
        "attendance/", include((attendance_urlpatterns, "attendance"), namespace="attendance-api")
    ),
    path(
        "attendance-admin/",
        include(
            (admin_urlpatterns + admin_role_patterns, "attendance-admin"), namespace="admin-api"
        ),
    ),
    path("attendance-admin/", include((audit_urlpatterns, "audit-api"), namespace="audit-api")),
    path("", include(("events.api.urls", "events-api"), namespace="events-api")),
    path("gates/", include((gates_urlpatterns, "gates-api"), namespace="gates-api")),
    # Any rest of the path, a newline or a NUL included ("." stops at a newline, and
    # Django would answer its HTML 404, in development a list of every URL pattern).
    re_path(r"^[\s\S]*\Z", api_not_found),
]
