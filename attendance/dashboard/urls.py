from django.urls import path

from attendance.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("today/<slug:category>/", views.today, name="today"),
]
