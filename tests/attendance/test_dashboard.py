"""The admin dashboard: today's figures (in progress and over), the other tiles, who may
open it, where people land after signing in, and a query count that does not grow with
the organisation."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from attendance import services
from attendance.choices import RecordSource, RecordStatus
from attendance.dashboard import selectors
from attendance.models import AttendanceRecord
from audit.models import AuditEvent
from imports.models import ImportBatch
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

DASHBOARD = "/dashboard/"
MONDAY = dt.date(2026, 3, 2)


def browser(employee=None) -> Client:
    client = Client()
    if employee is not None:
        client.force_login(employee.user)
    return client


def at(organisation, day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=organisation.tz)


def record(employee, day, status, first_in=None, last_out=None, late=0) -> AttendanceRecord:
    return AttendanceRecord.objects.create(
        organisation=employee.organisation,
        employee=employee,
        work_date=day,
        first_in=first_in,
        last_out=last_out,
        late_minutes=late,
        status=status,
        source=RecordSource.PUNCH,
    )


def set_up_day(organisation, make_person, day: dt.date) -> dict:
    """Eight active employees (the admin among them) and one deactivated: two punched in
    (one of them late), one recorded absent, one on leave, one partial without times, three
    with nothing at all (the admin included)."""
    org = organisation
    admin = make_person(org, "employee", "admin", username="dash_admin")
    on_time = make_person(org, "employee")
    late = make_person(org, "employee")
    absent = make_person(org, "employee")
    leave = make_person(org, "employee")
    nothing = [make_person(org, "employee"), make_person(org, "employee")]
    gone = make_person(org, "employee", is_active=False)
    record(on_time, day, RecordStatus.PARTIAL, first_in=at(org, day, 8, 55))
    record(late, day, RecordStatus.LATE, first_in=at(org, day, 9, 30), late=25)
    record(absent, day, RecordStatus.ABSENT)
    record(leave, day, RecordStatus.LEAVE)
    record(gone, day, RecordStatus.ABSENT)  # deactivated: counted nowhere
    return {"admin": admin, "nothing": nothing, "late": late, "absent": absent}


# --- figures -----------------------------------------------------------------------------


def test_today_while_the_day_is_in_progress(organisation, make_person):
    set_up_day(organisation, make_person, MONDAY)
    today = selectors.today_counts(organisation=organisation, now=at(organisation, MONDAY, 10))
    assert today.in_progress and today.workday
    assert (today.employees, today.present, today.late) == (7, 2, 1)
    # Not yet in: the admin and the two without a record; absent: only the stored absence.
    assert (today.not_yet_in, today.absent, today.excused) == (3, 1, 1)


def test_today_once_the_day_is_over(organisation, make_person):
    set_up_day(organisation, make_person, MONDAY)
    today = selectors.today_counts(organisation=organisation, now=at(organisation, MONDAY, 19))
    assert not today.in_progress
    assert (today.present, today.late, today.not_yet_in, today.absent) == (2, 1, 0, 4)


def test_a_day_off_has_nobody_expected(organisation, make_person):
    saturday = MONDAY + dt.timedelta(days=5)
    set_up_day(organisation, make_person, saturday)
    today = selectors.today_counts(organisation=organisation, now=at(organisation, saturday, 10))
    assert not today.workday
    assert (today.not_yet_in, today.absent) == (0, 1)  # only the stored absence


def test_the_day_is_the_organisations_date(organisation, make_person):
    """23:30 UTC on Sunday is Monday 07:30 in Shanghai: Monday's records, before the start."""
    set_up_day(organisation, make_person, MONDAY)
    now = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.UTC)
    today = selectors.today_counts(organisation=organisation, now=now)
    assert today.date == MONDAY
    assert (today.present, today.not_yet_in) == (2, 3)


def test_the_lists_behind_the_tiles_match_the_figures(organisation, make_person):
    people = set_up_day(organisation, make_person, MONDAY)
    for now in (at(organisation, MONDAY, 10), at(organisation, MONDAY, 19)):
        today = selectors.today_counts(organisation=organisation, now=now)
        for category in selectors.CATEGORIES:
            listed = selectors.today_people(organisation=organisation, category=category, now=now)
            assert listed.count() == today.count(category), (now, category)
    in_progress = at(organisation, MONDAY, 10)
    not_in = selectors.today_people(
        organisation=organisation, category=selectors.NOT_YET_IN, now=in_progress
    )
    assert {row["pk"] for row in not_in} == {people["admin"].pk, *(p.pk for p in people["nothing"])}


def day_in_progress_now(organisation) -> None:
    """Today, whatever the hour, is a workday in progress: it ends at 23:59:59."""
    organisation.workdays = list(range(7))
    organisation.work_start, organisation.work_end = dt.time(0, 0), dt.time(23, 59, 59)
    organisation.save(update_fields=["workdays", "work_start", "work_end"])


def local_today(organisation) -> dt.date:
    return timezone.localtime(timezone.now(), organisation.tz).date()


def tile_figure(html: str, tile: str) -> str:
    start = html.index(f'data-tile="{tile}"')
    figure = html.index("data-figure>", start) + len("data-figure>")
    return html[figure : html.index("<", figure)].strip()


