from django.urls import path

from events.api import views

# Mounted at /api/ (config/api_urls.py): the list is /api/events, without a trailing slash.
urlpatterns = [
    path("events", views.EventListCreateView.as_view(), name="events"),
    path("events/mine", views.MyEventsView.as_view(), name="mine"),
    path("events/<int:pk>", views.EventDetailView.as_view(), name="event"),
    path("events/<int:pk>/complete", views.EventCompleteView.as_view(), name="complete"),
    path(
        "events/<int:pk>/participants", views.ParticipantListAddView.as_view(), name="participants"
    ),
    path(
        "events/<int:pk>/participants/attendance",
        views.ParticipantBulkMarkView.as_view(),
        name="participants-mark-bulk",
    ),
    path(
        "events/<int:pk>/participants/<int:pid>/check-in",
        views.ParticipantCheckInView.as_view(),
        name="participant-check-in",
    ),
    path(
        "events/<int:pk>/participants/<int:pid>/attendance",
        views.ParticipantMarkView.as_view(),
        name="participant-mark",
    ),
]
