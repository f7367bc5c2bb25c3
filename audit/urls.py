from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.events, name="events"),
    path("events/<int:event_id>/", views.event_detail, name="event"),
]
