from django.urls import path

from audit.api import views

# Mounted under /api/attendance-admin/ (config/api_urls.py), namespace "audit-api".
urlpatterns = [
    path("audit-logs", views.AuditLogListView.as_view(), name="audit-logs"),
    path("audit-logs/export.csv", views.AuditLogExportView.as_view(), name="audit-logs-export"),
    path("audit-logs/summary", views.AuditLogSummaryView.as_view(), name="audit-logs-summary"),
]
