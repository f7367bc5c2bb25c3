"""schedule.judge_day: pure rules over unsaved organisations.

The database marker is only there because the shared autouse fixture clears the
(database-backed) cache before every test.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from attendance.models import Organisation
from attendance.schedule import DayResult, day_in_progress, judge_day, shift_bounds, whole_minutes

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
MONDAY = dt.date(2024, 3, 4)
SATURDAY = dt.date(2024, 3, 9)


def org(**overrides) -> Organisation:
    values = {
        "time_zone": "Asia/Shanghai",
        "work_start": dt.time(9, 0),
        "work_end": dt.time(18, 0),
        "grace_minutes": 5,
        "workdays": [0, 1, 2, 3, 4],
    }
    values.update(overrides)
    return Organisation(**values)


def at(day: dt.date, hour: int, minute: int, second: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=SHANGHAI)


def test_dates_used_here_are_what_the_tests_assume():
    assert MONDAY.weekday() == 0
    assert SATURDAY.weekday() == 5


def test_normal_day():
    first, last = at(MONDAY, 8, 55), at(MONDAY, 18, 2)
    result = judge_day(org(), MONDAY, [(first, "in"), (last, "out")])
    assert result == DayResult(first, last, 547, 0, 0, "normal")


def test_punch_order_does_not_matter():
    first, last = at(MONDAY, 8, 55), at(MONDAY, 18, 2)
    result = judge_day(org(), MONDAY, [(last, "out"), (first, "in")])
    assert (result.first_in, result.last_out, result.status) == (first, last, "normal")


def test_late_beyond_grace_counts_from_the_scheduled_start():
    first, last = at(MONDAY, 9, 12, 30), at(MONDAY, 18, 0)
    result = judge_day(org(), MONDAY, [(first, "in"), (last, "out")])
    assert result == DayResult(first, last, 527, 12, 0, "late")


def test_one_second_past_the_grace_is_late_by_the_whole_minutes_since_start():
    result = judge_day(org(), MONDAY, [(at(MONDAY, 9, 5, 1), "in"), (at(MONDAY, 18, 0), "out")])
    assert (result.late_minutes, result.status) == (5, "late")


@pytest.mark.parametrize("arrival", [(9, 0, 0), (9, 4, 59), (9, 5, 0)])
def test_within_the_grace_is_normal(arrival):
    result = judge_day(org(), MONDAY, [(at(MONDAY, *arrival), "in"), (at(MONDAY, 18, 0), "out")])
    assert (result.late_minutes, result.early_leave_minutes, result.status) == (0, 0, "normal")


def test_with_no_grace_lateness_starts_at_the_first_whole_minute():
    # Status follows the minutes: under a minute late is not late.
    no_grace = org(grace_minutes=0)
    out = (at(MONDAY, 18, 0), "out")
    under_a_minute = judge_day(no_grace, MONDAY, [(at(MONDAY, 9, 0, 59), "in"), out])
    one_minute = judge_day(no_grace, MONDAY, [(at(MONDAY, 9, 1, 0), "in"), out])
    assert (under_a_minute.late_minutes, under_a_minute.status) == (0, "normal")
    assert (one_minute.late_minutes, one_minute.status) == (1, "late")


def test_early_leave():
    first, last = at(MONDAY, 9, 0), at(MONDAY, 17, 40)
    result = judge_day(org(), MONDAY, [(first, "in"), (last, "out")])
    assert result == DayResult(first, last, 520, 0, 20, "early_leave")


def test_leaving_within_the_grace_is_normal():
    result = judge_day(org(), MONDAY, [(at(MONDAY, 9, 0), "in"), (at(MONDAY, 17, 55), "out")])
    assert (result.early_leave_minutes, result.status) == (0, "normal")


def test_late_and_early():
    first, last = at(MONDAY, 9, 30), at(MONDAY, 17, 0)
    result = judge_day(org(), MONDAY, [(first, "in"), (last, "out")])
    assert result == DayResult(first, last, 450, 30, 60, "late_early")


def test_a_single_in_punch_is_partial():
    first = at(MONDAY, 8, 50)
    result = judge_day(org(), MONDAY, [(first, "in")])
    assert result == DayResult(first, None, 0, 0, 0, "partial")


def test_a_single_late_in_punch_is_partial_with_its_lateness():
    first = at(MONDAY, 9, 20)
    result = judge_day(org(), MONDAY, [(first, "in")])
    assert result == DayResult(first, None, 0, 20, 0, "partial")


def test_a_single_out_punch_is_partial_as_last_out():
    last = at(MONDAY, 18, 5)
    result = judge_day(org(), MONDAY, [(last, "out")])
    assert result == DayResult(None, last, 0, 0, 0, "partial")


def test_a_single_unknown_punch_counts_as_in():
    moment = at(MONDAY, 12, 0)
    result = judge_day(org(), MONDAY, [(moment, "unknown")])
    assert (result.first_in, result.last_out, result.status) == (moment, None, "partial")


def test_two_punches_at_the_same_moment_are_one_punch():
    moment = at(MONDAY, 9, 0)
    result = judge_day(org(), MONDAY, [(moment, "in"), (moment, "in")])
    assert result == DayResult(moment, None, 0, 0, 0, "partial")


def test_middle_punches_are_ignored():
    first, last = at(MONDAY, 8, 59), at(MONDAY, 18, 1)
    punches = [(at(MONDAY, 12, 0), "out"), (last, "out"), (first, "in"), (at(MONDAY, 13, 0), "in")]
    result = judge_day(org(), MONDAY, punches)
    assert result == DayResult(first, last, 542, 0, 0, "normal")


def test_no_punches_on_a_workday_is_absent():
    assert judge_day(org(), MONDAY, []) == DayResult(None, None, 0, 0, 0, "absent")


def test_no_punches_on_a_weekend_is_off():
    assert judge_day(org(), SATURDAY, []) == DayResult(None, None, 0, 0, 0, "off")


def test_punches_on_a_weekend_are_off_but_keep_their_times():
    first, last = at(SATURDAY, 10, 0), at(SATURDAY, 15, 30)
    result = judge_day(org(), SATURDAY, [(first, "in"), (last, "out")])
    assert (result.first_in, result.last_out, result.work_minutes, result.status) == (
        first,
        last,
        330,
        "off",
    )


def test_workdays_come_from_the_organisation():
    six_day_week = org(workdays=[0, 1, 2, 3, 4, 5])
    assert judge_day(six_day_week, SATURDAY, []).status == "absent"
    assert judge_day(org(workdays=[1, 2, 3, 4, 5]), MONDAY, []).status == "off"


def test_overnight_schedule_ends_the_next_morning():
    night = org(work_start=dt.time(19, 30), work_end=dt.time(7, 30))
    start, end = shift_bounds(night, MONDAY)
    assert start == at(MONDAY, 19, 30)
    assert end == at(MONDAY + dt.timedelta(days=1), 7, 30)


def test_overnight_schedule_normal_day():
    night = org(work_start=dt.time(19, 30), work_end=dt.time(7, 30))
    first, last = at(MONDAY, 19, 28), at(MONDAY + dt.timedelta(days=1), 7, 35)
    result = judge_day(night, MONDAY, [(first, "in"), (last, "out")])
    assert result == DayResult(first, last, 727, 0, 0, "normal")


def test_overnight_schedule_late_and_early():
    night = org(work_start=dt.time(19, 30), work_end=dt.time(7, 30))
    first, last = at(MONDAY, 20, 0), at(MONDAY + dt.timedelta(days=1), 6, 0)
    result = judge_day(night, MONDAY, [(first, "in"), (last, "out")])
    assert result == DayResult(first, last, 600, 30, 90, "late_early")


def test_work_minutes_are_whole_minutes_rounded_down():
    first, last = at(MONDAY, 9, 0, 30), at(MONDAY, 18, 0, 29)
    result = judge_day(org(), MONDAY, [(first, "in"), (last, "out")])
    assert result.work_minutes == 539
    assert isinstance(result.work_minutes, int)


def test_punches_in_utc_are_judged_in_the_organisation_time_zone():
    first = at(MONDAY, 8, 58).astimezone(dt.UTC)
    last = at(MONDAY, 18, 0).astimezone(dt.UTC)
    result = judge_day(org(), MONDAY, [(first, "in"), (last, "out")])
    assert (result.status, result.work_minutes) == ("normal", 542)


def test_the_same_instants_judged_in_another_time_zone_differ():
    # 15:58 and 23:00 in Shanghai are 08:58 and 16:00 in Berlin (CET): on time, left early.
    first = at(MONDAY, 15, 58)
    last = at(MONDAY, 23, 0)
    result = judge_day(org(time_zone="Europe/Berlin"), MONDAY, [(first, "in"), (last, "out")])
    assert (result.late_minutes, result.early_leave_minutes, result.status) == (
        0,
        120,
        "early_leave",
    )


@pytest.mark.parametrize(
    ("delta", "minutes"),
    [
        (dt.timedelta(seconds=59), 0),
        (dt.timedelta(minutes=1), 1),
        (dt.timedelta(minutes=90, seconds=59), 90),
        (dt.timedelta(seconds=-30), 0),
    ],
)
def test_whole_minutes(delta, minutes):
    assert whole_minutes(delta) == minutes


# --- day_in_progress: today before its scheduled end is not judged yet -------------------


def test_a_workday_is_in_progress_until_its_scheduled_end():
    assert day_in_progress(org(), MONDAY, at(MONDAY, 7, 0))
    assert day_in_progress(org(), MONDAY, at(MONDAY, 17, 59, 59))
    assert not day_in_progress(org(), MONDAY, at(MONDAY, 18, 0))
    assert not day_in_progress(org(), MONDAY, at(MONDAY, 23, 0))


def test_a_day_in_the_past_is_not_in_progress():
    assert not day_in_progress(org(), MONDAY, at(MONDAY + dt.timedelta(days=1), 10, 0))


def test_a_day_not_begun_is_not_in_progress():
    # Only today (or an overnight shift still running) is in progress; tomorrow is future.
    assert not day_in_progress(org(), MONDAY + dt.timedelta(days=1), at(MONDAY, 10, 0))


def test_a_day_off_is_never_in_progress():
    assert not day_in_progress(org(), SATURDAY, at(SATURDAY, 10, 0))


def test_an_overnight_shift_is_in_progress_until_the_next_morning():
    night = org(work_start=dt.time(19, 30), work_end=dt.time(7, 30))
    tuesday = MONDAY + dt.timedelta(days=1)
    assert day_in_progress(night, MONDAY, at(MONDAY, 23, 0))
    assert day_in_progress(night, MONDAY, at(tuesday, 7, 29))
    assert not day_in_progress(night, MONDAY, at(tuesday, 7, 30))


def test_in_progress_is_judged_in_the_organisation_time_zone():
    # 09:30 UTC is 17:30 in Shanghai (before the end) and 10:30 in Berlin (CET).
    moment = dt.datetime(2024, 3, 4, 9, 30, tzinfo=dt.UTC)
    assert day_in_progress(org(), MONDAY, moment)
    assert not day_in_progress(org(), MONDAY, moment + dt.timedelta(minutes=31))
    assert day_in_progress(org(time_zone="Europe/Berlin"), MONDAY, moment + dt.timedelta(hours=6))
