from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from gates.checks import readiness


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
