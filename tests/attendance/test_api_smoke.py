import pytest

pytestmark = pytest.mark.django_db


def test_me_answers_in_the_envelope(api, people):
    response = api(people["employee"]).get("/api/attendance/me")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is True
    assert body["data"]["employee"]["employeeNo"] == people["employee"].employee_no
    assert body["data"]["roles"] == ["attendance_employee"]


def test_anonymous_is_unauthenticated(api):
    response = api().get("/api/attendance/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"


def test_punch_creates_day(api, people):
    response = api(people["employee"]).post("/api/attendance/punch", {"kind": "in"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["data"]["day"]["status"] in {"partial", "off"}
