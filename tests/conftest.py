"""Shared fixtures: an organisation with people in each role, and API clients for them."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from django.conf import settings
from django.core.cache import caches
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
        for alias in settings.CACHES:  # the default cache and the rate-limit counters'
            caches[alias].clear()
    yield


@pytest.fixture(autouse=True)
def _corrections_reach_the_tests_fixed_dates(settings):
    """Many tests ask for corrections of fixed days (March 2024), older than the default
    window of CORRECTION_MAX_AGE_DAYS; the window itself is tested where it is set."""
    settings.CORRECTION_MAX_AGE_DAYS = (dt.date.today() - dt.date(2024, 1, 1)).days + 30


@pytest.fixture(scope="session")
def django_db_setup(
    request,
    django_test_environment,
    django_db_blocker,
    django_db_use_migrations,
    django_db_keepdb,
    django_db_createdb,
    django_db_modify_db_settings,
):
    """pytest-django's set-up, with the role split of production (common/db_roles.py): the
    owner creates the test database and migrates it (``migrate`` grants the application's
    role), then every test connects as the application's role, which owns nothing and may
    only read and append the audit tables. Without DATABASE_MIGRATE_URL (one role) this is
    pytest-django's own set-up."""
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases
    from pytest_django.fixtures import _disable_migrations, _get_databases_for_setup

    from common import db_roles

    if not django_db_use_migrations:
        _disable_migrations()
    keepdb = django_db_keepdb and not django_db_createdb
    aliases, serialized_aliases = _get_databases_for_setup(request.session.items)
    with django_db_blocker.unblock():
        if db_roles.split_configured():
            with db_roles.as_owner(), connection._nodb_cursor() as cursor:
                db_roles.ensure_app_role(cursor, db_roles.app_role())
        with db_roles.as_owner():
            db_cfg = setup_databases(
                verbosity=request.config.option.verbose,
                interactive=False,
                aliases=aliases,
                serialized_aliases=serialized_aliases,
                keepdb=keepdb,
            )
    yield
    if not keepdb:
        with django_db_blocker.unblock(), db_roles.as_owner():
            teardown_databases(db_cfg, verbosity=request.config.option.verbose)


@pytest.fixture(autouse=True)
def _empty_audit_tables_after_transactional_tests(request):
    """The audit models are unmanaged (their triggers refuse the TRUNCATE of Django's flush),
    so a transactional test's committed events would outlive it: emptied here instead."""
    yield
    from tests.audit.support import commits_outside_the_test_transaction, purge_audit_tables

    if commits_outside_the_test_transaction(request):
        purge_audit_tables()


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
