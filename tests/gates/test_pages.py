"""The gates pages (admins only): the dashboard (latest run per gate with badge and age,
stale marked, drills labelled and apart, escalations, the perf chart, history), one run in
full, the decision packet and its downloads; the navigation link; the read-only admin; and
templates the content security policy can run."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.formats import date_format

from gates.models import GateEscalation, GateNotification, GateRun
from gates.views import age_label, perf_chart
from tests.common.test_csp import inline_findings
from tests.conftest import PASSWORD
from tests.gates.test_api import seed_run

pytestmark = pytest.mark.django_db

DASHBOARD = "/gates/"
DECISION = "/gates/decision/"
PAGES = [DASHBOARD, "/gates/runs/{run}/", DECISION, "/gates/decision.md", "/gates/decision.json"]
TEMPLATES = Path(__file__).resolve().parents[2] / "gates" / "templates" / "gates"


@pytest.fixture
def browser():
    """browser(employee) → a Django test client logged in as that employee's user."""

    def make(employee=None) -> Client:
        client = Client()
        if employee is not None:
            assert client.login(username=employee.user.username, password=PASSWORD)
        return client

    return make


def text(response) -> str:
    return response.content.decode()


def row(html: str, attribute: str) -> str:
    """The first table row carrying ``attribute`` (e.g. ``data-gate="smoke"``)."""
    match = re.search(rf"<tr [^>]*{re.escape(attribute)}[^>]*>.*?</tr>", html, re.DOTALL)
    assert match, f"no row with {attribute}"
    return match.group(0)


def section(html: str, marker: str) -> str:
    match = re.search(rf"<section [^>]*{re.escape(marker)}[^>]*>.*?</section>", html, re.DOTALL)
    assert match, f"no section with {marker}"
    return match.group(0)


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_goes_to_login_other_roles_get_403(people, browser, path):
    path = path.format(run=seed_run().pk)
    response = browser().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    for role in ("employee", "approver", "importer"):
        response = browser(people[role]).get(path)
        assert response.status_code == 403
        assert "Administrators only" in text(response)


def test_the_dashboard_shows_each_gates_latest_run_with_badge_and_age(people, browser):
    passed = seed_run("preflight", hours_ago=3)
    failed = seed_run(
        "strict", hours_ago=0.5, status="fail", failed_check="second-smoke", failure_kind="defect"
    )
    response = browser(people["admin"]).get(DASHBOARD)
    assert response.status_code == 200
    html = text(response)
    preflight = row(html, 'data-gate="preflight"')
    assert 'data-effective-status="pass"' in preflight
    assert re.search(r'class="badge gs-pass"[^>]*>Pass<', preflight)
    assert "3.0 h ago" in preflight
    assert f'href="/gates/runs/{passed.pk}/"' in preflight
    # Shown in the organisation's zone (Asia/Shanghai).
    local = timezone.localtime(passed.started_at, people["admin"].organisation.tz)
    assert local.strftime("%Y-%m-%d %H:%M") in preflight
    strict = row(html, 'data-gate="strict"')
    assert re.search(r'class="badge gs-fail"[^>]*>Fail<', strict)
    assert "<code>second-smoke</code> · Defect" in strict
    assert "30 min ago" in strict
    assert 'data-effective-status="missing"' in row(html, 'data-gate="metrics"')
    assert "No run yet" in row(html, 'data-gate="metrics"')
    assert f'href="/gates/runs/{failed.pk}/"' in section(html, "data-history")


def test_a_stale_run_is_marked_stale(people, browser, settings):
    settings.GATES_STALE_HOURS = 36
    stale = seed_run("smoke", hours_ago=40)
    html = text(browser(people["admin"]).get(DASHBOARD))
    smoke = row(html, 'data-gate="smoke"')
    assert 'data-stale="true"' in smoke
    assert 'class="is-stale"' in smoke
    assert re.search(r'class="badge gs-stale"[^>]*>Stale<', smoke)
    assert "40.0 h ago" in smoke
    assert f"#{stale.pk}" in smoke
    fresh = row(html, 'data-gate="preflight"')  # no run at all: missing, not stale
    assert "data-stale" not in fresh


