"""Employees' Import / Export in the admin (django-import-export): who gets in, the two-step
import (preview, then confirm) bound to the admin's organisation, text cells, row errors in
the preview, the audit event, and exports that are scoped and formula-safe."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import openpyxl
import pytest
import tablib
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from attendance.models import Employee
from attendance.resources import EmployeeResource, neutralise_formula, restore_formula_escape
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

User = get_user_model()

EMPLOYEES = "/admin/attendance/employee/"
IMPORT = f"{EMPLOYEES}import/"
PROCESS_IMPORT = f"{EMPLOYEES}process_import/"
EXPORT = f"{EMPLOYEES}export/"
CSV_FORMAT, XLSX_FORMAT = "0", "1"  # EmployeeAdmin.formats = (CSV, XLSX)
AUDIT_ACTION = "attendance.employees.imported"

# The synthetic people, copied into the repository (FORMATS.md): a fresh clone has them.
EMPLOYEES_CSV = Path(__file__).resolve().parent.parent / "fixtures" / "employees.csv"
HYPERLINK = '=HYPERLINK("http://evil.example/","click")'


# --- helpers ----------------------------------------------------------------------------


def client_for(employee=None, user=None) -> Client:
    client = Client()
    if employee is not None:
        client.force_login(employee.user)
    elif user is not None:
        client.force_login(user)
    return client


def assert_sent_to_login(response):
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def csv_bytes(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def xlsx_bytes(header: list[str], rows: list[list]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def fixture_csv() -> bytes:
    return EMPLOYEES_CSV.read_bytes()


def fixture_rows() -> list[dict]:
    return list(csv.DictReader(io.StringIO(fixture_csv().decode("utf-8-sig"))))


def preview(client, content: bytes, name="employees.csv", file_format=CSV_FORMAT):
    """Step 1: upload; the response is the preview page (a dry run)."""
    return client.post(
        IMPORT,
        {
            "resource": "0",
            "format": file_format,
            "import_file": SimpleUploadedFile(name, content),
        },
    )


def confirm(client, preview_response):
    """Step 2: post the preview's confirm form back."""
    form = preview_response.context["confirm_form"]
    data = {name: form.initial[name] for name in form.fields}
    return client.post(PROCESS_IMPORT, data)


def import_file(client, content: bytes, **kwargs):
    page = preview(client, content, **kwargs)
    assert page.status_code == 200
    assert page.context["confirm_form"] is not None, page.content.decode()[:2000]
    return confirm(client, page)


def totals(preview_response) -> dict[str, int]:
    result = preview_response.context["result"]
    return {kind: count for kind, count in result.totals.items() if count}


def export(client, file_format=CSV_FORMAT):
    page = client.get(EXPORT)
    assert page.status_code == 200
    form = page.context["form"]
    data = {"resource": "0", "format": file_format}
    data.update({name: "on" for name in form.fields if name.startswith("employeeresource_")})
    response = client.post(EXPORT, data)
    assert response.status_code == 200, response.content[:2000]
    return response


def csv_export_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))


def imported(organisation, exclude=()) -> dict[str, Employee]:
    employees = Employee.objects.filter(organisation=organisation).exclude(pk__in=exclude)
    return {employee.employee_no: employee for employee in employees}


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.com", "x-very-secret-1")


@pytest.fixture
def admin_employee(people):
    return people["admin"]


@pytest.fixture
def existing_pks(people):
    return [employee.pk for employee in people.values()]


# --- who gets in ------------------------------------------------------------------------


@pytest.mark.parametrize("url", [IMPORT, EXPORT])
def test_anonymous_is_sent_to_the_admin_login(url):
    assert_sent_to_login(Client().get(url))


@pytest.mark.parametrize("url", [IMPORT, EXPORT])
@pytest.mark.parametrize("who", ["employee", "approver", "importer"])
def test_people_without_the_admin_role_get_the_apps_403_page(people, url, who):
    assert client_for(people[who]).get(url).status_code == 403


@pytest.mark.parametrize("url", [IMPORT, EXPORT])
def test_admin_opens_import_and_export(admin_employee, url):
    response = client_for(admin_employee).get(url)
    assert response.status_code == 200


def test_changelist_offers_import_and_export_to_the_admin(admin_employee):
    response = client_for(admin_employee).get(EMPLOYEES)
    assert response.status_code == 200
    assert IMPORT.encode() in response.content
    assert EXPORT.encode() in response.content


def test_import_page_offers_only_csv_and_xlsx(admin_employee):
    form = client_for(admin_employee).get(IMPORT).context["form"]
    titles = [label for value, label in form.fields["format"].choices if value != ""]
    assert titles == ["csv", "xlsx"]


