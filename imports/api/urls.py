from django.urls import path

from imports.api import views

urlpatterns = [
    path("formats", views.FormatsView.as_view(), name="formats"),
    path("template", views.TemplateView.as_view(), name="template"),
    path("upload", views.UploadView.as_view(), name="upload"),
    path("prepare", views.PrepareView.as_view(), name="prepare"),
    path("preview", views.PreviewView.as_view(), name="preview"),
    path("preview/errors.csv", views.PreviewErrorsView.as_view(), name="preview-errors"),
    path("commit", views.CommitView.as_view(), name="commit"),
    path("commit-async", views.CommitAsyncView.as_view(), name="commit-async"),
    path("jobs/<uuid:job_id>", views.JobView.as_view(), name="job"),
    path("batches", views.BatchListView.as_view(), name="batches"),
    path("batches/<int:batch_id>", views.BatchDetailView.as_view(), name="batch"),
    path("batches/<int:batch_id>/items", views.BatchItemsView.as_view(), name="batch-items"),
    path("batches/<int:batch_id>/export.csv", views.BatchExportView.as_view(), name="batch-export"),
    path("rollback/<int:batch_id>", views.RollbackView.as_view(), name="rollback"),
]
