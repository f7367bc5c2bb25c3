"""The import pages: who may open them, what they show, and the rollback form."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from attendance.models import AttendanceRecord
from imports import services
from imports.models import ImportBatch, ImportJob

pytestmark = pytest.mark.django_db

WIZARD = "/imports/"
BATCHES = "/imports/batches/"
LOGIN = "/accounts/login/"
HEADER = "employee_no,name,work_date,first_in,last_out,status\n"


def report_url(batch_id: int) -> str:
    return f"/imports/batches/{batch_id}/"


def rollback_url(batch_id: int) -> str:
    return f"/imports/batches/{batch_id}/rollback/"


def commit(actor, organisation, rows: str) -> int:
    """A committed batch, made by the service as ``manage.py import_attendance`` does."""
    answer = services.import_commit(
        actor=actor.user,
        organisation=organisation,
        options=services.ImportOptions(csv_text=HEADER + rows),
        commit_token=None,
        trusted_operator=True,
    )
    return answer["batchId"]


@pytest.fixture
def browser():
    """browser(employee) → a test Client logged in as that employee's user."""

    def make(employee=None, **kwargs) -> Client:
        client = Client(**kwargs)
        if employee is not None:
            client.force_login(employee.user)
        return client

    return make


@pytest.fixture
def batch(people, organisation) -> ImportBatch:
    """One batch inserting one day for the plain employee."""
    number = people["employee"].employee_no
    batch_id = commit(people["importer"], organisation, f"{number},Name,2026-05-04,09:00,18:00,\n")
    return ImportBatch.objects.get(pk=batch_id)


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def page_urls(batch: ImportBatch) -> list[str]:
    return [WIZARD, BATCHES, report_url(batch.pk)]


# --- access ------------------------------------------------------------------------------


def test_anonymous_is_sent_to_login(browser, batch):
    for url in page_urls(batch):
        response = browser().get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"{LOGIN}?next={url}"
    response = browser().post(rollback_url(batch.pk))
    assert response.status_code == 302
    assert response["Location"].startswith(f"{LOGIN}?next=")


@pytest.mark.parametrize("person", ["employee", "approver", "stranger"])
def test_people_without_the_importer_role_are_forbidden(browser, people, batch, person):
    client = browser(people[person])
    for url in page_urls(batch):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"Importers only" in response.content
        assert response.templates[0].name == "attendance/forbidden.html"


@pytest.mark.parametrize("person", ["importer", "admin"])
def test_importers_and_admins_open_every_page(browser, people, batch, person):
    client = browser(people[person])
    for url in page_urls(batch):
        response = client.get(url)
        assert response.status_code == 200, url
        assert b'<a href="/imports/" aria-current="page">Imports</a>' in response.content


def test_nav_link_only_for_importers(browser, people):
    assert b'href="/imports/"' in browser(people["importer"]).get("/attendance/").content
    assert b'href="/imports/"' in browser(people["admin"]).get("/attendance/").content
    assert b'href="/imports/"' not in browser(people["employee"]).get("/attendance/").content
    assert b'href="/imports/"' not in browser(people["approver"]).get("/attendance/").content


def test_the_ip_allowlist_applies(browser, people, batch):
    organisation = people["importer"].organisation
    organisation.ip_allowlist = ["10.0.0.0/8"]
    organisation.save(update_fields=["ip_allowlist"])
    client = browser(people["importer"])
    for url in page_urls(batch):
        response = client.get(url)
        assert response.status_code == 403
        assert b"Access from this address is not allowed" in response.content
    assert client.post(rollback_url(batch.pk)).status_code == 403
    batch.refresh_from_db()
    assert batch.status == ImportBatch.Status.COMMITTED
    assert client.get(WIZARD, REMOTE_ADDR="10.1.2.3").status_code == 200


def test_pages_are_read_only(browser, people, batch):
    client = browser(people["importer"])
    for url in page_urls(batch):
        assert client.post(url).status_code == 405
    assert client.get(rollback_url(batch.pk)).status_code == 405


# --- the wizard --------------------------------------------------------------------------


def test_wizard_carries_the_api_endpoints_and_defaults(browser, people, settings):
    response = browser(people["importer"]).get(WIZARD)
    html = response.content.decode()
    for attribute, url in [
        ("data-formats-url", "/api/attendance/import/formats"),
        ("data-upload-url", "/api/attendance/import/upload"),
        ("data-preview-url", "/api/attendance/import/preview"),
        ("data-errors-url", "/api/attendance/import/preview/errors.csv"),
        ("data-prepare-url", "/api/attendance/import/prepare"),
        ("data-commit-url", "/api/attendance/import/commit-async"),
        ("data-jobs-url", "/api/attendance/import/jobs/"),
        ("data-batches-url", "/imports/batches/"),
    ]:
        assert f'{attribute}="{url}"' in html
    assert f'data-max-bytes="{settings.IMPORT_UPLOAD_MAX_BYTES}"' in html
    assert 'value="Asia/Shanghai"' in html  # the organisation's zone is the default
    assert '<label for="import-file">File to import</label>' in html
    assert 'aria-live="polite"' in html
    assert "/static/js/imports.js" in html
    assert 'name="mode" value="override"' in html and 'name="mode" value="merge"' in html
    assert "csrftoken" in response.cookies  # imports.js reads it for the X-CSRFToken header


