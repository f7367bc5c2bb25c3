"""The metrics gate: a deployment's /metrics answers Prometheus text that declares the
application's own series, so that its alerts and dashboard (deploy/prometheus,
deploy/grafana) read something.

Judgements made here, and why:

- **Which /metrics.** The deployment's, at ``base_url`` (no token: the endpoint is open, and
  a token has no business in a scrape). Without a base URL the run fails as configuration:
  the registry of the process running the gate would only show what this checkout declares,
  not what the deployment (behind its proxy) exposes.
- **Declared is enough.** A labelled counter or histogram that has counted nothing yet is
  exposed by prometheus_client as its ``# HELP`` and ``# TYPE`` lines without a sample, and a
  family counted only in a Celery worker (an import job's rows) reaches the web's /metrics
  only in multiprocess mode (issue 11). So a family must be declared with its type; its
  samples, where there are any, must carry its labels (and the gate status must be 0 or 1).
- **Names.** The parser names a counter's family without ``_total``; the rules here name the
  series as Prometheus queries them and compare accordingly.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from prometheus_client.parser import text_string_to_metric_families

from gates.choices import FailureKind, OwnerRole
from gates.services.http import GateClient, classified, deployment_client
from gates.services.runs import CheckFailed, GateContext

# Labels prometheus_client adds to a family's samples by itself.
IMPLIED_LABELS = {"le", "quantile"}


@dataclass(frozen=True)
class RequiredSeries:
    name: str  # as queried: attendance_import_rows_total
    type: str
    labels: tuple[str, ...]
    covers: str  # what it shows, for the check's name and detail

    @property
    def family(self) -> str:
        """The family's name as the parser gives it."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name


REQUIRED = (
    RequiredSeries(
        "attendance_import_rows_total",
        "counter",
        ("format", "action"),
        gettext_lazy("import rows"),
    ),
    RequiredSeries(
        "attendance_import_failures_total",
        "counter",
        ("format", "code"),
        gettext_lazy("import failures"),
    ),
    RequiredSeries(
        "attendance_import_duration_seconds",
        "histogram",
        ("format", "phase"),
        gettext_lazy("import durations"),
    ),
    RequiredSeries(
        "attendance_rate_limited_total",
        "counter",
        ("group",),
        gettext_lazy("rate-limited requests"),
    ),
    RequiredSeries(
        "attendance_api_errors_total",
        "counter",
        ("code",),
        gettext_lazy("API errors by code"),
    ),
    RequiredSeries(
        "attendance_gate_status",
        "gauge",
        ("gate", "priority"),
        gettext_lazy("gate status"),
    ),
    RequiredSeries(
        "attendance_gate_last_run_timestamp_seconds",
        "gauge",
        ("gate", "priority"),
        gettext_lazy("gate last run"),
    ),
)


def run(ctx: GateContext) -> None:
    client = deployment_client(
        ctx,
        check="target",
        with_token=False,
        remediation=_("Pass --base-url (or set GATES_BASE_URL)."),
    )
    families: dict = {}
    with client:
        ctx.check(
            "scrape",
            classified(lambda: scrape(client, families), client.base_url),
            remediation=_(
                "Make GET /metrics answer Prometheus text at the deployment's address (the"
                " app's route, and the proxy in front of it)."
            ),
            owner=OwnerRole.OPS,
            stop=True,
        )
    ctx.figures["families"] = len(families)
    ctx.figures["appFamilies"] = len([name for name in families if name.startswith("attendance_")])
    missing: list[str] = []
    ctx.figures["missing"] = missing
    for series in REQUIRED:
        checked = ctx.check(
            f"series {series.name}",
            lambda series=series: check_series(series, families.get(series.family)),
            remediation=_(
                "Deploy a version that declares %(name)s (%(covers)s) in the web processes'"
                " registry, with the labels %(labels)s."
            )
            % {"name": series.name, "covers": series.covers, "labels": ", ".join(series.labels)},
            owner=OwnerRole.DEVELOPER,
        )
        if checked is None:
            missing.append(series.name)
    ctx.finish()


def scrape(client: GateClient, families: dict):
    """GET /metrics (never retried) and parse it into ``families`` (name → family)."""
    response = client.request("GET", "/metrics", expect=(200,))
    try:
        parsed = list(text_string_to_metric_families(response.text))
    except Exception as exc:  # the parser raises ValueError and others on a malformed line
        raise CheckFailed(
            _("/metrics is not Prometheus text: %(error)s") % {"error": exc},
            kind=FailureKind.DEFECT,
            evidence={"contentType": response.headers.get("content-type", "")},
        ) from exc
    families.update((family.name, family) for family in parsed)
    evidence = {"families": len(families), "bytes": len(response.content)}
    return _("%(families)d families, %(bytes)d bytes") % evidence, evidence


def check_series(series: RequiredSeries, family):
    if family is None:
        raise CheckFailed(
            _("%(name)s (%(covers)s) is not declared.")
            % {"name": series.name, "covers": series.covers},
            kind=FailureKind.DEFECT,
        )
    evidence = {"type": family.type, "samples": len(family.samples)}
    if family.type != series.type:
        raise CheckFailed(
            _("%(name)s is a %(type)s, not a %(expected)s.")
            % {"name": series.name, "type": family.type, "expected": series.type},
            kind=FailureKind.DEFECT,
            evidence=evidence,
        )
    expected = set(series.labels)
    for sample in family.samples:
        if sample.name.endswith("_created"):
            continue  # the creation time prometheus_client adds to each child
        labels = set(sample.labels) - IMPLIED_LABELS
        if labels != expected:
            raise CheckFailed(
                _("%(sample)s has the labels %(labels)s, not %(expected)s.")
                % {
                    "sample": sample.name,
                    "labels": ", ".join(sorted(labels)) or "-",
                    "expected": ", ".join(series.labels),
                },
                kind=FailureKind.DEFECT,
                evidence={**evidence, "sample": sample.labels},
            )
        if series.name == "attendance_gate_status" and sample.value not in (0, 1):
            raise CheckFailed(
                _("%(sample)s is %(value)s, neither 0 nor 1.")
                % {"sample": sample.name, "value": sample.value},
                kind=FailureKind.DEFECT,
                evidence={**evidence, "sample": sample.labels},
            )
    if family.samples:
        detail = _("%(type)s, %(count)d samples") % {
            "type": family.type,
            "count": len(family.samples),
        }
    else:
        detail = _("%(type)s, declared, no sample yet") % {"type": family.type}
    return detail, evidence
