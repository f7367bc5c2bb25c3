"""The preflight gate: is this deployment's configuration, its dependencies and its storage fit
for production? Every check runs (none stops the run) so one run reports everything to fix.

Judgements made here, and why:

- **Worker.** ``app.control.ping`` is a broadcast (a fanout exchange). Redis does it with
  PUBLISH/SUBSCRIBE; kombu's ``filesystem://`` transport (``make run`` without a broker)
  implements fanout too (an exchange table in its control folder; kombu 5.7, measured: a
  worker answers), reaching the workers that share the broker's folders.
  A transport that cannot broadcast fails the check as *not verified*, saying so: a gate
  passes on evidence, never because nothing could be asked. The ping waits
  ``GATES_PREFLIGHT_PING_TIMEOUT_SECONDS`` and lists every worker that answered; a worker
  answers from its main process, so a preflight run by a prefork worker (beat) sees itself,
  a busy solo-pool worker does not.
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
- **Public interfaces.** A host is fine when it is a Unix socket, a loopback or private
  (RFC 1918, IPv6 unique-local or link-local) address, or a name that resolves only to such
  addresses. A name that does not resolve here is judged by its shape: a single label
  (``db``, ``redis``) is a compose or cluster service name, private by construction; a
  dotted name that does not resolve cannot be judged and fails. ``0.0.0.0``, public and
  other special addresses fail. A compose service must not publish 5432/6379 (or any port
  of a postgres/redis image) on anything but a loopback host address; no host address (the
  default) means every interface, as does ``network_mode: host``.
- **nginx.** Every ``*.conf`` under ``GATES_DEPLOY_DIR/nginx``; for each server, the location
  nginx would choose for the import endpoints (exact, longest prefix, ``^~``, then regexes
  in order) and, where it proxies to the app, the effective ``client_max_body_size``
  (location, else server, else http, else nginx's 1m; 0 is unlimited) must hold the largest
  upload plus the API's multipart slack, and ``proxy_read_timeout``, ``proxy_send_timeout``
  and ``client_body_timeout`` (nginx's default 60s) must reach
  ``GATES_PREFLIGHT_MIN_PROXY_TIMEOUT_SECONDS`` (see config/settings.py). ``include`` is
  not followed (listed in the evidence). No configuration at all fails: unverified.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import tempfile
import uuid
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml
from django.conf import settings
from django.utils.translation import gettext as _

from gates import checks as readiness
from gates.choices import FailureKind, OwnerRole
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
# The demo data's default password (config/settings.py DEMO_PASSWORD's default).
DEMO_DEFAULT_PASSWORD = "attendance-demo"  # noqa: S105
SENSITIVE_PORTS = {5432: "PostgreSQL", 6379: "Redis"}
DATABASE_IMAGES = {
    "postgres",
    "postgresql",
    "postgis",
    "timescaledb",
    "redis",
    "redis-stack",
    "redis-stack-server",
    "valkey",
    "keydb",
}
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
PRIVATE_NETWORKS = [
    ipaddress.ip_network(network)
    for network in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
]
NGINX_DEFAULTS = {
    "client_max_body_size": "1m",
    "proxy_read_timeout": "60s",
    "proxy_send_timeout": "60s",
    "client_body_timeout": "60s",
}
NGINX_TIMEOUTS = ("proxy_read_timeout", "proxy_send_timeout", "client_body_timeout")
# The requests of an import: the upload carries the file, preview and commit the long work.
IMPORT_URL_NAMES = ("import-api:upload", "import-api:preview", "import-api:commit")


def run(ctx: GateContext) -> None:
    database_ok = _check(
        ctx,
        "database",
        _readiness_probe(readiness.check_database),
        kind=FailureKind.DEPENDENCY,
        remediation=_("Check DATABASE_URL and that PostgreSQL is up and reachable from here."),
        owner=OwnerRole.OPS,
    )
    database_down = _("not checked: the database is unreachable")
    _check(
        ctx,
        "migrations",
        _readiness_probe(readiness.check_migrations) if database_ok else _skipped(database_down),
        kind=FailureKind.CONFIG,
        remediation=_(
            "Run `manage.py migrate` (with DATABASE_MIGRATE_URL, the owner's role) before the "
            "release serves."
        ),
        owner=OwnerRole.OPS,
    )
    broker_ok = _check(
        ctx,
        "broker",
        _readiness_probe(readiness.check_broker),
        kind=FailureKind.DEPENDENCY,
        remediation=_("Check CELERY_BROKER_URL and that the broker (Redis) is up."),
        owner=OwnerRole.OPS,
    )
    _check(
        ctx,
        "cache",
        _probe_caches,
        kind=FailureKind.DEPENDENCY,
        remediation=_(
            "Check REDIS_URL and that Redis is up; with the database cache, run "
            "`manage.py createcachetable`."
        ),
        owner=OwnerRole.OPS,
    )
    _check(
        ctx,
        "worker",
        (lambda: _probe_worker(ctx))
        if broker_ok
        else _skipped(_("not checked: the broker is unreachable")),
        kind=FailureKind.DEPENDENCY,
        remediation=_(
            "Start a Celery worker on this broker (`celery -A config worker`), with remote "
            "control enabled."
        ),
        owner=OwnerRole.OPS,
    )
    _check(
        ctx,
        "deploy_checks",
        lambda: _probe_deploy_checks(ctx, with_database=database_ok),
        kind=FailureKind.CONFIG,
        remediation=_(
            "Fix what `manage.py check --deploy --database default` reports, or accept an id "
            "with its reason in GATES_PREFLIGHT_SILENCED."
        ),
        owner=OwnerRole.SECURITY,
    )
    _check(
        ctx,
        "secrets",
        _probe_secrets,
        kind=FailureKind.CONFIG,
        remediation=_(
            "Set every secret to a generated value: SECRET_KEY from "
            '`python -c "import secrets; print(secrets.token_urlsafe(64))"`, passwords of '
            "12 characters or more, no placeholder from deploy/env.example."
        ),
        owner=OwnerRole.SECURITY,
    )
    _check(
        ctx,
        "demo_accounts",
        _probe_demo_accounts if database_ok else _skipped(database_down),
        kind=FailureKind.CONFIG,
        remediation=_("Deactivate the demo accounts or give them new passwords."),
        owner=OwnerRole.SECURITY,
    )
    _check(
        ctx,
        "debug",
        _probe_debug,
        kind=FailureKind.CONFIG,
        remediation=_("Set DEBUG=false (DJANGO_ENV=production turns it off by default)."),
        owner=OwnerRole.SECURITY,
    )
    _check(
        ctx,
        "storage_writable",
        _probe_storage_writable,
        kind=FailureKind.CONFIG,
        remediation=_(
            "Point IMPORT_STORAGE_DIR at a directory the application's user can create and "
            "write (a persistent volume)."
        ),
        owner=OwnerRole.OPS,
    )
    _check(
        ctx,
        "storage_space",
        lambda: _probe_storage_space(ctx),
        kind=FailureKind.DEPENDENCY,
        remediation=_(
            "Free space on (or grow) IMPORT_STORAGE_DIR's volume, or lower IMPORT_UPLOAD_MAX_BYTES."
        ),
        owner=OwnerRole.OPS,
    )
    _check(
        ctx,
        "audit_partitions",
        _readiness_probe(readiness.check_audit_partitions)
        if database_ok
        else _skipped(database_down),
        kind=FailureKind.CONFIG,
        remediation=_(
            "Run `manage.py audit_partitions` and make sure beat runs audit-ensure-partitions."
        ),
        owner=OwnerRole.OPS,
    )
    _check(
        ctx,
        "private_hosts",
        _probe_private_hosts,
        kind=FailureKind.CONFIG,
        remediation=_(
            "Reach PostgreSQL and Redis over a private network, loopback or a Unix socket, "
            "never a public address."
        ),
        owner=OwnerRole.SECURITY,
    )
    _check(
        ctx,
        "compose_ports",
        lambda: _probe_compose(ctx),
        kind=FailureKind.CONFIG,
        remediation=_(
            "Remove the database's and Redis's `ports:` from the compose file, or bind them "
            'to 127.0.0.1 ("127.0.0.1:5432:5432").'
        ),
        owner=OwnerRole.SECURITY,
    )
    _check(
        ctx,
        "nginx",
        lambda: _probe_nginx(ctx),
        kind=FailureKind.CONFIG,
        remediation=_(
            "In the nginx server that proxies the app, raise client_max_body_size above "
            "IMPORT_UPLOAD_MAX_BYTES and proxy_read_timeout, proxy_send_timeout and "
            "client_body_timeout to GATES_PREFLIGHT_MIN_PROXY_TIMEOUT_SECONDS."
        ),
        owner=OwnerRole.OPS,
    )
    ctx.finish()


def _check(ctx: GateContext, name: str, probe, **attributes) -> bool:
    """``ctx.check`` (never stopping: every check runs); whether the check passed."""
    ctx.check(name, probe, **attributes)
    return ctx.checks[-1].ok


def _skipped(reason: str):
    def probe():
        raise CheckFailed(reason, evidence={"verified": False})

    return probe


def _readiness_probe(check):
    """A /readyz check (gates/checks.py) as a gate probe."""

    def probe():
        result = check()
        if not result.ok:
            raise CheckFailed(result.detail, evidence=result.evidence)
        return result.detail, result.evidence

    return probe


# --- cache and worker --------------------------------------------------------------------


def _probe_caches():
    from django.core.cache import caches

    results, failing = {}, []
    for alias, config in settings.CACHES.items():
        key, value = f"gates-preflight-{uuid.uuid4().hex}", uuid.uuid4().hex
        entry = {"backend": config.get("BACKEND", "")}
        try:
            cache = caches[alias]
            cache.set(key, value, timeout=60)
            read = cache.get(key)
            cache.delete(key)
            if read != value:
                raise RuntimeError(_("a key set was not read back"))
            entry["ok"] = True
        except Exception as exc:  # any failure of a cache is what the check reports
            entry.update(ok=False, detail=f"{type(exc).__name__}: {exc}"[:300])
            failing.append(alias)
        results[alias] = entry
    evidence = {"caches": results}
    if failing:
        raise CheckFailed(
            _("cache(s) not usable: %(aliases)s")
            % {"aliases": "; ".join(f"{alias} ({results[alias]['detail']})" for alias in failing)},
            evidence=evidence,
        )
    return _("%(count)s cache(s) stored and read back a key") % {"count": len(results)}, evidence


def _probe_worker(ctx: GateContext):
    from config.celery import app

    timeout = settings.GATES_PREFLIGHT_PING_TIMEOUT_SECONDS
    with readiness.broker_connection() as connection:
        transport = connection.transport_cls
        evidence = {"transport": transport, "timeoutSeconds": timeout}
        if "fanout" not in connection.transport.implements.exchange_type:
            raise CheckFailed(
                _(
                    "not verified: the broker transport %(transport)s cannot broadcast, so no "
                    "worker can be pinged; whether any worker consumes the queues is unknown "
                    "(use Redis as the broker)"
                )
                % {"transport": transport},
                kind=FailureKind.CONFIG,
                evidence={**evidence, "verified": False},
            )
        replies = _ping(app, connection, timeout)
    workers = sorted(name for reply in replies for name in reply)
    evidence.update(verified=True, workers=workers)
    ctx.figures["workers"] = len(workers)
    if not workers:
        raise CheckFailed(
            _("no Celery worker answered a ping within %(timeout)s s on %(transport)s")
            % {"timeout": timeout, "transport": transport},
            evidence=evidence,
        )
    return _("%(count)s worker(s) answered: %(workers)s") % {
        "count": len(workers),
        "workers": ", ".join(workers),
    }, evidence


def _ping(app, connection, timeout: float) -> list[dict]:
    """``app.control.ping`` on ``connection`` itself. Celery's own mailbox publishes through
    the app's producer pool, i.e. to the broker configured at start-up whatever connection it
    is given; this one is Celery's control mailbox (same exchange and options) without a
    pool, so the ping goes where the settings point now, and its answers come back there."""
    from kombu import pidbox

    conf = app.conf
    mailbox = pidbox.Mailbox(
        conf.control_exchange,
        type="fanout",
        accept=conf.accept_content,
        serializer=conf.task_serializer,
        queue_ttl=conf.control_queue_ttl,
        reply_queue_ttl=conf.control_queue_ttl,
        queue_expires=conf.control_queue_expires,
        reply_queue_expires=conf.control_queue_expires,
    )
    return mailbox(connection).call(None, "ping", timeout=timeout) or []


# --- check --deploy ----------------------------------------------------------------------


def _probe_deploy_checks(ctx: GateContext, *, with_database: bool):
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
        for url in _split_urls(getattr(settings, name, "") or ""):
            secrets.append((f"{name} password", "password", _url_password(url)))
    for alias, config in settings.CACHES.items():
        for location in _cache_locations(config):
            secrets.append((f"CACHES[{alias}] password", "password", _url_password(location)))
    for name in ("EMAIL_HOST_PASSWORD", "GATES_TOKEN"):
        secrets.append((name, "password", getattr(settings, name, "")))
    for index, webhook in enumerate(getattr(settings, "GATES_WEBHOOKS", []) or []):
        # A webhook's URL carries its token; only a placeholder is judged there.
        secrets.append((f"GATES_WEBHOOKS[{index}]", "url", webhook))
    return [(name, kind, value) for name, kind, value in secrets if value or kind == "key"]


def _probe_secrets():
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


def _probe_demo_accounts():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import check_password

    from attendance.management.commands.seed_demo import DEMO_USERS

    passwords = {DEMO_DEFAULT_PASSWORD, settings.DEMO_PASSWORD} - {""}
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


def _probe_debug():
    evidence = {"debug": settings.DEBUG, "djangoEnv": getattr(settings, "DJANGO_ENV", "")}
    if settings.DEBUG:
        raise CheckFailed(_("DEBUG is on: error pages show settings and source"), evidence=evidence)
    return _("DEBUG is off"), evidence


# --- upload storage ----------------------------------------------------------------------


def _probe_storage_writable():
    from imports.services.uploads import storage_dir

    evidence = {"directory": str(settings.IMPORT_STORAGE_DIR)}
    try:
        directory = storage_dir()  # created as the application creates it
        with tempfile.NamedTemporaryFile(
            dir=directory, prefix=".preflight-", delete=False
        ) as probe:
            probe.write(b"preflight\n")
            probe.flush()
            os.fsync(probe.fileno())
        written = Path(probe.name)
        written.unlink()
    except OSError as exc:
        raise CheckFailed(
            _("%(directory)s is not writable: %(error)s")
            % {"directory": settings.IMPORT_STORAGE_DIR, "error": f"{type(exc).__name__}: {exc}"},
            evidence=evidence,
        ) from exc
    if written.exists():
        raise CheckFailed(_("a file written there could not be deleted"), evidence=evidence)
    return _("created and deleted a file in %(directory)s") % {"directory": directory}, evidence


def _probe_storage_space(ctx: GateContext):
    directory = Path(settings.IMPORT_STORAGE_DIR)
    measured = directory
    while not measured.exists() and measured != measured.parent:
        measured = measured.parent  # not created yet: the volume it would be created on
    usage = shutil.disk_usage(measured)
    limit = settings.IMPORT_UPLOAD_MAX_BYTES
    ctx.figures["freeBytes"] = usage.free
    ctx.figures["uploadMaxBytes"] = limit
    evidence = {
        "directory": str(directory),
        "measuredAt": str(measured),
        "freeBytes": usage.free,
        "totalBytes": usage.total,
        "uploadMaxBytes": limit,
    }
    if usage.free < limit:
        raise CheckFailed(
            _(
                "%(free)s bytes free on %(path)s, less than the largest allowed upload "
                "(IMPORT_UPLOAD_MAX_BYTES %(limit)s)"
            )
            % {"free": usage.free, "path": measured, "limit": limit},
            evidence=evidence,
        )
    return _("%(free)s bytes free, the largest upload is %(limit)s") % {
        "free": usage.free,
        "limit": limit,
    }, evidence


# --- network exposure --------------------------------------------------------------------


def _split_urls(value: str) -> list[str]:
    """kombu accepts several broker URLs in one string (failover), ``;``-separated."""
    return [part.strip() for part in value.split(";") if part.strip()]


def _cache_locations(config: dict) -> list[str]:
    backend = config.get("BACKEND", "")
    if not any(word in backend.lower() for word in ("redis", "memcache")):
        return []  # a table name (database cache) or an in-process cache: no host
    location = config.get("LOCATION") or []
    locations = [location] if isinstance(location, str) else list(location)
    return [part.strip() for item in locations for part in re.split(r"[,;]", item) if part]


def judge_host(host: str) -> tuple[bool, str]:
    """Whether a service at ``host`` is reachable only privately, and why (module docstring)."""
    host = (host or "").strip().strip("[]")
    if not host or host.startswith("/"):
        return True, _("a Unix socket")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return _judge_name(host)
    return _judge_address(address)


def _judge_address(address) -> tuple[bool, str]:
    if address.is_unspecified:
        return False, _("%(address)s means every interface") % {"address": address}
    if address.is_loopback:
        return True, _("%(address)s is loopback") % {"address": address}
    if any(address in network for network in PRIVATE_NETWORKS):
        return True, _("%(address)s is private") % {"address": address}
    return False, _("%(address)s is not a private address") % {"address": address}


def _judge_name(host: str) -> tuple[bool, str]:
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        if "." not in host:
            return True, _("%(host)s is a service name (not resolvable here)") % {"host": host}
        return False, _("%(host)s does not resolve here, so it cannot be judged") % {"host": host}
    addresses = sorted({ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}, key=str)
    verdicts = [_judge_address(address) for address in addresses]
    public = [reason for ok, reason in verdicts if not ok]
    if public:
        return False, _("%(host)s resolves to %(reasons)s") % {
            "host": host,
            "reasons": "; ".join(public),
        }
    return True, _("%(host)s resolves to %(addresses)s only") % {
        "host": host,
        "addresses": ", ".join(map(str, addresses)),
    }


# Schemes that reach no network service of their own: in-process, folders, or the broker's.
LOCAL_SCHEMES = {"filesystem", "memory", "rpc", "file", "cache", "django-db", "db"}


def _url_hosts(url: str) -> list[str]:
    """The hosts a URL reaches ("" for a Unix socket; none when it reaches no server)."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return []
    if parts.scheme in ("unix", "redis+socket"):
        return [""]
    if parts.scheme:
        # kombu and redis-py connect to localhost when a URL names no host.
        return [unquote(parts.hostname or "") or "localhost"]
    if url.startswith(("unix:", "/")):  # memcached's socket spelling
        return [""]
    return [url.rsplit(":", 1)[0] if url.count(":") == 1 else url]


