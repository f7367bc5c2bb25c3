from django.urls import path

from gates import views

app_name = "gates"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("runs/<int:run_id>/", views.run_detail, name="run"),
    path("decision/", views.decision, name="decision"),
    path("decision.md", views.decision_markdown, name="decision-markdown"),
    path("decision.json", views.decision_json, name="decision-json"),
]