def test_drills_are_labelled_and_kept_apart(people, browser):
    real = seed_run("preflight", hours_ago=2)
    drill = seed_run(
        "preflight",
        hours_ago=1,
        status="fail",
        drill=True,
        failed_check="secrets",
        failure_kind="config",
    )
    html = text(browser(people["admin"]).get(DASHBOARD))
    latest = row(html, 'data-gate="preflight"')
    assert f"#{real.pk}" in latest and f"#{drill.pk}" not in latest
    assert 'data-effective-status="pass"' in latest  # the failing drill never counts
    drills = section(html, "data-drills")
    drill_row = row(drills, 'data-drill-of="preflight"')
    assert f'href="/gates/runs/{drill.pk}/"' in drill_row
    assert re.search(r'class="badge gs-fail"[^>]*>Fail<', drill_row)
    assert "data-drill>Drill<" in drill_row
    history = section(html, "data-history")
    drill_history = row(history, f'data-run="{drill.pk}"')
    assert 'class="is-drill"' in drill_history and "data-drill>Drill<" in drill_history
    assert "is-drill" not in row(history, f'data-run="{real.pk}"')


def test_open_escalations_are_listed(people, browser):
    first = seed_run("smoke", hours_ago=3, status="fail", failed_check="health")
    last = seed_run("smoke", hours_ago=1, status="fail", failed_check="health")
    escalation = GateEscalation.objects.create(
        gate="smoke",
        priority="P0",
        opened_at=first.finished_at,
        updated_at=last.finished_at,
        first_run=first,
        last_run=last,
        failures=2,
        reason="smoke failed twice: health",
    )
    html = text(browser(people["admin"]).get(DASHBOARD))
    listed = row(section(html, "data-escalations"), f'data-escalation="{escalation.pk}"')
    assert "smoke failed twice: health" in listed
    assert f'href="/gates/runs/{first.pk}/"' in listed
    assert f'href="/gates/runs/{last.pk}/"' in listed
    assert '<td class="num">2</td>' in listed


def test_the_perf_chart_is_drawn_from_the_perf_runs(people, browser, settings):
    settings.GATES_PERF_MAX_COMMIT_MS = 30_000
    for index, phases in enumerate(
        [
            {"previewMs": 900, "commitMs": 2100, "exportMs": 400, "rollbackMs": 1500},
            {"previewMs": 1000, "commitMs": 2400, "exportMs": 450, "rollbackMs": 1600},
            {"previewMs": 1100, "commitMs": 2300, "exportMs": 420, "rollbackMs": 1550},
        ]
    ):
        seed_run("perf", hours_ago=30 - index * 10, summary={"rows": 10000, "phases": phases})
    html = text(browser(people["admin"]).get(DASHBOARD))
    perf = section(html, "data-perf")
    assert '<svg class="chart gate-perf"' in perf
    for phase in ("previewMs", "commitMs", "exportMs", "rollbackMs"):
        series = re.search(rf'<g [^>]*data-phase="{phase}".*?</g>', perf, re.DOTALL).group(0)
        assert series.count("<circle") == 3
        assert series.count("<polyline") == 1
    assert "Commit: 2400 ms" in perf
    assert "Commit (budget 30 s)" in perf  # GATES_PERF_MAX_COMMIT_MS
    assert "style=" not in perf


def test_the_chart_geometry():
    now = timezone.now()
    points = [
        {
            "runId": number,
            "gate": "perf",
            "startedAt": now + dt.timedelta(hours=number),
            "status": "fail" if number == 2 else "pass",
            "phases": {
                "previewMs": 1000 * number,
                "commitMs": None if number == 2 else 3000,
                "exportMs": 100,
                "rollbackMs": 7000 if number == 1 else 500,
            },
        }
        for number in (3, 1, 2)  # out of order: drawn by time
    ]
    chart = perf_chart(points, "perf")
    by_key = {series["key"]: series for series in chart["series"]}
    preview = by_key["previewMs"]
    assert [dot["title"].split(" · ")[1] for dot in preview["dots"]] == [
        "run #1",
        "run #2",
        "run #3",
    ]
    # Oldest on the left, the newest at the right edge; the top is the next 1-2-5 step.
    assert [dot["x"] for dot in preview["dots"]] == [64.0, 384.0, 704.0]
    assert chart["gridlines"][-1]["label"] == "10 s"
    assert chart["gridlines"][0]["y"] == chart["bottom"]
    assert preview["dots"][2]["y"] == pytest.approx(chart["bottom"] - (200 - 14) * 3 / 10, abs=0.1)
    # A run without the phase breaks its line: two single points draw no segment.
    assert by_key["commitMs"]["polylines"] == []
    assert len(by_key["commitMs"]["dots"]) == 2
    assert [dot["failed"] for dot in preview["dots"]] == [False, True, False]
    single = perf_chart(points[:1], "perf")
    assert single["series"][0]["dots"][0]["x"] == 384.0