# --- batch history -----------------------------------------------------------------------


def test_history_lists_the_organisations_batches(
    browser, people, organisation, other_organisation, make_person, batch
):
    outsider = make_person(other_organisation, "employee", "importer")
    other = commit(outsider, other_organisation, f"{outsider.employee_no},X,2026-05-04,09:00,,\n")
    response = browser(people["importer"]).get(BATCHES)
    rows = response.context["rows"]
    assert [row["batch"].pk for row in rows] == [batch.pk]
    html = response.content.decode()
    assert f'data-batch="{batch.pk}"' in html
    assert f'data-batch="{other}"' not in html
    assert f'href="{report_url(batch.pk)}"' in html
    assert "importer_user" in html
    assert rows[0]["stats"]["insert"] == 1


def test_history_is_paginated(browser, people, organisation, monkeypatch):
    monkeypatch.setattr("imports.views.BATCHES_PER_PAGE", 2)
    number = people["employee"].employee_no
    ids = [
        commit(people["importer"], organisation, f"{number},N,2026-05-0{day},09:00,18:00,\n")
        for day in (4, 5, 6)
    ]
    client = browser(people["importer"])
    first = client.get(BATCHES)
    assert [row["batch"].pk for row in first.context["rows"]] == ids[:0:-1]
    assert b"Page 1 of 2" in first.content
    second = client.get(BATCHES, {"page": 2})
    assert [row["batch"].pk for row in second.context["rows"]] == ids[:1]
    assert client.get(BATCHES, {"page": "nonsense"}).status_code == 200


# --- batch report ------------------------------------------------------------------------


def test_report_shows_the_summary_items_and_downloads(browser, people, batch):
    response = browser(people["admin"]).get(report_url(batch.pk))
    html = response.content.decode()
    assert response.context["stats"]["insert"] == 1
    assert batch.sha256 and batch.sha256 in html
    assert 'data-status="committed"' in html
    for kind in ("all", "imported", "skipped", "anomalies"):
        assert f"/api/attendance/import/batches/{batch.pk}/export.csv?type={kind}" in html
    assert f'action="{rollback_url(batch.pk)}"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    [row] = response.context["items"]
    assert row["item"].action == "inserted"
    assert row["name"] == people["employee"].name
    assert 'data-row="2" data-action="inserted"' in html
    assert "09:00" in html and "18:00" in html  # in the organisation's zone


def test_report_tabs_filter_by_action(browser, people, organisation):
    number = people["employee"].employee_no
    batch_id = commit(
        people["importer"],
        organisation,
        f"{number},N,2026-05-04,09:00,18:00,\n"
        "NOBODY,N,2026-05-04,09:00,18:00,\n"
        f"{number},N,2026-13-45,09:00,18:00,\n",
    )
    client = browser(people["importer"])
    everything = client.get(report_url(batch_id))
    assert [row["item"].action for row in everything.context["items"]] == [
        "inserted",
        "skipped",
        "invalid",
    ]
    tabs = {tab["action"] or "all": tab["count"] for tab in everything.context["tabs"]}
    assert (tabs["all"], tabs["inserted"], tabs["skipped"], tabs["invalid"]) == (3, 1, 1, 1)

    skipped = client.get(report_url(batch_id), {"action": "skipped"})
    [row] = skipped.context["items"]
    assert row["item"].employee_ref == "NOBODY"
    assert b"UNKNOWN_EMPLOYEE" in skipped.content
    assert b'data-action="skipped" aria-current="page"' in skipped.content

    invalid = client.get(report_url(batch_id), {"action": "invalid"})
    [row] = invalid.context["items"]
    assert row["item"].code and row["item"].code.encode() in invalid.content

    assert client.get(report_url(batch_id), {"action": "updated"}).context["items"] == []
    bogus = client.get(report_url(batch_id), {"action": "bogus"})
    assert bogus.status_code == 200
    assert len(bogus.context["items"]) == 3


def test_report_shows_what_an_update_replaced(browser, people, organisation, batch):
    number = people["employee"].employee_no
    second = commit(people["importer"], organisation, f"{number},N,2026-05-04,08:30,19:00,\n")
    response = browser(people["importer"]).get(report_url(second), {"action": "updated"})
    [row] = response.context["items"]
    assert row["employee_no"] == number
    assert (row["first_in"], row["last_out"]) == ("08:30", "19:00")
    assert (row["prior_in"], row["prior_out"]) == ("09:00", "18:00")
    assert "09:00 – 18:00" in response.content.decode()


