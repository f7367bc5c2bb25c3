from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from common.exceptions import error_body


@csrf_exempt  # it changes nothing; without this a POST would get Django's HTML CSRF page
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer in the envelope, not with an HTML page."""
    return JsonResponse(error_body("NOT_FOUND", f"No endpoint at {request.path}."), status=404)


def api_server_error(request):
    return JsonResponse(error_body("INTERNAL_ERROR", "An internal error occurred."), status=500)


def server_error(request, *args, **kwargs):
    """handler500: JSON envelope under /api/, Django's plain page elsewhere."""
    if request.path.startswith("/api/"):
        return api_server_error(request)
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request, *args, **kwargs)
