"""The events services on the real database: every transition, every refusal code, and
idempotent check-in (a resend and two at once)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from common.exceptions import (
    CheckInClosed,
    NotRegistered,
    RequestStateConflict,
    ValidationFailed,
)
from events import selectors, services
from events.models import Event, EventCheckIn, EventParticipant
from tests.events.conftest import run_in_threads

pytestmark = pytest.mark.django_db


def audits(action, **filters):
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("id"))


# --- events ---------------------------------------------------------------------------


def test_create_validates_and_audits(organisation, people):
    admin = people["admin"].user
    start = timezone.now() + dt.timedelta(days=1)
    event = services.event_create(
        actor=admin,
        organisation=organisation,
        title="  Fire drill ",
        starts_at=start,
        ends_at=start + dt.timedelta(hours=1),
        location="Hall",
    )
    assert event.title == "Fire drill" and event.status == "scheduled"
    [created] = audits("events.event.created", target_id=str(event.pk))
    assert created.data["title"] == "Fire drill" and created.actor_id == admin.pk

    with pytest.raises(ValidationFailed) as bad_order:
        services.event_create(
            actor=admin, organisation=organisation, title="x", starts_at=start, ends_at=start
        )
    assert "ends_at" in bad_order.value.details["fields"]
    with pytest.raises(ValidationFailed) as bad_window:
        services.event_create(
            actor=admin,
            organisation=organisation,
            title="x",
            starts_at=start,
            ends_at=start + dt.timedelta(hours=1),
            check_in_opens_at=start,
            check_in_closes_at=start - dt.timedelta(minutes=1),
        )
    assert "check_in_closes_at" in bad_window.value.details["fields"]
    with pytest.raises(ValidationFailed) as naive:
        services.event_create(
            actor=admin,
            organisation=organisation,
            title="",
            starts_at=dt.datetime(2030, 1, 1, 9),
            ends_at=dt.datetime(2030, 1, 1, 10),
            late_grace_minutes=999,
        )
    assert {"title", "starts_at", "ends_at"} <= set(naive.value.details["fields"])
    assert Event.objects.count() == 1


def test_update_records_the_changes_and_refuses_finished_events(make_event, people):
    admin = people["admin"].user
    event = make_event()
    updated = services.event_update(actor=admin, event=event, title="Renamed", location="Room 2")
    assert (updated.title, updated.location) == ("Renamed", "Room 2")
    [change] = audits("events.event.updated")
    assert change.data["changes"]["title"][1] == "Renamed"
    services.event_update(actor=admin, event=event, title="Renamed")  # nothing changes
    assert len(audits("events.event.updated")) == 1
    with pytest.raises(ValidationFailed):
        services.event_update(actor=admin, event=event, status="completed")
    with pytest.raises(ValidationFailed):
        services.event_update(actor=admin, event=event, ends_at=event.starts_at)

    services.event_cancel(actor=admin, event=event)
    with pytest.raises(RequestStateConflict):
        services.event_update(actor=admin, event=event, title="Again")


def test_cancel_and_complete_transitions(make_event, people):
    admin = people["admin"].user
    cancelled = services.event_cancel(actor=admin, event=make_event())
    assert cancelled.status == "cancelled"
    with pytest.raises(RequestStateConflict):
        services.event_cancel(actor=admin, event=cancelled)
    with pytest.raises(RequestStateConflict):
        services.event_complete(actor=admin, event=cancelled)

    event = make_event()
    completed = services.event_complete(actor=admin, event=event)
    assert completed.status == "completed" and completed.completed_by == admin
    assert completed.completed_at is not None
    with pytest.raises(RequestStateConflict):
        services.event_complete(actor=admin, event=completed)
    with pytest.raises(RequestStateConflict):
        services.event_cancel(actor=admin, event=completed)
    [audit] = audits("events.event.completed")
    assert audit.data["from"] == "scheduled" and audit.data["to"] == "completed"
    assert len(audits("events.event.cancelled")) == 1


def test_complete_due_completes_only_ended_events(make_event):
    now = timezone.now()
    ended = make_event(starts_at=now - dt.timedelta(hours=2), ends_at=now - dt.timedelta(hours=1))
    running = make_event(starts_at=now - dt.timedelta(hours=1), ends_at=now + dt.timedelta(hours=1))
    cancelled = make_event(
        starts_at=now - dt.timedelta(hours=2), ends_at=now - dt.timedelta(hours=1)
    )
    cancelled.status = "cancelled"
    cancelled.save(update_fields=["status"])

    assert services.events_complete_due(now=now) == [ended.pk]
    ended.refresh_from_db()
    assert ended.status == "completed" and ended.completed_by is None
    running.refresh_from_db()
    assert running.status == "scheduled"
    [audit] = audits("events.event.completed")
    assert audit.actor_id is None and audit.actor_label
    assert services.events_complete_due(now=now) == []


# --- participants -----------------------------------------------------------------------


def test_participants_add_reports_added_unchanged_missing(
    make_event, people, make_person, other_organisation
):
    event = make_event()
    outsider = make_person(other_organisation, "employee")
    inactive = people["importer"]
    inactive.is_active = False
    inactive.save(update_fields=["is_active"])
    nos = [people["employee"].employee_no, people["stranger"].employee_no]
    first = services.participants_add(actor=people["admin"].user, event=event, employee_nos=nos)
    assert first == {"added": nos, "unchanged": [], "missing": []}
    second = services.participants_add(
        actor=people["admin"].user,
        event=event,
        employee_nos=[*nos, outsider.employee_no, inactive.employee_no, "NOPE", nos[0]],
    )
    assert second["added"] == [] and second["unchanged"] == nos
    assert second["missing"] == [outsider.employee_no, inactive.employee_no, "NOPE"]
    assert set(event.participants.values_list("attendance", "registration")) == {
        ("unknown", "registered")
    }
    assert [a.data["added"] for a in audits("events.participants.added")] == [nos, []]
    services.event_cancel(actor=people["admin"].user, event=event)
    with pytest.raises(RequestStateConflict):
        services.participants_add(actor=people["admin"].user, event=event, employee_nos=nos)


# --- check-in -----------------------------------------------------------------------------


@pytest.fixture
def running_event(make_event):
    """Started a minute ago (grace 5 min), check-in open until its end."""
    now = timezone.now()
    return make_event(starts_at=now - dt.timedelta(minutes=1), ends_at=now + dt.timedelta(hours=1))


def test_check_in_on_time_is_present_and_audited(running_event, people, register):
    participant = register(running_event, people["employee"])
    user = people["employee"].user
    checked = services.participant_check_in(actor=user, participant=participant, nonce="n-1")
    assert checked.attendance == "present" and checked.replayed is False
    assert checked.marked_by == user and not checked.marked_by_organiser
    [audit] = audits("events.attendance.checked_in", target_id=str(participant.pk))
    assert (audit.data["from"], audit.data["to"], audit.data["nonce"]) == (
        "unknown",
        "present",
        "n-1",
    )
    assert audit.target_type == "events.eventparticipant"


def test_check_in_after_start_plus_grace_is_late(make_event, people, register):
    now = timezone.now()
    event = make_event(
        starts_at=now - dt.timedelta(minutes=10), ends_at=now + dt.timedelta(hours=1)
    )
    participant = register(event, people["employee"])
    grace_edge = event.starts_at + dt.timedelta(minutes=event.late_grace_minutes)
    on_edge = services.participant_check_in(actor=None, participant=participant, now=grace_edge)
    assert on_edge.attendance == "present"
    other = register(event, people["stranger"])
    late = services.participant_check_in(
        actor=None, participant=other, now=grace_edge + dt.timedelta(seconds=1)
    )
    assert late.attendance == "late"


def test_check_in_outside_the_window_is_closed(make_event, people, register):
    now = timezone.now()
    event = make_event(starts_at=now + dt.timedelta(hours=2), ends_at=now + dt.timedelta(hours=3))
    participant = register(event, people["employee"])
    opens, closes = selectors.check_in_window(event)
    assert opens == event.starts_at - dt.timedelta(minutes=30) and closes == event.ends_at
    for moment in (opens - dt.timedelta(seconds=1), closes):
        with pytest.raises(CheckInClosed) as closed:
            services.participant_check_in(actor=None, participant=participant, now=moment)
        assert closed.value.code == "CHECKIN_CLOSED" and closed.value.status_code == 409
    assert services.participant_check_in(actor=None, participant=participant, now=opens).attendance
    assert not selectors.check_in_open(event, closes)

    explicit = make_event(
        starts_at=now + dt.timedelta(hours=2),
        ends_at=now + dt.timedelta(hours=3),
        check_in_opens_at=now - dt.timedelta(minutes=1),
        check_in_closes_at=now + dt.timedelta(minutes=1),
    )
    assert selectors.check_in_open(explicit, now)
    assert not selectors.check_in_open(explicit, now + dt.timedelta(minutes=2))
    participant.refresh_from_db()
    assert audits("events.attendance.checked_in")[0].target_id == str(participant.pk)


@pytest.mark.parametrize("registration", ["waitlisted", "cancelled"])
def test_check_in_of_a_waitlisted_or_cancelled_registration_is_refused(
    running_event, people, register, registration
):
    participant = register(running_event, people["employee"], registration=registration)
    with pytest.raises(NotRegistered) as refused:
        services.participant_check_in(actor=None, participant=participant, nonce="x")
    assert refused.value.code == "NOT_REGISTERED" and refused.value.status_code == 409
    participant.refresh_from_db()
    assert participant.attendance == "unknown"
    assert not EventCheckIn.objects.exists()
    assert not audits("events.attendance.checked_in")


def test_check_in_of_a_cancelled_or_completed_event_is_closed(running_event, people, register):
    participant = register(running_event, people["employee"])
    services.event_complete(actor=people["admin"].user, event=running_event)
    with pytest.raises(CheckInClosed):
        services.participant_check_in(actor=None, participant=participant)


def test_check_in_of_a_cancelled_event_is_closed(make_event, people, register):
    now = timezone.now()
    event = make_event(starts_at=now - dt.timedelta(minutes=1), ends_at=now + dt.timedelta(hours=1))
    participant = register(event, people["employee"])
    services.event_cancel(actor=people["admin"].user, event=event)
    with pytest.raises(CheckInClosed):
        services.participant_check_in(actor=None, participant=participant, nonce="n")
    assert not EventCheckIn.objects.exists()


def test_same_nonce_twice_answers_the_first_result_and_writes_once(running_event, people, register):
    participant = register(running_event, people["employee"])
    first = services.participant_check_in(actor=None, participant=participant, nonce="abc")
    later = first.event.starts_at + dt.timedelta(minutes=30)  # would be late now
    again = services.participant_check_in(
        actor=None, participant=participant, nonce="abc", now=later
    )
    assert again.replayed is True and again.attendance == "present"
    assert again.check_in.pk == first.check_in.pk
    assert EventCheckIn.objects.filter(participant=participant).count() == 1
    assert len(audits("events.attendance.checked_in")) == 1
    # A new nonce after a check-in records the request but changes nothing.
    other = services.participant_check_in(actor=None, participant=participant, nonce="def")
    assert other.replayed is False and other.attendance == "present"
    assert len(audits("events.attendance.checked_in")) == 1
    with pytest.raises(ValidationFailed):
        services.participant_check_in(actor=None, participant=participant, nonce="x" * 65)


def test_check_in_keeps_an_organisers_mark(running_event, people, register):
    participant = register(running_event, people["employee"])
    services.participant_mark(
        actor=people["admin"].user, participant=participant, status="excused", notes="sick"
    )
    checked = services.participant_check_in(actor=None, participant=participant)
    assert checked.attendance == "excused"
    assert not audits("events.attendance.checked_in")


@pytest.mark.django_db(transaction=True)
def test_two_check_ins_with_one_nonce_at_once_make_one(running_event, people, register):
    participant = register(running_event, people["employee"])
    barrier = threading.Barrier(2)

    def check_in():
        barrier.wait(timeout=10)
        result = services.participant_check_in(actor=None, participant=participant, nonce="same")
        return result.check_in.pk, result.replayed

    results = run_in_threads(check_in, check_in)
    assert {check_in_id for check_in_id, _ in results} == {
        EventCheckIn.objects.get(participant=participant).pk
    }
    assert sorted(replayed for _, replayed in results) == [False, True]
    assert len(audits("events.attendance.checked_in")) == 1
    participant.refresh_from_db()
    assert participant.attendance == "present"


# --- marking ------------------------------------------------------------------------------


def test_mark_sets_the_organisers_status_with_notes(running_event, people, register):
    participant = register(running_event, people["employee"])
    admin = people["admin"].user
    marked = services.participant_mark(
        actor=admin, participant=participant, status="excused", notes=" doctor "
    )
    assert (marked.attendance, marked.notes, marked.marked_by_organiser) == (
        "excused",
        "doctor",
        True,
    )
    assert marked.marked_by == admin and marked.attendance_updated_at is not None
    [audit] = audits("events.attendance.marked")
    assert (audit.data["from"], audit.data["to"], audit.data["notes"]) == (
        "unknown",
        "excused",
        "doctor",
    )
    with pytest.raises(ValidationFailed):
        services.participant_mark(actor=admin, participant=participant, status="gone")
    waitlisted = register(running_event, people["stranger"], registration="waitlisted")
    with pytest.raises(NotRegistered):
        services.participant_mark(actor=admin, participant=waitlisted, status="present")

    # Back to unknown hands the participant back to the automatic rules.
    reset = services.participant_mark(actor=admin, participant=participant, status="unknown")
    assert reset.marked_by_organiser is False

    history = selectors.participant_history(participant)
    assert [(h["from"], h["to"]) for h in history] == [
        ("unknown", "excused"),
        ("excused", "unknown"),
    ]
    assert history[0]["actor"] == audit.actor_label and history[0]["notes"] == "doctor"


def test_marking_a_cancelled_events_participant_is_refused(running_event, people, register):
    participant = register(running_event, people["employee"])
    services.event_cancel(actor=people["admin"].user, event=running_event)
    with pytest.raises(RequestStateConflict):
        services.participant_mark(
            actor=people["admin"].user, participant=participant, status="present"
        )
    with pytest.raises(RequestStateConflict):
        services.participants_mark_bulk(
            actor=people["admin"].user,
            event=running_event,
            participant_ids=[participant.pk],
            status="present",
        )


def test_marking_after_completion_is_allowed(running_event, people, register):
    participant = register(running_event, people["employee"])
    services.event_complete(actor=people["admin"].user, event=running_event)
    marked = services.participant_mark(
        actor=people["admin"].user, participant=participant, status="present"
    )
    assert marked.attendance == "present"


def test_bulk_mark_writes_one_audit_event(make_event, running_event, people, register):
    admin = people["admin"].user
    one = register(running_event, people["employee"])
    two = register(running_event, people["stranger"])
    already = register(
        running_event,
        people["approver"],
        attendance="excused",
        marked_by_organiser=True,
        notes="storm",
    )
    waitlisted = register(running_event, people["importer"], registration="waitlisted")
    elsewhere = register(make_event(), people["employee"])
    result = services.participants_mark_bulk(
        actor=admin,
        event=running_event,
        participant_ids=[one.pk, two.pk, already.pk, waitlisted.pk, elsewhere.pk, 999_999],
        status="excused",
        notes="storm",
    )
    assert result["updated"] == [one.pk, two.pk]
    assert result["unchanged"] == [already.pk]
    assert result["missing"] == [waitlisted.pk, elsewhere.pk, 999_999]
    assert set(
        EventParticipant.objects.filter(pk__in=[one.pk, two.pk]).values_list(
            "attendance", "notes", "marked_by_organiser"
        )
    ) == {("excused", "storm", True)}
    [audit] = audits("events.attendance.bulk_marked")
    assert audit.target_type == "events.event" and audit.target_id == str(running_event.pk)
    assert audit.data["participants"] == [one.pk, two.pk]
    assert audit.data["from"] == {str(one.pk): "unknown", str(two.pk): "unknown"}
    [entry] = selectors.participant_history(two)
    assert (entry["action"], entry["from"], entry["to"], entry["notes"]) == (
        "events.attendance.bulk_marked",
        "unknown",
        "excused",
        "storm",
    )
    assert selectors.participant_history(already) == []


# --- selectors ----------------------------------------------------------------------------


def test_counts_visibility_and_filters(make_event, running_event, people, register):
    register(running_event, people["employee"], attendance="present")
    register(running_event, people["stranger"])
    register(running_event, people["approver"], attendance=None)
    register(running_event, people["importer"], registration="cancelled")
    empty = make_event()
    counts = selectors.event_counts([running_event.pk, empty.pk])
    assert counts[running_event.pk] == {
        "unknown": 2,
        "present": 1,
        "late": 0,
        "absent": 0,
        "excused": 0,
    }
    assert counts[empty.pk]["unknown"] == 0

    assert set(selectors.events_visible_to(people["admin"].user)) == {running_event, empty}
    assert set(selectors.events_visible_to(people["approver"].user)) == {running_event, empty}
    assert list(selectors.events_visible_to(people["employee"].user)) == [running_event]
    register(empty, people["employee"], registration="waitlisted")
    assert set(selectors.events_visible_to(people["employee"].user)) == {running_event, empty}

    unknown = selectors.participants_of(running_event, attendance="unknown")
    assert {p.employee for p in unknown} == {
        people["stranger"],
        people["approver"],
        people["importer"],
    }
    found = selectors.participants_of(running_event, q=people["employee"].employee_no)
    assert [p.employee for p in found] == [people["employee"]]
    mine = selectors.my_participations(people["employee"])
    assert [p.event for p in mine] == [empty, running_event] or [p.event for p in mine] == [
        running_event,
        empty,
    ]
