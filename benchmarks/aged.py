"""The aged database: rollback where the statistics do not know the batch being undone.

On the benchmark's fresh database the records and items tables either have no statistics
or were never far from the batch itself, so any batch id looks plausible to the planner.
A database in use was last analysed by autovacuum some time before the batch under test
was committed: every batch id in its statistics is among the most common values, so one
it has never seen is estimated at 1 row. A rollback that joins the batch's items to the
records on (employee_id, work_date) with ``a.batch_id = <batch>`` then gets a nested loop
with the records' batch_id index on the inner side: every item scans all the batch's
records, N² rows filtered (10,129 days: 102 million). The same two estimates also turn a
join on the records' primary key into a nested loop of the two batch_id index scans, so
the scenario measures what the user waits for, whatever the statement looks like.

The scenario, driven through the same HTTP API as the rest of the run:

1. autovacuum off on the tables below, so that the statistics are exactly those of the
   ANALYZE steps (an autoanalyze landing between a commit and its rollback would hide
   the problem in some runs and not in others);
2. ``--aged-batches`` batches of ``--aged-rows`` rows, each on days and with employees of
   its own (created by the import): every other one rolled back (its employees created,
   then deleted), the others left committed, so the tables hold rows of other batches;
3. ANALYZE, as autovacuum would have, before the batch under test exists;
4. a 10,000-row batch (112 new employees over 90 days, like the issue's file): commit,
   then the timed rollback;
5. ANALYZE again; then the run's main batch (commit, export, rollback) on this database.

Only the API, counts and ANALYZE: the import code's tables are named, never its queries.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks import gen_dingtalk
from benchmarks.api import Api, import_file, timed_rollback
from benchmarks.stack import BenchError, Database, log

SMALL_ROWS = 10_000
DEFAULT_BATCHES = 4
DEFAULT_ROWS = 50_000
TARGETS = {"rollback10kMs": 1000, "rollbackMainMs": 8000, "commitToFloor": 2.0}
TARGET_ROWS = 500_000
STAT_TABLES = (
    "attendance_attendancerecord",
    "imports_importitem",
    "attendance_employee",
    "attendance_punch",
)
# Files get person indices [stride × k, stride × k + employees): disjoint as long as no
# file has as many employees as the stride (checked by plan()).
PEOPLE_STRIDE = 100_000
SECTION_ORDER = (
    "ageingBatches",
    "ageingRows",
    "statistics",
    "recordsBefore",
    "itemsBefore",
    "employeesBefore",
    "rollback10k",
    "rollbackMain",
    "targets",
)
STATISTICS = "ANALYZE before each batch under test; autovacuum off on " + ", ".join(STAT_TABLES)


@dataclass(frozen=True)
class Slice:
    """One generated file: its rows, period and people."""

    name: str
    rows: int
    days: int
    seed: int
    end: dt.date
    first_person: int
    keep: bool = False  # an ageing batch left committed

    @property
    def employees(self) -> int:
        return gen_dingtalk.layout(self.rows, self.days, self.end)[0]

    @property
    def period(self) -> tuple[dt.date, dt.date]:
        dates = gen_dingtalk.layout(self.rows, self.days, self.end)[1]
        return dates[0], dates[-1]

    def write(self, path: Path) -> int:
        return gen_dingtalk.write_csv(
            path,
            self.rows,
            days=self.days,
            seed=self.seed,
            end=self.end,
            first_person=self.first_person,
        )


def overlaps(one: Slice, other: Slice) -> bool:
    """Whether two files may name the same (person, day): only then can one batch's
    rollback meet the other's days (ROLLBACK_CONFLICT) or its commit update them."""
    people = (
        one.first_person < other.first_person + other.employees
        and other.first_person < one.first_person + one.employees
    )
    first, last = one.period
    other_first, other_last = other.period
    return people and first <= other_last and other_first <= last