def _service_endpoints() -> list[tuple[str, str]]:
    """(setting, host) of every database and Redis (or other cache) endpoint configured."""
    endpoints = [
        (f"DATABASES[{alias}]", database.get("HOST") or "")
        for alias, database in settings.DATABASES.items()
    ]
    owner = getattr(settings, "DATABASE_OWNER", None)
    if owner:
        endpoints.append(("DATABASE_MIGRATE_URL", owner.get("HOST") or ""))
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        value = getattr(settings, name, "") or ""
        if "://" not in value:
            continue  # unset, or a result backend named without a URL
        for url in _split_urls(value):
            endpoints += [(name, host) for host in _url_hosts(url)]
    for alias, config in settings.CACHES.items():
        for location in _cache_locations(config):
            endpoints += [(f"CACHES[{alias}]", host) for host in _url_hosts(location)]
    return endpoints


def _probe_private_hosts():
    judged, public = [], []
    for setting, host in _service_endpoints():
        ok, reason = judge_host(host)
        judged.append({"setting": setting, "host": host, "private": ok, "reason": reason})
        if not ok:
            public.append(f"{setting}: {reason}")
    evidence = {"endpoints": judged}
    if public:
        raise CheckFailed(
            _("reachable on a public interface: %(which)s") % {"which": "; ".join(public)},
            evidence=evidence,
        )
    return _("%(count)s endpoint(s), all private") % {"count": len(judged)}, evidence


