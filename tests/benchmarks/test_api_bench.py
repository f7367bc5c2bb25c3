"""The API load benchmark: its arithmetic (429s counted apart and out of the latencies,
errors in the error rate, the server's times read from gunicorn's log, the crowd's mix),
and one tiny real run (4 users for 5 s on a small seed) whose JSON has the promised shape,
whose requests all succeeded but for the expected refusals of a punch limit set for the
run, and whose database is gone afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import psycopg
import pytest
from django.conf import settings

from benchmarks import api_bench, api_figures
from benchmarks.stack import ROOT, Database, child_env

FIGURES = ("requests", "ok", "errors", "errorRate", "rateLimited", "rps", "p50Ms", "p95Ms", "p99Ms")


def test_the_crowd_is_26_employees_4_approvers_and_2_admins_of_32_and_never_lacks_a_role():
    assert api_bench.crowd_mix(32) == {"employee": 26, "approver": 4, "admin": 2}
    assert api_bench.crowd_mix(4) == {"employee": 2, "approver": 1, "admin": 1}
    with pytest.raises(ValueError):
        api_bench.crowd_mix(2)


def test_percentiles_interpolate_between_ranks():
    values = [float(ms) for ms in range(1, 101)]
    assert api_figures.percentile(values, 0.5) == 50.5
    assert api_figures.percentile(values, 0.99) == 99.0
    assert api_figures.percentile([7.0], 0.95) == 7.0
    assert api_figures.percentile([], 0.5) is None


def test_429s_are_counted_apart_and_errors_are_the_error_rate():
    outcome = {
        "startedAt": 100.0,
        "stoppedAt": 110.0,
        "endpoints": {
            # The locustfile keeps no latency of a refused request.
            "punch": {
                "latenciesMs": [10.0, 20.0, 30.0],
                "outcomes": {"ok": 2, "error": 1, "rateLimited": 5},
                "statuses": {"201": 2, "500": 1, "429": 5},
                "errorSamples": ["500 INTERNAL_ERROR: …"],
            },
            "summary": {
                "latenciesMs": [5.0] * 12,
                "outcomes": {"ok": 12},
                "statuses": {"200": 12},
                "errorSamples": [],
            },
        },
    }
    report = api_figures.summarise(outcome)
    assert set(report["endpoints"]) == set(api_figures.ENDPOINTS)
    punch = report["endpoints"]["punch"]
    assert (punch["requests"], punch["ok"], punch["errors"], punch["rateLimited"]) == (8, 2, 1, 5)
    assert punch["errorRate"] == 0.125
    assert punch["p50Ms"] == 20.0
    assert punch["errorSamples"] == ["500 INTERNAL_ERROR: …"]
    assert report["endpoints"]["audit list"]["requests"] == 0  # not reached: zero, not absent
    assert (report["requests"], report["errors"], report["rateLimited"]) == (20, 1, 5)
    assert report["errorRate"] == 0.05
    assert report["rps"] == 2.0
    assert report["p50Ms"] == 5.0  # 15 latencies, 12 of them 5 ms
    assert report["measuredSeconds"] == 10.0
    assert api_bench.met(report) == {"p95": True, "p99": True, "errors": False}
    assert report["timeline"] == []  # no start times given


def test_the_timeline_shows_the_window_where_latencies_rose():
    outcome = {"startedAt": 100.0, "timeline": [[100.5, 10.0], [104.0, 12.0], [111.0, 300.0]]}
    assert api_figures.timeline(outcome) == [
        {"fromSeconds": 0, "requests": 2, "p50Ms": 11.0, "p95Ms": 11.9, "p99Ms": 12.0},
        {"fromSeconds": 10, "requests": 1, "p50Ms": 300.0, "p95Ms": 300.0, "p99Ms": 300.0},
    ]


def test_the_servers_times_come_from_the_access_log_after_the_warm_up(tmp_path):
    log = tmp_path / "access.log"
    warm_up = "GET /api/attendance/summary 200 900000\n"
    log.write_text(
        warm_up
        + "GET /api/attendance/records 200 12000\n"
        + "GET /api/attendance/records 200 14000\n"
        + "POST /api/attendance/requests/17/approve 200 30000\n"
        + "POST /api/attendance/requests 201 20000\n"
        + "GET /api/attendance/requests 200 8000\n"
        + "POST /api/attendance/punch 429 1000\n"
        + "GET /livez 200 500\n"
    )
    server = api_figures.server_times(log, offset=len(warm_up))
    assert server["endpoints"] == {
        "correction approve": {"requests": 1, "p50Ms": 30.0, "p95Ms": 30.0, "p99Ms": 30.0},
        "correction create": {"requests": 1, "p50Ms": 20.0, "p95Ms": 20.0, "p99Ms": 20.0},
        "corrections pending": {"requests": 1, "p50Ms": 8.0, "p95Ms": 8.0, "p99Ms": 8.0},
        "records list": {"requests": 2, "p50Ms": 13.0, "p95Ms": 13.9, "p99Ms": 14.0},
    }


@pytest.mark.parametrize("text", ["PUNCH", "PUNCH=fast", "PUN CH=1/m", "PUNCH=1/x"])
def test_a_rate_limit_must_be_a_group_and_a_rate(text):
    with pytest.raises(ValueError):
        api_bench._rate(text)


def test_an_empty_rate_turns_a_group_off_explicitly():
    assert api_bench._rate("PUNCH=") == ("PUNCH", "")
    assert api_bench._rate("api=1200/m") == ("api", "1200/m")


def test_with_split_roles_the_bench_database_is_made_and_migrated_by_the_owner(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("DATABASE_URL", "postgres://app@db.example:5432/attendance")
    monkeypatch.setenv("DATABASE_MIGRATE_URL", "postgres://owner@db.example:5432/attendance")
    db = Database(name="bench_x").locate()
    assert db.admin_url == "postgres://owner@db.example:5432/postgres"
    assert db.url == "postgres://app@db.example:5432/bench_x"
    assert db.owner_url == "postgres://owner@db.example:5432/bench_x"
    env = child_env(db, tmp_path, None)
    assert env["DATABASE_URL"] == db.url
    assert env["DATABASE_MIGRATE_URL"] == db.owner_url  # not the shell's database


def test_with_one_role_it_does_everything(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgres://app@db.example:5432/attendance")
    monkeypatch.delenv("DATABASE_MIGRATE_URL", raising=False)
    db = Database(name="bench_x").locate()
    assert db.admin_url == "postgres://app@db.example:5432/postgres"
    assert (db.url, db.owner_url) == ("postgres://app@db.example:5432/bench_x", "")
    assert "DATABASE_MIGRATE_URL" not in child_env(db, tmp_path, None)


def _bench_database() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"test_{settings.DATABASES['default']['NAME']}_api{worker}"[:63].lower()


@pytest.mark.integration
def test_a_tiny_run_measures_every_endpoint_and_counts_the_punch_limit_apart():
    name = _bench_database()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.api_bench",
            *("--users", "4", "--spawn-rate", "4", "--duration", "5", "--wait", "0.05,0.15"),
            *("--employees", "40", "--approvers", "4", "--admins", "1", "--days", "35"),
            *("--pending", "20", "--audit-events", "2000", "--database", name, "--no-redis"),
            # One punch a minute per user (and per web worker: no Redis): the rest are 429s.
            *("--rate-limit", "PUNCH=1/m"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout)
    assert report["mix"] == {"employee": 2, "approver": 1, "admin": 1}
    for figure in FIGURES:
        assert figure in report
    assert report["errors"] == 0, json.dumps(report["endpoints"], indent=1)[:4000]
    assert report["ok"] + report["rateLimited"] == report["requests"] > 0
    assert report["p50Ms"] <= report["p95Ms"] <= report["p99Ms"]
    assert sum(window["requests"] for window in report["timeline"]) == report["ok"]
    for endpoint in api_figures.ENDPOINTS:
        measured = report["endpoints"][endpoint]
        for figure in FIGURES:
            assert figure in measured, (endpoint, figure)
        assert measured["ok"] >= 1, endpoint
        assert report["server"]["endpoints"][endpoint]["requests"] >= 1, endpoint
        probe = report["queriesPerRequest"][endpoint]
        assert 200 <= probe["status"] < 300 and probe["queries"] >= 1, (endpoint, probe)
    punch = report["endpoints"]["punch"]
    assert punch["rateLimited"] >= 1 and punch["statuses"].get("429") == punch["rateLimited"]
    assert report["rateLimitOverrides"] == {"RATELIMIT_PUNCH": "1/m"}
    assert report["rateLimits"]["RATELIMIT_PUNCH"] == "1/m"
    assert report["rateLimits"]["countedIn"] == "LocMemCache"
    assert report["seed"]["rows"]["attendance_employee"] == 40
    assert report["seed"]["pendingCorrections"] == 20
    assert report["seed"]["rows"]["audit_auditevent"] >= 2000
    assert report["machine"]["cpus"] == os.cpu_count()
    assert report["machine"]["postgres"]
    assert len(report["loadAverageBefore"]) == len(report["loadAverageAfter"]) == 3
    assert report["met"].keys() == {"p95", "p99", "errors"}
    db = Database(name=name).locate()
    with psycopg.connect(db.admin_url, autocommit=True) as connection:
        left = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        assert left.fetchone() is None
