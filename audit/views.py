"""The audit pages for admins: the organisation's events with the API's filters and keyset
paging, and one event in full. Reads go through ``audit.selectors``; the filters are
validated by the API's serializer, so a page and the API never disagree on what a filter
means."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET

from attendance.views import attendance_page
from audit import selectors
from audit.api.serializers import AuditListQuerySerializer
from common import roles

FILTER_NAMES = ("q", "action", "actionPrefix", "actor", "targetType", "targetId", "status")
WHEN_NAMES = ("from", "to")
PAGE_SIZES = (50, 100, 200)


admin_page = attendance_page(
    any_role=(roles.ADMIN,),
    refusal=(
        gettext_lazy("Administrators only"),
        gettext_lazy("This page is for administrators of the organisation."),
    ),
)


def _query(params: dict, **changes) -> str:
    """A query string of the non-empty values, with ``changes`` applied."""
    merged = {**params, **changes}
    return urlencode({key: value for key, value in merged.items() if value not in ("", None)})


@require_GET
@admin_page
def events(request):
    organisation = request.employee.organisation
    given = {
        name: request.GET.get(name, "")
        for name in (*FILTER_NAMES, *WHEN_NAMES, "cursor", "pageSize")
    }
    # An empty box of the form is no filter (the API, stricter, refuses an empty date).
    query = AuditListQuerySerializer(
        data={name: value for name, value in given.items() if value.strip()},
        context={"tz": organisation.tz},
    )
    page = None
    rows = []
    if query.is_valid():
        page = selectors.audit_event_page(
            organisation_id=organisation.pk,
            filters=query.filters(),
            cursor=query.cursor_position(),
            page_size=query.validated_data["pageSize"],
        )
        rows = [
            {
                "event": event,
                "status": selectors.event_status(event),
                "error_code": selectors.event_error_code(event),
                "target_url": selectors.target_url(event.target_type, event.target_id),
            }
            for event in page.events
        ]
    filters_only = {name: given[name] for name in (*FILTER_NAMES, *WHEN_NAMES)}
    list_params = {**filters_only, "pageSize": given["pageSize"]}
    export_url = reverse("audit-api:audit-logs-export")
    context = {
        "given": given,
        "errors": {} if page is not None else query.errors,
        "rows": rows,
        "page": page,
        "page_sizes": PAGE_SIZES,
        "statuses": selectors.STATUSES,
        "time_zone": organisation.time_zone,
        "paged": bool(given["cursor"]),
        "first_page_query": _query(list_params),
        "next_page_query": _query(list_params, cursor=page.next_cursor)
        if page is not None and page.next_cursor
        else "",
        "export_url": f"{export_url}?{_query(filters_only)}".rstrip("?"),
        "filtered": any(filters_only.values()),
    }
    return render(request, "audit/events.html", context, status=200 if page is not None else 400)


@require_GET
@admin_page
def event_detail(request, event_id: int):
    organisation = request.employee.organisation
    event = selectors.audit_event_get(organisation_id=organisation.pk, event_id=event_id)
    if event is None:
        raise Http404(_("No such audit event in your organisation."))
    context = {
        "event": event,
        "status": selectors.event_status(event),
        "error_code": selectors.event_error_code(event),
        "target_url": selectors.target_url(event.target_type, event.target_id),
        "data_pretty": json.dumps(event.data, indent=2, ensure_ascii=False, sort_keys=True),
        "time_zone": organisation.time_zone,
        "same_target_query": _query({"targetType": event.target_type, "targetId": event.target_id})
        if event.target_type
        else "",
        "same_actor_query": _query({"actor": event.actor_id}) if event.actor_id else "",
        "same_action_query": _query({"action": event.action}),
    }
    return render(request, "audit/event_detail.html", context)