# --- compose -----------------------------------------------------------------------------


@dataclass
class PortMapping:
    host_ip: str
    published: str
    targets: set[int]
    raw: str


def _compose_path(ctx: GateContext) -> tuple[Path | None, bool]:
    """The compose file to read and whether it was asked for explicitly."""
    if ctx.options.get("compose"):
        return Path(ctx.options["compose"]), True
    deploy_dir = Path(settings.GATES_DEPLOY_DIR)
    for name in COMPOSE_FILES:
        if (deploy_dir / name).is_file():
            return deploy_dir / name, False
    return None, False


def _interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``$VAR`` and ``$$``."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        operator, default = match.group("operator"), match.group("default") or ""
        current = variables.get(name)
        if operator == ":-" and not current:
            return default
        if operator == "-" and current is None:
            return default
        return current or ""

    pattern = r"\$\$|\$\{(?P<braced>\w+)(?:(?P<operator>:?-)(?P<default>[^}]*))?\}|\$(?P<bare>\w+)"
    return re.sub(pattern, replace, value)


def _port_range(text: str) -> set[int]:
    text = text.strip()
    if not text:
        return set()
    start, _dash, end = text.partition("-")
    try:
        first, last = int(start), int(end or start)
    except ValueError:
        return set()
    return set(range(first, min(last, first + 65535) + 1))


