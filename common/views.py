import sys
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.utils.translation import gettext as _
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from common.exceptions import error_body

FAVICON = Path(settings.BASE_DIR) / "static" / "favicon.svg"


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
    of its own), the app's page (templates/404.html) elsewhere. The exception's text is not
    shown: it can name internals (a URL pattern, a model)."""
    if _is_api(request):
        return JsonResponse(error_body("NOT_FOUND", _("Not found.")), status=404)
    return render(request, "404.html", {"path": request.path}, status=404)


def permission_denied(request, exception=None, *args, **kwargs):
    """handler403: the envelope under /api/, the app's page (templates/403.html) elsewhere,
    also for the admin centre's refusals (attendance/admin.py)."""
    if _is_api(request):
        return JsonResponse(
            error_body("FORBIDDEN", _("You do not have permission to do this.")), status=403
        )
    return render(request, "403.html", status=403)


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
    # Rendered without the request's context processors: they read the session and the
    # database, which may be what failed (templates/500.html needs neither).
    return HttpResponse(loader.get_template("500.html").render(), status=500)


@require_safe
@cache_control(max_age=86400, public=True)
def favicon(request):
    """/favicon.ico, which browsers ask for on every page whatever the pages link: the
    app's SVG icon, served as it is (an SVG answer is accepted for that name)."""
    return HttpResponse(FAVICON.read_bytes(), content_type="image/svg+xml")
