"""The import pages of the admin centre: the wizard, the batch history and a batch's report.

The wizard is one page driven by ``static/js/imports.js`` against the JSON API; history and
report are server-rendered. Reads go through ``imports.selectors``, the one write (rollback)
through ``imports.services``, and an ``ApplicationError`` becomes a message, never a 500.
"""

from __future__ import annotations

import uuid
import zoneinfo

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_POST

from attendance.models import Employee
from attendance.views import STATUS_LABELS, _clock, attendance_page
from common import roles
from common.exceptions import ApplicationError, NotFound
from imports import selectors, services
from imports.formats import FORMATS
from imports.labels import row_code_label, wizard_labels
from imports.models import ImportBatch, ImportJob, ImportMode, ItemAction

BATCHES_PER_PAGE = 50
ITEMS_PER_PAGE = 100
# The report's tabs: (query value, label, key in batch.stats).
ITEM_TABS = [
    ("", gettext_lazy("All"), None),
    (ItemAction.INSERTED, gettext_lazy("Inserted"), "insert"),
    (ItemAction.UPDATED, gettext_lazy("Updated"), "update"),
    (ItemAction.UNCHANGED, gettext_lazy("Unchanged"), "unchanged"),
    (ItemAction.SKIPPED, gettext_lazy("Skipped"), "skip"),
    (ItemAction.INVALID, gettext_lazy("Invalid"), "invalid"),
    (ItemAction.DUPLICATE, gettext_lazy("Duplicate"), "duplicate"),
]
STAT_KEYS = ["insert", "update", "unchanged", "skip", "invalid", "duplicate"]
EXPORTS = [
    ("all", gettext_lazy("All rows")),
    ("imported", gettext_lazy("Imported (inserted + updated)")),
    ("skipped", gettext_lazy("Skipped, invalid and duplicate")),
    ("anomalies", gettext_lazy("Anomalies (late, early, partial, absent)")),
]
ACTION_LABELS = dict(ItemAction.choices)
ZERO_UUID = uuid.UUID(int=0)


import_page = attendance_page(
    any_role=(roles.IMPORTER, roles.ADMIN),
    refusal=(
        gettext_lazy("Importers only"),
        gettext_lazy("The import pages are for importers and administrators."),
    ),
)


def _batch_or_404(request, batch_id: int) -> ImportBatch:
    try:
        return selectors.batch_get(organisation=request.employee.organisation, batch_id=batch_id)
    except NotFound as error:
        raise Http404(error.message) from error


def _stats(stats: dict | None) -> dict:
    stats = stats or {}
    return {key: stats.get(key, 0) for key in STAT_KEYS}


def _elapsed(milliseconds: int) -> str:
    if milliseconds < 1000:
        return _("%(ms)d ms") % {"ms": milliseconds}
    seconds = milliseconds / 1000
    if seconds < 60:
        return _("%(seconds).1f s") % {"seconds": seconds}
    minutes, seconds = divmod(round(seconds), 60)
    return _("%(minutes)d min %(seconds)02d s") % {"minutes": minutes, "seconds": seconds}


def _format_label(name: str) -> str:
    fmt = FORMATS.get(name)
    return str(fmt.label) if fmt else name


def _page_number(request) -> str:
    return request.GET.get("page") or "1"


# --- the wizard ---------------------------------------------------------------------------


@import_page
@require_GET
@ensure_csrf_cookie  # imports.js sends it back in the X-CSRFToken header
def wizard(request):
    organisation = request.employee.organisation

    def api(name, *args):
        return reverse(f"import-api:{name}", args=args)

    return render(
        request,
        "imports/wizard.html",
        {
            "time_zone": organisation.time_zone,
            "labels": wizard_labels(),
            "time_zones": sorted(zoneinfo.available_timezones()),
            "max_bytes": settings.IMPORT_UPLOAD_MAX_BYTES,
            "modes": ImportMode.choices,
            "endpoints": {
                "formats": api("formats"),
                "upload": api("upload"),
                "preview": api("preview"),
                "errors": api("preview-errors"),
                "prepare": api("prepare"),
                "commit": api("commit-async"),
                "jobs": api("job", ZERO_UUID).removesuffix(str(ZERO_UUID)),
                "batches": reverse("imports:batches"),
            },
            "templates": [
                ("standard", api("template") + "?format=standard"),
                ("dingtalk_daily", api("template") + "?format=dingtalk_daily"),
            ],
        },
    )


# --- batch history ------------------------------------------------------------------------


@import_page
@require_GET
def batches(request):
    organisation = request.employee.organisation
    page = Paginator(selectors.batch_list(organisation=organisation), BATCHES_PER_PAGE).get_page(
        _page_number(request)
    )
    rows = [
        {
            "batch": batch,
            "stats": _stats(batch.stats),
            "by": batch.created_by.get_username() if batch.created_by else "",
            "format_label": _format_label(batch.format),
        }
        for batch in page
    ]
    return render(
        request,
        "imports/batches.html",
        {"page": page, "rows": rows, "time_zone": organisation.time_zone},
    )


