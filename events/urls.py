from django.urls import path

from events import views

app_name = "events"

urlpatterns = [
    path("", views.event_list, name="list"),
    path("mine/", views.my_events, name="mine"),
    path("<int:event_id>/", views.event_detail, name="detail"),
    path("<int:event_id>/complete/", views.event_complete, name="complete"),
    path("<int:event_id>/mark/", views.participants_mark_bulk, name="mark_bulk"),
    path("participants/<int:participant_id>/", views.participant_detail, name="participant"),
    path(
        "participants/<int:participant_id>/check-in/",
        views.participant_check_in,
        name="check_in",
    ),
    path("participants/<int:participant_id>/mark/", views.participant_mark, name="mark"),
]
