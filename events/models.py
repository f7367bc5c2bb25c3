"""Events (trainings, meetings, shifts) and who was expected, who came.

An event belongs to one organisation; a participant is one of its employees, at most once
per event. ``attendance`` is NULL only for rows written before the attendance column had a
default (the backfill migration sets ``unknown``; ``manage.py events_backfill --check``
counts what is left).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from events.choices import Attendance, EventStatus, Registration


class Event(models.Model):
    organisation = models.ForeignKey(
        "attendance.Organisation",
        on_delete=models.PROTECT,
        related_name="events",
        verbose_name=_("organisation"),
    )
    title = models.CharField(_("title"), max_length=200)
    location = models.CharField(_("location"), max_length=200, blank=True)
    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    check_in_opens_at = models.DateTimeField(
        _("check-in opens at"),
        null=True,
        blank=True,
        help_text=_("Empty: 30 minutes before it starts."),
    )
    check_in_closes_at = models.DateTimeField(
        _("check-in closes at"), null=True, blank=True, help_text=_("Empty: when it ends.")
    )
    late_grace_minutes = models.PositiveSmallIntegerField(_("late grace (minutes)"), default=5)
    status = models.CharField(
        _("status"), max_length=16, choices=EventStatus.choices, default=EventStatus.SCHEDULED
    )
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("completed by"),
    )
    # When the auto-absence of this event ran to its end (NULL: not yet, or not finished).
    absences_marked_at = models.DateTimeField(
        _("absences marked at"), null=True, blank=True, editable=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("created by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [
            models.Index(fields=["organisation", "starts_at"], name="event_org_starts"),
            models.Index(fields=["status", "ends_at"], name="event_status_ends"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="event_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(check_in_opens_at__isnull=True)
                | Q(check_in_closes_at__isnull=True)
                | Q(check_in_closes_at__gt=F("check_in_opens_at")),
                name="event_checkin_window_order",
            ),
            models.CheckConstraint(
                condition=Q(late_grace_minutes__lte=240), name="event_late_grace_max_4h"
            ),
        ]

    def __str__(self) -> str:
        return self.title


class EventParticipant(models.Model):
    event = models.ForeignKey(
        Event, on_delete=models.CASCADE, related_name="participants", verbose_name=_("event")
    )
    employee = models.ForeignKey(
        "attendance.Employee",
        on_delete=models.PROTECT,
        related_name="event_participations",
        verbose_name=_("employee"),
    )
    registration = models.CharField(
        _("registration"),
        max_length=16,
        choices=Registration.choices,
        default=Registration.REGISTERED,
    )
    # NULL marks rows from before the backfill (see the module's docstring).
    attendance = models.CharField(  # noqa: DJ001
        _("attendance"),
        max_length=16,
        choices=Attendance.choices,
        default=Attendance.UNKNOWN,
        null=True,
    )
    marked_at = models.DateTimeField(_("marked at"), null=True, blank=True)
    marked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("marked by"),
    )
    # True when an organiser set the attendance: auto-absence never overrides it.
    marked_by_organiser = models.BooleanField(_("marked by the organiser"), default=False)
    notes = models.TextField(_("notes"), blank=True, max_length=2000)
    attendance_updated_at = models.DateTimeField(_("attendance updated at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["employee__name", "id"]
        verbose_name = _("participant")
        verbose_name_plural = _("participants")
        constraints = [
            models.UniqueConstraint(fields=["event", "employee"], name="participant_once_per_event")
        ]
        indexes = [
            models.Index(fields=["event", "attendance"], name="participant_event_attendance"),
        ]

    def __str__(self) -> str:
        return f"{self.employee} @ {self.event}"


class EventCheckIn(models.Model):
    """A check-in by its client nonce: a resend with the same nonce answers this first
    result instead of checking in again."""

    participant = models.ForeignKey(
        EventParticipant,
        on_delete=models.CASCADE,
        related_name="check_ins",
        verbose_name=_("participant"),
    )
    nonce = models.CharField(_("nonce"), max_length=64)
    attendance = models.CharField(_("attendance"), max_length=16, choices=Attendance.choices)
    checked_in_at = models.DateTimeField(
        _("checked in at"),
    )
    checked_in_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("checked in by"),
    )

    class Meta:
        verbose_name = _("check-in")
        verbose_name_plural = _("check-ins")
        constraints = [
            models.UniqueConstraint(fields=["participant", "nonce"], name="checkin_nonce_once")
        ]

    def __str__(self) -> str:
        return f"{self.participant_id}:{self.nonce}"