@pytest.mark.parametrize("url", [IMPORT, EXPORT])
def test_superuser_without_an_organisation_is_refused_with_a_message(superuser, url):
    client = client_for(user=superuser)
    response = client.get(url, follow=True)
    assert response.redirect_chain[-1][0] == EMPLOYEES
    assert any("administers no single organisation" in m for m in messages_of(response))
    changelist = client.get(EMPLOYEES)
    assert IMPORT.encode() not in changelist.content  # no button that can only fail


def test_superuser_cannot_confirm_an_import_either(superuser):
    response = client_for(user=superuser).post(
        PROCESS_IMPORT,
        {"import_file_name": "x", "original_file_name": "x.csv", "format": "0", "resource": ""},
        follow=True,
    )
    assert any("administers no single organisation" in m for m in messages_of(response))


# --- importing ----------------------------------------------------------------------------


def test_importing_the_employees_file_creates_them_in_the_admins_organisation(
    admin_employee, existing_pks, other_organisation
):
    organisation = admin_employee.organisation
    client = client_for(admin_employee)
    rows = fixture_rows()
    assert len(rows) == 20

    page = preview(client, fixture_csv())
    assert page.status_code == 200
    assert totals(page) == {"new": 20}
    assert imported(organisation, existing_pks) == {}  # a preview writes nothing

    response = confirm(client, page)
    assert response.status_code == 302
    assert response["Location"] == EMPLOYEES

    employees = imported(organisation, existing_pks)
    assert sorted(employees) == sorted(row["employee_no"] for row in rows)
    for row in rows:
        employee = employees[row["employee_no"]]
        assert employee.name == row["name"]
        assert employee.department == row["department"]
        assert employee.dingtalk_user_id == row["dingtalk_user_id"]  # dashes intact
        assert employee.is_active is True
        assert employee.user_id is None
    assert "154335349840-3301595691" in {e.dingtalk_user_id for e in employees.values()}
    assert not Employee.objects.filter(organisation=other_organisation).exists()


def test_leading_zeros_are_kept_from_csv(admin_employee):
    content = csv_bytes(
        [
            {"employee_no": "00042", "name": "Zero", "device_pin": "0007", "approver": ""},
            {
                "employee_no": "000043",
                "name": "Double",
                "device_pin": "",
                "approver": "00042",
            },
        ]
    )
    response = import_file(client_for(admin_employee), content)
    assert response.status_code == 302
    zero = Employee.objects.get(organisation=admin_employee.organisation, employee_no="00042")
    assert zero.device_pin == "0007"
    double = Employee.objects.get(organisation=admin_employee.organisation, employee_no="000043")
    assert double.approver == zero


def test_leading_zeros_are_kept_from_xlsx_text_cells(admin_employee):
    content = xlsx_bytes(
        ["employee_no", "name", "dingtalk_user_id", "device_pin"],
        [["00042", "Zero", "0123-4567", "0007"]],
    )
    response = import_file(
        client_for(admin_employee), content, name="employees.xlsx", file_format=XLSX_FORMAT
    )
    assert response.status_code == 302
    employee = Employee.objects.get(organisation=admin_employee.organisation, employee_no="00042")
    assert (employee.dingtalk_user_id, employee.device_pin) == ("0123-4567", "0007")


def test_a_number_cell_in_an_xlsx_id_column_is_a_row_error_not_a_guess(admin_employee):
    content = xlsx_bytes(["employee_no", "name"], [[42, "Numeric"], ["00043", "Text"]])
    page = preview(client_for(admin_employee), content, "e.xlsx", XLSX_FORMAT)
    assert page.status_code == 200
    assert page.context["result"].has_validation_errors()
    assert page.context.get("confirm_form") is None
    assert b"Format the column as Text" in page.content
    assert not Employee.objects.filter(employee_no__in=["42", "00043"]).exists()


def test_a_reimport_is_all_skipped(admin_employee, existing_pks):
    client = client_for(admin_employee)
    import_file(client, fixture_csv())
    before = {
        e.employee_no: (e.name, e.department, e.dingtalk_user_id)
        for e in imported(admin_employee.organisation, existing_pks).values()
    }

    page = preview(client, fixture_csv())
    assert totals(page) == {"skip": 20}
    assert [row.import_type for row in page.context["result"].rows] == ["skip"] * 20
    confirm(client, page)

    after = {
        e.employee_no: (e.name, e.department, e.dingtalk_user_id)
        for e in imported(admin_employee.organisation, existing_pks).values()
    }
    assert after == before
    assert AuditEvent.objects.filter(action=AUDIT_ACTION).count() == 2
    assert AuditEvent.objects.filter(action=AUDIT_ACTION).latest("pk").data["skip"] == 20


