"""The seed of ``make bench-api`` (:mod:`benchmarks.api_bench`), written with SQL and COPY
straight into the bench database, as its owner:

- --employees people, numbered from 1: --admins admins first, then --approvers approvers,
  then the employees, each of whom reports to an approver in turn; each with a login, the
  groups of its role and a bearer token (the identities file hands the tokens to locust);
- --days days of day records before today (workdays; a mix of normal, late, early-leave,
  absent and leave days, by a hash of person and day) with the punches behind them;
- --pending pending corrections (and as many decided ones) older than the days the crowd
  asks for, so a new request never meets one for the same day;
- --audit-events audit events over the months of those days (5 % another organisation's,
  as :mod:`benchmarks.audit_bench` seeds them);

then VACUUM ANALYZE of every table seeded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import secrets
import time
import zoneinfo
from pathlib import Path

from benchmarks import audit_bench
from benchmarks.stack import Database, log, ms_since, organisation_ids

BENCH_ORG = "api-bench"
OTHER_ORG = "api-bench-other"
TIME_ZONE = "Asia/Shanghai"
# What prepare_database makes before the seed: the organisation and the other one, whose
# audit events its admins must never see.
ORGANISATIONS = {
    BENCH_ORG: {"name": "API bench", "time_zone": TIME_ZONE},
    OTHER_ORG: {"name": "API bench (other)", "time_zone": TIME_ZONE},
}
ROLE_GROUPS = {
    "employee": ["attendance_employee"],
    "approver": ["attendance_employee", "attendance_approver"],
    "admin": ["attendance_employee", "attendance_admin"],
}
TOKEN_PREFIX = "att_"  # noqa: S105 - attendance.services.TOKEN_PREFIX, a marker


SEED_USERS_SQL = """
    INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email,
        is_staff, is_active, date_joined)
    SELECT '!api-bench', false, 'api-bench-' || lpad(g::text, 5, '0'), '', '', '',
           false, true, now()
    FROM generate_series(1, %(n)s) AS g
"""
# Person g: admins first, then approvers, then the employees, each of whom reports to an
# approver in turn.
SEED_EMPLOYEES_SQL = """
    INSERT INTO attendance_employee (organisation_id, employee_no, name, department, user_id,
        dingtalk_user_id, device_pin, is_active, created_at)
    SELECT %(org)s, 'AB' || lpad(g::text, 5, '0'),
           (ARRAY['Wang', 'Li', 'Zhang', 'Liu', 'Chen', 'Yang', 'Huang', 'Zhao'])[1 + g %% 8]
               || ' Person ' || g,
           'Dept ' || (g %% 20), u.id, '', '', true, now()
    FROM auth_user u
    CROSS JOIN LATERAL (SELECT substr(u.username, 11)::int AS g) AS number
    WHERE u.username LIKE 'api-bench-%%'
"""
SEED_APPROVERS_SQL = """
    UPDATE attendance_employee AS e
    SET approver_id = a.id
    FROM attendance_employee AS a
    WHERE e.organisation_id = %(org)s AND a.organisation_id = %(org)s
      AND substr(e.employee_no, 3)::int > %(first_employee)s - 1
      AND substr(a.employee_no, 3)::int
          = %(admins)s + 1 + substr(e.employee_no, 3)::int %% %(approvers)s
