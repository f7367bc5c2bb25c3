"""The admins' landing page: today's attendance, pending corrections, recent imports, the
last day's audit events and readiness, each a tile linking to the list behind it.

Reads go through ``attendance.dashboard.selectors`` (a few aggregate queries, however many
people the organisation has) and readiness through ``gates.checks.readiness``, the checks
``/readyz`` runs, called in-process.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_safe

from attendance import schedule
from attendance.dashboard import selectors
from attendance.views import STATUS_LABELS, _clock, attendance_page
from common import roles
from gates.checks import readiness

PEOPLE_PER_PAGE = 100

admin_page = attendance_page(
    any_role=(roles.ADMIN,),
    refusal=(
        gettext_lazy("Administrators only"),
        gettext_lazy("The dashboard is for administrators of the organisation."),
    ),
)

CATEGORY_LABELS = {
    selectors.PRESENT: gettext_lazy("Present"),
    selectors.LATE: gettext_lazy("Late"),
    selectors.ABSENT: gettext_lazy("Absent"),
    selectors.NOT_YET_IN: gettext_lazy("Not yet in"),
}
CATEGORY_HINTS = {
    selectors.PRESENT: gettext_lazy("punched in today"),
    selectors.LATE: gettext_lazy("came in after the grace period"),
    selectors.ABSENT: gettext_lazy("no punch once the day was over, or recorded absent"),
    selectors.NOT_YET_IN: gettext_lazy("no punch yet while the day is in progress"),
}


@require_safe
def landing(request):
    """The site's root: administrators land on the dashboard, everyone else on their month;
    an anonymous visitor signs in first and comes back here (so an admin lands right)."""
    user = request.user
    if not user.is_authenticated:
        return auth_views.redirect_to_login(request.get_full_path())
    if getattr(user, "employee", None) is not None and roles.has_any_role(user, roles.ADMIN):
        return redirect("dashboard:index")
    return redirect("attendance:home")


def _readiness() -> dict:
    """What ``/readyz`` answers, summarised: blocking checks decide ok/unavailable,
    warning checks are listed apart and leave it ok."""
    results = readiness()
    failing = [result.name for result in results if result.blocking and not result.ok]
    warnings = [result.name for result in results if not result.blocking and not result.ok]
    return {
        "ok": not failing,
        "failing": failing,
        "warnings": warnings,
        "checks": [
            {"name": result.name, "ok": result.ok, "blocking": result.blocking}
            for result in results
        ],
    }


@require_GET
@admin_page
def index(request):
    organisation = request.employee.organisation
    now = timezone.now()
    today = selectors.today_counts(organisation=organisation, now=now)
    tiles = [
        {
            "category": category,
            "label": CATEGORY_LABELS[category],
            "hint": CATEGORY_HINTS[category],
            "count": today.count(category),
            "url": reverse("dashboard:today", args=[category]),
        }
        for category in selectors.CATEGORIES
    ]
    audit = selectors.audit_last_day(organisation=organisation, now=now)
    audit_since = timezone.localtime(audit["since"], organisation.tz)
    audit_query = urlencode({"from": audit_since.strftime("%Y-%m-%dT%H:%M:%S")})
    context = {
        "organisation": organisation,
        "time_zone": organisation.time_zone,
        "now": now,
        "today": today,
        "tiles": tiles,
        "pending": selectors.pending_corrections(user=request.user),
        "batches": selectors.recent_batches(organisation=organisation),
        "audit_count": audit["count"],
        "audit_url": f"{reverse('audit:events')}?{audit_query}",
        "ready": _readiness(),
    }
    return render(request, "dashboard/index.html", context)


@require_GET
@admin_page
def today(request, category: str):
    """The people behind one of today's tiles, paged."""
    if category not in selectors.CATEGORIES:
        raise Http404(_("No such list."))
    organisation = request.employee.organisation
    tz = organisation.tz
    now = timezone.now()
    people = selectors.today_people(organisation=organisation, category=category, now=now)
    page = Paginator(people, PEOPLE_PER_PAGE).get_page(request.GET.get("page"))
    day = timezone.localtime(now, tz).date()
    rows = [
        {
            **person,
            "first_in": _clock(person["today__first_in"], tz, day),
            "last_out": _clock(person["today__last_out"], tz, day),
            "status_label": STATUS_LABELS.get(person["today__status"], ""),
        }
        for person in page
    ]
    context = {
        "category": category,
        "label": CATEGORY_LABELS[category],
        "hint": CATEGORY_HINTS[category],
        "page": page,
        "rows": rows,
        "day": day,
        "time_zone": organisation.time_zone,
        "in_progress": schedule.day_in_progress(organisation, day, now),
    }
    return render(request, "dashboard/today.html", context)