def test_a_change_in_the_file_is_an_update(admin_employee, existing_pks):
    client = client_for(admin_employee)
    import_file(client, fixture_csv())
    rows = fixture_rows()
    rows[0]["name"] = "Renamed"
    page = preview(client, csv_bytes(rows))
    assert totals(page) == {"update": 1, "skip": 19}
    confirm(client, page)
    number = rows[0]["employee_no"]
    assert imported(admin_employee.organisation, existing_pks)[number].name == "Renamed"


def test_a_number_of_another_organisation_creates_a_new_employee_here(
    admin_employee, existing_pks, other_organisation, make_person
):
    rows = fixture_rows()
    theirs = make_person(
        other_organisation,
        "employee",
        employee_no=rows[0]["employee_no"],
        name="Theirs",
        dingtalk_user_id=rows[0]["dingtalk_user_id"],
    )
    client = client_for(admin_employee)
    page = preview(client, fixture_csv())
    assert totals(page) == {"new": 20}
    confirm(client, page)

    mine = imported(admin_employee.organisation, existing_pks)[rows[0]["employee_no"]]
    assert mine.pk != theirs.pk
    assert mine.name == rows[0]["name"]
    theirs_now = Employee.objects.get(pk=theirs.pk)
    assert theirs_now.organisation_id == other_organisation.pk
    assert theirs_now.name == "Theirs"
    assert Employee.objects.filter(organisation=other_organisation).count() == 1


def test_a_duplicate_device_pin_is_a_row_error_in_the_preview_and_nothing_is_written(
    admin_employee, people, other_organisation, make_person
):
    people["stranger"].device_pin = "7777"
    people["stranger"].save(update_fields=["device_pin"])
    make_person(other_organisation, "employee", device_pin="8888")  # other org: no clash
    before = Employee.objects.count()
    content = csv_bytes(
        [
            {"employee_no": "N-1", "name": "One", "device_pin": "8888"},
            {"employee_no": "N-2", "name": "Two", "device_pin": "7777"},
            {"employee_no": "N-3", "name": "Three", "device_pin": ""},
        ]
    )
    client = client_for(admin_employee)
    page = preview(client, content)
    assert page.status_code == 200
    result = page.context["result"]
    assert result.has_validation_errors()
    assert [row.number for row in result.invalid_rows] == [2]
    assert result.invalid_rows[0].field_specific_errors == {
        "device_pin": ["Another employee already has this device PIN."]
    }
    assert page.context.get("confirm_form") is None
    assert b"Another employee already has this device PIN." in page.content
    assert Employee.objects.count() == before
    assert not AuditEvent.objects.filter(action=AUDIT_ACTION).exists()


def test_the_same_id_twice_in_one_file_is_a_row_error(admin_employee):
    content = csv_bytes(
        [
            {"employee_no": "N-1", "name": "One", "dingtalk_user_id": "dt-1"},
            {"employee_no": "N-2", "name": "Two", "dingtalk_user_id": "dt-1"},
            {"employee_no": "N-3", "name": "Three", "dingtalk_user_id": "dt-3"},
            {"employee_no": "N-3", "name": "Again", "dingtalk_user_id": "dt-4"},
        ]
    )
    page = preview(client_for(admin_employee), content)
    errors = {row.number: row.field_specific_errors for row in page.context["result"].invalid_rows}
    twice = ["This employee number appears more than once in the file."]
    assert errors == {
        2: {"dingtalk_user_id": ["Another employee already has this DingTalk user ID."]},
        3: {"employee_no": twice},
        4: {"employee_no": twice},
    }
    assert not Employee.objects.filter(employee_no__startswith="N-").exists()


def test_other_row_problems_are_row_errors(admin_employee, other_organisation, make_person):
    make_person(other_organisation, "employee", employee_no="THEIR-BOSS")
    content = csv_bytes(
        [
            {"employee_no": "N-1", "name": "", "is_active": "1", "approver": ""},
            {"employee_no": "N-2", "name": "Two", "is_active": "maybe", "approver": ""},
            {"employee_no": "N-3", "name": "Three", "is_active": "", "approver": "THEIR-BOSS"},
            {"employee_no": "", "name": "No number", "is_active": "", "approver": ""},
            {"employee_no": "N-5", "name": "x" * 201, "is_active": "", "approver": ""},
        ]
    )
    page = preview(client_for(admin_employee), content)
    assert page.status_code == 200
    errors = {row.number: row.field_specific_errors for row in page.context["result"].invalid_rows}
    assert set(errors) == {1, 2, 3, 4, 5}
    assert list(errors[1]) == ["name"]
    assert list(errors[2]) == ["is_active"]
    assert "No employee numbered THEIR-BOSS" in errors[3]["approver"][0]
    assert list(errors[4]) == ["employee_no"]
    assert list(errors[5]) == ["name"]
    assert not Employee.objects.filter(employee_no__startswith="N-").exists()


