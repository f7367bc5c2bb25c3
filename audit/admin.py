"""The audit viewer: strictly read-only (the table refuses UPDATE and DELETE anyway)."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html

from attendance.admin import ViewOnlyAdmin
from audit.models import AuditEvent

# The parts of the app that write audit events: the first dotted part of an action.
ACTION_AREAS = ("attendance", "imports", "audit", "gates", "events")


class ActionAreaFilter(admin.SimpleListFilter):
    """The part of the action before the first dot. A fixed list: a DISTINCT over a year
    of partitions would cost more than the page it filters."""

    title = "area"
    parameter_name = "area"

    def lookups(self, request, model_admin):
        return [(area, area) for area in ACTION_AREAS]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(action__startswith=f"{self.value()}.")
        return queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ViewOnlyAdmin):
    list_display = (
        "occurred_at",
        "action",
        "actor_label",
        "target_type",
        "target_id",
        "ip",
        "request_id",
        "organisation",  # shown to superusers only (OrganisationScopedAdmin)
    )
    list_filter = (ActionAreaFilter, "target_type")
    search_fields = ("^action", "actor_label", "=target_id", "=request_id")
    date_hierarchy = "occurred_at"
    list_select_related = ("organisation",)
    show_full_result_count = False
    actions = None
    fields = (
        "occurred_at",
        "organisation",
        "actor",
        "actor_label",
        "action",
        "target_type",
        "target_id",
        "request_id",
        "ip",
        "user_agent",
        "data_pretty",
    )
    readonly_fields = fields

    def get_list_filter(self, request):
        # target_type's choices come from a DISTINCT over the table; keep it for superusers.
        if request.user.is_superuser:
            return super().get_list_filter(request)
        return (ActionAreaFilter,)

    @admin.display(description="Data")
    def data_pretty(self, obj):
        text = json.dumps(obj.data, indent=2, ensure_ascii=False, sort_keys=True)
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', text)