"""
# Workdays of the last %(days)s days before today (in the organisation's zone): status by a
# hash of (employee, day); times in minutes after midnight, local.
SEED_RECORDS_SQL = """
    WITH days AS (
        SELECT e.id AS employee_id, d::date AS work_date,
               abs(hashtext(e.id::text || ':' || d::date)) %% 100 AS h
        FROM attendance_employee e
        CROSS JOIN generate_series(%(today)s::date - %(days)s, %(today)s::date - 1,
                                   interval '1 day') AS d
        WHERE e.organisation_id = %(org)s AND extract(isodow FROM d) < 6
    ), judged AS (
        SELECT *, CASE WHEN h < 3 THEN 'absent' WHEN h < 6 THEN 'leave'
                       WHEN h < 14 THEN 'late' WHEN h < 18 THEN 'early_leave'
                       WHEN h < 20 THEN 'late_early' ELSE 'normal' END AS status
        FROM days
    ), timed AS (
        SELECT *,
               CASE WHEN status IN ('late', 'late_early') THEN 546 + h %% 60
                    ELSE 510 + h %% 30 END AS in_minute,
               CASE WHEN status IN ('early_leave', 'late_early') THEN 1020 + h %% 50
                    ELSE 1080 + h %% 60 END AS out_minute
        FROM judged
    )
    INSERT INTO attendance_attendancerecord (organisation_id, employee_id, work_date,
        first_in, last_out, work_minutes, late_minutes, early_leave_minutes, status, source,
        note, updated_at)
    SELECT %(org)s, employee_id, work_date,
           CASE WHEN status IN ('absent', 'leave') THEN NULL
                ELSE (work_date + make_interval(mins => in_minute)) AT TIME ZONE %(tz)s END,
           CASE WHEN status IN ('absent', 'leave') THEN NULL
                ELSE (work_date + make_interval(mins => out_minute)) AT TIME ZONE %(tz)s END,
           CASE WHEN status IN ('absent', 'leave') THEN 0 ELSE out_minute - in_minute END,
           CASE WHEN status IN ('late', 'late_early') THEN in_minute - 540 ELSE 0 END,
           CASE WHEN status IN ('early_leave', 'late_early') THEN 1080 - out_minute ELSE 0 END,
           status, 'import', '', now()
    FROM timed
"""
SEED_PUNCHES_SQL = """
    INSERT INTO attendance_punch (organisation_id, employee_id, kind, occurred_at, received_at,
        work_date, source, source_key)
    SELECT r.organisation_id, r.employee_id, p.kind, p.at, p.at, r.work_date, 'device',
           'device:bench:' || r.id || ':' || p.kind
    FROM attendance_attendancerecord r
    CROSS JOIN LATERAL (VALUES ('in', r.first_in), ('out', r.last_out)) AS p(kind, at)
    WHERE r.organisation_id = %(org)s AND r.first_in IS NOT NULL
"""
# Request k: employee k mod R (of the R plain employees), on the day 1 + k div R days
# before the oldest day the crowd asks for; pending for k < %(pending)s, decided after.
SEED_CORRECTIONS_SQL = """
    WITH plain AS (
        SELECT e.id, e.user_id, e.approver_id,
               row_number() OVER (ORDER BY e.id) - 1 AS i, count(*) OVER () AS r
        FROM attendance_employee e
        WHERE e.organisation_id = %(org)s AND e.approver_id IS NOT NULL
    ), asked AS (
        SELECT p.*, k, %(today)s::date - (%(first_back)s + k / p.r)::int AS work_date
        FROM generate_series(0, %(pending)s + %(decided)s - 1) AS k
        JOIN plain p ON p.i = k %% p.r
    )
    INSERT INTO attendance_adjustmentrequest (organisation_id, employee_id, work_date,
        requested_first_in, requested_last_out, requested_status, reason, state,
        created_by_id, created_at, decided_by_id, decided_at, decision_comment)
    SELECT %(org)s, a.id, a.work_date,
           (a.work_date + time '09:00') AT TIME ZONE %(tz)s,
           (a.work_date + time '18:00') AT TIME ZONE %(tz)s,
           '', 'Forgot to clock (seeded)',
           CASE WHEN k < %(pending)s THEN 'pending' ELSE 'approved' END,
           a.user_id, now() - make_interval(mins => k),
           CASE WHEN k < %(pending)s THEN NULL ELSE approver.user_id END,
           CASE WHEN k < %(pending)s THEN NULL ELSE now() - make_interval(mins => k) END,
           ''
    FROM asked a
    JOIN attendance_employee approver ON approver.id = a.approver_id