def parse_port(entry, variables: dict[str, str]) -> PortMapping:
    """One ``ports:`` entry, short (``[ip:][host:]container[/proto]``) or long syntax."""
    if isinstance(entry, dict):
        published = str(entry.get("published", ""))
        target = _interpolate(str(entry.get("target", "")), variables)
        host_ip = _interpolate(str(entry.get("host_ip", "") or ""), variables)
        return PortMapping(host_ip, published, _port_range(target), str(entry))
    raw = str(entry)
    text = _interpolate(raw, variables).split("/", 1)[0]
    host_ip = ""
    if text.startswith("["):  # [::1]:5432:5432
        host_ip, _bracket, text = text[1:].partition("]")
        text = text.lstrip(":")
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        host_ip, published, target = parts
    elif len(parts) == 2:
        published, target = parts
    else:
        published, target = "", parts[0]
    return PortMapping(host_ip.strip("[]"), published, _port_range(target), raw)


def _is_database_image(image: str) -> bool:
    name = image.rsplit("@", 1)[0]
    name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    return any(part in DATABASE_IMAGES for part in name.lower().split("/"))


def _loopback(host_ip: str) -> bool:
    if host_ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(host_ip).is_loopback
    except ValueError:
        return False


def compose_exposures(document: dict, variables: dict[str, str]) -> list[dict]:
    """The services that publish a database or Redis port beyond loopback."""
    exposures = []
    services = (document or {}).get("services") or {}
    for name, service in services.items():
        service = service or {}
        image = str(service.get("image") or "")
        database_image = _is_database_image(image)
        if database_image and service.get("network_mode") == "host":
            exposures.append(
                {
                    "service": name,
                    "image": image,
                    "port": "network_mode: host",
                    "why": _("shares the host's network: it listens on every host interface"),
                }
            )
        for entry in service.get("ports") or []:
            mapping = parse_port(entry, variables)
            published = _port_range(mapping.published)
            sensitive = sorted((mapping.targets | published) & set(SENSITIVE_PORTS))
            if not (sensitive or database_image) or _loopback(mapping.host_ip):
                continue
            exposures.append(
                {
                    "service": name,
                    "image": image,
                    "port": mapping.raw,
                    "why": _("published on %(where)s")
                    % {
                        "where": mapping.host_ip
                        or _("every host interface (no host address given)")
                    },
                }
            )
    return exposures