def test_another_organisations_batch_is_not_found(browser, people, other_organisation, make_person):
    outsider = make_person(other_organisation, "employee", "importer")
    other = commit(outsider, other_organisation, f"{outsider.employee_no},X,2026-05-04,09:00,,\n")
    client = browser(people["importer"])
    assert client.get(report_url(other)).status_code == 404
    assert client.post(rollback_url(other)).status_code == 404
    assert ImportBatch.objects.get(pk=other).status == ImportBatch.Status.COMMITTED
    assert client.get(report_url(999_999_999)).status_code == 404


# --- rollback ----------------------------------------------------------------------------


def test_importer_rolls_a_batch_back(browser, people, batch):
    employee = people["employee"]
    assert AttendanceRecord.objects.filter(employee=employee, batch=batch).exists()
    client = browser(people["importer"])

    response = client.post(rollback_url(batch.pk))
    assert response.status_code == 302
    assert response["Location"] == report_url(batch.pk)
    batch.refresh_from_db()
    assert batch.status == ImportBatch.Status.ROLLED_BACK
    assert batch.rolled_back_by == people["importer"].user
    assert not AttendanceRecord.objects.filter(employee=employee).exists()

    page = client.get(report_url(batch.pk))
    assert messages_of(page) == [f"Batch {batch.pk} rolled back: 1 day(s) deleted, 0 restored."]
    html = page.content.decode()
    assert 'data-status="rolled_back"' in html
    assert 'id="rollback-result"' in html
    assert f'action="{rollback_url(batch.pk)}"' not in html  # no second button


def test_employee_cannot_roll_back(browser, people, batch):
    response = browser(people["employee"]).post(rollback_url(batch.pk))
    assert response.status_code == 403
    batch.refresh_from_db()
    assert batch.status == ImportBatch.Status.COMMITTED


def test_rollback_needs_the_csrf_token(browser, people, batch):
    client = browser(people["importer"], enforce_csrf_checks=True)
    assert client.post(rollback_url(batch.pk)).status_code == 403
    batch.refresh_from_db()
    assert batch.status == ImportBatch.Status.COMMITTED


def test_second_rollback_is_a_message_not_a_500(browser, people, batch):
    client = browser(people["importer"])
    client.post(rollback_url(batch.pk))
    client.get(report_url(batch.pk))  # consume the success message
    response = client.post(rollback_url(batch.pk), follow=True)
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("ALREADY_ROLLED_BACK: ")
    assert "already rolled back" in message
    assert b"message-error" in response.content


def test_rollback_conflict_is_a_message(browser, people, batch):
    AttendanceRecord.objects.filter(batch=batch).update(
        note="Edited by hand", updated_at=timezone.now()
    )
    response = browser(people["admin"]).post(rollback_url(batch.pk), follow=True)
    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("ROLLBACK_CONFLICT: ")
    assert f"{people['employee'].employee_no} on 2026-05-04" in message
    batch.refresh_from_db()
    assert batch.status == ImportBatch.Status.COMMITTED
    assert f'action="{rollback_url(batch.pk)}"'.encode() in response.content


def test_large_rollback_is_queued_as_a_job(browser, people, batch, settings):
    settings.IMPORT_ASYNC_ROLLBACK_ROWS = 0
    response = browser(people["importer"]).post(rollback_url(batch.pk), follow=True)
    job = ImportJob.objects.get(kind=ImportJob.Kind.ROLLBACK)
    [message] = messages_of(response)
    assert message.startswith(f"Rollback queued as job {job.pk}")
    html = response.content.decode()
    assert f"Rolling back as job <code>{job.pk}</code>" in html
    # The page follows the job's progress through the API instead of blocking.
    assert f'data-job-url="/api/attendance/import/jobs/{job.pk}"' in html
    assert 'id="rollback-progress"' in html
    assert f'action="{rollback_url(batch.pk)}"' not in html  # no second request meanwhile
    batch.refresh_from_db()
    assert batch.status == ImportBatch.Status.COMMITTED
    # A second click while it is queued shows the same job at once, and queues nothing.
    again = browser(people["importer"]).post(rollback_url(batch.pk), follow=True)
    assert f"Rolling back as job <code>{job.pk}</code>" in again.content.decode()
    assert ImportJob.objects.filter(kind=ImportJob.Kind.ROLLBACK).count() == 1


def test_a_batch_a_later_batch_overwrote_names_it_and_cannot_be_rolled_back(
    browser, people, batch, organisation
):
    number = people["employee"].employee_no
    later = commit(people["importer"], organisation, f"{number},Name,2026-05-04,10:00,18:00,\n")
    assert ImportBatch.objects.get(pk=later).stats["update"] == 1
    html = browser(people["importer"]).get(report_url(batch.pk)).content.decode()
    assert f'data-blocker="{later}"' in html
    assert "cannot be rolled back yet" in html
    assert f'action="{rollback_url(batch.pk)}"' not in html
    assert "disabled" in html
