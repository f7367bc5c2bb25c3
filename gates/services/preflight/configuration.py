"""Configuration: Django's deploy checks, the secrets, the demo accounts, DEBUG.

- **check --deploy.** Django's checks with the deploy tags, as ``check --deploy --database
  default --fail-level WARNING`` would run them (with the database, so that the project's
  least-privilege check ``common.W002`` runs). ``GATES_PREFLIGHT_SILENCED`` ({id: reason})
  accepts an issue with its reason in the evidence; an issue silenced by
  ``SILENCED_SYSTEM_CHECKS`` is accepted (as the command does) but listed as having no
  reason, with a warning.
- **Secrets.** Values are judged, never written to the evidence: SECRET_KEY (and its
  fallbacks) at least 50 characters, 10 distinct ones, not repetitive (compresses to more
  than 60% of its length: random keys do not compress, ``"abc…" * 5`` does), no placeholder
  (``CHANGE_ME`` as in deploy/env.example, ``example``, ``insecure`` …) and not the
  development default; every password or token in a setting or a DSN (database, Redis,
  broker, result backend, caches, e-mail, the gates' token and webhooks) not a placeholder
  or common default and at least 12 characters. An absent password (peer or socket
  authentication) is not a secret and is not judged. ``DEMO_PASSWORD`` is not used by
  production (``seed_demo`` refuses to run there); what is checked instead is that no demo
  account still signs in with the demo password (``demo_accounts``).
"""

from __future__ import annotations

import zlib
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

from gates.services.preflight.exposure import cache_locations, split_urls
from gates.services.runs import CheckFailed, GateContext

MIN_SECRET_KEY_LENGTH = 50
MIN_SECRET_KEY_DISTINCT = 10
MIN_SECRET_KEY_COMPRESSION = 0.6
MIN_PASSWORD_LENGTH = 12
# Lower-case fragments that mark a value someone was meant to replace.
# ("build-only" is deploy/Dockerfile's collectstatic key.)
PLACEHOLDER_MARKERS = (
    "change_me",
    "changeme",
    "change-me",
    "replace_me",
    "replaceme",
    "replace-me",
    "placeholder",
    "example",
    "insecure",
    "dummy",
    "build-only",
)
COMMON_PASSWORDS = {
    "password",
    "passw0rd",
    "secret",
    "postgres",
    "redis",
    "admin",
    "root",
    "attendance",
    "attendance-demo",
    "letmein",
    "qwerty",
    "123456",
    "12345678",
    "test",
    "guest",
}


# --- check --deploy ----------------------------------------------------------------------


def probe_deploy_checks(ctx: GateContext, *, with_database: bool):
    from django.core import checks

    reasons = dict(settings.GATES_PREFLIGHT_SILENCED)
    system_silenced = list(getattr(settings, "SILENCED_SYSTEM_CHECKS", []) or [])
    issues = checks.run_checks(
        include_deployment_checks=True, databases=["default"] if with_database else None
    )
    failing, accepted, below = [], [], []
    for issue in issues:
        entry = {
            "id": issue.id,
            "level": _level_name(issue.level),
            "message": str(issue.msg)[:500],
            "hint": str(issue.hint or "")[:500],
            "object": str(issue.obj)[:200] if issue.obj is not None else "",
        }
        if issue.id in reasons:
            accepted.append(
                {**entry, "reason": reasons[issue.id], "by": "GATES_PREFLIGHT_SILENCED"}
            )
        elif issue.is_silenced():
            accepted.append({**entry, "reason": "", "by": "SILENCED_SYSTEM_CHECKS"})
            ctx.warn(
                _(
                    "%(id)s is silenced by SILENCED_SYSTEM_CHECKS without a reason; record one "
                    "in GATES_PREFLIGHT_SILENCED"
                )
                % {"id": issue.id}
            )
        elif issue.level >= checks.WARNING:
            failing.append(entry)
        else:
            below.append(entry)
    silenced = [
        {"id": check_id, "reason": reason, "by": "GATES_PREFLIGHT_SILENCED"}
        for check_id, reason in reasons.items()
    ] + [
        {"id": check_id, "reason": reasons.get(check_id, ""), "by": "SILENCED_SYSTEM_CHECKS"}
        for check_id in system_silenced
    ]
    evidence = {
        "issues": failing,
        "accepted": accepted,
        "belowWarning": below,
        "silenced": silenced,
        "databaseChecks": with_database,
    }
    ctx.figures["deployIssues"] = len(failing)
    ctx.figures["silencedChecks"] = len(silenced)
    if failing:
        raise CheckFailed(
            _("%(count)s issue(s) at WARNING or above: %(ids)s")
            % {"count": len(failing), "ids": ", ".join(entry["id"] for entry in failing)},
            evidence=evidence,
        )
    detail = _("no issue at WARNING or above")
    if accepted:
        detail += _("; accepted: %(ids)s") % {
            "ids": ", ".join(
                f"{entry['id']} ({entry['reason'] or _('no reason recorded')})"
                for entry in accepted
            )
        }
    if not with_database:
        detail += _("; the database checks were not run (the database is unreachable)")
    return detail, evidence


def _level_name(level: int) -> str:
    from django.core import checks

    for name in ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"):
        if level >= getattr(checks, name):
            return name
    return str(level)