def _dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    values = {}
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _equals, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def _probe_compose(ctx: GateContext):
    path, explicit = _compose_path(ctx)
    if path is None:
        return _("no compose file in %(dir)s: nothing to inspect") % {
            "dir": settings.GATES_DEPLOY_DIR
        }, {"composeFile": None}
    evidence = {"composeFile": str(path), "explicit": explicit}
    if not path.is_file():
        raise CheckFailed(
            _("the compose file %(path)s does not exist") % {"path": path}, evidence=evidence
        )
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CheckFailed(
            _("the compose file %(path)s is not YAML: %(error)s") % {"path": path, "error": exc},
            evidence=evidence,
        ) from exc
    if not isinstance(document, dict):
        raise CheckFailed(
            _("the compose file %(path)s holds no services") % {"path": path}, evidence=evidence
        )
    # Compose interpolates from the environment, then the project's .env file.
    variables = {**_dotenv(path.parent / ".env"), **os.environ}
    exposures = compose_exposures(document, variables)
    evidence.update(services=sorted(document.get("services") or {}), exposures=exposures)
    if exposures:
        raise CheckFailed(
            _("%(path)s publishes the database or Redis: %(which)s")
            % {
                "path": path.name,
                "which": "; ".join(
                    f"{item['service']} {item['port']} ({item['why']})" for item in exposures
                ),
            },
            evidence=evidence,
        )
    return _("%(path)s publishes no database or Redis port beyond loopback") % {
        "path": path.name
    }, evidence


