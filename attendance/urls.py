from django.urls import path

from attendance import views

app_name = "attendance"

urlpatterns = [
    path("", views.home, name="home"),
    path("punch/", views.punch, name="punch"),
    path("requests/<int:pk>/cancel/", views.request_cancel, name="request_cancel"),
    path("approvals/", views.approvals, name="approvals"),
    path("approvals/<int:pk>/decide/", views.request_decide, name="request_decide"),
]
