from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import last_modified
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from attendance.dashboard import views as dashboard_views
from attendance.views import RateLimitedLoginView
from common import views as common_views
from gates import health

STARTED_AT = timezone.now().replace(microsecond=0)

admin.site.site_header = _("Attendance admin centre")
admin.site.site_title = _("Attendance admin centre")
admin.site.index_title = _("Administration")

urlpatterns = [
    path("", dashboard_views.landing, name="landing"),
    path("livez", health.livez, name="livez"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics, name="metrics"),
    path("accounts/login/", RateLimitedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    # The scripts' strings (static/js), in the request's language; browsers revalidate it
    # and get 304 until the next deploy restarts the process.
    path(
        "jsi18n/",
        last_modified(lambda request, **kwargs: STARTED_AT)(JavaScriptCatalog.as_view()),
        name="javascript-catalog",
    ),
    path("admin/", admin.site.urls),
    path("attendance/", include("attendance.urls")),
    path("dashboard/", include("attendance.dashboard.urls")),
    path("imports/", include("imports.urls")),
    path("audit/", include("audit.urls")),
    path("events/", include("events.urls")),
    path("gates/", include("gates.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its initialising script as a file: no inline script (CSP).
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="api-schema", template_name="api/swagger_ui.html"
        ),
        name="api-docs",
    ),
    path("api/", include("config.api_urls")),
]

# Browsers ask for it on every page, whatever the pages link.
urlpatterns.append(path("favicon.ico", common_views.favicon, name="favicon"))

handler403 = "common.views.permission_denied"
handler404 = "common.views.page_not_found"
handler500 = "common.views.server_error"