# --- nginx -------------------------------------------------------------------------------


@dataclass
class NginxBlock:
    name: str
    args: list[str]
    directives: list[tuple[str, list[str]]] = field(default_factory=list)
    blocks: list[NginxBlock] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        found = [args for directive, args in self.directives if directive == name]
        return " ".join(found[-1]) if found else None

    def children(self, name: str) -> list[NginxBlock]:
        return [block for block in self.blocks if block.name == name]


def _nginx_tokens(text: str):
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char.isspace():
            index += 1
        elif char == "#":
            newline = text.find("\n", index)
            index = length if newline < 0 else newline + 1
        elif char in "{};":
            yield char
            index += 1
        elif char in "\"'":
            end = index + 1
            while end < length and text[end] != char:
                end += 2 if text[end] == "\\" else 1
            yield text[index + 1 : end]
            index = end + 1
        else:
            end = index
            while end < length and not text[end].isspace() and text[end] not in "{};":
                end += 1
            yield text[index:end]
            index = end


def parse_nginx(text: str) -> NginxBlock:
    """The configuration as a tree of blocks and their directives (``main`` at the top)."""
    root = NginxBlock("main", [])
    stack, words = [root], []
    for piece in _nginx_tokens(text):
        if piece == ";":
            if words:
                stack[-1].directives.append((words[0], words[1:]))
            words = []
        elif piece == "{":
            block = NginxBlock(words[0] if words else "", words[1:])
            stack[-1].blocks.append(block)
            stack.append(block)
            words = []
        elif piece == "}":
            if len(stack) == 1:
                raise ValueError(_("unbalanced '}'"))
            stack.pop()
            words = []
        else:
            words.append(piece)
    if len(stack) != 1:
        raise ValueError(_("unclosed block"))
    return root