"""
SEEDED_TABLES = (
    "auth_user",
    "auth_user_groups",
    "attendance_employee",
    "attendance_apitoken",
    "attendance_attendancerecord",
    "attendance_punch",
    "attendance_adjustmentrequest",
)


def role_of(number: int, admins: int, approvers: int) -> str:
    """The role of person ``number`` (1-based): admins first, then approvers."""
    if number <= admins:
        return "admin"
    if number <= admins + approvers:
        return "approver"
    return "employee"


def seed(db: Database, args, workdir: Path) -> tuple[dict, Path]:
    """Seed everything; returns the report and the identities file (role, token, ids)."""
    report: dict = {}
    started = time.perf_counter()
    today = dt.datetime.now(dt.UTC).astimezone(zone()).date()
    with db.connect() as connection:
        org, other = organisation_ids(connection, BENCH_ORG, OTHER_ORG)
        with connection.transaction():
            connection.execute(SEED_USERS_SQL, {"n": args.employees})
            connection.execute(SEED_EMPLOYEES_SQL, {"org": org})
            connection.execute(
                SEED_APPROVERS_SQL,
                {
                    "org": org,
                    "admins": args.admins,
                    "approvers": args.approvers,
                    "first_employee": args.admins + args.approvers + 1,
                },
            )
            people = connection.execute(
                "SELECT substr(e.employee_no, 3)::int, e.id, e.user_id"
                " FROM attendance_employee e WHERE e.organisation_id = %s ORDER BY 1",
                [org],
            ).fetchall()
            identities = _grant_roles_and_tokens(connection, people, args)
        report["peopleMs"] = ms_since(started)
        phase = time.perf_counter()
        params = {"org": org, "today": today, "days": args.days, "tz": TIME_ZONE}
        connection.execute(SEED_RECORDS_SQL, params)
        connection.execute(SEED_PUNCHES_SQL, params)
        report["daysMs"] = ms_since(phase)
        phase = time.perf_counter()
        connection.execute(
            SEED_CORRECTIONS_SQL,
            {
                **params,
                "first_back": args.correction_days + 2,  # the probe asks for the day between
                "pending": args.pending,
                "decided": args.pending,
            },
        )
        report["correctionsMs"] = ms_since(phase)
        first_actor = people[0][2]
    months = max(1, math.ceil(args.days / 30))
    log(f"seeding {args.audit_events:,} audit events over {months} month(s) …")
    report["audit"] = audit_bench.seed(
        db, events=args.audit_events, months=months, org=org, other=other, first_actor=first_actor
    )
    with db.connect() as connection:
        phase = time.perf_counter()
        for table in SEEDED_TABLES:
            connection.execute(f"VACUUM (ANALYZE) {table}")
        report["vacuumAnalyzeMs"] = ms_since(phase)
        report["rows"] = {
            table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608
            for table in (*SEEDED_TABLES, "audit_auditevent")
        }
        report["pendingCorrections"] = connection.execute(
            "SELECT count(*) FROM attendance_adjustmentrequest WHERE state = 'pending'"
        ).fetchone()[0]
    report["ms"] = ms_since(started)
    path = workdir / "identities.json"
    path.write_text(json.dumps(identities))
    return report, path


def _grant_roles_and_tokens(connection, people, args) -> list[dict]:
    groups = dict(
        connection.execute(
            "SELECT name, id FROM auth_group WHERE name = ANY(%s)",
            [sorted({name for names in ROLE_GROUPS.values() for name in names})],
        ).fetchall()
    )
    identities = []
    with connection.cursor() as cursor:
        with cursor.copy("COPY auth_user_groups (user_id, group_id) FROM STDIN") as copy:
            for number, _employee, user in people:
                for group in ROLE_GROUPS[role_of(number, args.admins, args.approvers)]:
                    copy.write_row((user, groups[group]))
        with cursor.copy(
            "COPY attendance_apitoken (user_id, name, prefix, key_hash, created_at) FROM STDIN"
        ) as copy:
            now = dt.datetime.now(dt.UTC)
            for number, employee, user in people:
                raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
                digest = hashlib.sha256(raw.encode()).hexdigest()
                copy.write_row((user, "api benchmark", raw[:10], digest, now))
                identities.append(
                    {
                        "role": role_of(number, args.admins, args.approvers),
                        "token": raw,
                        "employeeId": employee,
                        "userId": user,
                    }
                )
    return identities


def zone() -> zoneinfo.ZoneInfo:
    """The organisation's time zone: "today" is its today."""
    return zoneinfo.ZoneInfo(TIME_ZONE)
