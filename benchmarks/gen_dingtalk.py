"""A DingTalk 每日汇总 (daily summary) CSV of any size, laid out exactly like
``tests/fixtures/dingtalk_daily_utf8bom.csv`` (see ../shared/fixtures/FORMATS.md).

UTF-8 with BOM, CRLF, two title rows, a two-level header (the 请假 group's sub-columns in
the second header row), then one row per employee and day; every cell is text. Employees
× consecutive past dates, so no (employee, day) pair repeats. Rows are produced one at a
time: a 500,000-row file never sits in memory.

    python -m benchmarks.gen_dingtalk ROWS OUT.csv [--days 90] [--seed 20260501]
        [--end 2026-10-31] [--first-person 0]

``--end`` and ``--first-person`` give files that share no day and no employee with the
default one, so several of them can be imported side by side (the benchmark's aged
database) without one batch touching another's days.

The same generator also gives each row as the importer must read it (:func:`normalised`),
for the benchmark's floor and django-import-export runs.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import random
import sys
import time
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TIME_ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
# The last day of the generated period: every date is in the past.
END_DATE = dt.date(2026, 10, 31)
DEFAULT_DAYS = 90
DEFAULT_SEED = 20260501

HEADER = [
    "姓名",
    "考勤组",
    "部门",
    "工号",
    "职位",
    "UserId",
    "日期",
    "workDate",
    "班次",
    "上班1打卡时间",
    "上班1打卡结果",
    "下班1打卡时间",
    "下班1打卡结果",
    "关联的审批单",
    "出勤天数",
    "休息天数",
    "工作时长",
    "迟到次数",
    "迟到时长",
    "请假",
    "",
    "",
    "",
]
LEAVE_COLUMNS = ["事假(小时)", "年假(天)", "调休(小时)", "病假(小时)"]
SUB_HEADER = [""] * (len(HEADER) - len(LEAVE_COLUMNS)) + LEAVE_COLUMNS
LEAVE_AMOUNTS = ["8", "1", "8", "8"]
WIDTH = len(HEADER)

DAY_SHIFT = "普通出勤 08:30-18:00"
NIGHT_SHIFT = "后勤晚班出勤 19:30-次日07:30"
REST = "休息"
DAY_START, DAY_END = 8 * 60 + 30, 18 * 60
NIGHT_START, NIGHT_END = 19 * 60 + 30, 24 * 60 + 7 * 60 + 30
WEEKDAYS = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"]

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红飞鑫波斌宇浩凯健俊帆帅旭宁"
    "晨辉鹏博文怡欣雨涵兰国鸣佳"
)
GROUPS = ["普通出勤", "管理人员考勤", "未加入考勤组"]
NIGHT_GROUP = "后勤倒班"
DEPARTMENTS = [
    "销售部-华东区",
    "销售部-华南区",
    "研发中心-平台组",
    "研发中心-测试组",
    "客服中心",
    "财务部",
    "行政部",
    "人力资源部",
]
POSITIONS = ["工程师", "会计", "经理", "专员", "主管", "", ""]


@dataclass(frozen=True, slots=True)
class Person:
    employee_no: str  # may be empty: then the UserId names the person
    user_id: str
    name: str
    group: str
    department: str
    position: str
    night: bool

    @property
    def label(self) -> str:
        """The employee number an import gives this person (工号, else UserId)."""
        return self.employee_no or self.user_id


@dataclass(slots=True)
class Day:
    person: Person
    work_date: dt.date
    shift: str
    first: int | None  # minutes after local midnight of the work date (≥ 1440: 次日)
    first_result: str
    last: int | None
    last_result: str
    late_minutes: int
    leave_column: int | None
    approval: str


def layout(
    rows: int, days: int = DEFAULT_DAYS, end: dt.date = END_DATE
) -> tuple[int, list[dt.date]]:
    """(employees, dates) for ``rows`` rows spread over ``days`` consecutive days up to
    ``end``."""
    if rows < 1 or days < 1:
        raise ValueError("rows and days must be positive")
    days = min(days, rows)
    start = end - dt.timedelta(days=days - 1)
    return math.ceil(rows / days), [start + dt.timedelta(days=n) for n in range(days)]


def people(count: int, seed: int = DEFAULT_SEED, first: int = 0) -> list[Person]:
    """``count`` people numbered from ``first``: numbers and UserIds follow from the index
    alone, so files with disjoint index ranges never name the same person."""
    rng = random.Random(seed * 7 + 1)
    result = []
    for index in range(first, first + count):
        # Mostly 8-digit numbers (24000013), some with leading zeros (00042), a few
        # without any (the UserId identifies them); UserIds are unique, some with a dash.
        if index % 50 == 7:
            employee_no = ""
        elif index % 10 == 3:
            employee_no = f"{index:05d}"
        else:
            employee_no = f"{24000000 + 13 * index:08d}"
        head = 10**11 + (index * 2654435761 + 97) % (9 * 10**11)
        dashed = index % 4 == 1
        user_id = f"{head:012d}-{index:010d}" if dashed else f"{head:012d}{index:06d}"
        night = index % 12 == 5
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
        result.append(
            Person(
                employee_no=employee_no,
                user_id=user_id,
                name=name,
                group=NIGHT_GROUP if night else rng.choice(GROUPS),
                department=rng.choice(DEPARTMENTS),
                position=rng.choice(POSITIONS),
                night=night,
            )
        )
    return result


def _work_day(person: Person, work_date: dt.date, rng: random.Random) -> Day:
    night = person.night
    shift = NIGHT_SHIFT if night else DAY_SHIFT
    start, end = (NIGHT_START, NIGHT_END) if night else (DAY_START, DAY_END)
    day = Day(person, work_date, shift, None, "", None, "", 0, None, "")
    r = rng.random()
    if r < 0.03:  # a day of leave
        day.first_result = day.last_result = "请假"
        day.leave_column = rng.randrange(len(LEAVE_COLUMNS))
        day.approval = "请假审批" if rng.random() < 0.5 else ""
        return day
    if r < 0.05:  # no punch at all
        day.first_result = day.last_result = "缺卡"
        return day
    first = start - rng.randint(0, 30)
    last = end + rng.randint(0, 90)
    first_result = last_result = "正常"
    if r < 0.07:  # one punch only
        if rng.random() < 0.5:
            last, last_result = None, "缺卡"
        else:
            first, first_result = None, "缺卡"
    elif r < 0.16:  # late; one in nine of them also leaves early
        first = start + rng.randint(1, 120)
        first_result = "迟到"
        day.late_minutes = first - start
        if r >= 0.15:
            last = end - rng.randint(1, 90)
            last_result = "早退"
    elif r < 0.20:  # early leave
        last = end - rng.randint(1, 90)
        last_result = "早退"
    elif r < 0.21:
        first_result = "补卡审批通过"
        day.approval = "补卡申请"
    elif r < 0.215:
        last_result = "管理员改为正常"
    day.first, day.first_result, day.last, day.last_result = (
        first,
        first_result,
        last,
        last_result,
    )
    return day


def _rest_day(person: Person, work_date: dt.date, rng: random.Random) -> Day:
    day = Day(person, work_date, REST, None, "", None, "", 0, None, "")
    if rng.random() < 0.04:  # weekend overtime: punches without results
        day.first = 9 * 60 + 30 + rng.randint(0, 120)
        day.last = day.first + rng.randint(60, 300)
    return day


def iter_days(
    rows: int,
    *,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    end: dt.date = END_DATE,
    first_person: int = 0,
) -> Iterator[Day]:
    """The file's data rows, date by date (as DingTalk lists them)."""
    count, dates = layout(rows, days, end)
    staff = people(count, seed, first_person)
    rng = random.Random(seed)
    produced = 0
    for work_date in dates:
        weekend = work_date.weekday() >= 5
        for person in staff:
            if produced >= rows:
                return
            produced += 1
            if weekend and not person.night:
                yield _rest_day(person, work_date, rng)
            else:
                yield _work_day(person, work_date, rng)