def test_a_run_page_shows_checks_figures_failure_evidence_and_log(people, browser):
    run = seed_run(
        "preflight",
        status="fail",
        failed_check="secret-key",
        failure_kind="config",
        remediation="Set a SECRET_KEY of 50 random characters.",
        remediation_owner="ops",
        summary={"checks": 2, "failed": 1, "warnings": 1, "partitions": {"next": 3}},
        evidence={
            "checks": [
                {
                    "name": "database",
                    "ok": True,
                    "detail": "PostgreSQL 16 answers",
                    "kind": "defect",
                    "remediation": "",
                    "owner": "developer",
                    "blocking": True,
                    "elapsed_ms": 3.2,
                    "evidence": {},
                },
                {
                    "name": "secret-key",
                    "ok": False,
                    "detail": "SECRET_KEY has 12 characters",
                    "kind": "config",
                    "remediation": "Set a SECRET_KEY of 50 random characters.",
                    "owner": "ops",
                    "blocking": True,
                    "elapsed_ms": 0.1,
                    "evidence": {"length": 12},
                },
            ],
            "warnings": ["no webhook configured"],
            "completed": True,
            "endMarker": "gate-complete",
        },
        log="preflight (P0) started\nFAIL secret-key: SECRET_KEY has 12 characters",
    )
    response = browser(people["admin"]).get(f"/gates/runs/{run.pk}/")
    assert response.status_code == 200
    html = text(response)
    failure = section(html, "data-failure")
    assert "<code>secret-key</code>" in failure
    assert "Configuration" in failure
    assert "Set a SECRET_KEY of 50 random characters." in failure
    assert "Operations" in failure
    checks = section(html, "data-checks")
    assert 'data-check="database" data-ok="true"' in checks
    failed = row(checks, 'data-check="secret-key"')
    assert 'data-ok="false"' in failed and "SECRET_KEY has 12 characters" in failed
    assert "&quot;length&quot;: 12" in failed
    assert "no webhook configured" in checks
    figures = section(html, "data-figures")
    assert re.search(r'data-figure="partitions"><code>\{&quot;next&quot;: 3\}</code>', figures)
    assert "&quot;endMarker&quot;: &quot;gate-complete&quot;" in html  # the evidence JSON
    assert "FAIL secret-key: SECRET_KEY has 12 characters" in html  # the log
    local = timezone.localtime(run.started_at, people["admin"].organisation.tz)
    assert local.strftime("%Y-%m-%d %H:%M:%S +0800") in html


def test_a_drill_run_page_says_it_is_a_drill(people, browser):
    drill = seed_run("smoke", drill=True)
    html = text(browser(people["admin"]).get(f"/gates/runs/{drill.pk}/"))
    assert "This run is a drill" in html
    assert "data-drill>Drill<" in html


def test_an_unknown_run_page_is_404(people, browser):
    assert browser(people["admin"]).get("/gates/runs/999999/").status_code == 404


def test_the_decision_page_and_its_downloads(people, browser):
    seed_run("preflight")
    client = browser(people["admin"])
    response = client.get(DECISION)
    assert response.status_code == 200
    html = text(response)
    packet = response.context["packet"]
    assert f'data-verdict="{packet["verdict"]}"' in html
    assert packet["verdict"] in html and packet["score"] in html
    assert 'href="/gates/decision.md"' in html and 'href="/gates/decision.json"' in html
    markdown = client.get("/gates/decision.md")
    assert markdown.status_code == 200
    assert markdown["Content-Type"] == "text/markdown; charset=utf-8"
    assert re.match(
        r'attachment; filename="go-no-go-\d{8}-\d{6}\.md"', markdown["Content-Disposition"]
    )
    assert packet["verdict"] in text(markdown)
    download = client.get("/gates/decision.json")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/json"
    body = json.loads(download.content)
    assert (body["verdict"], body["score"]) == (packet["verdict"], packet["score"])
    assert [criterion["key"] for criterion in body["criteria"]] == [
        criterion["key"] for criterion in packet["criteria"]
    ]
    assert body["generatedAt"].endswith("+08:00")


