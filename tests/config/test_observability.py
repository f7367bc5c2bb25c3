"""deploy/prometheus and deploy/grafana: promtool checks and unit-tests the alert rules, the
dashboard is valid JSON, and every series either names is one the application exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from tests.support import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
GRAFANA = ROOT / "deploy" / "grafana" / "attendance.json"
PROMTOOL = shutil.which("promtool") or "promtool"  # make test installs Debian's prometheus
SERIES = re.compile(r"\b((?:attendance|django)_[a-z0-9_]+)")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def promtool(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PROMTOOL, *arguments],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_promtool_accepts_the_alert_rules():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 7 rules found" in result.stdout


def test_promtool_accepts_the_scrape_configuration():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_unit_tests_pass():
    """5xx rate, queue age, worker down, P0 gate failing and the audit horizon: each fires
    when it should and stays quiet when it should (alerts_test.yml)."""
    result = promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_rule_is_refused(tmp_path):
    """The check above can fail: a rule whose expression does not parse."""
    broken = tmp_path / "broken.yml"
    broken.write_text(
        yaml.safe_dump(
            {"groups": [{"name": "x", "rules": [{"alert": "Bad", "expr": "sum(rate(x[5m]"}]}]}
        )
    )
    result = promtool("check", "rules", str(broken))
    assert result.returncode != 0


def _alert_expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _dashboard_expressions() -> list[str]:
    dashboard = json.loads(GRAFANA.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_the_grafana_dashboard_covers_requests_errors_imports_queue_and_gates():
    dashboard = json.loads(GRAFANA.read_text())
    assert dashboard["uid"] == "attendance" and dashboard["panels"]
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
    text = " ".join(_dashboard_expressions())
    for series in (
        "django_http_requests_latency_seconds_by_view_method_bucket",
        "attendance_api_errors_total",
        "attendance_import_rows_total",
        "attendance_import_queue_age_seconds",
        "attendance_gate_status",
    ):
        assert series in text


def _family(series: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series


@pytest.mark.django_db
def test_every_series_the_alerts_and_the_dashboard_use_is_exposed(client):
    """A renamed metric would leave an alert silent forever: every family they name must be
    declared in /metrics (a labelled family with no sample yet still has its # TYPE line)."""
    client.get("/livez")  # django-prometheus' request series have samples after a request
    exposed = client.get("/metrics").content.decode()
    declared = set(re.findall(r"^# TYPE (\S+) ", exposed, flags=re.MULTILINE))
    used = {
        _family(series)
        for expression in _alert_expressions() + _dashboard_expressions()
        for series in SERIES.findall(expression)
    }
    missing = sorted(
        family
        for family in used
        if family not in declared and family.removesuffix("_total") not in declared
    )
    assert not missing, f"used by alerts or the dashboard but not exposed: {missing}"
