"""The app's own error pages (templates/403.html, 404.html, 500.html) with DEBUG off, the
envelope kept under /api/, the admin centre's refusal of signed-in outsiders, and the
favicon."""

from __future__ import annotations

import html

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client
from django.urls import path

import config.urls

pytestmark = pytest.mark.django_db


def boom(request):
    raise RuntimeError("a bug in a view")


def refused(request):
    raise PermissionDenied("an internal reason")


# The site's URLs plus views that fail, under a page path and under /api/.
urlpatterns = [
    path("boom/", boom),
    path("refused/", refused),
    path("api/boom", boom),
    path("api/refused", refused),
    *config.urls.urlpatterns,
]
handler403 = config.urls.handler403
handler404 = config.urls.handler404
handler500 = config.urls.handler500


@pytest.fixture(autouse=True)
def _debug_off(settings):
    settings.DEBUG = False


def signed_in(employee) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(employee.user)
    return client


def page_text(response) -> str:
    assert response["Content-Type"].startswith("text/html")
    return html.unescape(response.content.decode())


def assert_envelope(response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["ok"] is False
    assert body["error"]["code"] == code


# --- 404 --------------------------------------------------------------------------------


def test_an_unknown_url_shows_the_apps_404_page(people):
    response = signed_in(people["employee"]).get("/no/such/page/")
    assert response.status_code == 404
    text = page_text(response)
    assert "There is no page here" in text
    assert "Nothing is at /no/such/page/." in text
    assert '<a href="/">Back to the start page</a>' in text
    assert "My month" in text  # the app's frame (base.html), not Django's bare page
    assert "Using the URLconf" not in text  # nor its debug page


def test_an_anonymous_visitor_gets_the_404_page_too():
    response = Client().get("/no/such/page/")
    assert response.status_code == 404
    assert "There is no page here" in page_text(response)


def test_the_api_keeps_its_envelope_for_unknown_paths(people):
    assert_envelope(signed_in(people["employee"]).get("/api/no/such/thing"), 404, "NOT_FOUND")


# --- 500 --------------------------------------------------------------------------------


@pytest.mark.urls(__name__)
def test_a_failing_page_shows_the_apps_500_page(people):
    response = signed_in(people["employee"]).get("/boom/")
    assert response.status_code == 500
    text = page_text(response)
    assert "Something went wrong" in text
    assert '<a href="/">Back to the start page</a>' in text
    assert "a bug in a view" not in text
    assert "Traceback" not in text


@pytest.mark.urls(__name__)
def test_a_failing_api_view_keeps_the_envelope(people):
    assert_envelope(signed_in(people["employee"]).get("/api/boom"), 500, "INTERNAL_ERROR")


# --- 403 --------------------------------------------------------------------------------


@pytest.mark.urls(__name__)
def test_a_refusal_shows_the_apps_403_page(people):
    response = signed_in(people["employee"]).get("/refused/")
    assert response.status_code == 403
    text = page_text(response)
    assert "You are not allowed to open this page" in text
    assert "an internal reason" not in text
    assert '<a href="/">Back to the start page</a>' in text


@pytest.mark.urls(__name__)
def test_a_refusal_under_the_api_keeps_the_envelope(people):
    assert_envelope(signed_in(people["employee"]).get("/api/refused"), 403, "FORBIDDEN")


@pytest.mark.parametrize("who", ["employee", "approver", "importer"])
def test_a_signed_in_person_without_the_admin_role_gets_the_403_page_at_admin(people, who):
    response = signed_in(people[who]).get("/admin/")
    assert response.status_code == 403
    text = page_text(response)
    assert "You are not allowed to open this page" in text
    assert "My month" in text
    assert "Log in again" not in text and 'name="password"' not in text


def test_an_anonymous_visitor_at_admin_is_sent_to_the_admin_login():
    response = Client().get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_admin_still_opens_the_admin_centre(people):
    assert signed_in(people["admin"]).get("/admin/").status_code == 200


def test_a_signed_in_outsider_may_still_log_out_through_the_admin(people):
    response = signed_in(people["employee"]).post("/admin/logout/")
    assert response.status_code in (200, 302)
    assert "_auth_user_id" not in Client().session


# --- favicon ----------------------------------------------------------------------------


def test_the_favicon_answers_for_everybody(people):
    for client in (Client(), signed_in(people["employee"])):
        response = client.get("/favicon.ico")
        assert response.status_code == 200
        assert response["Content-Type"] == "image/svg+xml"
        assert response.content.lstrip().startswith(b"<svg")
        assert "max-age=86400" in response["Cache-Control"]


def test_the_admin_pages_link_the_icon(people):
    text = page_text(signed_in(people["admin"]).get("/admin/"))
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in text
