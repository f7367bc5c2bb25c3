from django.urls import path

from gates.api import views

# Mounted at /api/gates/ (config/api_urls.py), namespace "gates-api".
urlpatterns = [
    path("runs", views.GateRunListView.as_view(), name="runs"),
    path("runs/<int:pk>", views.GateRunDetailView.as_view(), name="run"),
    path("dashboard", views.GateDashboardView.as_view(), name="dashboard"),
    path("decision", views.GateDecisionView.as_view(), name="decision"),
]
