"""Dependencies: the database, its migrations and the broker (the /readyz checks of
gates/checks.py, run by the runner), the caches, and a worker answering a ping.

- **Worker.** ``app.control.ping`` is a broadcast (a fanout exchange). Redis does it with
  PUBLISH/SUBSCRIBE; kombu's ``filesystem://`` transport (``make run`` without a broker)
  implements fanout too (an exchange table in its control folder; kombu 5.7, measured: a
  worker answers), reaching the workers that share the broker's folders.
  A transport that cannot broadcast fails the check as *not verified*, saying so: a gate
  passes on evidence, never because nothing could be asked. The ping waits
  ``GATES_PREFLIGHT_PING_TIMEOUT_SECONDS`` and lists every worker that answered; a worker
  answers from its main process, so a preflight run by a prefork worker (beat) sees itself,
  a busy solo-pool worker does not.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.utils.translation import gettext as _

from gates import checks as readiness
from gates.choices import FailureKind
from gates.services.runs import CheckFailed, GateContext


def probe_caches():
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


def probe_worker(ctx: GateContext):
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
