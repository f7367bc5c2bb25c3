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
        summary="Events: the organisation's (organisers) or the caller's own (employees)",
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
        summary="Create an event (organisers)",
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
        summary="One event (organisers: any of the organisation's; employees: their own)",
        responses=s.EventSerializer,
    )
    def get(self, request, pk: int):
        return Response(_event_body(request, _visible_event(request, pk)))

    @extend_schema(
        operation_id="events_update",
        summary="Change an event (organisers; scheduled or running events only)",
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
        summary="Complete an event (organisers); auto-absence follows after the delay",
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
        summary="An event's participants (organisers)",
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
        summary="Add the organisation's employees to an event by number (organisers)",
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
        summary="Check a participant in (the employee themself, or an organiser)",
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
        summary="Set one participant's attendance, with notes (organisers)",
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
        summary="Set many participants' attendance at once (organisers)",
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
        summary="The caller's events, each with the caller's own participant row",
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
