"""Gates API shapes. The bodies are the dicts of ``gates.selectors.run_as_dict``,
``gates.services.dashboard.dashboard`` and ``gates.services.decision.decide`` (their keys
are already camelCase); these serializers give them a schema and render every instant in
the caller's organisation's time zone (``tz`` in the context)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from rest_framework import serializers

from common.fields import QueryBooleanField, StrictChoiceField
from gates.choices import EscalationStatus, FailureKind, OwnerRole, Priority, RunStatus
from gates.services.decision import CONDITIONAL, GO, NO_GO, STATUS_LABELS
from gates.services.registry import GATES

EFFECTIVE_STATUSES = ("pass", "fail", "error", "stale", "missing")
VERDICTS = (GO, CONDITIONAL, NO_GO)


# --- input ----------------------------------------------------------------------------------


class RunFilterSerializer(serializers.Serializer):
    """Query of the run list (also the schema's parameters)."""

    gate = StrictChoiceField(
        choices=[(name, name) for name in GATES],
        required=False,
        help_text="Only this gate's runs",
    )
    drill = QueryBooleanField(
        required=False,
        help_text="true: only drills; false: only real runs; left out: both",
    )


# --- output ---------------------------------------------------------------------------------


class LocalInstantField(serializers.DateTimeField):
    """An instant as ISO 8601 with the offset of the organisation's time zone. Takes an aware
    datetime or the ISO text of one (a service may hand either)."""

    def to_representation(self, value):
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        if timezone.is_naive(value):
            value = timezone.make_aware(value, dt.UTC)
        tz = self.context.get("tz")
        return timezone.localtime(value, tz).isoformat() if tz else value.isoformat()


class RunFailureSerializer(serializers.Serializer):
    check = serializers.CharField(
        help_text="The first failing blocking check (or runner, end-marker)"
    )
    kind = serializers.ChoiceField(choices=FailureKind.choices, allow_blank=True)
    remediation = serializers.CharField(allow_blank=True)
    owner = serializers.ChoiceField(
        choices=OwnerRole.choices, allow_blank=True, help_text="Who acts on the remediation"
    )


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    gate = serializers.CharField()
    priority = serializers.ChoiceField(choices=Priority.choices)
    status = serializers.ChoiceField(choices=RunStatus.choices)
    drill = serializers.BooleanField(help_text="A drill is shown, never counted")
    trigger = serializers.CharField(help_text="cli, beat, …")
    triggeredBy = serializers.CharField(allow_null=True, help_text="The username, if any")
    host = serializers.CharField(allow_blank=True)
    baseUrl = serializers.CharField(allow_blank=True)
    appVersion = serializers.CharField(allow_blank=True)
    appCommit = serializers.CharField(allow_blank=True)
    options = serializers.DictField(help_text="The run's options (never its token)")
    startedAt = LocalInstantField()
    finishedAt = LocalInstantField(allow_null=True)
    durationMs = serializers.IntegerField(allow_null=True)
    summary = serializers.DictField(help_text="Summary figures")
    evidence = serializers.DictField(
        help_text="checks (name, ok, detail, kind, remediation, owner, blocking, elapsed_ms, "
        "evidence), warnings, completed, endMarker, and the gate's own evidence"
    )
    failure = RunFailureSerializer(allow_null=True, help_text="null when the run passed")


class RunDetailSerializer(RunSerializer):
    log = serializers.CharField(allow_blank=True, help_text="The run's log, as written")


class GateStateSerializer(serializers.Serializer):
    gate = serializers.CharField()
    priority = serializers.ChoiceField(choices=Priority.choices)
    description = serializers.CharField()
    latest = RunSerializer(allow_null=True, help_text="The latest finished real run")
    ageHours = serializers.FloatField(allow_null=True)
    stale = serializers.BooleanField()
    effectiveStatus = serializers.ChoiceField(
        choices=[(status, status) for status in EFFECTIVE_STATUSES],
        help_text="stale: the latest real run is older than the gate's staleness limit; "
        "missing: no real run yet",
    )
    latestDrill = RunSerializer(allow_null=True, help_text="The latest drill (never counted)")


class EscalationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    gate = serializers.CharField()
    priority = serializers.ChoiceField(choices=Priority.choices)
    status = serializers.ChoiceField(choices=EscalationStatus.choices)
    openedAt = LocalInstantField()
    updatedAt = LocalInstantField()
    failures = serializers.IntegerField(min_value=0, help_text="Failing runs counted")
    reason = serializers.CharField(allow_blank=True)
    firstRunId = serializers.IntegerField()
    lastRunId = serializers.IntegerField()


class PerfPhasesSerializer(serializers.Serializer):
    previewMs = serializers.FloatField(allow_null=True)
    commitMs = serializers.FloatField(allow_null=True)
    exportMs = serializers.FloatField(allow_null=True)
    rollbackMs = serializers.FloatField(allow_null=True)


class PerfPointSerializer(serializers.Serializer):
    runId = serializers.IntegerField()
    gate = serializers.CharField()
    startedAt = LocalInstantField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    phases = PerfPhasesSerializer()


class DashboardSerializer(serializers.Serializer):
    generatedAt = LocalInstantField()
    gates = GateStateSerializer(many=True)
    escalations = EscalationSerializer(many=True, help_text="Open escalations")
    perfHistory = PerfPointSerializer(many=True, help_text="Perf phases over time")
    history = RunSerializer(many=True, help_text="Recent runs, drills included, newest first")


class CriterionEvidenceSerializer(serializers.Serializer):
    runId = serializers.IntegerField(allow_null=True)
    url = serializers.CharField(allow_null=True)


class CriterionSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()
    blocking = serializers.BooleanField()
    status = serializers.ChoiceField(
        choices=[(status, status) for status in STATUS_LABELS],
        help_text="met; unmet; stale (a pass too old to count); missing (no real run); "
        "warning (for information, never changes the verdict)",
    )
    statusLabel = serializers.CharField(help_text="The status in the reader's language")
    ok = serializers.BooleanField(help_text="status is met")
    detail = serializers.CharField(allow_blank=True)
    ageHours = serializers.FloatField(allow_null=True)
    evidence = CriterionEvidenceSerializer(allow_null=True)


class DecisionSerializer(serializers.Serializer):
    verdict = serializers.ChoiceField(
        choices=[(verdict, verdict) for verdict in VERDICTS],
        help_text="NO-GO: a blocking criterion is not met; CONDITIONAL: every blocking one is "
        "met, another is unmet, stale or missing; GO: otherwise",
    )
    headline = serializers.CharField(help_text="The verdict in one sentence")
    score = serializers.CharField(help_text="Blocking criteria met, as n/m")
    met = serializers.IntegerField(min_value=0)
    total = serializers.IntegerField(min_value=0)
    generatedAt = LocalInstantField()
    app = serializers.DictField(help_text="The application: version, commit, host, …")
    criteria = CriterionSerializer(many=True)
    rationale = serializers.ListField(child=serializers.CharField())
    rollbackTriggers = serializers.ListField(child=serializers.CharField())
    monitoring = serializers.ListField(child=serializers.CharField())
