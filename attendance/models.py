from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from attendance.choices import PunchKind, PunchSource, RecordSource, RecordStatus, RequestState


def _validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)r is not an IANA time zone.") % {"value": value})


def _default_workdays() -> list[int]:
    return [0, 1, 2, 3, 4]  # Monday … Friday, as date.weekday()


class Organisation(models.Model):
    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="Asia/Shanghai", validators=[_validate_time_zone]
    )
    work_start = models.TimeField(_("work starts"), default=dt.time(9, 0))
    work_end = models.TimeField(_("work ends"), default=dt.time(18, 0))
    grace_minutes = models.PositiveSmallIntegerField(_("grace (minutes)"), default=5)
    workdays = models.JSONField(
        _("workdays"), default=_default_workdays, help_text=_("The days with a scheduled shift.")
    )
    ip_allowlist = models.JSONField(
        _("IP allowlist"),
        default=list,
        blank=True,
        help_text=_(
            "Networks allowed to use the app, one CIDR a line (e.g. 10.0.0.0/8); empty = any."
        ),
    )
    auto_absence_delay_minutes = models.PositiveIntegerField(
        _("auto-absence delay (minutes)"), default=60
    )
    audit_retention_days = models.PositiveIntegerField(_("audit retention (days)"), default=365)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")
        constraints = [
            models.CheckConstraint(condition=Q(grace_minutes__lte=240), name="org_grace_max_4h"),
            models.CheckConstraint(
                condition=Q(audit_retention_days__gte=30), name="org_retention_min_30_days"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


class Employee(models.Model):
    organisation = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        related_name="employees",
        verbose_name=_("organisation"),
    )
    employee_no = models.CharField(
        _("employee number"), max_length=64, help_text=_("Kept as text: leading zeros matter.")
    )
    name = models.CharField(_("name"), max_length=200)
    department = models.CharField(_("department"), max_length=200, blank=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="employee",
        verbose_name=_("login"),
    )
    approver = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reports",
        verbose_name=_("approver"),
    )
    dingtalk_user_id = models.CharField(_("DingTalk user ID"), max_length=64, blank=True)
    device_pin = models.CharField(_("device PIN"), max_length=32, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["employee_no"]
        verbose_name = _("employee")
        verbose_name_plural = _("employees")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "employee_no"], name="employee_no_unique"
            ),
            models.UniqueConstraint(
                fields=["organisation", "dingtalk_user_id"],
                condition=~Q(dingtalk_user_id=""),
                name="employee_dingtalk_id_unique",
            ),
            models.UniqueConstraint(
                fields=["organisation", "device_pin"],
                condition=~Q(device_pin=""),
                name="employee_device_pin_unique",
            ),
            models.CheckConstraint(condition=~Q(employee_no=""), name="employee_no_not_empty"),
            models.CheckConstraint(
                condition=~Q(approver=F("id")), name="employee_not_own_approver"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.employee_no} {self.name}"


class Punch(models.Model):
    """One clock event. ``work_date`` is the day it counts for (a night shift's out-punch
    after midnight counts for the day the shift started)."""

    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="+", verbose_name=_("organisation")
    )
    employee = models.ForeignKey(
        Employee, on_delete=models.PROTECT, related_name="punches", verbose_name=_("employee")
    )
    kind = models.CharField(
        _("kind"), max_length=8, choices=PunchKind.choices, default=PunchKind.UNKNOWN
    )
    occurred_at = models.DateTimeField(_("occurred at"))
    received_at = models.DateTimeField(_("received at"))
    work_date = models.DateField(_("work date"))
    source = models.CharField(_("source"), max_length=16, choices=PunchSource.choices)
    source_key = models.CharField(_("source key"), max_length=200)
    batch = models.ForeignKey(
        "imports.ImportBatch",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("import batch"),
    )

    class Meta:
        ordering = ["occurred_at"]
        verbose_name = _("punch")
        verbose_name_plural = _("punches")
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "source_key"], name="punch_source_key_unique"
            ),
        ]
        indexes = [models.Index(fields=["employee", "work_date"], name="punch_employee_day")]

    def __str__(self) -> str:
        return f"{self.employee_id} {self.kind} {self.occurred_at.isoformat()}"


