"""Secret masking, both ways: what must be masked and what must stay (audit/masking.py)."""

from __future__ import annotations

import base64

import pytest

from attendance import services
from audit.masking import MASK, is_secret_key, key_words, mask_secrets, mask_text
from audit.models import AuditEvent
from audit.services import audit_record

# --- key names --------------------------------------------------------------------------

SECRET_KEYS = [
    "password",
    "Password",
    "passwd",
    "pwd",
    "password2",  # Django's confirmation field
    "new_password",
    "oldPassword",
    "passphrase",
    "secret",
    "client_secret",
    "webhookSecret",
    "SECRETS",
    "token",
    "access_token",
    "refreshToken",
    "id_token",
    "commit_token",
    "commitToken",
    "apiToken",
    "X-CSRFToken",
    "csrftoken",
    "csrfmiddlewaretoken",
    "api_key",
    "apikey",
    "APIKey",
    "x-api-key",
    "stripe_api_key",
    "privateKey",
    "private_key",
    "PRIVATE-KEY",
    "ssh_private_key",
    "secret_key",
    "aws_secret_access_key",
    "credentials",
    "dbCredentials",
    "authorization",
    "Authorization",
    "HTTP_AUTHORIZATION",
    "proxy-authorization",
    "cookie",
    "Set-Cookie",
    "sessionCookie",
    "sessionid",
    "SessionID",
    "session_key",
    "otp",
    "signature",
    "webhook_signature",
    "dsn",
    "sentry_dsn",
    "DATABASE_URL",
    "bearer",
]

PLAIN_KEYS = [
    "passport_no",
    "passportNumber",
    "bypassed",
    "bypass",
    "tokens_issued",
    "tokensIssued",
    "token_count",
    "tokens",
    "token_prefix",
    "prefix",
    "key_hash",
    "password_changed",
    "passwordless",
    "pin",  # the employee's id on the attendance device, not a secret here
    "device_pin",
    "devicePin",
    "idempotencyKey",
    "idempotency_key",
    "source_key",
    "key",
    "aws_access_key_id",
    "session_started",
    "username",
    "employeeNo",
    "name",
    "secretary",
    "signed_by",
    "url",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_key_names_are_masked(key):
    assert is_secret_key(key), key_words(key)
    assert mask_secrets({key: "value-1"}) == {key: MASK}


@pytest.mark.parametrize("key", PLAIN_KEYS)
def test_plain_key_names_are_kept(key):
    assert not is_secret_key(key), key_words(key)
    assert mask_secrets({key: "value-1"}) == {key: "value-1"}


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("privateKey", ("private", "key")),
        ("private_key", ("private", "key")),
        ("PRIVATE-KEY", ("private", "key")),
        ("APIKey", ("api", "key")),
        ("X-CSRFToken", ("x", "csrf", "token")),
        ("newPassword2", ("new", "password")),
        ("a.b c", ("a", "b", "c")),
    ],
)
def test_key_names_are_normalised_to_words(key, words):
    assert key_words(key) == words


def test_a_secret_key_masks_whatever_its_value_holds():
    assert mask_secrets(
        {"credentials": {"user": "u", "password": "p"}, "otp": 123456, "secrets": ["a", "b"]}
    ) == {"credentials": MASK, "otp": MASK, "secrets": MASK}


def test_empty_and_boolean_values_of_secret_keys_are_kept():
    # They hold no secret, and "no password was set" is worth reading.
    assert mask_secrets({"password": None, "token": "", "api_key": True}) == {
        "password": None,
        "token": "",
        "api_key": True,
    }


# --- value patterns ---------------------------------------------------------------------

APP_TOKEN = services.TOKEN_PREFIX + "Qx7-_aB3" * 5 + "zz9"  # 43 characters, like secrets'
JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpM-eJf36P"
BASIC = base64.b64encode(b"alice:wonderland").decode()

