"""The admin centre defends itself: the IP allowlist on every door (API, pages, admin) with
X-Forwarded-For read only through TRUSTED_PROXY_COUNT, no saving an allowlist that locks
out its author, rate limits by route (429 + Retry-After, counted in Prometheus), and
production refusing ALLOWED_HOSTS=*."""

from __future__ import annotations

import subprocess

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory, override_settings
from prometheus_client import REGISTRY

from attendance import services
from attendance.models import Organisation
from common.net import client_ip
from tests.conftest import PASSWORD
from tests.support import PYTHON, ROOT, child_env, client_for, data, error

pytestmark = pytest.mark.django_db

User = get_user_model()
OFFICE = ["10.0.0.0/8"]
INSIDE = "10.1.2.3"
OUTSIDE = "192.0.2.9"
PROXY = "172.16.0.1"


def set_allowlist(organisation, allowlist):
    Organisation.objects.filter(pk=organisation.pk).update(ip_allowlist=allowlist)


def session_for(employee) -> Client:
    client = Client()
    client.force_login(employee.user)
    return client


def organisation_change_url(organisation) -> str:
    return f"/admin/attendance/organisation/{organisation.pk}/change/"


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


# --- the client address ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hops", "remote", "forwarded", "expected"),
    [
        (0, OUTSIDE, "", OUTSIDE),
        (0, OUTSIDE, INSIDE, OUTSIDE),  # no trusted proxy: the header is never read
        (1, PROXY, INSIDE, INSIDE),
        (1, PROXY, f"{INSIDE}, {OUTSIDE}", OUTSIDE),  # spoofed entries on the left ignored
        (1, PROXY, f" 8.8.8.8 ,{INSIDE} , {OUTSIDE} ", OUTSIDE),
        (2, PROXY, f"8.8.8.8, {INSIDE}, 172.16.0.2", INSIDE),
        (2, PROXY, INSIDE, PROXY),  # fewer entries than proxies: it did not come through them
        (1, PROXY, "not-an-address", None),
        (1, PROXY, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip_trusts_only_the_configured_hops(settings, hops, remote, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = hops
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = RequestFactory().get("/", REMOTE_ADDR=remote, **headers)
    assert client_ip(request) == expected


# --- the allowlist covers the admin centre, the pages and the API ---------------------------


ADMIN_PAGES = ["/admin/", "/admin/attendance/employee/", "/admin/attendance/organisation/"]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_admin_centre_refuses_addresses_outside_the_allowlist(people, path):
    set_allowlist(people["admin"].organisation, OFFICE)
    client = session_for(people["admin"])
    refused = client.get(path, REMOTE_ADDR=OUTSIDE)
    assert refused.status_code == 403
    body = refused.content.decode()
    assert "Access from this address is not allowed" in body
    assert OUTSIDE in body
    assert client.get(path, REMOTE_ADDR=INSIDE).status_code == 200


def test_the_page_that_edits_the_allowlist_is_covered_too(people):
    organisation = people["admin"].organisation
    set_allowlist(organisation, OFFICE)
    client = session_for(people["admin"])
    url = organisation_change_url(organisation)
    assert client.get(url, REMOTE_ADDR=OUTSIDE).status_code == 403
    response = client.post(url, {"ip_allowlist": "[]"}, REMOTE_ADDR=OUTSIDE)
    assert response.status_code == 403
    organisation.refresh_from_db()
    assert organisation.ip_allowlist == OFFICE


@pytest.mark.parametrize(
    ("hops", "remote", "forwarded", "status"),
    [
        (0, OUTSIDE, INSIDE, 403),  # the header alone opens nothing
        (0, INSIDE, OUTSIDE, 200),
        (1, PROXY, INSIDE, 200),
        (1, PROXY, f"{INSIDE}, {OUTSIDE}", 403),  # a spoofed office address on the left
        (1, PROXY, f"{OUTSIDE}, {INSIDE}", 200),
        (2, PROXY, f"{INSIDE}, {OUTSIDE}, 172.16.0.2", 403),
        (2, PROXY, f"{OUTSIDE}, {INSIDE}, 172.16.0.2", 200),
        (1, PROXY, "", 403),  # no header: the proxy itself is the client
    ],
)
def test_admin_centre_with_and_without_trusted_proxies(
    people, settings, hops, remote, forwarded, status
):
    settings.TRUSTED_PROXY_COUNT = hops
    set_allowlist(people["admin"].organisation, OFFICE)
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    response = session_for(people["admin"]).get("/admin/", REMOTE_ADDR=remote, **headers)
    assert response.status_code == status


def test_pages_and_session_api_are_refused(people):
    set_allowlist(people["employee"].organisation, OFFICE)
    client = session_for(people["employee"])
    assert client.get("/attendance/", REMOTE_ADDR=OUTSIDE).status_code == 403
    error(client.get("/api/attendance/me", REMOTE_ADDR=OUTSIDE), 403, "IP_RESTRICTED")
    assert client.get("/api/attendance/me", REMOTE_ADDR=INSIDE).status_code == 200


def test_bearer_token_calls_are_refused_by_the_api_permission(people):
    set_allowlist(people["employee"].organisation, OFFICE)
    _token, raw = services.api_token_issue(actor=None, user=people["employee"].user)
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    error(client.get("/api/attendance/me", REMOTE_ADDR=OUTSIDE, **auth), 403, "IP_RESTRICTED")
    assert client.get("/api/attendance/me", REMOTE_ADDR=INSIDE, **auth).status_code == 200


def test_logout_health_and_metrics_stay_open(people):
    set_allowlist(people["admin"].organisation, OFFICE)
    client = session_for(people["admin"])
    for path in ("/livez", "/readyz", "/metrics"):
        assert client.get(path, REMOTE_ADDR=OUTSIDE).status_code == 200, path
    assert client.post("/admin/logout/", REMOTE_ADDR=OUTSIDE).status_code == 302
    assert "_auth_user_id" not in client.session
    client = session_for(people["admin"])
    assert client.post("/accounts/logout/", REMOTE_ADDR=OUTSIDE).status_code == 302
    assert "_auth_user_id" not in client.session


def test_users_without_an_employee_and_anonymous_visitors_are_not_held(people, superuser):
    set_allowlist(people["admin"].organisation, OFFICE)
    root = Client()
    root.force_login(superuser)
    assert root.get("/admin/", REMOTE_ADDR=OUTSIDE).status_code == 200
    assert Client().get("/accounts/login/", REMOTE_ADDR=OUTSIDE).status_code == 200


# --- an allowlist that locks out its author is refused ------------------------------------


def test_api_refuses_an_allowlist_without_the_callers_address(people):
    organisation = people["admin"].organisation
    client = client_for(people["admin"])
    response = client.put(
        "/api/attendance-admin/settings", {"ipAllowlist": OFFICE}, format="json"
    )  # the test client calls from 127.0.0.1
    failure = error(response, 400, "VALIDATION_ERROR")
    [message] = failure["details"]["fields"]["ipAllowlist"]
    assert "127.0.0.1" in message
    assert "lock you out" in message
    organisation.refresh_from_db()
    assert organisation.ip_allowlist == []

    allowed = client.put(
        "/api/attendance-admin/settings",
        {"ipAllowlist": [*OFFICE, "127.0.0.0/8"]},
        format="json",
    )
    assert data(allowed)["ipAllowlist"] == [*OFFICE, "127.0.0.0/8"]


def test_api_checks_the_address_behind_trusted_proxies(people, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    client = client_for(people["admin"])
    response = client.put(
        "/api/attendance-admin/settings",
        {"ipAllowlist": OFFICE},
        format="json",
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=INSIDE,
    )
    assert data(response)["ipAllowlist"] == OFFICE


def admin_form_data(client, url) -> dict:
    form = client.get(url, REMOTE_ADDR="127.0.0.1").context["adminform"].form
    values = {name: form[name].value() for name in form.fields}
    values = {key: ("" if value is None else value) for key, value in values.items()}
    return values


def test_admin_form_refuses_an_allowlist_without_the_admins_address(people):
    organisation = people["admin"].organisation
    client = session_for(people["admin"])
    url = organisation_change_url(organisation)
    values = admin_form_data(client, url)
    values["ip_allowlist"] = "10.0.0.0/8"
    response = client.post(url, values, REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "lock you out" in " ".join(errors["ip_allowlist"])
    organisation.refresh_from_db()
    assert organisation.ip_allowlist == []

    values["ip_allowlist"] = "10.0.0.0/8\n127.0.0.1"
    assert client.post(url, values, REMOTE_ADDR="127.0.0.1").status_code == 302
    organisation.refresh_from_db()
    assert organisation.ip_allowlist == ["10.0.0.0/8", "127.0.0.1"]


def test_a_superuser_of_no_organisation_may_set_any_list(people, superuser):
    organisation = people["admin"].organisation
    client = Client()
    client.force_login(superuser)
    url = organisation_change_url(organisation)
    values = admin_form_data(client, url)
    values["ip_allowlist"] = "10.0.0.0/8"
    assert client.post(url, values, REMOTE_ADDR="127.0.0.1").status_code == 302
    organisation.refresh_from_db()
    assert organisation.ip_allowlist == OFFICE


def test_the_service_outside_a_request_has_no_address_to_protect(people):
    organisation = people["admin"].organisation
    services.organisation_settings_update(
        actor=people["admin"].user, organisation=organisation, ip_allowlist=OFFICE
    )
    organisation.refresh_from_db()
    assert organisation.ip_allowlist == OFFICE


# --- rate limits by route -----------------------------------------------------------------


def limited_count(group: str) -> float:
    return REGISTRY.get_sample_value("attendance_rate_limited_total", {"group": group}) or 0.0


def assert_api_rate_limited(response):
    failure = error(response, 429, "RATE_LIMITED")
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 60
    assert failure["details"]["retryAfterMs"] == retry_after * 1000


IMPORT_API = "/api/attendance/import"


def upload(client):
    return client.post(
        f"{IMPORT_API}/upload?filename=a.csv",
        data=b"employee_no,date\n",
        content_type="application/octet-stream",
    )


API_LIMITS = [
    ("RATELIMIT_UPLOAD", "upload", [upload]),
    (
        "RATELIMIT_PREVIEW",
        "preview",
        [
            lambda c: c.post(f"{IMPORT_API}/prepare", {}, format="json"),
            lambda c: c.post(f"{IMPORT_API}/preview", {}, format="json"),
        ],
    ),
    (
        "RATELIMIT_COMMIT",
        "commit",
        [
            lambda c: c.post(f"{IMPORT_API}/commit", {}, format="json"),
            lambda c: c.post(f"{IMPORT_API}/commit-async", {}, format="json"),
        ],
    ),
    (
        "RATELIMIT_EXPORT",
        "export",
        [
            lambda c: c.get("/api/attendance/export.csv"),
            lambda c: c.get(f"{IMPORT_API}/batches/999999/export.csv"),
            lambda c: c.get("/api/attendance-admin/audit-logs/export.csv"),
        ],
    ),
    (
        "RATELIMIT_ADMIN_WRITE",
        "admin_write",
        [
            lambda c: c.put("/api/attendance-admin/settings", {"graceMinutes": 7}, format="json"),
            lambda c: c.post("/api/attendance-admin/users/batch/roles/assign", {}, format="json"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("setting", "group", "calls"), API_LIMITS, ids=[g for _, g, _ in API_LIMITS]
)
def test_each_api_limit_answers_429_and_is_counted(
    people, settings, tmp_path, setting, group, calls
):
    settings.IMPORT_STORAGE_DIR = tmp_path
    setattr(settings, setting, f"{len(calls)}/m")
    client = client_for(people["admin"])
    for call in calls:  # the group's routes share one budget
        assert call(client).status_code != 429
    before = limited_count(group)
    for call in calls:
        assert_api_rate_limited(call(client))
    assert limited_count(group) == before + len(calls)


def test_reads_are_not_admin_writes(people, settings):
    settings.RATELIMIT_ADMIN_WRITE = "1/m"
    client = client_for(people["admin"])
    for _attempt in range(3):
        assert client.get("/api/attendance-admin/settings").status_code == 200


def test_every_api_call_counts_against_the_api_limit(people, settings):
    settings.RATELIMIT_API = "2/m"
    client = session_for(people["employee"])
    assert client.get("/api/attendance/me").status_code == 200
    assert client.get("/api/attendance/records").status_code == 200
    before = limited_count("api")
    assert_api_rate_limited(client.get("/api/attendance/me"))
    assert limited_count("api") == before + 1
    # Another caller has their own budget.
    assert session_for(people["approver"]).get("/api/attendance/me").status_code == 200


def test_bearer_token_callers_each_have_a_budget(people, settings):
    settings.RATELIMIT_EXPORT = "1/m"
    _token, employee_raw = services.api_token_issue(actor=None, user=people["employee"].user)
    _token, approver_raw = services.api_token_issue(actor=None, user=people["approver"].user)
    client = Client()
    employee = {"HTTP_AUTHORIZATION": f"Bearer {employee_raw}"}
    approver = {"HTTP_AUTHORIZATION": f"Bearer {approver_raw}"}
    assert client.get("/api/attendance/export.csv", **employee).status_code == 200
    assert_api_rate_limited(client.get("/api/attendance/export.csv", **employee))
    assert client.get("/api/attendance/export.csv", **approver).status_code == 200


def test_admin_centre_writes_are_limited_with_a_page(people, settings):
    settings.RATELIMIT_ADMIN_WRITE = "1/m"
    organisation = people["admin"].organisation
    client = session_for(people["admin"])
    url = organisation_change_url(organisation)
    values = admin_form_data(client, url)
    values["grace_minutes"] = 9
    assert client.post(url, values).status_code == 302
    before = limited_count("admin_write")
    values["grace_minutes"] = 11
    refused = client.post(url, values)
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert "Too many requests" in refused.content.decode()
    assert limited_count("admin_write") == before + 1
    organisation.refresh_from_db()
    assert organisation.grace_minutes == 9
    assert client.get(url).status_code == 200  # reading goes on


def test_the_rollback_page_counts_as_a_commit(people, settings):
    settings.RATELIMIT_COMMIT = "1/m"
    client = session_for(people["admin"])
    assert client.post("/imports/batches/999999/rollback/").status_code != 429
    refused = client.post("/imports/batches/999999/rollback/")
    assert refused.status_code == 429
    assert refused["Retry-After"]


@override_settings(RATELIMIT_PUNCH="1/m")
def test_the_punch_limit_is_counted_too(people):
    client = client_for(people["employee"])
    assert client.post("/api/attendance/punch", {"kind": "in"}, format="json").status_code == 201
    before = limited_count("attendance.punch")
    assert_api_rate_limited(client.post("/api/attendance/punch", {"kind": "out"}, format="json"))
    assert limited_count("attendance.punch") == before + 1


def test_defaults_are_beyond_a_person(settings):
    for name in (
        "RATELIMIT_UPLOAD",
        "RATELIMIT_PREVIEW",
        "RATELIMIT_COMMIT",
        "RATELIMIT_EXPORT",
        "RATELIMIT_ADMIN_WRITE",
    ):
        count, period = getattr(settings, name).split("/")
        assert period == "m" and int(count) >= 30, name


def test_the_counter_is_exported(client):
    assert "attendance_rate_limited_total" in client.get("/metrics").content.decode()


# --- production settings -------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("hosts", ["*", "attendance.example.com,*"])
def test_production_refuses_any_host(hosts):
    import secrets

    result = subprocess.run(
        [PYTHON, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=child_env(
            DJANGO_ENV="production",
            SECRET_KEY=secrets.token_urlsafe(60),
            ALLOWED_HOSTS=hosts,
            DEBUG="false",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must name the served hosts, not '*'" in result.stderr
