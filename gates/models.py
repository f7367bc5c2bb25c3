"""Gate runs (every run of every gate, kept), escalations (one open per gate at most) and
the webhook notifications sent for them."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from gates.choices import (
    EscalationStatus,
    FailureKind,
    NotificationEvent,
    NotificationStatus,
    OwnerRole,
    Priority,
    RunStatus,
)


class GateRun(models.Model):
    gate = models.CharField(_("gate"), max_length=32)
    priority = models.CharField(_("priority"), max_length=2, choices=Priority.choices)
    status = models.CharField(
        _("status"), max_length=8, choices=RunStatus.choices, default=RunStatus.RUNNING
    )
    # A drill is stored and shown, never counted (status, staleness, escalation, decision).
    drill = models.BooleanField(_("drill"), default=False)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("triggered by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    trigger = models.CharField(_("trigger"), max_length=16, default="cli")
    host = models.CharField(_("host"), max_length=255, blank=True)
    base_url = models.CharField(_("base URL"), max_length=500, blank=True)
    app_version = models.CharField(_("app version"), max_length=64, blank=True)
    app_commit = models.CharField(_("app commit"), max_length=64, blank=True)
    options = models.JSONField(_("options"), default=dict, blank=True)
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration (ms)"), null=True, blank=True)
    summary = models.JSONField(_("summary figures"), default=dict, blank=True)
    evidence = models.JSONField(_("evidence"), default=dict, blank=True)
    log = models.TextField(_("log"), blank=True)
    failed_check = models.CharField(_("failed check"), max_length=100, blank=True)
    failure_kind = models.CharField(
        _("failure kind"), max_length=16, choices=FailureKind.choices, blank=True
    )
    remediation = models.TextField(_("remediation"), blank=True)
    remediation_owner = models.CharField(
        _("remediation owner"), max_length=16, choices=OwnerRole.choices, blank=True
    )

    class Meta:
        verbose_name = _("gate run")
        verbose_name_plural = _("gate runs")
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["gate", "drill", "-started_at"], name="gates_run_latest"),
        ]

    def __str__(self) -> str:
        drill = " (drill)" if self.drill else ""
        return f"{self.gate} #{self.pk} {self.status}{drill}"

    @property
    def passed(self) -> bool:
        return self.status == RunStatus.PASS


class GateEscalation(models.Model):
    gate = models.CharField(_("gate"), max_length=32)
    priority = models.CharField(_("priority"), max_length=2, choices=Priority.choices)
    status = models.CharField(
        _("status"), max_length=8, choices=EscalationStatus.choices, default=EscalationStatus.OPEN
    )
    opened_at = models.DateTimeField(_("opened at"))
    updated_at = models.DateTimeField(_("updated at"))
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    first_run = models.ForeignKey(
        GateRun, verbose_name=_("first failing run"), on_delete=models.PROTECT, related_name="+"
    )
    last_run = models.ForeignKey(
        GateRun, verbose_name=_("last failing run"), on_delete=models.PROTECT, related_name="+"
    )
    closed_by_run = models.ForeignKey(
        GateRun,
        verbose_name=_("closed by run"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    failures = models.PositiveIntegerField(_("failing runs"), default=1)
    reason = models.TextField(_("reason"), blank=True)

    class Meta:
        verbose_name = _("gate escalation")
        verbose_name_plural = _("gate escalations")
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["gate"],
                condition=Q(status="open"),
                name="gates_one_open_escalation_per_gate",
            )
        ]

    def __str__(self) -> str:
        return f"{self.gate} escalation #{self.pk} ({self.status})"


class GateNotification(models.Model):
    escalation = models.ForeignKey(
        GateEscalation,
        verbose_name=_("escalation"),
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    run = models.ForeignKey(
        GateRun, verbose_name=_("run"), on_delete=models.PROTECT, related_name="notifications"
    )
    event = models.CharField(_("event"), max_length=8, choices=NotificationEvent.choices)
    channel = models.CharField(_("channel"), max_length=16)
    # The webhook's address with its path masked: it is a credential.
    target = models.CharField(_("target"), max_length=300)
    status = models.CharField(_("status"), max_length=8, choices=NotificationStatus.choices)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("gate notification")
        verbose_name_plural = _("gate notifications")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel} ({self.status})"