MASKED_VALUES = [
    ("postgres://app:s3cret@db:5432/attendance", "postgres://app:***@db:5432/attendance"),
    ("redis://:hunter2@cache:6379/0", "redis://:***@cache:6379/0"),
    ("amqp://u:p@ss@broker/vhost", "amqp://u:***@broker/vhost"),  # an unencoded @
    ("connect to postgresql://a:b@h/d now", "connect to postgresql://a:***@h/d now"),
    ("host=db user=app password=secret dbname=x", "host=db user=app password=*** dbname=x"),
    ("https://x.test/cb?token=abc123&page=2", "https://x.test/cb?token=***&page=2"),
    ("sessionid=abc123; csrftoken=def456", "sessionid=***; csrftoken=***"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "AWS_SECRET_ACCESS_KEY=***"),
    ('{"password": "x", "name": "y"}', '{"password": "***", "name": "y"}'),
    ("Bearer abcdefghijklmnop", "Bearer ***"),
    ("bearer abcdefghijklmnop", "bearer ***"),
    ("Authorization: Bearer " + APP_TOKEN, "Authorization: Bearer ***"),
    (f"Basic {BASIC}", "Basic ***"),
    ("Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b", "Token ***"),
    (JWT, MASK),
    (f"id_token was {JWT}.", "id_token was ***."),
    (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nnext",
        "***\nnext",
    ),
    ("-----BEGIN PRIVATE KEY-----\nMIIE truncated", MASK),
    (f"the token {APP_TOKEN} leaked", "the token *** leaked"),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "stripe ***"),
    ("ghp_16C7e42F292c6912E7710c838347Ae178B4a", MASK),
    ("key AKIAIOSFODNN7EXAMPLE", "key ***"),
]

PLAIN_VALUES = [
    "postgres://db:5432/attendance",  # no password
    "https://user@example.com/path",
    "http://host:8080/p?email=a@b.com",  # a port and an @ later are not a password
    "tokens_issued=5 token_count=3",
    "the bearer of bad news",
    "Basic authentication failed",
    "Token revoked by an admin",
    "Invalid token: expired",
    "The commit token is invalid or expired.",
    "passport_no=E1234567",
    "att_Qx7-_a",  # the 10-character prefix events keep to tell tokens apart
    "Correction #12 approved",
    "每日统计 26-05-01 星期五",
    "",
]


@pytest.mark.parametrize(("text", "masked"), MASKED_VALUES)
def test_secrets_inside_values_are_masked(text, masked):
    assert mask_text(text) == masked
    # Whatever the key, at any depth.
    assert mask_secrets({"note": text, "list": [{"deep": text}]}) == {
        "note": masked,
        "list": [{"deep": masked}],
    }


@pytest.mark.parametrize("text", PLAIN_VALUES)
def test_plain_values_are_kept(text):
    assert mask_text(text) == text


def test_masking_returns_new_objects_and_keeps_other_types():
    data = {"n": 1, "f": 1.5, "b": False, "none": None, "t": ("a", "password=x")}
    assert mask_secrets(data) == {
        "n": 1,
        "f": 1.5,
        "b": False,
        "none": None,
        "t": ["a", "password=***"],
    }
    assert data["t"] == ("a", "password=x")


# --- through audit_record, on the database ----------------------------------------------


def test_the_issue_examples_are_masked_and_kept_as_stored(db):
    event = audit_record(
        actor=None,
        action="test.masking",
        data={
            "privateKey": "-----BEGIN EC PRIVATE KEY-----\nabc\n-----END EC PRIVATE KEY-----",
            "credentials": {"user": "u", "password": "p"},
            "settings": {"DATABASE_MIGRATE_URL": "postgres://owner:0wn3r@db/attendance"},
            "headers": [{"name": "Authorization", "value": "bearer abcdefghij123"}],
            "sessionid": "k2j3h4",
            "passport_no": "E1234567",
            "bypassed": True,
            "tokens_issued": 3,
            "device_pin": "00042",
            "prefix": "att_Qx7-_a",
        },
    )
    stored = AuditEvent.objects.get(pk=event.pk).data
    assert stored == {
        "privateKey": MASK,
        "credentials": MASK,
        "settings": {"DATABASE_MIGRATE_URL": "postgres://owner:***@db/attendance"},
        "headers": [{"name": "Authorization", "value": "bearer ***"}],
        "sessionid": MASK,
        "passport_no": "E1234567",
        "bypassed": True,
        "tokens_issued": 3,
        "device_pin": "00042",
        "prefix": "att_Qx7-_a",
    }


def test_an_issued_api_token_never_reaches_the_log_but_its_prefix_does(people):
    admin, employee = people["admin"], people["employee"]
    token, raw = services.api_token_issue(actor=admin.user, user=employee.user, name="ci")
    event = AuditEvent.objects.get(action="attendance.token.issued", target_id=str(token.pk))
    assert event.data["prefix"] == token.prefix == raw[:10]
    assert raw not in str(event.data)
    # And a raw token pasted anywhere into an event is masked.
    pasted = audit_record(actor=None, action="test.paste", data={"comment": f"use {raw}"})
    assert AuditEvent.objects.get(pk=pasted.pk).data == {"comment": "use ***"}
