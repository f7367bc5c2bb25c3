"""Events fixtures: an event factory for the organisation of tests/conftest.py and a quick
way to register many participants (employees without logins, written in bulk)."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

import pytest
from django.db import connection
from django.utils import timezone

from attendance.models import Employee
from events.models import Event, EventParticipant

_numbers = itertools.count(1)


@pytest.fixture
def make_event(organisation, people):
    """make_event(starts_at=…, ends_at=…, **fields) → an Event created by the admin
    (straight through the model: the service itself is what some tests are about)."""

    def make(org=None, *, starts_at=None, ends_at=None, **fields) -> Event:
        starts_at = starts_at or timezone.now() + dt.timedelta(minutes=10)
        ends_at = ends_at or starts_at + dt.timedelta(hours=1)
        return Event.objects.create(
            organisation=org or organisation,
            title=fields.pop("title", f"Event {next(_numbers)}"),
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=people["admin"].user,
            **fields,
        )

    return make


@pytest.fixture
def register():
    """register(event, employee, **fields) → the EventParticipant."""

    def make(event, employee, **fields) -> EventParticipant:
        return EventParticipant.objects.create(event=event, employee=employee, **fields)

    return make


@pytest.fixture
def register_many():
    """register_many(event, n, **fields) → ids of n new employees registered on the event."""

    def make(event, count: int, **fields) -> list[int]:
        batch = next(_numbers)
        employees = Employee.objects.bulk_create(
            Employee(
                organisation_id=event.organisation_id,
                employee_no=f"B{batch:04d}-{index:06d}",
                name=f"Bulk {batch}-{index}",
            )
            for index in range(count)
        )
        participants = EventParticipant.objects.bulk_create(
            EventParticipant(event=event, employee=employee, **fields) for employee in employees
        )
        return [participant.pk for participant in participants]

    return make


def completed(event, *, ago: dt.timedelta, by=None) -> Event:
    """Mark ``event`` completed ``ago`` in the past (without the service, to set the clock)."""
    event.status = "completed"
    event.completed_at = timezone.now() - ago
    event.completed_by = by
    event.save(update_fields=["status", "completed_at", "completed_by"])
    return event


def run_in_threads(*targets):
    """Run each callable in its own thread (each with its own connection, closed at the
    end) and return their results in order; an exception in a thread is raised here."""
    results: list = [None] * len(targets)
    errors: list = []

    def runner(index, target):
        try:
            results[index] = target()
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=runner, args=(index, target))
        for index, target in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread did not finish"
    if errors:
        raise errors[0]
    return results