def test_a_file_without_the_number_column_is_refused_in_the_preview(admin_employee):
    page = preview(client_for(admin_employee), csv_bytes([{"name": "No number"}]))
    assert page.status_code == 200
    assert page.context["result"].has_errors()
    assert page.context.get("confirm_form") is None
    assert b"not present in the file headers: employee_no" in page.content
    assert not Employee.objects.filter(name="No number").exists()


def test_an_employee_cannot_be_their_own_approver(admin_employee, people):
    number = people["stranger"].employee_no
    content = csv_bytes([{"employee_no": number, "name": "Self", "approver": number}])
    page = preview(client_for(admin_employee), content)
    (row,) = page.context["result"].invalid_rows
    assert row.field_specific_errors == {
        "approver": ["An employee cannot approve their own requests."]
    }


def test_a_missing_column_keeps_the_current_values(admin_employee, people):
    stranger = people["stranger"]
    stranger.device_pin = "4242"
    stranger.is_active = False
    stranger.save(update_fields=["device_pin", "is_active"])
    content = csv_bytes([{"employee_no": stranger.employee_no, "name": "New name"}])
    import_file(client_for(admin_employee), content)
    stranger.refresh_from_db()
    assert (stranger.name, stranger.device_pin, stranger.is_active) == ("New name", "4242", False)
    assert stranger.approver_id is None


def test_a_confirmation_that_no_longer_validates_writes_nothing(admin_employee, people):
    content = csv_bytes(
        [
            {"employee_no": "N-1", "name": "One", "device_pin": "5555"},
            {"employee_no": "N-2", "name": "Two", "device_pin": ""},
        ]
    )
    client = client_for(admin_employee)
    page = preview(client, content)
    assert totals(page) == {"new": 2}
    people["stranger"].device_pin = "5555"  # somebody takes the PIN before the confirmation
    people["stranger"].save(update_fields=["device_pin"])

    response = client.post(
        PROCESS_IMPORT,
        {
            name: page.context["confirm_form"].initial[name]
            for name in ("import_file_name", "original_file_name", "format", "resource")
        },
        follow=True,
    )
    assert any(m.startswith("Nothing imported") for m in messages_of(response))
    assert not Employee.objects.filter(employee_no__startswith="N-").exists()
    assert not AuditEvent.objects.filter(action=AUDIT_ACTION).exists()


def test_only_a_file_this_login_previewed_can_be_confirmed(admin_employee, make_person):
    page = preview(client_for(admin_employee), csv_bytes([{"employee_no": "N-1", "name": "A"}]))
    data = {
        name: page.context["confirm_form"].initial[name]
        for name in ("import_file_name", "original_file_name", "format", "resource")
    }
    other_admin = make_person(admin_employee.organisation, "employee", "admin")

    response = client_for(other_admin).post(PROCESS_IMPORT, data, follow=True)
    assert any("no longer waiting for confirmation" in m for m in messages_of(response))
    assert not Employee.objects.filter(employee_no="N-1").exists()

    client = client_for(admin_employee)
    forged = {**data, "import_file_name": "some-other-file"}
    response = client.post(PROCESS_IMPORT, forged, follow=True)
    assert any("no longer waiting for confirmation" in m for m in messages_of(response))
    assert not Employee.objects.filter(employee_no="N-1").exists()


def test_a_confirmation_cannot_be_replayed(admin_employee):
    client = client_for(admin_employee)
    page = preview(client, csv_bytes([{"employee_no": "N-1", "name": "A"}]))
    assert confirm(client, page).status_code == 302
    response = client.post(
        PROCESS_IMPORT,
        {
            name: page.context["confirm_form"].initial[name]
            for name in ("import_file_name", "original_file_name", "format", "resource")
        },
        follow=True,
    )
    assert any("no longer waiting for confirmation" in m for m in messages_of(response))
    assert AuditEvent.objects.filter(action=AUDIT_ACTION).count() == 1


# --- audit --------------------------------------------------------------------------------