def test_the_page_shows_each_tile_with_its_link(organisation, make_person):
    day_in_progress_now(organisation)
    people = set_up_day(organisation, make_person, local_today(organisation))
    batch = ImportBatch.objects.create(
        organisation=organisation, format="standard", filename="march.csv", row_count=1240
    )
    response = browser(people["admin"]).get(DASHBOARD)
    assert response.status_code == 200
    html = response.content.decode()
    figures = {tile: tile_figure(html, tile) for tile in (*selectors.CATEGORIES, "pending")}
    assert figures == {
        "present": "2",
        "late": "1",
        "absent": "1",
        "not_yet_in": "3",
        "pending": "0",
    }
    assert 'href="/dashboard/today/not_yet_in/"' in html
    assert 'href="/attendance/approvals/"' in html
    assert f'href="/imports/batches/{batch.pk}/"' in html and 'href="/imports/batches/"' in html
    assert "march.csv" in html and 'data-status="committed"' in html
    assert 'href="/readyz"' in html
    audit_count = AuditEvent.objects.filter(
        organisation=organisation, occurred_at__gte=timezone.now() - dt.timedelta(hours=24)
    ).count()
    assert audit_count > 0  # the people's provisioning
    assert tile_figure(html, "audit") == str(audit_count)
    audit_link = html[html.index('href="/audit/?from=') + 6 :].split('"')[0]
    assert browser(people["admin"]).get(audit_link.replace("&amp;", "&")).status_code == 200


def test_pending_corrections_are_the_inbox(organisation, make_person):
    admin = make_person(organisation, "employee", "admin")
    employee = make_person(organisation, "employee")
    yesterday = local_today(organisation) - dt.timedelta(days=1)
    for person in (admin, employee):  # the admin's own request is not in their inbox
        services.adjustment_request_create(
            actor=person.user,
            employee=person,
            work_date=yesterday,
            first_in=at(organisation, yesterday, 9),
            last_out=at(organisation, yesterday, 18),
            reason="Forgot to punch",
        )
    html = browser(admin).get(DASHBOARD).content.decode()
    assert tile_figure(html, "pending") == "1"


def test_the_list_behind_a_tile(organisation, make_person):
    day_in_progress_now(organisation)
    people = set_up_day(organisation, make_person, local_today(organisation))
    response = browser(people["admin"]).get("/dashboard/today/late/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-employee="{people["late"].pk}"' in html and html.count("data-employee=") == 1
    assert "25 min late" in html
    assert browser(people["admin"]).get("/dashboard/today/nobody/").status_code == 404


def test_another_organisations_people_are_not_counted(
    organisation, other_organisation, make_person
):
    day_in_progress_now(organisation)
    day_in_progress_now(other_organisation)
    people = set_up_day(organisation, make_person, local_today(organisation))
    stranger = make_person(other_organisation, "employee")
    record(stranger, local_today(organisation), RecordStatus.LATE, first_in=timezone.now(), late=9)
    html = browser(people["admin"]).get(DASHBOARD).content.decode()
    assert (tile_figure(html, "present"), tile_figure(html, "late")) == ("2", "1")


# --- access and landing ------------------------------------------------------------------


@pytest.mark.parametrize("role", ["employee", "approver"])
@pytest.mark.parametrize("url", [DASHBOARD, "/dashboard/today/present/"])
def test_only_admins_may_open_it(people, role, url):
    response = browser(people[role]).get(url)
    assert response.status_code == 403
    assert b"Administrators only" in response.content


def test_anonymous_is_sent_to_login():
    response = browser().get(DASHBOARD)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={DASHBOARD}"


def test_the_root_sends_admins_to_the_dashboard_and_others_to_their_month(people):
    assert browser(people["admin"]).get("/")["Location"] == DASHBOARD
    assert browser(people["admin"]).head("/")["Location"] == DASHBOARD
    assert browser().get("/")["Location"] == "/accounts/login/?next=/"
    for role in ("employee", "approver", "importer"):
        assert browser(people[role]).get("/")["Location"] == "/attendance/"


@pytest.mark.parametrize(("role", "landing"), [("admin", DASHBOARD), ("employee", "/attendance/")])
@pytest.mark.parametrize("login", ["/accounts/login/", "/accounts/login/?next=/"])
def test_after_signing_in(people, role, landing, login):
    response = Client().post(
        login,
        {"username": people[role].user.username, "password": PASSWORD},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == landing
    assert response.status_code == 200


# --- cost --------------------------------------------------------------------------------


def grow(organisation, make_person, employees: int, day: dt.date) -> None:
    """Employees with a record of today each (one in three late) and a pending correction
    for one in five; an import batch each ten."""
    for number in range(employees):
        person = make_person(organisation, "employee")
        late = number % 3 == 0
        status = RecordStatus.LATE if late else RecordStatus.NORMAL
        record(
            person,
            day,
            status,
            first_in=at(organisation, day, 9, 30 if late else 0),
            late=25 * late,
        )
        if number % 5 == 0:
            yesterday = day - dt.timedelta(days=1)
            services.adjustment_request_create(
                actor=person.user,
                employee=person,
                work_date=yesterday,
                first_in=at(organisation, yesterday, 9),
                last_out=at(organisation, yesterday, 18),
                reason="Forgot",
            )
        if number % 10 == 0:
            ImportBatch.objects.create(
                organisation=organisation, format="standard", row_count=number
            )


def queries_of_the_page(admin) -> int:
    client = browser(admin)
    client.get(DASHBOARD)  # the session and the user's roles, as on any later page
    with CaptureQueriesContext(connection) as queries:
        assert client.get(DASHBOARD).status_code == 200
    return len(queries)


def test_the_query_count_does_not_grow_with_the_organisation(organisation, make_person):
    day_in_progress_now(organisation)
    admin = make_person(organisation, "employee", "admin")
    today = local_today(organisation)
    grow(organisation, make_person, 5, today)
    small = queries_of_the_page(admin)
    grow(organisation, make_person, 55, today)
    large = queries_of_the_page(admin)
    assert selectors.today_counts(organisation=organisation).employees == 61
    assert large == small
    assert small <= 20
