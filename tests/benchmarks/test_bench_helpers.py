"""The benchmark's pure helpers: the files of the aged scenario never share a (person, day),
the generator's defaults are those the floor relies on, the report's aged section."""

from __future__ import annotations

import datetime as dt

import pytest

from benchmarks import aged, gen_dingtalk
from benchmarks.api import job_timing
from benchmarks.stack import BenchError, database_name, report_failure


def identities(people):
    return {person.label for person in people} | {person.user_id for person in people}


def test_people_from_an_offset_share_no_number_or_user_id_with_the_default_ones():
    default = gen_dingtalk.people(6000)
    assert [p.label for p in gen_dingtalk.people(6000, first=0)] == [p.label for p in default]
    for first in (aged.PEOPLE_STRIDE, aged.PEOPLE_STRIDE * 5):
        assert not identities(default) & identities(gen_dingtalk.people(6000, first=first))


def test_layout_ends_on_the_given_day():
    count, dates = gen_dingtalk.layout(10_000, 90, dt.date(2026, 1, 31))
    assert count == 112
    assert (dates[0], dates[-1]) == (dt.date(2025, 11, 3), dt.date(2026, 1, 31))
    assert gen_dingtalk.layout(10_000, 90)[1][-1] == gen_dingtalk.END_DATE


def test_the_plan_keeps_the_main_file_and_gives_every_other_file_its_own_people_and_days():
    ageing, small, main = aged.plan(
        main_rows=500_000, batches=4, rows=50_000, days=90, seed=gen_dingtalk.DEFAULT_SEED
    )
    assert (main.rows, main.first_person, main.end, main.seed) == (
        500_000,
        0,
        gen_dingtalk.END_DATE,
        gen_dingtalk.DEFAULT_SEED,
    )
    assert (small.rows, small.employees) == (10_000, 112)
    assert [part.keep for part in ageing] == [False, True, False, True]
    every = [*ageing, small, main]
    for index, one in enumerate(every):
        for other in every[index + 1 :]:
            assert not aged.overlaps(one, other)
            assert one.first_person != other.first_person
    assert all(part.period[1] < main.period[0] for part in ageing)


def test_overlaps_needs_shared_people_and_shared_days():
    end = gen_dingtalk.END_DATE
    one = aged.Slice("one", 900, 90, 1, end, 0)
    assert aged.overlaps(one, aged.Slice("same", 900, 90, 2, end, 5))
    assert not aged.overlaps(one, aged.Slice("people", 900, 90, 2, end, 10))
    assert not aged.overlaps(one, aged.Slice("days", 900, 90, 2, end - dt.timedelta(90), 0))


def test_summarise_takes_the_main_rollback_from_the_rollback_phase():
    report = {
        "rows": 500_000,
        "phases": {
            "rollback": {
                "ms": 9000,
                "status": "rolled_back",
                "asynchronous": True,
                "serverMs": 8700,
            }
        },
        "ratios": {"commitToFloor": 1.5},
        "aged": {
            "ageing": [],
            "ageingBatches": 4,
            "rollback10k": {"ms": 12_000, "rows": 10_000, "status": "timeout", "timedOut": True},
            "rollbackMain": {"batchId": 7},
        },
    }
    aged.summarise(report)
    section = report["aged"]
    assert list(section)[:2] == ["ageingBatches", "rollback10k"]
    assert list(section)[-1] == "ageing"
    assert section["rollbackMain"] == {
        "ms": 9000,
        "rows": 500_000,
        "status": "rolled_back",
        "asynchronous": True,
        "serverMs": 8700,
        "batchId": 7,
    }
    assert section["targets"]["met"] == {
        "rollback10k": False,
        "rollbackMain": False,
        "commitToFloor": True,
    }


def test_summarise_leaves_a_run_without_the_aged_section_alone():
    report = {"rows": 10, "phases": {}}
    aged.summarise(report)
    assert "aged" not in report


def test_job_timing_reads_the_jobs_timestamps():
    job = {"startedAt": "2026-12-01T10:00:01+00:00", "finishedAt": "2026-12-01T10:00:03.5+00:00"}
    queued_at = dt.datetime(2026, 12, 1, 10, 0, 0, tzinfo=dt.UTC).timestamp()
    assert job_timing(job, queued_at) == {"jobRunMs": 2500, "queueWaitMs": 1000}
    assert job_timing({"startedAt": None}, queued_at) == {}


def test_database_names_are_plain_identifiers():
    assert database_name("attendance_bench_helper") == "attendance_bench_helper"
    for bad in ("Attendance", "bench; DROP", "1bench", ""):
        with pytest.raises(ValueError):
            database_name(bad)


class LogTails:
    """The one thing report_failure asks of a stack: the end of a log."""

    def tail(self, name: str, lines: int) -> str:
        return f"last {lines} lines of {name}"


def test_a_failed_run_reports_its_message_or_detail_and_shows_the_logs_ends(capsys):
    report: dict = {}
    report_failure(
        report, BenchError("the stack was not ready"), LogTails(), logs=("web", "worker")
    )
    assert report["error"] == {"message": "the stack was not ready"}
    shown = capsys.readouterr().err
    assert "FAILED: the stack was not ready" in shown
    assert "last 60 lines of web" in shown and "last 60 lines of worker" in shown
    assert "Traceback" not in shown  # a BenchError's message says it all
    try:
        {}["missing"]
    except KeyError as error:
        report_failure(report, error, None, detail={"request": "GET /x", "status": 500})
    assert report["error"] == {"request": "GET /x", "status": 500}
    shown = capsys.readouterr().err
    assert "Traceback" in shown and "KeyError" in shown
