"""The gates API (API.md "Gates"): administrators of any organisation read the runs (paged,
filtered by gate and drill, refused with VALIDATION_ERROR on a bad filter), one run with
its log, the dashboard and the decision; everybody else is refused."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from gates.models import GateRun
from gates.services.registry import GATES
from tests.support import data, error

pytestmark = pytest.mark.django_db

RUNS = "/api/gates/runs"
READS = [RUNS, f"{RUNS}/1", "/api/gates/dashboard", "/api/gates/decision"]
RUN_KEYS = {
    "id",
    "gate",
    "priority",
    "status",
    "drill",
    "trigger",
    "triggeredBy",
    "host",
    "baseUrl",
    "appVersion",
    "appCommit",
    "options",
    "startedAt",
    "finishedAt",
    "durationMs",
    "summary",
    "evidence",
    "failure",
}


def seed_run(gate="preflight", *, hours_ago: float = 1, status="pass", drill=False, **columns):
    """A stored GateRun of ``gate``, started ``hours_ago`` and finished two seconds later
    (also used by the page and browser tests)."""
    started = timezone.now() - dt.timedelta(hours=hours_ago)
    columns.setdefault("log", f"{gate} log line\ngate-complete")
    return GateRun.objects.create(
        gate=gate,
        priority=GATES[gate].priority,
        status=status,
        drill=drill,
        started_at=started,
        finished_at=started + dt.timedelta(seconds=2),
        duration_ms=2000,
        host="ci-host",
        **columns,
    )


@pytest.fixture
def make_run(db):
    return seed_run


def admin_client(people) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=people["admin"].user)
    return client


def ids(body) -> list[int]:
    return [item["id"] for item in body["items"]]


def test_admin_lists_runs_newest_first_without_their_logs(people, make_run):
    older = make_run("preflight", hours_ago=5)
    failed = make_run(
        "smoke",
        hours_ago=2,
        status="fail",
        failed_check="import-commit",
        failure_kind="defect",
        remediation="Read the worker's log.",
        remediation_owner="developer",
        summary={"checks": 7, "failed": 1},
        evidence={"checks": [{"name": "import-commit", "ok": False}], "completed": False},
    )
    drill = make_run("preflight", hours_ago=1, drill=True)
    body = data(admin_client(people).get(RUNS))
    assert ids(body) == [drill.pk, failed.pk, older.pk]
    assert (body["page"], body["pageSize"], body["total"]) == (1, 50, 3)
    item = body["items"][1]
    assert set(item) == RUN_KEYS  # no log in a list
    assert item["failure"] == {
        "check": "import-commit",
        "kind": "defect",
        "remediation": "Read the worker's log.",
        "owner": "developer",
    }
    assert item["summary"] == {"checks": 7, "failed": 1}
    assert item["evidence"]["completed"] is False
    # In the organisation's time zone (Asia/Shanghai), with its offset.
    assert item["startedAt"].endswith("+08:00")
    assert dt.datetime.fromisoformat(item["startedAt"]) == failed.started_at
    assert body["items"][0]["drill"] is True
    assert body["items"][2]["failure"] is None


def test_runs_filter_by_gate_and_drill(people, make_run):
    preflight = make_run("preflight", hours_ago=3)
    smoke = make_run("smoke", hours_ago=2)
    smoke_drill = make_run("smoke", hours_ago=1, drill=True, status="fail")
    client = admin_client(people)
    assert ids(data(client.get(RUNS, {"gate": "smoke"}))) == [smoke_drill.pk, smoke.pk]
    assert ids(data(client.get(RUNS, {"drill": "true"}))) == [smoke_drill.pk]
    assert ids(data(client.get(RUNS, {"drill": "false"}))) == [smoke.pk, preflight.pk]
    body = data(client.get(RUNS, {"gate": "smoke", "drill": "false"}))
    assert (ids(body), body["total"]) == ([smoke.pk], 1)
    assert data(client.get(RUNS, {"gate": "perf"}))["items"] == []


def test_runs_are_paged(people, make_run):
    runs = [make_run("preflight", hours_ago=10 - index) for index in range(5)]
    newest_first = [run.pk for run in reversed(runs)]
    client = admin_client(people)
    body = data(client.get(RUNS, {"pageSize": 2, "page": 2}))
    assert (ids(body), body["page"], body["pageSize"], body["total"]) == (
        newest_first[2:4],
        2,
        2,
        5,
    )
    assert ids(data(client.get(RUNS, {"pageSize": 2, "page": 3}))) == newest_first[4:]
    past_the_end = data(client.get(RUNS, {"pageSize": 2, "page": 9}))
    assert (past_the_end["items"], past_the_end["total"]) == ([], 5)
    assert ids(data(client.get(RUNS, {"pageSize": 200}))) == newest_first


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"gate": "nope"}, "gate"),
        ({"gate": ""}, "gate"),
        ({"drill": "yes"}, "drill"),
        ({"drill": "1"}, "drill"),
        ({"pageSize": "201"}, "pageSize"),
        ({"pageSize": "0"}, "pageSize"),
        ({"page": "x"}, "page"),
    ],
)
def test_bad_filters_and_pages_are_validation_errors(people, query, field):
    failure = error(admin_client(people).get(RUNS, query), 400, "VALIDATION_ERROR")
    assert list(failure["details"]["fields"]) == [field]


def test_a_run_in_full_has_its_log(people, make_run):
    run = make_run(
        "perf",
        summary={"rows": 10, "phases": {"previewMs": 12}},
        options={"rows": 10},
        log="perf started\nok   target: 10 rows\ngate-complete",
    )
    body = data(admin_client(people).get(f"{RUNS}/{run.pk}"))
    assert set(body) == RUN_KEYS | {"log"}
    assert body["log"] == "perf started\nok   target: 10 rows\ngate-complete"
    assert (body["id"], body["gate"], body["priority"]) == (run.pk, "perf", "P1")
    assert body["options"] == {"rows": 10}
    assert body["summary"]["phases"] == {"previewMs": 12}
    assert body["finishedAt"].endswith("+08:00")


def test_an_unknown_run_is_not_found(people, make_run):
    run = make_run()
    failure = error(admin_client(people).get(f"{RUNS}/{run.pk + 1000}"), 404, "NOT_FOUND")
    assert failure["details"] == {}


def test_the_list_costs_the_same_queries_for_few_and_many_runs(people, make_run):
    client = admin_client(people)
    make_run(triggered_by=people["admin"].user)
    with CaptureQueriesContext(connection) as few:
        data(client.get(RUNS))
    for index in range(30):
        make_run("smoke", hours_ago=index + 2, triggered_by=people["admin"].user)
    with CaptureQueriesContext(connection) as many:
        body = data(client.get(RUNS))
    assert body["total"] == 31
    assert body["items"][0]["triggeredBy"] == people["admin"].user.username
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("role", ["employee", "approver", "importer"])
def test_anybody_but_an_admin_is_forbidden(people, make_run, path, role):
    make_run()
    client = APIClient()
    client.force_authenticate(user=people[role].user)
    error(client.get(path), 403, "FORBIDDEN")


@pytest.mark.parametrize("path", READS)
def test_anonymous_is_unauthenticated(db, path):
    error(APIClient().get(path), 401, "UNAUTHENTICATED")


def test_the_organisations_ip_allowlist_applies(people, organisation):
    organisation.ip_allowlist = ["10.9.0.0/16"]
    organisation.save(update_fields=["ip_allowlist"])
    error(admin_client(people).get(RUNS), 403, "IP_RESTRICTED")


def test_another_organisations_admin_reads_the_same_runs(
    people, make_run, other_organisation, make_person
):
    """Gates describe the deployment: every organisation's admins see every run."""
    run = make_run()
    other_admin = make_person(other_organisation, "employee", "admin")
    client = APIClient()
    client.force_authenticate(user=other_admin.user)
    assert ids(data(client.get(RUNS))) == [run.pk]
    data(client.get(f"{RUNS}/{run.pk}"))


