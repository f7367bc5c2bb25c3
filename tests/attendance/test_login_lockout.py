"""Login throttling and lockout on both login forms (the app's and the admin centre's),
posted through the real forms, and the audited unlock (service, command, admin action)."""

from __future__ import annotations

import io
import re

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.management import call_command
from django.test import Client
from prometheus_client import REGISTRY

from attendance import lockouts
from audit.models import AuditEvent
from common.exceptions import Forbidden
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

User = get_user_model()

PAGE_LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
LOGINS = [PAGE_LOGIN, ADMIN_LOGIN]
LOCKOUTS = "/admin/axes/accessattempt/"
COOLOFF_SECONDS = 15 * 60


def sign_in(client, url, username, password, address="198.51.100.7", **extra):
    data = {"username": username, "password": password}
    if url == ADMIN_LOGIN:
        data["next"] = "/admin/"
    return client.post(url, data, REMOTE_ADDR=address, **extra)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def assert_locked(response):
    assert response.status_code == 429, response.content[:500]
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= COOLOFF_SECONDS
    assert "Too many failed sign-ins" in response.content.decode()
    return retry_after


def rate_limited_count(group: str) -> float:
    return REGISTRY.get_sample_value("attendance_rate_limited_total", {"group": group}) or 0.0


@pytest.fixture
def superuser(db):
    return User.objects.create_superuser("root", "root@example.com", PASSWORD)


@pytest.mark.parametrize("url", LOGINS)
def test_five_wrong_passwords_lock_the_user_out_even_with_the_right_one(people, url):
    username = people["admin"].user.username  # staff: the admin login accepts them
    client = Client()
    before = rate_limited_count(lockouts.LOCKOUT_GROUP)
    for _attempt in range(4):
        assert sign_in(client, url, username, "wrong").status_code == 200
    retry_after = assert_locked(sign_in(client, url, username, "wrong"))
    assert retry_after > COOLOFF_SECONDS - 60

    refused = sign_in(client, url, username, PASSWORD)
    assert_locked(refused)
    assert not signed_in(client)
    # The login page itself, with its form, not a bare message.
    assert 'name="password"' in refused.content.decode()
    assert rate_limited_count(lockouts.LOCKOUT_GROUP) == before + 2
    # Refused attempts during the lockout do not extend it.
    assert AccessAttempt.objects.get(username=username).failures_since_start == 5


def test_the_lockout_of_one_login_form_holds_on_the_other(people):
    username = people["admin"].user.username
    client = Client()
    for _attempt in range(5):
        sign_in(client, PAGE_LOGIN, username, "wrong")
    assert_locked(sign_in(client, ADMIN_LOGIN, username, PASSWORD))
    assert not signed_in(client)


def test_one_username_guessed_from_many_addresses_is_locked(people):
    username = people["employee"].user.username
    for number in range(5):
        sign_in(Client(), PAGE_LOGIN, username, "wrong", address=f"203.0.113.{number + 1}")
    client = Client()
    assert_locked(sign_in(client, PAGE_LOGIN, username, PASSWORD, address="203.0.113.99"))
    assert not signed_in(client)
    # Other people are not affected.
    other = Client()
    sign_in(other, PAGE_LOGIN, people["approver"].user.username, PASSWORD, address="203.0.113.99")
    assert signed_in(other)


@pytest.mark.parametrize("url", LOGINS)
def test_spraying_25_usernames_from_one_address_is_stopped(people, url, settings):
    assert settings.LOGIN_ADDRESS_FAILURE_LIMIT == 20
    client = Client()
    answers = [
        sign_in(client, url, f"sprayed{number}", "Summer2026!").status_code for number in range(25)
    ]
    assert answers[:19] == [200] * 19
    assert answers[19:] == [429] * 6
    # A real user with the right password from that address is refused too …
    assert_locked(sign_in(client, url, people["admin"].user.username, PASSWORD))
    assert not signed_in(client)
    # … and gets in from anywhere else.
    elsewhere = Client()
    sign_in(elsewhere, url, people["admin"].user.username, PASSWORD, address="192.0.2.10")
    assert signed_in(elsewhere)