def test_one_audit_event_after_a_confirmed_import_and_none_after_a_preview(admin_employee):
    client = client_for(admin_employee)
    page = preview(client, fixture_csv())
    assert not AuditEvent.objects.filter(action=AUDIT_ACTION).exists()

    confirm(client, page)
    event = AuditEvent.objects.get(action=AUDIT_ACTION)
    assert event.organisation_id == admin_employee.organisation_id
    assert event.actor_id == admin_employee.user_id
    assert event.data == {
        "new": 20,
        "update": 0,
        "skip": 0,
        "error": 0,
        "rows": 20,
        "fileName": "employees.csv",
    }
    assert not AuditEvent.objects.filter(action="attendance.employee.created").exists()


# --- exporting ----------------------------------------------------------------------------


@pytest.fixture
def export_setup(admin_employee, people, other_organisation, make_person):
    organisation = admin_employee.organisation
    boss = Employee.objects.create(organisation=organisation, employee_no="00042", name="Boss")
    Employee.objects.create(
        organisation=organisation,
        employee_no="00043",
        name=HYPERLINK,
        department="+cmd|' /C calc'!A0",
        dingtalk_user_id="0123-4567",
        device_pin="0007",
        approver=boss,
        is_active=False,
    )
    make_person(other_organisation, "employee", employee_no="X-OUTSIDE")
    return people


def test_export_csv_holds_only_the_admins_organisation_and_no_formulae(
    admin_employee, export_setup
):
    response = export(client_for(admin_employee))
    assert response["Content-Type"].startswith("text/csv")
    rows = csv_export_rows(response)
    numbers = {row["employee_no"] for row in rows}
    assert "X-OUTSIDE" not in numbers
    assert numbers == set(
        Employee.objects.filter(organisation=admin_employee.organisation).values_list(
            "employee_no", flat=True
        )
    )
    row = next(row for row in rows if row["employee_no"] == "00043")
    assert row == {
        "employee_no": "00043",
        "name": "'" + HYPERLINK,
        "department": "'+cmd|' /C calc'!A0",
        "dingtalk_user_id": "0123-4567",
        "device_pin": "0007",
        "is_active": "0",
        "approver": "00042",
    }
    assert not any(value.startswith(("=", "+", "-", "@")) for row in rows for value in row.values())


def test_export_xlsx_is_text_cells_and_no_formulae(admin_employee, export_setup):
    response = export(client_for(admin_employee), XLSX_FORMAT)
    sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
    rows = list(sheet.iter_rows(values_only=False))
    header = [cell.value for cell in rows[0]]
    cells = {
        row[header.index("employee_no")].value: dict(zip(header, row, strict=True))
        for row in rows[1:]
    }
    assert "X-OUTSIDE" not in cells
    mine = cells["00043"]
    assert mine["name"].data_type == "s"
    assert mine["name"].value == "'" + HYPERLINK
    assert mine["device_pin"].value == "0007"
    assert mine["approver"].value == "00042"
    assert all(cell.data_type != "f" for row in rows for cell in row)


def test_an_export_imports_back_unchanged(admin_employee, export_setup):
    client = client_for(admin_employee)
    for file_format, name in ((CSV_FORMAT, "e.csv"), (XLSX_FORMAT, "e.xlsx")):
        content = export(client, file_format).content
        page = preview(client, content, name=name, file_format=file_format)
        assert set(totals(page)) == {"skip"}, (file_format, page.content.decode()[:3000])
    assert Employee.objects.get(employee_no="00043").name == HYPERLINK


# --- the resource on its own ----------------------------------------------------------------


def test_formula_escape_round_trip():
    for text in (HYPERLINK, "+1", "-2", "@x", "\tx", "\rx"):
        assert neutralise_formula(text) == "'" + text
        assert restore_formula_escape(neutralise_formula(text)) == text
    for text in ("00042", "杜兰", "154335349840-3301595691", "'quoted", ""):
        assert neutralise_formula(text) == text
        assert restore_formula_escape(text) == text


def test_the_resource_refuses_to_work_without_an_organisation():
    resource = EmployeeResource()
    assert next(f.column_name for f in resource.get_user_visible_fields()) == "employee_no"
    with pytest.raises(ValueError, match="one organisation"):
        resource.export()
    dataset = tablib.Dataset(headers=["employee_no", "name"])
    with pytest.raises(ValueError, match="one organisation"):
        resource.import_data(dataset, dry_run=True)


def test_the_resource_keeps_csv_text_as_text(organisation):
    dataset = tablib.import_set("employee_no,name\n00042,Zero\n", format="csv")
    assert dataset[0] == ("00042", "Zero")
    result = EmployeeResource(organisation=organisation).import_data(dataset, dry_run=False)
    assert not result.has_errors() and not result.has_validation_errors()
    assert Employee.objects.get(organisation=organisation).employee_no == "00042"
