"""Events in the admin centre: who gets in, organisation scoping, writes through the
services (and so audited), the completion action, the participant's history, and the
participants' Import / Export round trip."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from audit.models import AuditEvent
from events import services
from events.choices import Attendance, EventStatus, Registration
from events.models import Event, EventParticipant

pytestmark = pytest.mark.django_db

EVENTS = "/admin/events/event/"
PARTICIPANTS = "/admin/events/eventparticipant/"
CHANGELISTS = [EVENTS, PARTICIPANTS]


def client_for(employee) -> Client:
    client = Client()
    client.force_login(employee.user)
    return client


def make_event(actor, title="Induction", starts_in=dt.timedelta(minutes=10)) -> Event:
    starts_at = timezone.now() + starts_in
    return services.event_create(
        actor=actor.user,
        organisation=actor.organisation,
        title=title,
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(hours=1),
    )


@pytest.fixture
def world(people, other_organisation, make_person):
    event = make_event(people["admin"])
    services.participants_add(
        actor=None, event=event, employee_nos=[people["employee"].employee_no]
    )
    outsider = make_person(other_organisation, "employee", "admin", username="outsider")
    foreign = make_event(outsider, title="Their event")
    services.participants_add(actor=None, event=foreign, employee_nos=[outsider.employee_no])
    return {
        **people,
        "event": event,
        "row": EventParticipant.objects.get(event=event),
        "foreign": foreign,
        "foreign_row": EventParticipant.objects.get(event=foreign),
    }


# --- who gets in ------------------------------------------------------------------------


@pytest.mark.parametrize("url", CHANGELISTS)
def test_anonymous_is_sent_to_the_login(url):
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("url", CHANGELISTS)
@pytest.mark.parametrize("who", ["employee", "approver", "importer"])
def test_people_without_the_admin_role_get_the_apps_403_page(world, url, who):
    response = client_for(world[who]).get(url)
    assert response.status_code == 403


def test_admin_opens_the_pages_of_their_organisation_only(world):
    client = client_for(world["admin"])
    events = client.get(EVENTS)
    assert events.status_code == 200
    assert list(events.context["cl"].result_list) == [world["event"]]
    assert events.context["cl"].result_list[0].registered_total == 1
    participants = client.get(PARTICIPANTS)
    assert list(participants.context["cl"].result_list) == [world["row"]]
    for url in (
        f"{EVENTS}add/",
        f"{EVENTS}{world['event'].pk}/change/",
        f"{PARTICIPANTS}add/",
        f"{PARTICIPANTS}{world['row'].pk}/change/",
        f"{EVENTS}?status=scheduled",
        f"{PARTICIPANTS}?attendance=unknown&registration=registered",
        f"{PARTICIPANTS}?q={world['employee'].employee_no}",
    ):
        assert client.get(url).status_code == 200, url
    # Another organisation's rows: not found (the admin sends the user back with a note).
    for url in (
        f"{EVENTS}{world['foreign'].pk}/change/",
        f"{PARTICIPANTS}{world['foreign_row'].pk}/change/",
    ):
        assert client.get(url).status_code == 302, url
    assert client.get(f"{EVENTS}{world['event'].pk}/delete/").status_code == 403


# --- events -----------------------------------------------------------------------------


def test_an_event_created_and_changed_in_the_admin_is_audited(world):
    client = client_for(world["admin"])
    form = {
        "title": "Ladder safety",
        "location": "Yard",
        "starts_at_0": "2030-03-01",
        "starts_at_1": "09:00",
        "ends_at_0": "2030-03-01",
        "ends_at_1": "10:00",
        "check_in_opens_at_0": "",
        "check_in_opens_at_1": "",
        "check_in_closes_at_0": "",
        "check_in_closes_at_1": "",
        "late_grace_minutes": "5",
    }
    response = client.post(f"{EVENTS}add/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    event = Event.objects.get(title="Ladder safety")
    assert event.organisation == world["admin"].organisation
    assert AuditEvent.objects.filter(action="events.event.created", target_id=str(event.pk))
    response = client.post(f"{EVENTS}{event.pk}/change/", {**form, "title": "Ladder safety 2"})
    assert response.status_code == 302
    event.refresh_from_db()
    assert event.title == "Ladder safety 2"
    changed = AuditEvent.objects.get(action="events.event.updated", target_id=str(event.pk))
    assert changed.data["changes"]["title"] == ["Ladder safety", "Ladder safety 2"]
    bad = client.post(f"{EVENTS}add/", {**form, "title": "Backwards", "ends_at_1": "08:00"})
    assert bad.status_code == 200
    assert "ends_at" in bad.context["adminform"].form.errors
    assert not Event.objects.filter(title="Backwards").exists()


def test_the_completion_action(world):
    done = make_event(world["admin"], title="Done already")
    services.event_complete(actor=world["admin"].user, event=done)
    response = client_for(world["admin"]).post(
        EVENTS,
        {
            "action": "complete_selected",
            "_selected_action": [world["event"].pk, done.pk, world["foreign"].pk],
        },
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(message) for message in response.context["messages"]]
    assert any("Completed 1 event(s)" in text for text in messages), messages
    assert any("1 event(s) not completed" in text for text in messages), messages
    world["event"].refresh_from_db()
    world["foreign"].refresh_from_db()
    assert world["event"].status == EventStatus.COMPLETED
    assert world["event"].completed_by == world["admin"].user
    assert world["foreign"].status == EventStatus.SCHEDULED  # outside the admin's scope
    assert AuditEvent.objects.filter(
        action="events.event.completed", target_id=str(world["event"].pk)
    ).exists()
    # A completed event is read-only in its form.
    page = client_for(world["admin"]).get(f"{EVENTS}{world['event'].pk}/change/")
    assert "title" not in page.context["adminform"].form.fields


# --- participants -----------------------------------------------------------------------


def test_marking_in_the_admin_goes_through_the_service_and_shows_in_the_history(world):
    client = client_for(world["admin"])
    services.participant_check_in(actor=world["employee"].user, participant=world["row"])
    url = f"{PARTICIPANTS}{world['row'].pk}/change/"
    response = client.post(url, {"attendance": "excused", "notes": "Doctor's note"})
    assert response.status_code == 302, response.content.decode()[:3000]
    world["row"].refresh_from_db()
    assert (world["row"].attendance, world["row"].notes) == (Attendance.EXCUSED, "Doctor's note")
    assert world["row"].marked_by_organiser
    page = client.get(url).content.decode()
    assert "participant-history" in page
    assert "events.attendance.checked_in" in page
    assert "events.attendance.marked" in page
    assert "Doctor&#x27;s note" in page
    assert "admin_user" in page
    assert "history" in client.get(url).context["adminform"].readonly_fields


def test_adding_a_participant_in_the_admin(world):
    response = client_for(world["admin"]).post(
        f"{PARTICIPANTS}add/", {"event": world["event"].pk, "employee": world["stranger"].pk}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    added = EventParticipant.objects.get(event=world["event"], employee=world["stranger"])
    assert added.registration == Registration.REGISTERED
    assert AuditEvent.objects.filter(
        action="events.participants.added", target_id=str(world["event"].pk)
    ).exists()


# --- import / export --------------------------------------------------------------------


def export_rows(client) -> list[dict]:
    page = client.get(f"{PARTICIPANTS}export/")
    assert page.status_code == 200
    form = page.context["form"]
    body = {"resource": "0", "format": "0"}
    body.update({name: "on" for name in form.fields if name.startswith("participantresource_")})
    response = client.post(f"{PARTICIPANTS}export/", body)
    assert response.status_code == 200, response.content[:2000]
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def preview(client, rows: list[dict]):
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return client.post(
        f"{PARTICIPANTS}import/",
        {
            "resource": "0",
            "format": "0",
            "import_file": SimpleUploadedFile("participants.csv", out.getvalue().encode()),
        },
    )


def confirm(client, page):
    form = page.context["confirm_form"]
    assert form is not None, page.content.decode()[:3000]
    return client.post(
        f"{PARTICIPANTS}process_import/", {name: form.initial[name] for name in form.fields}
    )


def totals(page) -> dict[str, int]:
    return {kind: count for kind, count in page.context["result"].totals.items() if count}


def test_import_export_round_trip(world):
    client = client_for(world["admin"])
    services.participant_mark(
        actor=world["admin"].user, participant=world["row"], status="late", notes="=cmd()"
    )
    exported = export_rows(client)
    assert exported == [
        {
            "event": str(world["event"].pk),
            "employee_no": world["employee"].employee_no,
            "registration": "registered",
            "event_title": "Induction",
            "name": world["employee"].name,
            "attendance": "late",
            "marked_at": timezone.localtime(
                world["row"].__class__.objects.get(pk=world["row"].pk).marked_at,
                world["admin"].organisation.tz,
            ).isoformat(),
            "notes": "'=cmd()",  # a formula is neutralised
        }
    ]
    # The export imports back unchanged.
    page = preview(client, exported)
    assert totals(page) == {"skip": 1}
    # A new participant and a registration change; the export's other columns are ignored.
    rows = [
        {**exported[0], "registration": "waitlisted", "attendance": "absent"},
        {
            "event": str(world["event"].pk),
            "employee_no": world["stranger"].employee_no,
            "registration": "",
        },
    ]
    rows[1] = {key: rows[1].get(key, "") for key in rows[0]}
    page = preview(client, rows)
    assert totals(page) == {"update": 1, "new": 1}
    assert EventParticipant.objects.filter(event=world["event"]).count() == 1  # a dry run
    response = confirm(client, page)
    assert response.status_code == 302
    world["row"].refresh_from_db()
    assert world["row"].registration == Registration.WAITLISTED
    assert world["row"].attendance == Attendance.LATE  # not an import column
    added = EventParticipant.objects.get(event=world["event"], employee=world["stranger"])
    assert added.registration == Registration.REGISTERED
    summary = AuditEvent.objects.get(action="events.participants.imported")
    assert (summary.data["new"], summary.data["update"]) == (1, 1)
    assert AuditEvent.objects.filter(
        action="events.participant.registration_changed", target_id=str(world["row"].pk)
    ).exists()
    again = export_rows(client)
    assert {(row["employee_no"], row["registration"]) for row in again} == {
        (world["employee"].employee_no, "waitlisted"),
        (world["stranger"].employee_no, "registered"),
    }
    assert totals(preview(client, again)) == {"skip": 2}


def test_import_refuses_other_organisations_and_unknown_people(world):
    client = client_for(world["admin"])
    rows = [
        {"event": str(world["foreign"].pk), "employee_no": world["stranger"].employee_no},
        {"event": str(world["event"].pk), "employee_no": "NOBODY"},
        {"event": str(world["event"].pk), "employee_no": world["stranger"].employee_no,
         "registration": "maybe"},
    ]  # fmt: skip
    rows = [{"registration": "", **row} for row in rows]
    page = preview(client, rows)
    result = page.context["result"]
    assert page.context.get("confirm_form") is None
    assert result.has_validation_errors()
    errors = {row.number: sorted(row.field_specific_errors) for row in result.invalid_rows}
    assert errors == {1: ["event"], 2: ["employee"], 3: ["registration"]}
    assert EventParticipant.objects.filter(employee=world["stranger"]).count() == 0