def parse_nginx_size(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", value.strip())
    if not match:
        raise ValueError(_("not an nginx size: %(value)s") % {"value": value})
    unit = match.group(2).lower()
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


NGINX_TIME_UNITS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "M": 30 * 86400,
    "y": 365 * 86400,
}


def parse_nginx_time(value: str) -> float:
    """Seconds: ``90``, ``90s``, ``5m``, ``1h``, ``1h 30m``, ``500ms`` (bare = seconds)."""
    text = value.strip()
    if not re.fullmatch(r"(?:\d+(?:ms|[smhdwMy])?\s*)+", text):
        raise ValueError(_("not an nginx time: %(value)s") % {"value": value})
    return sum(
        int(number) * NGINX_TIME_UNITS[unit or "s"]
        for number, unit in re.findall(r"(\d+)(ms|[smhdwMy]?)", text)
    )


def _location_pattern(location: NginxBlock) -> tuple[str, str]:
    args = location.args
    if len(args) >= 2:
        return args[0], args[1]
    pattern = args[0] if args else ""
    for modifier in ("^~", "~*", "=", "~"):
        if pattern.startswith(modifier) and pattern != modifier:
            return modifier, pattern[len(modifier) :]
    return "", pattern


def match_location(server: NginxBlock, path: str) -> NginxBlock | None:
    """The location nginx chooses for ``path`` among the server's own locations."""
    prefixes, regexes = [], []
    for location in server.children("location"):
        modifier, pattern = _location_pattern(location)
        if pattern.startswith("@"):
            continue
        if modifier == "=":
            if pattern == path:
                return location
        elif modifier in ("", "^~"):
            if path.startswith(pattern):
                prefixes.append((len(pattern), modifier, location))
        elif modifier in ("~", "~*"):
            regexes.append((re.IGNORECASE if modifier == "~*" else 0, pattern, location))
    longest = max(prefixes, key=lambda item: item[0]) if prefixes else None
    if longest and longest[1] == "^~":
        return longest[2]
    for flags, pattern, location in regexes:
        try:
            if re.search(pattern, path, flags):
                return location
        except re.error:
            continue
    return longest[2] if longest else None


def _effective(name: str, *levels: tuple[str, NginxBlock]) -> tuple[str, str]:
    for level, block in levels:
        value = block.value(name)
        if value is not None:
            return value, level
    return NGINX_DEFAULTS[name], "default"


