"""The events API (API.md "Events"). Views translate: reads through events.selectors, writes
through events.services.

Who may do what: organisers (the admin or approver role) list, create, change and complete
their organisation's events and manage its participants; everybody else sees only the
events they take part in and checks only themself in. An id of another organisation's
event, or of an event an employee is not part of, answers 404.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Q
from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from common.api import query_params, validated
from common.exceptions import Forbidden, ValidationFailed
from common.pagination import PageNumberPagination
from common.permissions import IsApproverOrAdmin, IsAttendanceUser
from common.schema import ANY_USER, PAGED, operation_doc
from events import selectors, services
from events.api import serializers as s
from events.models import Event, EventParticipant

STATE_CONFLICT = OpenApiResponse(
    description="REQUEST_STATE_CONFLICT: the event is completed or cancelled"
)
MARK_REFUSED = OpenApiResponse(
    description="REQUEST_STATE_CONFLICT: the event is cancelled; NOT_REGISTERED: the "
    "registration is waitlisted or cancelled"
)
CHECK_IN_REFUSED = OpenApiResponse(
    description="CHECKIN_CLOSED: outside the event's check-in window; NOT_REGISTERED: the "
    "registration is waitlisted or cancelled; REQUEST_STATE_CONFLICT: the event is completed "
    "or cancelled"
)
ZERO_COUNTS = {"unknown": 0, "present": 0, "late": 0, "absent": 0, "excused": 0}

ORGANISERS = "organisers (role admin or approver); others are refused (FORBIDDEN)."
READERS = (
    f"{ANY_USER}. Organisers see every event of the organisation, everybody else only the "
    "events they take part in."
)
EVENT_NOT_FOUND = (
    "NOT_FOUND (404): no such event in the organisation, or one the caller takes no part in"
)
EVENT_DOC = (
    "An event answers its times in the organisation's time zone, its status and the "
    "counts of its participants by attendance."
)
TIMES_ERRORS = (
    "VALIDATION_ERROR (400): an end before the start, a check-in window that closes before "
    "it opens, a late grace outside 0 to 240 minutes"
)


def _context(request) -> dict:
    return {"tz": request.user.employee.organisation.tz, "request": request}


def _with_counts(events: list[Event]) -> list[Event]:
    """Every event of the page gets its attendance counts, from one query."""
    counts = selectors.event_counts([event.pk for event in events]) if events else {}
    for event in events:
        event.attendance_counts = {**ZERO_COUNTS, **counts.get(event.pk, {})}
    return events


def _visible_event(request, pk: int) -> Event:
    return get_object_or_404(selectors.events_visible_to(request.user), pk=pk)


def _participant(event: Event, pid: int) -> EventParticipant:
    return get_object_or_404(selectors.participants_of(event), pk=pid)


def _event_body(request, event: Event) -> dict:
    return s.EventSerializer(_with_counts([event])[0], context=_context(request)).data


def _participant_body(request, event: Event, participant_id: int) -> dict:
    participant = _participant(event, participant_id)
    return s.ParticipantSerializer(participant, context=_context(request)).data


def _as_json_fields(error: ValidationFailed) -> ValidationFailed:
    """A service names model fields (``ends_at``); the client sent JSON ones (``endsAt``)."""
    fields = error.details.get("fields")
    if isinstance(fields, dict):
        error.details["fields"] = {
            s.MODEL_TO_JSON.get(name, name): messages for name, messages in fields.items()
        }
    return error


def _model_changes(data: dict) -> dict:
    return {s.EVENT_FIELDS[name]: value for name, value in data.items()}


def _filtered(events, filters: dict, tz):
    """The list's filters. ``from``/``to`` are days in the organisation's zone: an event is
    listed when it overlaps them (still running on ``from``, started by the end of ``to``)."""
    if filters.get("status"):
        events = events.filter(status=filters["status"])
    if filters.get("from"):
        day_start = dt.datetime.combine(filters["from"], dt.time.min, tzinfo=tz)
        events = events.filter(ends_at__gt=day_start)
    if filters.get("to"):
        next_day = dt.datetime.combine(filters["to"] + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
        events = events.filter(starts_at__lt=next_day)
    query = (filters.get("q") or "").strip()
    if query:
        events = events.filter(Q(title__icontains=query) | Q(location__icontains=query))
    return events


class _ReadForAllWriteForOrganisers(APIView):
    """GET for every attendance user (what they see is scoped); anything else organisers."""

    def get_permissions(self):
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return [IsAttendanceUser()]
        return [IsApproverOrAdmin()]


class EventListCreateView(_ReadForAllWriteForOrganisers):
    pagination_class = PageNumberPagination  # read by the schema generator

    @extend_schema(
        operation_id="events_list",
        tags=["events"],
        summary="List events",
        description=operation_doc(
            f"The events the caller may see, the latest start first. {EVENT_DOC}",
            who=READERS,
            paging=f"{PAGED} Filters: `status`, `from` and `to` (days in the organisation's "
            "time zone: an event running on any of them is listed), `q` (text in the title "
            "or location).",
            errors="VALIDATION_ERROR (400): an unknown status, a malformed day, `to` before "
            "`from`.",
        ),
        parameters=[s.EventFilterSerializer],
        responses=s.EventSerializer(many=True),
    )
    def get(self, request):
        filters = validated(s.EventFilterSerializer, query_params(request))
        tz = request.user.employee.organisation.tz
        events = _filtered(selectors.events_visible_to(request.user), filters, tz)
        paginator = PageNumberPagination()
        page = _with_counts(paginator.paginate_queryset(events, request, view=self))
        data = s.EventSerializer(page, many=True, context=_context(request)).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        operation_id="events_create",
        tags=["events"],
        summary="Create an event",
        description=operation_doc(
            "A new event of the caller's organisation, with its title, times, optional "
            "location, check-in window and late grace; answers 201 with the event. "
            "Participants are added afterwards.",
            who=ORGANISERS,
            errors=f"{TIMES_ERRORS}.",
        ),
        request=s.EventCreateInputSerializer,
        responses={201: s.EventSerializer},
    )
    def post(self, request):
        data = validated(s.EventCreateInputSerializer, request.data, context=_context(request))
        try:
            event = services.event_create(
                actor=request.user,
                organisation=request.user.employee.organisation,
                **_model_changes(data),
            )
        except ValidationFailed as error:
            raise _as_json_fields(error) from None
        return Response(_event_body(request, event), status=201)


class EventDetailView(_ReadForAllWriteForOrganisers):
    @extend_schema(
        operation_id="events_detail",
        tags=["events"],
        summary="Get an event",
        description=operation_doc(
            f"One event, as in the list. {EVENT_DOC}",
            who=READERS,
            errors=f"{EVENT_NOT_FOUND}.",
        ),
        responses=s.EventSerializer,
    )
    def get(self, request, pk: int):
        return Response(_event_body(request, _visible_event(request, pk)))

    @extend_schema(
        operation_id="events_update",
        tags=["events"],
        summary="Change an event",
        description=operation_doc(
            "A partial update (any subset of the creation's fields) of a scheduled or "
            "running event; answers the event.",
            who=ORGANISERS,
            errors=f"{TIMES_ERRORS}; {EVENT_NOT_FOUND}; REQUEST_STATE_CONFLICT (409): the "
            "event is completed or cancelled.",
        ),
        request=s.EventUpdateInputSerializer,
        responses={200: s.EventSerializer, 409: STATE_CONFLICT},
    )
    def patch(self, request, pk: int):
        data = validated(s.EventUpdateInputSerializer, request.data, context=_context(request))
        event = _visible_event(request, pk)
        try:
            event = services.event_update(actor=request.user, event=event, **_model_changes(data))
        except ValidationFailed as error:
            raise _as_json_fields(error) from None
        return Response(_event_body(request, event))


class EventCompleteView(APIView):
    permission_classes = [IsApproverOrAdmin]

    @extend_schema(
        operation_id="events_complete",
        tags=["events"],
        summary="Complete an event",
        description=operation_doc(
            "Marks the event completed and answers it. Once the organisation's "
            "auto-absence delay (settings' `autoAbsenceDelayMinutes`) has passed, "
            "participants still marked `unknown` become `absent`.",
            who=ORGANISERS,
            errors=f"{EVENT_NOT_FOUND}; REQUEST_STATE_CONFLICT (409): the event is "
            "completed or cancelled already.",
        ),
        request=None,
        responses={200: s.EventSerializer, 409: STATE_CONFLICT},
    )
    def post(self, request, pk: int):
        event = services.event_complete(actor=request.user, event=_visible_event(request, pk))
        return Response(_event_body(request, event))


class ParticipantListAddView(APIView):
    permission_classes = [IsApproverOrAdmin]
    pagination_class = PageNumberPagination  # read by the schema generator

    @extend_schema(
        operation_id="events_participants_list",
        tags=["events"],
        summary="List an event's participants",
        description=operation_doc(
            "The event's participants by name, each with their employee, registration, "
            "attendance, when and by whom it was marked, and notes.",
            who=ORGANISERS,
            paging=f"{PAGED} Filters: `attendance`, `q` (the employee's number or name).",
            errors=f"{EVENT_NOT_FOUND}; VALIDATION_ERROR (400): an unknown attendance.",
        ),
        parameters=[s.ParticipantFilterSerializer],
        responses=s.ParticipantSerializer(many=True),
    )
    def get(self, request, pk: int):
        filters = validated(s.ParticipantFilterSerializer, query_params(request))
        event = _visible_event(request, pk)
        participants = selectors.participants_of(
            event,
            attendance=filters.get("attendance"),
            q=(filters.get("q") or "").strip() or None,
        )
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(participants, request, view=self)
        data = s.ParticipantSerializer(page, many=True, context=_context(request)).data
        return paginator.get_paginated_response(data)

    @extend_schema(
        operation_id="events_participants_add",
        tags=["events"],
        summary="Add participants by employee number",
        description=operation_doc(
            "Registers the organisation's employees named by `employeeNos` for the event; "
            "answers the numbers `added`, `unchanged` (already participants) and `missing` "
            "(nobody in the organisation).",
            who=ORGANISERS,
            errors=f"{EVENT_NOT_FOUND}; VALIDATION_ERROR (400): no numbers, too many; "
            "REQUEST_STATE_CONFLICT (409): the event is completed or cancelled.",
        ),
        request=s.ParticipantsAddInputSerializer,
        responses={200: s.ParticipantsAddResultSerializer, 409: STATE_CONFLICT},
    )
    def post(self, request, pk: int):
        data = validated(s.ParticipantsAddInputSerializer, request.data)
        event = _visible_event(request, pk)
        result = services.participants_add(
            actor=request.user, event=event, employee_nos=data["employeeNos"]
        )
        return Response(s.ParticipantsAddResultSerializer(result).data)


class ParticipantCheckInView(APIView):
    @extend_schema(
        operation_id="events_participant_check_in",
        tags=["events"],
        summary="Check a participant in",
        description=operation_doc(
            "Marks the participant `present`, or `late` after the start plus the event's "
            "late grace, and answers the participant. Sending the same `nonce` again answers "
            "the first result (idempotent).",
            who=f"{ANY_USER}: employees check only themselves in (FORBIDDEN for another "
            "participant), organisers anybody of the event.",
            errors=f"{EVENT_NOT_FOUND}, or no such participant; CHECKIN_CLOSED (409): "
            "outside the check-in window; NOT_REGISTERED (409): the registration is "
            "waitlisted or cancelled; REQUEST_STATE_CONFLICT (409): the event is completed "
            "or cancelled.",
        ),
        request=s.CheckInInputSerializer,
        responses={200: s.ParticipantSerializer, 409: CHECK_IN_REFUSED},
    )
    def post(self, request, pk: int, pid: int):
        data = validated(s.CheckInInputSerializer, request.data)
        event = _visible_event(request, pk)
        participant = _participant(event, pid)
        if (
            not selectors.is_organiser(request.user)
            and participant.employee_id != request.user.employee.pk
        ):
            raise Forbidden(_("Employees check only themselves in."))
        services.participant_check_in(
            actor=request.user, participant=participant, nonce=data.get("nonce")
        )
        return Response(_participant_body(request, event, participant.pk))


class ParticipantMarkView(APIView):
    permission_classes = [IsApproverOrAdmin]

    @extend_schema(
        operation_id="events_participant_mark",
        tags=["events"],
        summary="Set a participant's attendance",
        description=operation_doc(
            "Sets one participant's attendance (`status`) and `notes`, recording who marked "
            "it and when; answers the participant. A completed event's participants may "
            "still be marked.",
            who=ORGANISERS,
            errors=f"{EVENT_NOT_FOUND}, or no such participant; REQUEST_STATE_CONFLICT "
            "(409): the event is cancelled; NOT_REGISTERED (409): the registration is "
            "waitlisted or cancelled.",
        ),
        request=s.MarkInputSerializer,
        responses={200: s.ParticipantSerializer, 409: MARK_REFUSED},
    )
    def patch(self, request, pk: int, pid: int):
        data = validated(s.MarkInputSerializer, request.data)
        event = _visible_event(request, pk)
        participant = _participant(event, pid)
        services.participant_mark(
            actor=request.user, participant=participant, status=data["status"], notes=data["notes"]
        )
        return Response(_participant_body(request, event, participant.pk))


class ParticipantBulkMarkView(APIView):
    permission_classes = [IsApproverOrAdmin]

    @extend_schema(
        operation_id="events_participants_mark_bulk",
        tags=["events"],
        summary="Set many participants' attendance at once",
        description=operation_doc(
            "One attendance `status` and `notes` for every participant in "
            "`participantIds`; answers the ids `updated`, `unchanged` (had them already) "
            "and `missing` (no registered participant of this event). A completed event's "
            "participants may still be marked.",
            who=ORGANISERS,
            errors=f"{EVENT_NOT_FOUND}; VALIDATION_ERROR (400): no ids, too many, an "
            "unknown status; REQUEST_STATE_CONFLICT (409): the event is cancelled.",
        ),
        request=s.BulkMarkInputSerializer,
        responses={200: s.BulkMarkResultSerializer, 409: STATE_CONFLICT},
    )
    def post(self, request, pk: int):
        data = validated(s.BulkMarkInputSerializer, request.data)
        event = _visible_event(request, pk)
        result = services.participants_mark_bulk(
            actor=request.user,
            event=event,
            participant_ids=data["participantIds"],
            status=data["status"],
            notes=data["notes"],
        )
        return Response(s.BulkMarkResultSerializer(result).data)


class MyEventsView(APIView):
    pagination_class = PageNumberPagination  # read by the schema generator

    @extend_schema(
        operation_id="events_mine",
        tags=["events"],
        summary="List my events",
        description=operation_doc(
            "The events the caller takes part in, the latest start first, each with the "
            f"caller's own participant row (registration, attendance, notes). {EVENT_DOC}",
            who=f"{ANY_USER}, for themself.",
            paging=PAGED,
        ),
        responses=s.MyEventSerializer(many=True),
    )
    def get(self, request):
        employee = request.user.employee
        participations = selectors.my_participations(employee).select_related("event", "marked_by")
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(participations, request, view=self)
        events = []
        for participation in page:
            participation.employee = employee  # the caller: no query per row
            participation.event.my_participant = participation
            events.append(participation.event)
        data = s.MyEventSerializer(_with_counts(events), many=True, context=_context(request)).data
        return paginator.get_paginated_response(data)
