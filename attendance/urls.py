from django.urls import path

from attendance import team_views, views

app_name = "attendance"

urlpatterns = [
    path("", views.home, name="home"),
    path("punch/", views.punch, name="punch"),
    path("requests/<int:pk>/cancel/", views.request_cancel, name="request_cancel"),
    path("approvals/", views.approvals, name="approvals"),
    path("approvals/<int:pk>/decide/", views.request_decide, name="request_decide"),
    path("team/", team_views.team, name="team"),
    path("team/export.<str:fmt>/", team_views.team_export, name="team_export"),
    path("people/<int:employee_id>/", team_views.person_month, name="person_month"),
    path("export.<str:fmt>/", team_views.my_export, name="my_export"),
]
