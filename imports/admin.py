"""Import batches in the admin centre: a view-only list, each batch linked to its report
page (the import pages and the rollback action live in the import flow)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_lazy

from attendance.admin import ViewOnlyAdmin
from imports.models import ImportBatch


@admin.register(ImportBatch)
class ImportBatchAdmin(ViewOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "format",
        "filename",
        "status",
        "created_by",
        "report_link",
        "organisation",
    )
    list_filter = ("status", "format", "organisation")
    search_fields = ("filename", "=id")
    date_hierarchy = "created_at"
    list_select_related = ("created_by", "organisation")
    readonly_fields = ("report_link",)

    @admin.display(description=gettext_lazy("Report"))
    def report_link(self, obj):
        """The batch's report page in the import flow (rows, errors, rollback)."""
        if obj is None or obj.pk is None:
            return "—"
        url = reverse("imports:batch", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Open the report"))
