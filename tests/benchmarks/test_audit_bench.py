"""The audit benchmark's helpers at a tiny size: its seed SQL makes events the viewer lists,
newest first, 5 % of them another organisation's, over the months it creates."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEvent
from benchmarks import audit_bench
from tests.support import data


def test_months_back_lists_first_days_oldest_first():
    assert audit_bench.months_back(dt.date(2026, 1, 15), 2) == [
        dt.date(2025, 11, 1),
        dt.date(2025, 12, 1),
        dt.date(2026, 1, 1),
    ]


@pytest.mark.django_db
def test_the_seed_sql_makes_events_the_viewer_lists(people, other_organisation, api):
    organisation = people["admin"].organisation
    now = timezone.now() - dt.timedelta(hours=1)
    with connection.cursor() as cursor:
        cursor.execute(
            audit_bench.seed_sql(audit_bench.ACTIONS),
            {
                "now": now,
                "step": dt.timedelta(seconds=1),
                "org": organisation.pk,
                "other": other_organisation.pk,
                "first_actor": 1000,
                "first": 1,
                "last": 100,
            },
        )
    seeded = AuditEvent.objects.filter(
        occurred_at__lte=now, occurred_at__gt=now - dt.timedelta(seconds=101)
    )
    assert seeded.count() == 100
    assert seeded.filter(organisation=other_organisation).count() == 5
    assert seeded.filter(data__has_key="errorCode").count() == 1
    page = data(
        api(people["admin"]).get(
            "/api/attendance-admin/audit-logs?pageSize=200&to=" + now.isoformat()
        )
    )
    assert len(page["items"]) == 95
    newest = now - dt.timedelta(seconds=1)  # event g happens g steps before "now"
    assert page["items"][0]["occurredAt"] == newest.astimezone(organisation.tz).isoformat()
    assert page["items"][0]["actor"]["label"] == "user7 (Person 7)"
