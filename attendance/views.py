from django.conf import settings
from django.contrib.auth import views as auth_views

from common import ratelimit
from common.exceptions import RateLimited


class RateLimitedLoginView(auth_views.LoginView):
    """Django's login, limited per client address against password guessing."""

    template_name = "registration/login.html"

    def post(self, request, *args, **kwargs):
        try:
            ratelimit.enforce(request, group="login", rate=settings.RATELIMIT_LOGIN, key="ip")
        except RateLimited as limited:
            response = self.render_to_response(
                self.get_context_data(rate_limited=True, form=self.get_form())
            )
            response.status_code = 429
            response["Retry-After"] = str(limited.retry_after_seconds)
            return response
        return super().post(request, *args, **kwargs)
