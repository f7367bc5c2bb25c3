"""The preflight gate: is this deployment's configuration, its dependencies and its storage fit
for production? Every check runs (none stops the run) so one run reports everything to fix.

:func:`run` performs the checks in order; each concern is a module of this package, whose
docstring gives the judgements made there, and why:

- :mod:`.dependencies`: database, migrations, broker, caches, a worker answering a ping;
- :mod:`.configuration`: ``check --deploy``, secrets, demo accounts, DEBUG;
- :mod:`.storage`: the upload storage, writable and with room for the largest upload;
- :mod:`.exposure`: the database and Redis on private hosts, unpublished in compose;
- :mod:`.nginx`: nginx's body limit and timeouts for the largest import.
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from gates import checks as readiness
from gates.choices import FailureKind, OwnerRole
from gates.services.preflight.configuration import (
    password_problems,
    probe_debug,
    probe_demo_accounts,
    probe_deploy_checks,
    probe_secrets,
    secret_key_problems,
)
from gates.services.preflight.dependencies import _ping, probe_caches, probe_worker
from gates.services.preflight.exposure import (
    PortMapping,
    compose_exposures,
    judge_host,
    parse_port,
    probe_compose,
    probe_private_hosts,
)
from gates.services.preflight.nginx import (
    NginxBlock,
    match_location,
    nginx_problems,
    parse_nginx,
    parse_nginx_size,
    parse_nginx_time,
    probe_nginx,
)
from gates.services.preflight.storage import probe_storage_space, probe_storage_writable
from gates.services.runs import CheckFailed, GateContext

__all__ = [
    "NginxBlock",
    "PortMapping",
    "_ping",
    "compose_exposures",
    "judge_host",
    "match_location",
    "nginx_problems",
    "parse_nginx",
    "parse_nginx_size",
    "parse_nginx_time",
    "parse_port",
    "password_problems",
    "run",
    "secret_key_problems",
]


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
        probe_caches,
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
        (lambda: probe_worker(ctx))
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
        lambda: probe_deploy_checks(ctx, with_database=database_ok),
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
        probe_secrets,
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
        probe_demo_accounts if database_ok else _skipped(database_down),
        kind=FailureKind.CONFIG,
        remediation=_("Deactivate the demo accounts or give them new passwords."),
        owner=OwnerRole.SECURITY,
    )
    _check(
        ctx,
        "debug",
        probe_debug,
        kind=FailureKind.CONFIG,
        remediation=_("Set DEBUG=false (DJANGO_ENV=production turns it off by default)."),
        owner=OwnerRole.SECURITY,
    )
    _check(
        ctx,
        "storage_writable",
        probe_storage_writable,
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
        lambda: probe_storage_space(ctx),
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
        probe_private_hosts,
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
        lambda: probe_compose(ctx),
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
        lambda: probe_nginx(ctx),
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
