"""The audit viewer: strictly read-only (the table refuses UPDATE and DELETE anyway)."""

from __future__ import annotations

import json

from django.contrib import admin
from django.utils.html import format_html
from django.utils.translation import gettext_lazy

from attendance.admin import ViewOnlyAdmin
from audit.models import AuditEvent
from audit.selectors import target_url

# The parts of the app that write audit events: the first dotted part of an action.
ACTION_AREAS = ("attendance", "imports", "audit", "gates", "events")


class ActionAreaFilter(admin.SimpleListFilter):
    """The part of the action before the first dot. A fixed list: a DISTINCT over a year
    of partitions would cost more than the page it filters."""

    title = gettext_lazy("area")
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
        "target_link",
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
        "target_link",
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

    @admin.display(description=gettext_lazy("target ID"), ordering="target_id")
    def target_link(self, obj):
        """The target's id, linked to the page showing it when there is one (the same
        resolver as the audit viewer's: the batch's report, the employee's admin page …)."""
        if not obj.target_id:
            return "—"
        url = target_url(obj.target_type, obj.target_id)
        if url is None:
            return obj.target_id
        return format_html('<a href="{}">{}</a>', url, obj.target_id)

    @admin.display(description=gettext_lazy("data"))
    def data_pretty(self, obj):
        text = json.dumps(obj.data, indent=2, ensure_ascii=False, sort_keys=True)
        # A class, not a style attribute: the content security policy refuses inline styles.
        return format_html('<pre class="audit-admin-data">{}</pre>', text)