def _server_label(server: NginxBlock) -> str:
    names = server.value("server_name")
    listen = server.value("listen")
    return " ".join(part for part in (names, f"listen {listen}" if listen else "") if part)


def nginx_problems(
    text: str, *, paths: list[str], min_body: int, min_timeout: float
) -> tuple[list[dict], list[str], list[str]]:
    """The proxied (server, path) pairs with their effective limits, the problems found and
    the includes not followed."""
    root = parse_nginx(text)
    http_blocks = root.children("http")
    contexts = [(block, block) for block in http_blocks] or [(root, root)]
    judged, problems = [], []
    includes = sorted({value for name, value in _all_directives(root) if name == "include"})
    for http, container in contexts:
        for server in container.children("server"):
            for path in paths:
                location = match_location(server, path)
                if location is None or location.value("proxy_pass") is None:
                    continue
                levels = (("location", location), ("server", server), ("http", http))
                entry = {
                    "server": _server_label(server),
                    "path": path,
                    "location": " ".join(location.args),
                }
                value, source = _effective("client_max_body_size", *levels)
                size = parse_nginx_size(value)
                entry["client_max_body_size"] = {"value": value, "bytes": size, "from": source}
                if size and size < min_body:
                    problems.append(
                        _("client_max_body_size %(value)s (%(source)s) is below %(minimum)s bytes")
                        % {"value": value, "source": source, "minimum": min_body}
                    )
                for name in NGINX_TIMEOUTS:
                    value, source = _effective(name, *levels)
                    seconds = parse_nginx_time(value)
                    entry[name] = {"value": value, "seconds": seconds, "from": source}
                    if seconds < min_timeout:
                        problems.append(
                            _("%(name)s %(value)s (%(source)s) is below %(minimum)s s")
                            % {
                                "name": name,
                                "value": value,
                                "source": source,
                                "minimum": min_timeout,
                            }
                        )
                judged.append(entry)
    return judged, list(dict.fromkeys(problems)), includes


def _all_directives(block: NginxBlock):
    for name, args in block.directives:
        yield name, " ".join(args)
    for child in block.blocks:
        yield from _all_directives(child)


def _probe_nginx(ctx: GateContext):
    from django.urls import reverse

    from imports.api.views import MULTIPART_SLACK

    directory = Path(settings.GATES_DEPLOY_DIR) / "nginx"
    files = sorted(directory.glob("*.conf")) if directory.is_dir() else []
    min_body = settings.IMPORT_UPLOAD_MAX_BYTES + MULTIPART_SLACK
    min_timeout = settings.GATES_PREFLIGHT_MIN_PROXY_TIMEOUT_SECONDS
    paths = [reverse(name) for name in IMPORT_URL_NAMES]
    evidence = {
        "directory": str(directory),
        "files": [path.name for path in files],
        "paths": paths,
        "minBodyBytes": min_body,
        "minTimeoutSeconds": min_timeout,
        "servers": [],
        "includesNotFollowed": [],
    }
    if not files:
        raise CheckFailed(
            _(
                "no nginx configuration (*.conf) in %(dir)s: the upload limit and the "
                "timeouts could not be verified"
            )
            % {"dir": directory},
            evidence=evidence,
        )
    problems = []
    for path in files:
        try:
            judged, found, includes = nginx_problems(
                path.read_text(errors="replace"),
                paths=paths,
                min_body=min_body,
                min_timeout=min_timeout,
            )
        except ValueError as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        evidence["servers"] += [{"file": path.name, **entry} for entry in judged]
        evidence["includesNotFollowed"] += includes
        problems += [f"{path.name}: {problem}" for problem in found]
    ctx.figures["nginxServers"] = len({(s["file"], s["server"]) for s in evidence["servers"]})
    if not evidence["servers"] and not problems:
        problems.append(
            _("no nginx server proxies %(path)s to the application") % {"path": paths[0]}
        )
    if problems:
        raise CheckFailed("; ".join(problems), evidence=evidence)
    return _(
        "%(count)s proxied server(s) take uploads of %(body)s bytes and wait %(timeout)s s"
    ) % {"count": ctx.figures["nginxServers"], "body": min_body, "timeout": min_timeout}, evidence