def plan(
    *, main_rows: int, batches: int, rows: int, days: int, seed: int
) -> tuple[list[Slice], Slice, Slice]:
    """(ageing files, the 10,000-row file, the main file). The main file is the one the
    run always generated (people from 0, the period up to END_DATE), so the floor and
    django-import-export see the same rows as before. The others get people of their own
    (so their imports create employees, and the batches under test create theirs) and the
    ageing ones earlier periods as well, like the months before the current one."""
    main = Slice("main", main_rows, days, seed, gen_dingtalk.END_DATE, 0)
    small = Slice("small", SMALL_ROWS, days, seed + 100, gen_dingtalk.END_DATE, PEOPLE_STRIDE)
    ageing = [
        Slice(
            f"ageing-{number + 1}",
            rows,
            days,
            seed + 1 + number,
            gen_dingtalk.END_DATE - dt.timedelta(days=days * (number + 1)),
            PEOPLE_STRIDE * (number + 2),
            keep=number % 2 == 1,
        )
        for number in range(batches)
    ]
    every = [*ageing, small, main]
    if max(part.employees for part in every) >= PEOPLE_STRIDE:
        raise BenchError(f"More than {PEOPLE_STRIDE} employees in one file: use more --days")
    for index, one in enumerate(every):
        for other in every[index + 1 :]:
            if overlaps(one, other):
                raise BenchError(f"The files {one.name} and {other.name} share days")
    return ageing, small, main


# --- SQL: the statistics and counts only ------------------------------------------------


def set_autovacuum(db: Database, enabled: bool) -> None:
    with db.connect() as connection:
        for table in STAT_TABLES:
            if enabled:
                connection.execute(
                    f"ALTER TABLE {table} RESET (autovacuum_enabled, toast.autovacuum_enabled)"
                )
            else:
                connection.execute(
                    f"ALTER TABLE {table}"
                    " SET (autovacuum_enabled = off, toast.autovacuum_enabled = off)"
                )


def analyze(db: Database) -> None:
    with db.connect() as connection:
        connection.execute(f"ANALYZE {', '.join(STAT_TABLES)}")


def counts(db: Database) -> dict:
    with db.connect() as connection:

        def count(table: str) -> int:
            return connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608

        return {
            "recordsBefore": count("attendance_attendancerecord"),
            "itemsBefore": count("imports_importitem"),
            "employeesBefore": count("attendance_employee"),
        }


def employee_count(db: Database) -> int:
    with db.connect() as connection:
        return connection.execute("SELECT count(*) FROM attendance_employee").fetchone()[0]


def planner_estimates(db: Database, batch_id: int) -> dict:
    """What the planner expects for the batch's rows against what is there: the evidence
    that the statistics do not know the batch (best effort: None if a column moved)."""
    import psycopg

    found: dict = {}
    with db.connect() as connection:
        for key, table in (
            ("records", "attendance_attendancerecord"),
            ("items", "imports_importitem"),
        ):
            where = f"FROM {table} WHERE batch_id = {int(batch_id)}"
            try:
                explained = connection.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 {where}")
                estimate = explained.fetchone()[0][0]["Plan"]["Plan Rows"]
                actual = connection.execute(f"SELECT count(*) {where}").fetchone()[0]
            except psycopg.Error as error:
                log(f"WARNING: no planner estimate for {table}: {error}")
                estimate = actual = None
            found[key] = {"estimated": estimate, "actual": actual}
    return found


# --- the scenario -----------------------------------------------------------------------


def _import(api: Api, workdir: Path, part: Slice) -> dict:
    path = workdir / f"{part.name}.csv"
    part.write(path)
    try:
        return import_file(api, path, f"{part.name}.csv", part.rows)
    finally:
        path.unlink(missing_ok=True)


def _rollback(api: Api, db: Database, batch_id: int, rows: int, timeout: float) -> dict:
    outcome = timed_rollback(api, db, batch_id, timeout)
    outcome["rows"] = rows
    return outcome


def age(api: Api, db: Database, workdir: Path, ageing: list[Slice], done: list, timeout: float):
    """The history, appended to ``done`` as it goes. No ANALYZE yet: these rollbacks are
    set-up, and code with the quadratic plan must not spend the run on them."""
    for part in ageing:
        before = employee_count(db)
        committed = _import(api, workdir, part)
        entry = {
            "batchId": committed["batchId"],
            "rows": part.rows,
            "from": part.period[0].isoformat(),
            "to": part.period[1].isoformat(),
            "commitMs": committed["commitMs"],
            "employeesCreated": employee_count(db) - before,
            "rolledBack": not part.keep,
        }
        done.append(entry)
        if not part.keep:
            outcome = _rollback(api, db, committed["batchId"], part.rows, timeout)
            if outcome["status"] != "rolled_back":
                raise BenchError(f"The rollback of {part.name} ended {outcome}")
            entry["rollbackMs"] = outcome["ms"]
        log(f"aged: {part.name} {json.dumps(entry)}")


