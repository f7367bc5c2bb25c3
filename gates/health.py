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
    """Database reachable and migrated, broker reachable; 503 names the failing checks."""
    results = readiness()
    failing = [result.name for result in results if not result.ok]
    body = {
        "status": "ok" if not failing else "unavailable",
        "failing": failing,
        "checks": {result.name: result.as_dict() for result in results},
    }
    return JsonResponse(body, status=503 if failing else 200)