def test_the_address_comes_through_trusted_proxies_only(people, settings):
    """Behind one proxy, spoofed X-Forwarded-For entries do not give the sprayer new
    addresses: the lock is on the entry the proxy wrote."""
    settings.TRUSTED_PROXY_COUNT = 1
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 5
    client = Client()
    for number in range(5):
        sign_in(
            client,
            PAGE_LOGIN,
            f"sprayed{number}",
            "wrong",
            address="10.9.9.9",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{number}, 198.51.100.50",
        )
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"198.51.100.50"}
    assert_locked(
        sign_in(
            client,
            PAGE_LOGIN,
            people["employee"].user.username,
            PASSWORD,
            address="10.9.9.9",
            HTTP_X_FORWARDED_FOR="192.0.2.77, 198.51.100.50",
        )
    )


@pytest.mark.parametrize("url", LOGINS)
def test_login_posts_are_rate_limited_per_username(people, url, settings):
    settings.RATELIMIT_LOGIN = "3/m"
    username = people["employee"].user.username
    for number in range(3):
        sign_in(Client(), url, username, "wrong", address=f"192.0.2.{number + 1}")
    before = rate_limited_count("login")
    response = sign_in(Client(), url, username, PASSWORD, address="192.0.2.200")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert "Too many attempts" in response.content.decode()
    assert rate_limited_count("login") == before + 1


@pytest.mark.parametrize("url", LOGINS)
def test_login_posts_are_rate_limited_per_address(people, url, settings):
    settings.RATELIMIT_LOGIN_ADDRESS = "3/m"
    client = Client()
    for number in range(3):
        sign_in(client, url, f"someone{number}", "wrong")
    before = rate_limited_count("login_address")
    response = sign_in(client, url, people["admin"].user.username, PASSWORD)
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()
    assert not signed_in(client)
    assert rate_limited_count("login_address") == before + 1
    # Reading the page is never limited.
    assert client.get(url, REMOTE_ADDR="198.51.100.7").status_code == 200


def test_auth_signals_still_fire_for_failed_locked_and_good_logins(people):
    failed, logged_in = [], []

    def on_failed(sender, credentials, request=None, **kwargs):
        failed.append(credentials.get("username"))

    def on_logged_in(sender, request, user, **kwargs):
        logged_in.append(user.username)

    user_login_failed.connect(on_failed)
    user_logged_in.connect(on_logged_in)
    try:
        username = people["employee"].user.username
        for _attempt in range(6):  # five to lock, one refused while locked
            sign_in(Client(), PAGE_LOGIN, username, "wrong")
        sign_in(Client(), PAGE_LOGIN, people["approver"].user.username, PASSWORD)
    finally:
        user_login_failed.disconnect(on_failed)
        user_logged_in.disconnect(on_logged_in)
    assert failed == [username] * 6
    assert logged_in == [people["approver"].user.username]


# --- the audited unlock --------------------------------------------------------------------


def lock(username, address="198.51.100.7"):
    for _attempt in range(5):
        sign_in(Client(), PAGE_LOGIN, username, "wrong", address=address)
    assert_locked(sign_in(Client(), PAGE_LOGIN, username, PASSWORD, address=address))


def test_unlock_by_username_lets_the_user_in_and_is_audited(people, superuser):
    username = people["employee"].user.username
    lock(username)
    assert lockouts.login_lockout_reset(actor=superuser, username=username) == 1
    client = Client()
    sign_in(client, PAGE_LOGIN, username, PASSWORD)
    assert signed_in(client)
    event = AuditEvent.objects.get(action="security.lockout.reset")
    assert event.actor_id == superuser.pk
    assert event.organisation_id == people["employee"].organisation_id
    assert event.data == {"username": username, "ip": None, "attemptsCleared": 1}


