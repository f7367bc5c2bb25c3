import pytest
from django.utils import timezone

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
    organisation = people["employee"].organisation
    today = timezone.localdate(timezone=organisation.tz)
    response = api(people["employee"]).post("/api/attendance/punch", {"kind": "in"}, format="json")
    assert response.status_code == 201, response.content
    day = response.json()["data"]["day"]
    # One punch: half a day on a workday; on a day off the punch is kept and the day is off.
    assert day["status"] == ("partial" if today.weekday() in organisation.workdays else "off")
    assert day["workDate"] == today.isoformat() and day["firstIn"] is not None