# --- one batch ----------------------------------------------------------------------------


def _item_rows(items, tz) -> list[dict]:
    """The page's items with their employee (gone when a rollback deleted the employees the
    batch created) and times in the organisation's zone, ``+1`` after the work date."""
    ids = {item.employee_id for item in items if item.employee_id}
    employees = {
        pk: (number, name)
        for pk, number, name in Employee.objects.filter(pk__in=ids).values_list(
            "pk", "employee_no", "name"
        )
    }
    rows = []
    for item in items:
        number, name = employees.get(item.employee_id, ("", ""))
        updated = item.action == ItemAction.UPDATED
        rows.append(
            {
                "item": item,
                "employee_no": number or item.employee_ref,
                "name": name,
                "action_label": ACTION_LABELS.get(item.action, item.action),
                "status_label": STATUS_LABELS.get(item.status, item.status),
                "prior_status_label": STATUS_LABELS.get(item.prior_status, item.prior_status),
                "code_label": row_code_label(item.code) if item.code else "",
                "first_in": _clock(item.first_in, tz, item.work_date),
                "last_out": _clock(item.last_out, tz, item.work_date),
                "prior_in": _clock(item.prior_first_in, tz, item.work_date) if updated else "",
                "prior_out": _clock(item.prior_last_out, tz, item.work_date) if updated else "",
            }
        )
    return rows


@import_page
@require_GET
def batch_detail(request, batch_id: int):
    organisation = request.employee.organisation
    batch = _batch_or_404(request, batch_id)
    action = request.GET.get("action") or ""
    if action not in ItemAction.values:
        action = ""
    page = Paginator(
        selectors.batch_items(batch=batch, action=action or None), ITEMS_PER_PAGE
    ).get_page(_page_number(request))
    stats = _stats(batch.stats)
    tabs = [
        {
            "action": value,
            "label": label,
            "count": batch.row_count if key is None else stats[key],
            "current": value == action,
        }
        for value, label, key in ITEM_TABS
    ]
    export_url = reverse("import-api:batch-export", args=[batch.pk])
    rollback_job = selectors.active_rollback_job(batch=batch)
    return render(
        request,
        "imports/batch_detail.html",
        {
            "batch": batch,
            "stats": stats,
            "rolled_back": batch.status == ImportBatch.Status.ROLLED_BACK,
            "rollback_stats": batch.rollback_stats or {},
            "rollback_job": rollback_job,
            "rollback_job_url": (
                reverse("import-api:job", args=[rollback_job.pk]) if rollback_job else ""
            ),
            # Later batches that replaced days of this one: rollback would be refused.
            "blockers": [] if rollback_job else selectors.rollback_blockers(batch=batch),
            "created_employees": len(batch.created_employee_ids or []),
            "changed_during_import": (batch.stats or {}).get("changedDuringImport", 0),
            "mode_label": dict(ImportMode.choices).get(batch.mode, batch.mode),
            "format_label": _format_label(batch.format),
            "elapsed": _elapsed(batch.elapsed_ms),
            "tabs": tabs,
            "action": action,
            "page": page,
            "items": _item_rows(list(page), organisation.tz),
            "exports": [
                {"type": kind, "label": label, "url": f"{export_url}?type={kind}"}
                for kind, label in EXPORTS
            ],
            "time_zone": organisation.time_zone,
        },
    )


def _conflict_text(error: ApplicationError) -> str:
    conflicts = error.details.get("conflicts") if isinstance(error.details, dict) else None
    if not conflicts:
        return ""
    shown = ", ".join(
        _("%(employee)s on %(date)s") % {"employee": c["employeeNo"], "date": c["workDate"]}
        for c in conflicts[:5]
    )
    more = " …" if len(conflicts) > 5 else ""
    return " " + _("Changed later: %(days)s.") % {"days": shown + more}


@import_page
@require_POST
def batch_rollback(request, batch_id: int):
    organisation = request.employee.organisation
    try:
        result = services.import_rollback(
            actor=request.user, organisation=organisation, batch_id=batch_id
        )
    except NotFound as error:
        raise Http404(error.message) from error
    except ApplicationError as error:
        messages.error(request, f"{error.code}: {error.message}{_conflict_text(error)}")
    else:
        if isinstance(result, ImportJob):
            messages.info(
                request,
                _("Rollback queued as job %(job)s; reload this page to see when it is done.")
                % {"job": result.pk},
            )
        else:
            messages.success(
                request,
                _("Batch %(batch)s rolled back: %(deleted)s day(s) deleted, %(restored)s restored.")
                % {
                    "batch": result["batchId"],
                    "deleted": result["deleted"],
                    "restored": result["restored"],
                },
            )
    return redirect("imports:batch", batch_id=batch_id)