def run_small(api: Api, db: Database, workdir: Path, small: Slice, timeout: float) -> dict:
    analyze(db)
    before = counts(db)
    committed = _import(api, workdir, small)
    created = employee_count(db) - before["employeesBefore"]
    estimates = planner_estimates(db, committed["batchId"])
    log(f"aged: 10k batch {committed['batchId']} committed; planner estimates {estimates}")
    outcome = _rollback(api, db, committed["batchId"], small.rows, timeout)
    log(f"aged: 10k rollback {outcome['ms']} ms: {outcome.get('result')}")
    answer = outcome.pop("result")
    return {
        "ms": outcome.pop("ms"),
        "rows": outcome.pop("rows"),
        "status": outcome.pop("status"),
        **outcome,
        "batchId": committed["batchId"],
        "commitMs": committed["commitMs"],
        "employeesCreated": created,
        **before,
        "plannerEstimate": estimates,
        "result": answer,
    }


def prepare(db: Database) -> None:
    """Before the stack starts: autovacuum off (see the module's docstring)."""
    set_autovacuum(db, enabled=False)


def before_main(section: dict, api: Api, db: Database, workdir: Path, args, ageing, small):
    """Steps 2–5 up to the main batch's commit, filling the report's ``aged`` section as
    they go (its counts are those the last ANALYZE saw, before the main batch)."""
    section.update(ageingBatches=len(ageing), ageingRows=args.aged_rows, statistics=STATISTICS)
    log(f"aged: {len(ageing)} ageing batches of {args.aged_rows} rows …")
    age(api, db, workdir, ageing, section.setdefault("ageing", []), args.rollback_timeout)
    section["rollback10k"] = run_small(api, db, workdir, small, args.rollback_timeout)
    analyze(db)
    section.update(counts(db))
    log(
        f"aged: before the main batch {section['recordsBefore']} records,"
        f" {section['itemsBefore']} items, {section['employeesBefore']} employees (analysed)"
    )


def before_main_rollback(db: Database, section: dict, batch_id: int) -> None:
    """Called between the main batch's export and its rollback."""
    section["rollbackMain"] = {
        "batchId": batch_id,
        "employeesCreated": employee_count(db) - section["employeesBefore"],
        "plannerEstimate": planner_estimates(db, batch_id),
    }
    log(f"aged: main batch {batch_id}; planner estimates {section['rollbackMain']}")


def summarise(report: dict) -> None:
    """The main rollback's figures come from the run's rollback phase (one measurement)."""
    section = report.get("aged")
    if not section:
        return
    rollback = (report.get("phases") or {}).get("rollback") or {}
    main = {"ms": rollback.get("ms"), "rows": report.get("rows"), "status": rollback.get("status")}
    for key in ("asynchronous", "serverMs", "jobRunMs", "queueWaitMs", "timedOut"):
        if key in rollback:
            main[key] = rollback[key]
    main.update(section.get("rollbackMain") or {})
    section["rollbackMain"] = main
    small = section.get("rollback10k") or {}

    def within(figure: dict, limit) -> bool | None:
        if figure.get("timedOut"):
            return False
        return None if figure.get("ms") is None else figure["ms"] <= limit

    commit_to_floor = (report.get("ratios") or {}).get("commitToFloor")
    section["targets"] = {
        **TARGETS,
        "mainTargetAppliesAtRows": TARGET_ROWS,
        "met": {
            "rollback10k": within(small, TARGETS["rollback10kMs"]),
            "rollbackMain": within(main, TARGETS["rollbackMainMs"]),
            "commitToFloor": (
                None if commit_to_floor is None else commit_to_floor <= TARGETS["commitToFloor"]
            ),
        },
    }
    # The headline figures first, the history of the ageing batches last.
    order = [*SECTION_ORDER, *(key for key in section if key not in SECTION_ORDER)]
    # After the run's existing figures, whose place in the document stays as it was.
    report.pop("aged")
    report["aged"] = {key: section[key] for key in order if key in section}