def _clock(minutes: int) -> str:
    if minutes >= 1440:
        minutes -= 1440
        return f"次日 {minutes // 60:02d}:{minutes % 60:02d}"
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


class _Dates:
    """Per-date texts and offsets, computed once per date."""

    def __init__(self):
        self.cache: dict[dt.date, tuple[str, str, str, str]] = {}

    def get(self, work_date: dt.date) -> tuple[str, str, str, str]:
        found = self.cache.get(work_date)
        if found is None:
            midnight = dt.datetime.combine(work_date, dt.time(), TIME_ZONE)
            offset = midnight.strftime("%z")
            found = (
                f"{work_date:%y-%m-%d} {WEEKDAYS[work_date.weekday()]}",
                str(int(midnight.timestamp()) * 1000),
                work_date.isoformat(),
                f"{offset[:3]}:{offset[3:]}",
            )
            self.cache[work_date] = found
        return found


def cells(day: Day, dates: _Dates) -> list[str]:
    person = day.person
    date_text, epoch_ms, _iso, _offset = dates.get(day.work_date)
    row = [
        person.name,
        person.group,
        person.department,
        person.employee_no,
        person.position,
        person.user_id,
        date_text,
        epoch_ms,
        day.shift,
        "" if day.first is None else _clock(day.first),
        day.first_result,
        "" if day.last is None else _clock(day.last),
        day.last_result,
        day.approval,
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
    ]
    punched = day.first is not None or day.last is not None
    if day.shift == REST:
        row[15] = "1"
    elif punched:
        row[14] = "1"
    if day.first is not None and day.last is not None:
        row[16] = str(day.last - day.first)
    if day.late_minutes:
        row[17] = "1"
        row[18] = str(day.late_minutes)
    if day.leave_column is not None:
        row[19 + day.leave_column] = LEAVE_AMOUNTS[day.leave_column]
    return row


