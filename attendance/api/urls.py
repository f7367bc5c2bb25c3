from django.urls import path

from attendance.api import admin_views, views

attendance_urlpatterns = [
    path("me", views.MeView.as_view(), name="me"),
    path("punch", views.PunchView.as_view(), name="punch"),
    path("records", views.RecordListView.as_view(), name="records"),
    path("summary", views.SummaryView.as_view(), name="summary"),
    path("export.csv", views.RecordExportView.as_view(), name="export"),
    path("requests", views.RequestListCreateView.as_view(), name="requests"),
    path("requests/<int:pk>", views.RequestDetailView.as_view(), name="request-detail"),
    path("requests/<int:pk>/approve", views.RequestApproveView.as_view(), name="request-approve"),
    path("requests/<int:pk>/reject", views.RequestRejectView.as_view(), name="request-reject"),
    path("requests/<int:pk>/cancel", views.RequestCancelView.as_view(), name="request-cancel"),
]

admin_urlpatterns = [
    path("users", admin_views.UserListView.as_view(), name="users"),
    path("users/<int:pk>/access", admin_views.UserAccessView.as_view(), name="user-access"),
    path("settings", admin_views.SettingsView.as_view(), name="settings"),
]