def test_admins_find_the_gates_in_the_navigation(people, browser):
    assert 'href="/gates/"' in text(browser(people["admin"]).get("/attendance/"))
    assert 'href="/gates/"' not in text(browser(people["employee"]).get("/attendance/"))


def test_no_gates_template_holds_inline_script_handler_or_style():
    templates = sorted(TEMPLATES.glob("*.html"))
    assert {path.name for path in templates} >= {
        "dashboard.html",
        "run_detail.html",
        "decision.html",
    }
    findings = {
        path.name: found
        for path in templates
        if (found := inline_findings(path.read_text(encoding="utf-8")))
    }
    assert findings == {}


# --- the admin centre: read-only -------------------------------------------------------------


@pytest.fixture
def escalated():
    run = seed_run("smoke", status="fail", failed_check="health", evidence={"completed": False})
    escalation = GateEscalation.objects.create(
        gate="smoke",
        priority="P0",
        opened_at=run.finished_at,
        updated_at=run.finished_at,
        first_run=run,
        last_run=run,
        reason="smoke failed",
    )
    notification = GateNotification.objects.create(
        escalation=escalation,
        run=run,
        event="opened",
        channel="slack",
        target="https://hooks.example/…",
        status="sent",
        attempts=1,
        response_status=200,
    )
    return {"run": run, "escalation": escalation, "notification": notification}


ADMIN_PAGES = {
    "run": "/admin/gates/gaterun/",
    "escalation": "/admin/gates/gateescalation/",
    "notification": "/admin/gates/gatenotification/",
}


@pytest.mark.parametrize("name", list(ADMIN_PAGES))
def test_the_admin_shows_gates_read_only_to_admins(people, browser, escalated, name):
    client = browser(people["admin"])
    changelist = ADMIN_PAGES[name]
    obj = escalated[name]
    response = client.get(changelist)
    assert response.status_code == 200
    assert f"{changelist}{obj.pk}/change/" in text(response)
    detail = client.get(f"{changelist}{obj.pk}/change/")
    assert detail.status_code == 200
    assert 'name="_save"' not in text(detail)
    assert client.get(f"{changelist}add/").status_code == 403
    assert client.get(f"{changelist}{obj.pk}/delete/").status_code == 403
    assert client.post(f"{changelist}{obj.pk}/change/", {}).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


def test_the_admin_run_page_shows_local_times_evidence_and_log(people, browser, escalated):
    run = escalated["run"]
    html = text(browser(people["admin"]).get(f"{ADMIN_PAGES['run']}{run.pk}/change/"))
    assert 'class="gate-admin-pre"' in html
    assert "smoke log line" in html
    assert "&quot;completed&quot;: false" in html
    local = timezone.localtime(run.started_at, people["admin"].organisation.tz)
    assert f'<div class="readonly">{date_format(local, "DATETIME_FORMAT")}</div>' in html


def test_the_gates_admin_is_closed_to_other_roles(people, browser, escalated):
    for role in ("employee", "approver", "importer"):
        response = browser(people[role]).get(ADMIN_PAGES["run"])
        assert response.status_code == 403  # the app's 403 page, not the admin's sign-in
    index = text(browser(people["admin"]).get("/admin/"))
    assert "/admin/gates/gaterun/" in index
    assert GateRun.objects.count() == 1


@pytest.mark.parametrize(
    ("hours", "label"),
    [
        (None, "—"),
        (0, "0 min ago"),
        (0.5, "30 min ago"),
        (59.99 / 60, "1.0 h ago"),  # never "60 min ago"
        (3.04, "3.0 h ago"),
        (47.9, "47.9 h ago"),
        (50, "2.1 days ago"),
    ],
)
def test_ages_read_as_minutes_hours_or_days(hours, label):
    assert age_label(hours) == label