def _instant(work_date: dt.date, minutes: int, offset: str) -> str:
    if minutes >= 1440:
        work_date += dt.timedelta(days=1)
        minutes -= 1440
    return f"{work_date.isoformat()}T{minutes // 60:02d}:{minutes % 60:02d}:00{offset}"


def normalised(day: Day, dates: _Dates) -> tuple:
    """The day record an import must produce (FORMATS.md): (employee label, work date,
    first_in, last_out, work_minutes, late_minutes, early_leave_minutes, status); the
    instants are ISO-8601 texts with the local offset."""
    _date_text, _epoch, iso, offset = dates.get(day.work_date)
    punches = sorted(m for m in (day.first, day.last) if m is not None)
    first_in = _instant(day.work_date, punches[0], offset) if punches else None
    last_out = _instant(day.work_date, punches[-1], offset) if len(punches) >= 2 else None
    work_minutes = punches[-1] - punches[0] if len(punches) >= 2 else 0
    results = (day.first_result, day.last_result)
    if day.shift == REST:
        status = "off"
    elif "请假" in results:
        status = "leave"
    elif not punches:
        status = "absent"
    elif len(punches) == 1:
        status = "partial"
    elif "迟到" in results and "早退" in results:
        status = "late_early"
    elif "迟到" in results:
        status = "late"
    elif "早退" in results:
        status = "early_leave"
    else:
        status = "normal"
    return (
        day.person.label,
        iso,
        first_in,
        last_out,
        work_minutes,
        day.late_minutes,
        0,
        status,
    )


def iter_normalised(
    rows: int,
    *,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    end: dt.date = END_DATE,
    first_person: int = 0,
) -> Iterator[tuple]:
    dates = _Dates()
    for day in iter_days(rows, days=days, seed=seed, end=end, first_person=first_person):
        yield normalised(day, dates)


def write_csv(
    path: Path | str,
    rows: int,
    *,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    end: dt.date = END_DATE,
    first_person: int = 0,
) -> int:
    """Write the file; returns its size in bytes."""
    _count, period = layout(rows, days, end)
    title = [""] * WIDTH
    title[0] = f"每日汇总 统计日期：{period[0].isoformat()} 至 {period[-1].isoformat()}"
    generated = [""] * WIDTH
    generated[0] = f"报表生成时间：{(period[-1] + dt.timedelta(days=1)).isoformat()} 09:00"
    dates = _Dates()
    with open(path, "w", encoding="utf-8-sig", newline="", buffering=1 << 20) as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerows((title, generated, HEADER, SUB_HEADER))
        writer.writerows(
            cells(day, dates)
            for day in iter_days(rows, days=days, seed=seed, end=end, first_person=first_person)
        )
    return Path(path).stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--end", type=dt.date.fromisoformat, default=END_DATE, help="the last work date"
    )
    parser.add_argument("--first-person", type=int, default=0, help="index of the first person")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    size = write_csv(
        args.out,
        args.rows,
        days=args.days,
        seed=args.seed,
        end=args.end,
        first_person=args.first_person,
    )
    employees, period = layout(args.rows, args.days, args.end)
    print(
        f"{args.out}: {args.rows} rows, {employees} employees, {period[0]} – {period[-1]},"
        f" {size} bytes in {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
