"""Gate runs, escalations and notifications in the admin centre: read-only (a run is written
by ``manage.py gates`` and beat, an escalation by the runs; nothing here adds, changes or
deletes one).

Who sees them: superusers, and active staff holding the ``attendance_admin`` role with an
employee record (the admin role's group carries no model permission for this app; the role
itself is the permission, as for events). The gates describe the deployment, so every
organisation's admins see the same rows. Times are shown in the admin's organisation's
time zone.
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from common import roles
from gates.models import GateEscalation, GateNotification, GateRun


def _organisation_tz(request):
    employee = getattr(request.user, "employee", None)
    return employee.organisation.tz if employee is not None else timezone.get_current_timezone()


def _rendered(response):
    if hasattr(response, "render") and not getattr(response, "is_rendered", True):
        response.render()
    return response


def _pre(value) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    return format_html('<pre class="gate-admin-pre">{}</pre>', text)


class ReadOnlyGateAdmin(admin.ModelAdmin):
    actions = None

    def _may_see(self, request) -> bool:
        user = request.user
        return user.is_active and (
            user.is_superuser
            or (
                user.is_staff
                and getattr(user, "employee", None) is not None
                and roles.has_any_role(user, roles.ADMIN)
            )
        )

    def has_module_permission(self, request):
        return self._may_see(request)

    def has_view_permission(self, request, obj=None):
        return self._may_see(request)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    # The admin's pages are rendered here, inside the organisation's time zone: a
    # TemplateResponse would otherwise render after the view returned, outside it.
    def changelist_view(self, request, extra_context=None):
        with timezone.override(_organisation_tz(request)):
            return _rendered(super().changelist_view(request, extra_context))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        with timezone.override(_organisation_tz(request)):
            return _rendered(super().changeform_view(request, object_id, form_url, extra_context))


@admin.register(GateRun)
class GateRunAdmin(ReadOnlyGateAdmin):
    list_display = (
        "id",
        "gate",
        "priority",
        "status",
        "drill",
        "started_at",
        "duration_ms",
        "trigger",
        "failed_check",
        "failure_kind",
    )
    list_filter = ("gate", "status", "drill", "priority", "failure_kind", "trigger")
    search_fields = ("=id", "gate", "failed_check", "host", "app_commit")
    list_select_related = ("triggered_by",)
    show_full_result_count = False
    fields = (
        "gate",
        "priority",
        "status",
        "drill",
        "trigger",
        "triggered_by",
        "host",
        "base_url",
        "app_version",
        "app_commit",
        "started_at",
        "finished_at",
        "duration_ms",
        "failed_check",
        "failure_kind",
        "remediation",
        "remediation_owner",
        "options_pretty",
        "summary_pretty",
        "evidence_pretty",
        "log_pretty",
    )
    readonly_fields = fields

    @admin.display(description=_("options"))
    def options_pretty(self, obj):
        return _pre(obj.options)

    @admin.display(description=_("summary figures"))
    def summary_pretty(self, obj):
        return _pre(obj.summary)

    @admin.display(description=_("evidence"))
    def evidence_pretty(self, obj):
        return _pre(obj.evidence)

    @admin.display(description=_("log"))
    def log_pretty(self, obj):
        return _pre(obj.log)


@admin.register(GateEscalation)
class GateEscalationAdmin(ReadOnlyGateAdmin):
    list_display = ("id", "gate", "priority", "status", "opened_at", "updated_at", "failures")
    list_filter = ("status", "gate", "priority")
    list_select_related = ("first_run", "last_run")
    fields = (
        "gate",
        "priority",
        "status",
        "opened_at",
        "updated_at",
        "closed_at",
        "failures",
        "reason",
        "first_run",
        "last_run",
        "closed_by_run",
    )
    readonly_fields = fields


@admin.register(GateNotification)
class GateNotificationAdmin(ReadOnlyGateAdmin):
    list_display = (
        "id",
        "escalation",
        "run",
        "event",
        "channel",
        "target",
        "status",
        "attempts",
        "response_status",
        "created_at",
    )
    list_filter = ("status", "event", "channel")
    list_select_related = ("escalation", "run")
    fields = (
        "escalation",
        "run",
        "event",
        "channel",
        "target",
        "status",
        "attempts",
        "response_status",
        "error",
        "created_at",
    )
    readonly_fields = fields
