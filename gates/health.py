import os
from functools import cache

from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from gates import metrics as scrape_time
from gates.checks import readiness


@cache
def _multiprocess_registry() -> CollectorRegistry:
    """Every gunicorn worker's counters and histograms, summed from PROMETHEUS_MULTIPROC_DIR
    (read afresh at each scrape), and the series read at scrape time from the database."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    scrape_time.register(registry)
    return registry


@never_cache
@require_GET
def metrics(request):
    """Prometheus text: this process's registry, or with several gunicorn workers
    (PROMETHEUS_MULTIPROC_DIR set) the sum over all of them, whichever answers."""
    multiprocess = "PROMETHEUS_MULTIPROC_DIR" in os.environ
    registry = _multiprocess_registry() if multiprocess else REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


@never_cache
@require_GET
def livez(request):
    """The process answers: nothing else is checked."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    """Database reachable and migrated, broker reachable; 503 names the failing checks.

    Warning checks (the audit partitions: DEFAULT holds rows, or fewer than two future
    months are ready) are listed under ``warnings`` and ``advisories`` and leave the answer
    200: taking the instance out of the load balancer would not fix them, an operator does
    (the preflight gate fails on them)."""
    results = readiness()
    blocking = [result for result in results if result.blocking]
    advisory = [result for result in results if not result.blocking]
    failing = [result.name for result in blocking if not result.ok]
    body = {
        "status": "ok" if not failing else "unavailable",
        "failing": failing,
        "checks": {result.name: result.as_dict() for result in blocking},
        "warnings": [result.name for result in advisory if not result.ok],
        "advisories": {result.name: {**result.as_dict(), **result.evidence} for result in advisory},
    }
    return JsonResponse(body, status=503 if failing else 200)
