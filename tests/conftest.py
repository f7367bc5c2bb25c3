"""Shared fixtures: an organisation with people in each role, and API clients for them."""

from __future__ import annotations

import itertools

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from attendance import services
from attendance.models import Organisation
from common import roles

_sequence = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _fresh_cache(django_db_blocker):
    """Rate-limit counters must not leak from one test into another (the cache may live in
    the database, so clearing it is allowed even before a test asks for the database)."""
    with django_db_blocker.unblock():
        cache.clear()
    yield


@pytest.fixture(scope="session", autouse=True)
def _end_stray_sessions_before_the_test_database_is_dropped(django_db_setup, django_db_blocker):
    """Playwright's event loop gives the browser tests' thread another context, in which
    Django opens other connection objects, left open when the context ends; they would keep
    pytest-django from dropping the test database. Ended here, after the last test."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def organisation(db) -> Organisation:
    number = next(_sequence)
    return Organisation.objects.create(
        name=f"Org {number}", slug=f"org-{number}", time_zone="Asia/Shanghai"
    )


@pytest.fixture
def other_organisation(db) -> Organisation:
    number = next(_sequence)
    return Organisation.objects.create(name=f"Other {number}", slug=f"other-{number}")


@pytest.fixture
def make_person(db):
    """make_person(org, "employee", approver=...) → the Employee, with a login in that role."""

    def make(organisation, *role_names: str, approver=None, username: str | None = None, **extra):
        number = next(_sequence)
        username = username or f"user{number}"
        employee, _ = services.user_provision(
            actor=None,
            organisation=organisation,
            username=username,
            employee_no=extra.pop("employee_no", f"E{number:05d}"),
            name=extra.pop("name", f"Person {number}"),
            role_names=[roles.normalise(r) for r in (role_names or ("employee",))],
            password=PASSWORD,
            approver=approver,
        )
        for field, value in extra.items():
            setattr(employee, field, value)
        if extra:
            employee.save(update_fields=list(extra))
        return employee

    return make


@pytest.fixture
def people(organisation, make_person):
    """An admin, an approver, the approver's report (employee) and an unrelated employee."""
    admin = make_person(organisation, "employee", "admin", username="admin_user")
    approver = make_person(organisation, "employee", "approver", username="approver_user")
    employee = make_person(organisation, "employee", approver=approver, username="employee_user")
    stranger = make_person(organisation, "employee", username="stranger_user")
    importer = make_person(organisation, "employee", "importer", username="importer_user")
    return {
        "admin": admin,
        "approver": approver,
        "employee": employee,
        "stranger": stranger,
        "importer": importer,
    }


@pytest.fixture
def api():
    """api(employee) → an APIClient authenticated as that employee's user (None: anonymous)."""

    def make(employee=None) -> APIClient:
        client = APIClient()
        if employee is not None:
            client.force_authenticate(user=employee.user)
        return client

    return make
