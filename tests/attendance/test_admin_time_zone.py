"""The admin centre in the organisation's time zone: a punch at 21:29 UTC on 1 December is
05:29 on 2 December in Shanghai, as the pages and the API say; a superuser without an
organisation keeps the server's zone (UTC)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model

from attendance import services
from attendance.models import Punch

pytestmark = pytest.mark.django_db
MOMENT = dt.datetime(2026, 12, 1, 21, 29, tzinfo=dt.UTC)
PUNCHES = "/admin/attendance/punch/"


@pytest.fixture
def punch(people):
    punch, _, _ = services.punch_create(
        actor=people["employee"].user,
        employee=people["employee"],
        kind="in",
        occurred_at=MOMENT,
    )
    return punch


def test_an_admin_reads_times_in_the_organisations_zone(client, people, punch):
    assert people["admin"].organisation.time_zone == "Asia/Shanghai"
    client.force_login(people["admin"].user)

    listing = client.get(PUNCHES).content.decode()
    change = client.get(f"{PUNCHES}{punch.pk}/change/").content.decode()

    assert "Dec. 2, 2026, 5:29 a.m." in listing
    assert "9:29 p.m." not in listing
    assert "Dec. 2, 2026, 5:29 a.m." in change or "2026-12-02" in change


def test_the_zone_is_only_the_admin_centres(client, people, punch):
    """Outside /admin/ nothing changes: the pages and the API convert explicitly."""
    from django.utils import timezone

    client.force_login(people["admin"].user)
    client.get(PUNCHES)
    assert timezone.get_current_timezone_name() == "UTC"


def test_a_superuser_without_an_organisation_keeps_the_servers_zone(client, people, punch):
    root = get_user_model().objects.create_superuser("root", "root@example.com", "x" * 20)
    client.force_login(root)
    listing = client.get(PUNCHES).content.decode()
    assert Punch.objects.filter(pk=punch.pk).exists()
    assert "Dec. 1, 2026, 9:29 p.m." in listing