# --- secrets and DEBUG -------------------------------------------------------------------


def secret_key_problems(key: str) -> list[str]:
    """Why ``key`` is unfit as a signing key (empty when it is fit)."""
    if not key:
        return [_("empty")]
    if key == getattr(settings, "DEVELOPMENT_SECRET_KEY", None):
        return [_("the development default")]
    problems = []
    if key.startswith("django-insecure-"):
        problems.append(_("a key generated by startproject for development"))
    if len(key) < MIN_SECRET_KEY_LENGTH:
        problems.append(
            _("length %(length)s, below %(minimum)s")
            % {"length": len(key), "minimum": MIN_SECRET_KEY_LENGTH}
        )
    if len(set(key)) < MIN_SECRET_KEY_DISTINCT:
        problems.append(
            _("only %(count)s distinct characters, below %(minimum)s")
            % {"count": len(set(key)), "minimum": MIN_SECRET_KEY_DISTINCT}
        )
    elif len(zlib.compress(key.encode(), 9)) < MIN_SECRET_KEY_COMPRESSION * len(key.encode()):
        problems.append(_("repetitive (it compresses well: not random)"))
    problems += _placeholder_problems(key)
    return problems


def password_problems(value: str) -> list[str]:
    """Why ``value`` is unfit as a password or token (empty when it is fit)."""
    problems = _placeholder_problems(value)
    if value.strip().lower() in COMMON_PASSWORDS:
        problems.append(_("a common default"))
    if len(value) < MIN_PASSWORD_LENGTH:
        problems.append(
            _("length %(length)s, below %(minimum)s")
            % {"length": len(value), "minimum": MIN_PASSWORD_LENGTH}
        )
    return problems


def _placeholder_problems(value: str) -> list[str]:
    lowered = value.lower()
    found = [marker for marker in PLACEHOLDER_MARKERS if marker in lowered]
    return [_("holds the placeholder “%(marker)s”") % {"marker": found[0]}] if found else []


def _url_password(url: str) -> str:
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:
        return ""


def _secret_settings() -> list[tuple[str, str, str]]:
    """(setting, "key" | "password", value) of every secret the settings hold."""
    secrets = [("SECRET_KEY", "key", settings.SECRET_KEY)]
    secrets += [
        (f"SECRET_KEY_FALLBACKS[{index}]", "key", fallback)
        for index, fallback in enumerate(getattr(settings, "SECRET_KEY_FALLBACKS", []) or [])
    ]
    for alias, database in settings.DATABASES.items():
        secrets.append((f"DATABASES[{alias}] password", "password", database.get("PASSWORD")))
    owner = getattr(settings, "DATABASE_OWNER", None) or {}
    secrets.append(("DATABASE_MIGRATE_URL password", "password", owner.get("PASSWORD")))
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        for url in split_urls(getattr(settings, name, "") or ""):
            secrets.append((f"{name} password", "password", _url_password(url)))
    for alias, config in settings.CACHES.items():
        for location in cache_locations(config):
            secrets.append((f"CACHES[{alias}] password", "password", _url_password(location)))
    for name in ("EMAIL_HOST_PASSWORD", "GATES_TOKEN"):
        secrets.append((name, "password", getattr(settings, name, "")))
    for index, webhook in enumerate(getattr(settings, "GATES_WEBHOOKS", []) or []):
        # A webhook's URL carries its token; only a placeholder is judged there.
        secrets.append((f"GATES_WEBHOOKS[{index}]", "url", webhook))
    return [(name, kind, value) for name, kind, value in secrets if value or kind == "key"]


def probe_secrets():
    judged, problems = [], {}
    for name, kind, value in _secret_settings():
        if kind == "key":
            found = secret_key_problems(value)
        elif kind == "url":
            found = _placeholder_problems(value)
        else:
            found = password_problems(value)
        judged.append(name)
        if found:
            problems[name] = found
    evidence = {"judged": judged, "problems": problems}
    if problems:
        raise CheckFailed(
            "; ".join(f"{name}: {', '.join(found)}" for name, found in problems.items()),
            evidence=evidence,
        )
    return _("%(count)s secret(s) judged, none default or weak") % {"count": len(judged)}, evidence


def probe_demo_accounts():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import check_password

    from attendance.management.commands.seed_demo import DEMO_USERS

    passwords = {settings.DEMO_PASSWORD_DEFAULT, settings.DEMO_PASSWORD} - {""}
    users = get_user_model().objects.filter(
        username__in=[username for username, *_rest in DEMO_USERS], is_active=True
    )
    # check_password without a setter: a match must not rehash (write) the stored password.
    known = sorted(
        user.username
        for user in users
        if any(check_password(password, user.password) for password in passwords)
    )
    evidence = {"demoAccounts": known}
    if known:
        raise CheckFailed(
            _("demo account(s) sign in with the demo password: %(users)s")
            % {"users": ", ".join(known)},
            evidence=evidence,
        )
    return _("no demo account signs in with the demo password"), evidence


def probe_debug():
    evidence = {"debug": settings.DEBUG, "djangoEnv": getattr(settings, "DJANGO_ENV", "")}
    if settings.DEBUG:
        raise CheckFailed(_("DEBUG is on: error pages show settings and source"), evidence=evidence)
    return _("DEBUG is off"), evidence
