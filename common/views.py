import sys

from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from common.exceptions import error_body


def _is_api(request) -> bool:
    return request.path_info.startswith("/api/") or request.path_info == "/api"


@csrf_exempt  # it changes nothing; without this a POST would get Django's HTML CSRF page
def api_not_found(request, *args, **kwargs):
    """Unknown paths under /api/ answer in the envelope, not with an HTML page (whatever
    the path holds: JSON escapes a newline, a NUL or markup in the message)."""
    message = _("No endpoint at %(path)s.") % {"path": request.path}
    return JsonResponse(error_body("NOT_FOUND", message), status=404)


def page_not_found(request, exception=None, *args, **kwargs):
    """handler404: the envelope under /api/ (an Http404 raised outside DRF, e.g. by a view
    of its own), Django's page elsewhere."""
    if _is_api(request):
        return JsonResponse(error_body("NOT_FOUND", _("Not found.")), status=404)
    from django.views.defaults import page_not_found as default_page_not_found

    return default_page_not_found(request, exception, *args, **kwargs)


def api_server_error(request):
    return JsonResponse(error_body("INTERNAL_ERROR", _("An internal error occurred.")), status=500)


def server_error(request, *args, **kwargs):
    """handler500: JSON envelope under /api/, Django's plain page elsewhere. A database
    error raised outside any view (in a middleware: the session read for ``request.user``)
    ends here too; it answers 503 or BUSY like the same error in a view. Django calls this
    while handling the exception, so ``sys.exc_info()`` holds it."""
    from common.middleware import database_error_response

    answered = database_error_response(request, sys.exc_info()[1])
    if answered is not None:
        # Logged as a warning in one line; Django would log it again with the whole trace,
        # once per request for as long as the database is away.
        answered._has_been_logged = True
        return answered
    if _is_api(request):
        return api_server_error(request)
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request, *args, **kwargs)