def test_unlock_by_address(people, superuser, settings):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 5
    client = Client()
    for number in range(5):
        sign_in(client, PAGE_LOGIN, f"sprayed{number}", "wrong", address="192.0.2.66")
    assert_locked(
        sign_in(client, PAGE_LOGIN, people["admin"].user.username, PASSWORD, "192.0.2.66")
    )
    assert lockouts.login_lockout_reset(actor=superuser, ip="192.0.2.66") == 5
    sign_in(client, PAGE_LOGIN, people["admin"].user.username, PASSWORD, address="192.0.2.66")
    assert signed_in(client)
    event = AuditEvent.objects.get(action="security.lockout.reset")
    assert event.data == {"username": None, "ip": "192.0.2.66", "attemptsCleared": 5}


def test_who_may_unlock(people, other_organisation, make_person):
    username = people["employee"].user.username
    lock(username)
    with pytest.raises(Forbidden):  # not an admin
        lockouts.login_lockout_reset(actor=people["approver"].user, username=username)
    foreign_admin = make_person(other_organisation, "employee", "admin")
    with pytest.raises(Forbidden):  # an admin of another organisation
        lockouts.login_lockout_reset(actor=foreign_admin.user, username=username)
    with pytest.raises(Forbidden):  # addresses are for superusers
        lockouts.login_lockout_reset(actor=people["admin"].user, ip="198.51.100.7")
    assert not AuditEvent.objects.filter(action="security.lockout.reset").exists()
    assert lockouts.login_lockout_reset(actor=people["admin"].user, username=username) == 1


def test_login_unlock_command(people):
    username = people["employee"].user.username
    lock(username)
    out = io.StringIO()
    call_command("login_unlock", "--username", username, stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip().splitlines()[-1] == "1"
    client = Client()
    sign_in(client, PAGE_LOGIN, username, PASSWORD)
    assert signed_in(client)
    event = AuditEvent.objects.get(action="security.lockout.reset")
    assert event.actor_id is None
    assert event.data["username"] == username

    out = io.StringIO()
    call_command("login_unlock", "--ip", "198.51.100.7", stdout=out, stderr=io.StringIO())
    assert out.getvalue().strip() == "0"


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_admin_centre_lists_and_unlocks_the_organisations_lockouts(
    people, other_organisation, make_person
):
    username = people["employee"].user.username
    lock(username)
    outsider = make_person(other_organisation, "employee", username="outsider_user")
    lock(outsider.user.username, address="192.0.2.8")

    client = admin_client(people["admin"].user)
    page = client.get(LOCKOUTS)
    assert page.status_code == 200
    listed = page.content.decode()
    assert username in listed
    assert "outsider_user" not in listed
    assert "unlock_usernames" in listed
    assert "unlock_addresses" not in listed  # superusers only

    ids = list(AccessAttempt.objects.values_list("pk", flat=True))
    response = client.post(
        LOCKOUTS,
        {"action": "unlock_usernames", "_selected_action": [str(pk) for pk in ids]},
        follow=True,
    )
    assert response.status_code == 200
    assert re.search(rf"Unlocked {username}: 1 failed sign-in", response.content.decode())
    # The other organisation's row was not visible, so not selected.
    assert list(AccessAttempt.objects.values_list("username", flat=True)) == ["outsider_user"]
    event = AuditEvent.objects.get(action="security.lockout.reset")
    assert event.actor_id == people["admin"].user.pk
    signed = Client()
    sign_in(signed, PAGE_LOGIN, username, PASSWORD)
    assert signed_in(signed)


def test_admin_centre_lockouts_for_superusers_and_wrong_roles(people, superuser):
    lock(people["employee"].user.username, address="192.0.2.9")
    assert admin_client(people["approver"].user).get(LOCKOUTS).status_code == 403  # not staff
    root = admin_client(superuser)
    assert "unlock_addresses" in root.get(LOCKOUTS).content.decode()
    pk = AccessAttempt.objects.get().pk
    root.post(LOCKOUTS, {"action": "unlock_addresses", "_selected_action": [str(pk)]})
    assert not AccessAttempt.objects.exists()
    assert AuditEvent.objects.get(action="security.lockout.reset").data["ip"] == "192.0.2.9"
    # Deleting rows directly (no audit) is not offered.
    assert root.get(f"{LOCKOUTS}{pk}/delete/").status_code in (302, 403, 404)
