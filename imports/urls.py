from django.urls import path

from imports import views

app_name = "imports"

urlpatterns = [
    path("", views.wizard, name="wizard"),
    path("batches/", views.batches, name="batches"),
    path("batches/<int:batch_id>/", views.batch_detail, name="batch"),
    path("batches/<int:batch_id>/rollback/", views.batch_rollback, name="batch_rollback"),
]
