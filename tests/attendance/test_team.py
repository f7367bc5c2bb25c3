"""The team month, a person's month and the exports of both (attendance/team_views.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io

from django.db import connection
from django.test.utils import CaptureQueriesContext
from openpyxl import load_workbook

from attendance.choices import RecordSource, RecordStatus
from attendance.models import AttendanceRecord
from audit.models import AuditEvent

MONTH = dt.date(2024, 3, 1)


def _record(employee, day, status, *, work=480, late=0, early=0):
    tz = employee.organisation.tz
    return AttendanceRecord.objects.create(
        organisation=employee.organisation,
        employee=employee,
        work_date=day,
        first_in=dt.datetime.combine(day, dt.time(9, 0), tzinfo=tz),
        last_out=dt.datetime.combine(day, dt.time(17, 0), tzinfo=tz),
        work_minutes=work,
        late_minutes=late,
        early_leave_minutes=early,
        status=status,
        source=RecordSource.PUNCH,
    )


def _get(client, user, url):
    client.force_login(user)
    return client.get(url)


def test_an_approver_sees_their_reports_with_totals(client, people):
    report = people["employee"]
    _record(report, dt.date(2024, 3, 4), RecordStatus.LATE, late=12)
    _record(report, dt.date(2024, 3, 5), RecordStatus.EARLY_LEAVE, work=400, early=30)
    _record(report, dt.date(2024, 3, 6), RecordStatus.ABSENT, work=0)
    _record(report, dt.date(2024, 3, 7), RecordStatus.LEAVE, work=0)
    response = _get(client, people["approver"].user, "/attendance/team/?month=2024-03")
    assert response.status_code == 200
    rows = response.context["rows"]
    assert [row["person"] for row in rows] == [report]  # not the stranger, not themself
    row = rows[0]
    assert (row["worked"], row["late_minutes"], row["early_leave_minutes"]) == ("14:40", 12, 30)
    assert (row["absent_days"], row["leave_days"]) == (1, 1)
    statuses = {cell["date"].day: cell["status"] for cell in row["cells"] if cell["status"]}
    assert statuses == {4: "late", 5: "early_leave", 6: "absent", 7: "leave"}
    html = response.content.decode()
    assert f'href="/attendance/people/{report.pk}/?month=2024-03"' in html


def test_an_admin_sees_everyone_and_filters_by_department_status_and_search(
    client, people, make_person, organisation
):
    sales = make_person(organisation, "employee", department="Sales", name="Wang Fang")
    make_person(organisation, "employee", department="Ops", name="Li Lei")
    _record(sales, dt.date(2024, 3, 4), RecordStatus.LATE, late=5)
    admin = people["admin"].user
    everyone = _get(client, admin, "/attendance/team/?month=2024-03").context["rows"]
    assert len(everyone) == 6  # every active employee but the admin
    by_department = _get(client, admin, "/attendance/team/?month=2024-03&department=Sales")
    assert [row["person"] for row in by_department.context["rows"]] == [sales]
    by_status = _get(client, admin, "/attendance/team/?month=2024-03&status=late")
    assert [row["person"] for row in by_status.context["rows"]] == [sales]
    by_search = _get(client, admin, "/attendance/team/?month=2024-03&q=wang")
    assert [row["person"] for row in by_search.context["rows"]] == [sales]


def test_an_employee_is_refused_the_team_month(client, people):
    response = _get(client, people["employee"].user, "/attendance/team/")
    assert response.status_code == 403
    assert "Approvers only" in response.content.decode()


def test_the_grid_costs_the_same_queries_whatever_the_number_of_people(
    client, people, make_person, organisation
):
    def add(count: int) -> None:
        for number in range(count):
            person = make_person(organisation, "employee", department="Bulk")
            _record(person, dt.date(2024, 3, 1 + number % 28), RecordStatus.NORMAL)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/attendance/team/?month=2024-03")
        assert response.status_code == 200
        return len(captured), len(response.context["rows"])

    client.force_login(people["admin"].user)
    add(3)
    client.get("/attendance/team/?month=2024-03")  # warm: session, caches
    few = queries()
    add(30)
    many = queries()
    assert (few[1], many[1]) == (7, 37)
    assert few[0] == many[0]


def test_a_persons_month_is_for_them_their_approver_and_admins(client, people):
    report = people["employee"]
    _record(report, dt.date(2024, 3, 4), RecordStatus.LATE, late=12)
    url = f"/attendance/people/{report.pk}/?month=2024-03"
    for viewer in ("employee", "approver", "admin"):
        response = _get(client, people[viewer].user, url)
        assert response.status_code == 200, viewer
        assert "Late" in response.content.decode()
    assert _get(client, people["stranger"].user, url).status_code == 403
    # A stranger asking for somebody who does not exist gets the same answer.
    assert _get(client, people["stranger"].user, "/attendance/people/999999/").status_code == 403


def _csv_rows(response) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_the_team_export_is_formula_safe_in_csv_and_xlsx_and_audited(
    client, people, make_person, organisation
):
    evil = make_person(
        organisation, "employee", approver=people["approver"], name='=HYPERLINK("http://x")'
    )
    _record(evil, dt.date(2024, 3, 4), RecordStatus.LATE, late=7)
    client.force_login(people["approver"].user)
    response = client.get("/attendance/team/export.csv/?month=2024-03")
    assert response.status_code == 200
    assert 'filename="team-2024-03.csv"' in response["Content-Disposition"]
    rows = _csv_rows(response)
    assert rows[0][:2] == ["Employee no.", "Name"]
    assert rows[1][1] == '\'=HYPERLINK("http://x")'
    assert rows[1][3:7] == ["2024-03-04", "Late", "09:00", "17:00"]
    response = client.get("/attendance/team/export.xlsx/?month=2024-03")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.content)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[1][1] == '\'=HYPERLINK("http://x")'
    assert sheet.cell(row=2, column=2).data_type == "s"  # text, never a formula
    exports = AuditEvent.objects.filter(action="attendance.records.exported")
    assert exports.count() == 2
    assert client.get("/attendance/team/export.pdf/?month=2024-03").status_code == 404


def test_my_month_exports_only_my_days(client, people):
    _record(people["employee"], dt.date(2024, 3, 4), RecordStatus.NORMAL)
    _record(people["stranger"], dt.date(2024, 3, 4), RecordStatus.NORMAL)
    client.force_login(people["employee"].user)
    rows = _csv_rows(client.get("/attendance/export.csv/?month=2024-03"))
    assert [row[1] for row in rows[1:]] == [people["employee"].name]
    home = client.get("/attendance/?month=2024-03").content.decode()
    assert 'href="/attendance/export.xlsx/?month=2024-03"' in home