def test_the_dashboard_shows_each_gate_with_drills_apart(people, make_run):
    real = make_run("preflight", hours_ago=3)
    drill = make_run("preflight", hours_ago=1, drill=True, status="fail")
    old_smoke = make_run("smoke", hours_ago=100)
    body = data(admin_client(people).get("/api/gates/dashboard"))
    assert set(body) == {"generatedAt", "gates", "escalations", "perfHistory", "history"}
    assert body["generatedAt"].endswith("+08:00")
    states = {state["gate"]: state for state in body["gates"]}
    assert set(states) == set(GATES)
    preflight = states["preflight"]
    assert preflight["latest"]["id"] == real.pk  # the drill never replaces the real run
    assert preflight["latestDrill"]["id"] == drill.pk
    assert preflight["effectiveStatus"] == "pass"
    assert preflight["stale"] is False
    assert states["smoke"]["latest"]["id"] == old_smoke.pk
    assert states["smoke"]["stale"] is True
    assert states["smoke"]["effectiveStatus"] == "stale"
    assert states["metrics"]["latest"] is None
    assert states["metrics"]["effectiveStatus"] == "missing"
    history = [run["id"] for run in body["history"]]
    assert history[:3] == [drill.pk, real.pk, old_smoke.pk]


def test_the_decision_is_no_go_without_runs_and_names_its_criteria(people):
    body = data(admin_client(people).get("/api/gates/decision"))
    assert body["verdict"] == "NO-GO"
    assert body["score"] == f"{body['met']}/{body['total']}"
    assert body["met"] < body["total"]
    keys = [criterion["key"] for criterion in body["criteria"]]
    assert len(keys) == len(set(keys)) > 0
    assert any(not criterion["ok"] for criterion in body["criteria"] if criterion["blocking"])
    assert body["generatedAt"].endswith("+08:00")
    assert body["rollbackTriggers"]
    assert body["monitoring"]