class AttendanceRecord(models.Model):
    # No single-column indexes on these two: (organisation, work_date) and the unique
    # (employee, work_date) lead with them, and every extra index is write cost on imports.
    organisation = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        verbose_name=_("organisation"),
    )
    employee = models.ForeignKey(
        Employee,
        on_delete=models.PROTECT,
        related_name="records",
        db_index=False,
        verbose_name=_("employee"),
    )
    work_date = models.DateField(_("work date"))
    first_in = models.DateTimeField(_("first in"), null=True, blank=True)
    last_out = models.DateTimeField(_("last out"), null=True, blank=True)
    work_minutes = models.PositiveIntegerField(_("worked (minutes)"), default=0)
    late_minutes = models.PositiveIntegerField(_("late (minutes)"), default=0)
    early_leave_minutes = models.PositiveIntegerField(_("early leave (minutes)"), default=0)
    status = models.CharField(_("status"), max_length=16, choices=RecordStatus.choices)
    source = models.CharField(_("source"), max_length=16, choices=RecordSource.choices)
    batch = models.ForeignKey(
        "imports.ImportBatch",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("import batch"),
    )
    note = models.CharField(_("note"), max_length=500, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["-work_date", "employee_id"]
        verbose_name = _("day record")
        verbose_name_plural = _("day records")
        constraints = [
            models.UniqueConstraint(fields=["employee", "work_date"], name="record_employee_day"),
            models.CheckConstraint(
                condition=Q(first_in__isnull=True)
                | Q(last_out__isnull=True)
                | Q(last_out__gte=F("first_in")),
                name="record_out_after_in",
            ),
        ]
        indexes = [
            models.Index(fields=["organisation", "work_date"], name="record_org_day"),
            models.Index(fields=["organisation", "status", "work_date"], name="record_org_status"),
        ]

    def __str__(self) -> str:
        return f"{self.employee_id} {self.work_date} {self.status}"


# A day's value columns: everything but its identity (id, organisation, employee, date). The
# import's plan, apply and rollback SQL, the items' pre-images (``prior_<column>``) and the
# tests' snapshots are all built from this one list.
RECORD_VALUE_COLUMNS = tuple(
    field.column
    for field in AttendanceRecord._meta.concrete_fields
    if field.name not in ("id", "organisation", "employee", "work_date")
)


class AdjustmentRequest(models.Model):
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="+", verbose_name=_("organisation")
    )
    employee = models.ForeignKey(
        Employee, on_delete=models.PROTECT, related_name="adjustments", verbose_name=_("employee")
    )
    work_date = models.DateField(_("work date"))
    requested_first_in = models.DateTimeField(_("requested first in"), null=True, blank=True)
    requested_last_out = models.DateTimeField(_("requested last out"), null=True, blank=True)
    requested_status = models.CharField(
        _("requested status"), max_length=16, choices=RecordStatus.choices, blank=True, default=""
    )
    reason = models.TextField(_("reason"))
    state = models.CharField(
        _("state"), max_length=16, choices=RequestState.choices, default=RequestState.PENDING
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("requested by"),
    )
    created_at = models.DateTimeField(_("requested at"), auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decision_comment = models.TextField(_("decision comment"), blank=True)

    class Meta:
        ordering = ["-created_at"]
        # The pages call them corrections: one word for the same thing everywhere.
        verbose_name = _("correction")
        verbose_name_plural = _("corrections")
        constraints = [
            models.UniqueConstraint(
                fields=["employee", "work_date"],
                condition=Q(state="pending"),
                name="one_pending_request_per_day",
            ),
            models.CheckConstraint(
                condition=Q(requested_first_in__isnull=False)
                | Q(requested_last_out__isnull=False)
                | ~Q(requested_status=""),
                name="request_asks_for_something",
            ),
            models.CheckConstraint(
                condition=Q(requested_first_in__isnull=True)
                | Q(requested_last_out__isnull=True)
                | Q(requested_last_out__gte=F("requested_first_in")),
                name="request_out_after_in",
            ),
            models.CheckConstraint(
                condition=Q(state="pending") | Q(decided_at__isnull=False),
                name="request_decided_has_time",
            ),
        ]
        indexes = [models.Index(fields=["organisation", "state"], name="request_org_state")]

    def __str__(self) -> str:
        return f"{self.employee_id} {self.work_date} {self.state}"


class ApiToken(models.Model):
    """A bearer token for scripts and ops. Only its SHA-256 is stored; the token is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        verbose_name=_("user"),
    )
    name = models.CharField(_("name"), max_length=100, blank=True)
    prefix = models.CharField(
        _("prefix"), max_length=12, help_text=_("First characters, to recognise a token.")
    )
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
