"""Import batches in the admin centre: a view-only list for now (the import pages and the
rollback action live in the import flow)."""

from __future__ import annotations

from django.contrib import admin

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
        "organisation",
    )
    list_filter = ("status", "format", "organisation")
    search_fields = ("filename", "=id")
    date_hierarchy = "created_at"
    list_select_related = ("created_by", "organisation")
