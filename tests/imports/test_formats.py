"""Import formats: the synthetic fixtures give FORMATS.md's answers, every quirk of real
exports is read, bad rows carry the right code and column, and parsing streams.

Pure unit tests: files are written to tmp_path; nothing touches the database.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import io
import json
import tracemalloc
from pathlib import Path
from zoneinfo import ZoneInfo

import openpyxl
import pytest

from common.exceptions import ValidationFailed
from imports.formats import (
    FORMATS,
    DayRow,
    ParseOptions,
    Person,
    PunchRow,
    RowCode,
    RowError,
    RowSkipped,
    UnsupportedFormat,
    detect_format,
    get_format,
    open_table,
)

REPOSITORY = Path(__file__).resolve().parents[2]
FIXTURES = REPOSITORY / "tests" / "fixtures"
REAL_FIXTURES = REPOSITORY / ".." / "shared" / "fixtures" / "real"
SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = dt.date(2026, 11, 25)
OPTIONS = ParseOptions(time_zone=SHANGHAI, today=TODAY)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Replaces the suite-wide fixture that clears the (database-backed) cache: these
    tests use neither the cache nor the database."""
    yield


def expected_rows(name: str) -> list[dict]:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))["rows"]


def parse(path: Path, options: ParseOptions = OPTIONS, format_name: str | None = None):
    table = open_table(path)
    import_format = get_format(format_name) if format_name else detect_format(table)
    return table, import_format, list(import_format.parse(table, options))


def iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def as_expected_day(row: DayRow) -> dict:
    return {
        "employee": row.person.employee_no or row.person.dingtalk_user_id,
        "name": row.person.name,
        "workDate": row.work_date.isoformat(),
        "firstIn": iso(row.first_in),
        "lastOut": iso(row.last_out),
        "workMinutes": row.work_minutes,
        "status": row.status,
        "lateMinutes": row.late_minutes,
    }


def fold_punches(rows, identifier, merge_seconds: int = 0) -> list[dict]:
    """What the pipeline does with punches, done here in Python: per (person, work date),
    punches within ``merge_seconds`` of the last kept one are the same punch; firstIn is
    the earliest kept punch, lastOut the latest when at least two are kept."""
    punches = collections.defaultdict(list)
    for row in rows:
        if isinstance(row, PunchRow):
            punches[(identifier(row.person), row.work_date)].append(row.occurred_at)
    days = []
    for (employee, work_date), moments in punches.items():
        moments.sort()
        kept = [moments[0]]
        for moment in moments[1:]:
            if (moment - kept[-1]).total_seconds() > merge_seconds:
                kept.append(moment)
        days.append(
            {
                "employee": employee,
                "workDate": work_date.isoformat(),
                "firstIn": iso(kept[0]),
                "lastOut": iso(kept[-1]) if len(kept) > 1 else None,
            }
        )
    return sorted(days, key=lambda day: (day["employee"], day["workDate"]))


def by_employee_and_date(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda day: (day["employee"], day["workDate"]))


def errors_of(rows) -> list[RowError]:
    return [row for row in rows if isinstance(row, RowError)]


def only_error(rows) -> RowError:
    errors = errors_of(rows)
    assert len(errors) == 1, errors
    return errors[0]


# --- the registry -------------------------------------------------------------------------


def test_registry_names_and_descriptions():
    assert list(FORMATS) == ["standard", "dingtalk_daily", "dingtalk_raw", "zkteco_attlog"]
    for name, import_format in FORMATS.items():
        assert import_format.name == name
        assert import_format.label
        assert import_format.kind in {"day", "punch"}
        assert set(import_format.containers) <= {"csv", "xlsx", "dat"}
        assert import_format.columns
        assert any(column.required for column in import_format.columns)
        assert all(column.description for column in import_format.columns)
    assert FORMATS["zkteco_attlog"].punch_merge_seconds == 60
    assert get_format("dingtalk_raw") is FORMATS["dingtalk_raw"]


def test_unknown_format_name_is_a_validation_error():
    with pytest.raises(ValidationFailed) as excinfo:
        get_format("nope")
    assert excinfo.value.code == "VALIDATION_ERROR"
    assert "nope" in excinfo.value.details["fields"]["format"][0]


def test_unknown_header_is_unsupported(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("foo,bar,baz\n1,2,3\n", encoding="utf-8")
    with pytest.raises(UnsupportedFormat) as excinfo:
        detect_format(open_table(path))
    assert excinfo.value.code == "UNSUPPORTED_FORMAT"
    for name in FORMATS:
        assert name in excinfo.value.message


def test_parsing_a_file_of_another_format_is_unsupported():
    table = open_table(FIXTURES / "dingtalk_raw.xlsx")
    with pytest.raises(UnsupportedFormat):
        list(get_format("dingtalk_daily").parse(table, OPTIONS))


@pytest.mark.parametrize("name", list(FORMATS))
def test_templates_are_read_back_by_their_format(tmp_path, name):
    import_format = FORMATS[name]
    path = tmp_path / "template.csv"
    delimiter = "\t" if name == "zkteco_attlog" else ","
    with path.open("w", encoding="utf-8", newline="") as stream:
        csv.writer(stream, delimiter=delimiter).writerows(import_format.template_rows())
    table = open_table(path)
    assert detect_format(table) is import_format
    rows = list(import_format.parse(table, OPTIONS))
    assert len(rows) == 1
    assert isinstance(rows[0], DayRow | PunchRow), rows


# --- the synthetic fixtures give FORMATS.md's answers -------------------------------------


@pytest.mark.parametrize(
    ("name", "container", "encoding"),
    [
        ("dingtalk_daily.xlsx", "xlsx", ""),
        ("dingtalk_daily_utf8bom.csv", "csv", "utf-8-sig"),
        ("dingtalk_daily_gbk.csv", "csv", "gb18030"),
    ],
)
def test_dingtalk_daily_fixtures_give_the_expected_days(name, container, encoding):
    table, import_format, rows = parse(FIXTURES / name)
    assert (table.container, table.encoding) == (container, encoding)
    assert import_format.name == "dingtalk_daily"
    assert all(isinstance(row, DayRow) for row in rows)
    assert [as_expected_day(row) for row in rows] == expected_rows("expected_daily.json")


def test_dingtalk_daily_rows_carry_people_and_aware_times():
    _, _, rows = parse(FIXTURES / "dingtalk_daily_utf8bom.csv")
    first = rows[0]
    assert first.row == 5  # two title rows and a two-row header come first
    assert first.person == Person(
        employee_no="24000000",
        dingtalk_user_id="154335349840-3301595691",
        name="杜兰",
        department="销售部-华东区",
    )
    moments = [row.first_in for row in rows if row.first_in] + [
        row.last_out for row in rows if row.last_out
    ]
    assert {moment.tzinfo for moment in moments} == {SHANGHAI}


def test_dingtalk_raw_fixture_gives_the_expected_days_and_skips_invalid_punches():
    _, import_format, rows = parse(FIXTURES / "dingtalk_raw.xlsx")
    assert import_format.name == "dingtalk_raw"
    assert not errors_of(rows)
    assert {row.kind for row in rows if isinstance(row, PunchRow)} == {"unknown"}

    days = fold_punches(rows, lambda person: person.employee_no or person.dingtalk_user_id)
    assert days == by_employee_and_date(expected_rows("expected_raw.json"))

    skips = [row for row in rows if isinstance(row, RowSkipped)]
    assert {(skip.code, skip.column) for skip in skips} == {(RowCode.INVALID_PUNCH, "打卡结果")}
    workbook = openpyxl.load_workbook(FIXTURES / "dingtalk_raw.xlsx", read_only=True)
    results = [row[9] for row in workbook.worksheets[0].iter_rows(min_row=4, values_only=True)]
    workbook.close()
    invalid_in_file = sum(1 for result in results if (result or "").startswith("打卡无效"))
    assert len(skips) == invalid_in_file == 46


def test_zkteco_fixture_gives_the_expected_days():
    table, import_format, rows = parse(FIXTURES / "attlog.dat")
    assert (table.container, table.delimiter, import_format.name) == ("dat", "\t", "zkteco_attlog")
    assert all(isinstance(row, PunchRow) for row in rows)
    assert len(rows) == 764
    days = fold_punches(rows, lambda person: person.device_pin, import_format.punch_merge_seconds)
    assert days == by_employee_and_date(expected_rows("expected_attlog.json"))


def test_real_zkteco_device_log():
    """A real school device log (yqs112358/caoka, MIT). FORMATS.md counts 10,942 punches:
    that is its count of newline characters; the last of its 10,943 lines has none. Of
    those lines 349 are damaged records the device wrote (an impossible 2047-02-30,
    dates decades ahead, PINs of control bytes or blanks), and they are row errors."""
    if not REAL_FIXTURES.is_dir():
        pytest.skip(
            "The shared real fixtures folder is absent on this machine "
            f"({REAL_FIXTURES.resolve()}); it is read from beside the checkout, never copied."
        )
    path = REAL_FIXTURES / "zkteco_caoka_1_attlog.dat"
    assert path.read_bytes().count(b"\n") == 10_942
    _, import_format, rows = parse(path)
    assert import_format.name == "zkteco_attlog"
    assert len(rows) == 10_943
    punches = [row for row in rows if isinstance(row, PunchRow)]
    assert len(punches) == 10_594
    assert collections.Counter(row.code for row in errors_of(rows)) == {
        RowCode.INVALID_DATE: 329,
        RowCode.INVALID_VALUE: 12,
        RowCode.FUTURE_DATE: 5,
        RowCode.MISSING_EMPLOYEE: 3,
    }
    assert punches[0].person.device_pin == "710011"
    assert punches[0].occurred_at == dt.datetime(2020, 9, 30, 10, 10, 37, tzinfo=SHANGHAI)


# --- DingTalk daily: every quirk of real exports ------------------------------------------

DAILY_SINGLE_COLUMNS = [
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
    "工作时长",
    "迟到时长",
]
WORK_SHIFT = "普通出勤 08:30-18:00"


def daily_row(**cells: str) -> dict[str, str]:
    row = {
        "姓名": "张三",
        "工号": "00042",
        "UserId": "0123456789-1234567890",
        "部门": "研发中心",
        "日期": "26-05-01 星期五",
        "班次": WORK_SHIFT,
        "上班1打卡时间": "08:20",
        "上班1打卡结果": "正常",
        "下班1打卡时间": "18:10",
        "下班1打卡结果": "正常",
    }
    row.update(cells)
    return row


def daily_sheet(
    rows: list[dict[str, str]],
    *,
    single_columns: list[str] = DAILY_SINGLE_COLUMNS,
    leave_columns: tuple[str, ...] = ("事假(小时)", "年假(天)"),
) -> list[list[str]]:
    """A DingTalk daily export: two title rows, then the two-level header."""
    width = len(single_columns) + len(leave_columns)
    header = [*single_columns, "请假", *[""] * (len(leave_columns) - 1)]
    sub_header = [""] * len(single_columns) + list(leave_columns)
    columns = single_columns + list(leave_columns)
    return [
        ["每日汇总 统计日期：2026-05-01 至 2026-05-31"] + [""] * (width - 1),
        ["报表生成时间：2026-06-01 15:22"] + [""] * (width - 1),
        header,
        sub_header,
        *[[row.get(column, "") for column in columns] for row in rows],
    ]


def write_csv(
    path: Path, rows: list[list[str]], *, encoding="utf-8", delimiter=",", eol="\r\n"
) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=eol).writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, rows: list[list[str]]) -> Path:
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append([cell if cell != "" else None for cell in row])
    workbook.save(path)
    return path


def parse_daily(tmp_path, rows, **sheet_options) -> list:
    path = write_csv(tmp_path / "daily.csv", daily_sheet(rows, **sheet_options))
    _, import_format, parsed = parse(path)
    assert import_format.name == "dingtalk_daily"
    return parsed


def at(day: int, hour: int, minute: int, month: int = 5) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("write_as", "reported"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),
        ("gb18030", "gb18030"),
        ("utf-16", "utf-16"),
    ],
)
@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["LF", "CRLF"])
@pytest.mark.parametrize("delimiter", [",", "\t"], ids=["comma", "tab"])
def test_daily_in_every_encoding_line_ending_and_delimiter(
    tmp_path, write_as, reported, eol, delimiter
):
    sheet = daily_sheet([daily_row(姓名="李雷[离职]")])
    path = write_csv(tmp_path / "d.csv", sheet, encoding=write_as, delimiter=delimiter, eol=eol)
    table, import_format, rows = parse(path)
    assert (table.encoding, table.delimiter) == (reported, delimiter)
    assert import_format.name == "dingtalk_daily"
    assert [as_expected_day(row) for row in rows] == [
        {
            "employee": "00042",
            "name": "李雷",
            "workDate": "2026-05-01",
            "firstIn": "2026-05-01T08:20:00+08:00",
            "lastOut": "2026-05-01T18:10:00+08:00",
            "workMinutes": 590,
            "status": "normal",
            "lateMinutes": 0,
        }
    ]


def test_daily_xlsx_built_in_memory_with_all_text_cells(tmp_path):
    path = write_xlsx(tmp_path / "d.xlsx", daily_sheet([daily_row(), daily_row(工号="")]))
    _, import_format, rows = parse(path)
    assert import_format.name == "dingtalk_daily"
    assert [row.person.label for row in rows] == ["00042", "0123456789-1234567890"]


@pytest.mark.parametrize(
    "leave_columns",
    [
        ("事假(小时)", "年假(天)"),
        ("事假(小时)", "年假(天)", "调休(小时)", "病假(小时)", "婚假(天)"),
    ],
)
def test_daily_leave_sub_columns_vary(tmp_path, leave_columns):
    rows = parse_daily(
        tmp_path,
        [daily_row(上班1打卡结果="请假", 下班1打卡结果="请假", **{leave_columns[-1]: "8"})],
        leave_columns=leave_columns,
    )
    assert [row.status for row in rows] == ["leave"]
    assert rows[0].row == 5


def test_daily_columns_found_by_name_not_position(tmp_path):
    single_columns = list(reversed(DAILY_SINGLE_COLUMNS))
    rows = parse_daily(tmp_path, [daily_row()], single_columns=single_columns)
    assert (rows[0].person.employee_no, rows[0].first_in) == ("00042", at(1, 8, 20))


@pytest.mark.parametrize(
    ("date_text", "expected"),
    [
        ("26-05-01 星期五", dt.date(2026, 5, 1)),
        ("26-05-03 星期日", dt.date(2026, 5, 3)),
        ("2026-05-01", dt.date(2026, 5, 1)),
        ("2026/5/1", dt.date(2026, 5, 1)),
    ],
)
def test_daily_dates(tmp_path, date_text, expected):
    rows = parse_daily(tmp_path, [daily_row(日期=date_text)])
    assert rows[0].work_date == expected


def test_daily_next_day_punch_stays_on_its_work_date(tmp_path):
    rows = parse_daily(
        tmp_path,
        [
            daily_row(
                班次="后勤晚班出勤 19:30-次日07:30",
                上班1打卡时间="19:09",
                下班1打卡时间="次日 08:51",
            )
        ],
    )
    assert (rows[0].work_date, rows[0].first_in, rows[0].last_out) == (
        dt.date(2026, 5, 1),
        at(1, 19, 9),
        at(2, 8, 51),
    )
    assert rows[0].work_minutes == 822


def test_daily_next_day_across_a_month_end(tmp_path):
    rows = parse_daily(
        tmp_path,
        [daily_row(日期="26-05-31 星期日", 上班1打卡时间="19:00", 下班1打卡时间="次日 07:30")],
    )
    assert rows[0].last_out == at(1, 7, 30, month=6)


def test_daily_several_punches_in_one_cell(tmp_path):
    rows = parse_daily(
        tmp_path,
        [daily_row(上班1打卡时间="08:01 \n12:00 \n13:02  ", 下班1打卡时间="18:00 \n18:30 ")],
    )
    assert (rows[0].first_in, rows[0].last_out, rows[0].work_minutes) == (
        at(1, 8, 1),
        at(1, 18, 30),
        629,
    )


def test_daily_several_shifts(tmp_path):
    single_columns = [*DAILY_SINGLE_COLUMNS, "上班2打卡时间", "上班2打卡结果", "下班2打卡时间"]
    single_columns.append("下班2打卡结果")
    rows = parse_daily(
        tmp_path,
        [
            daily_row(下班1打卡时间="12:00", 上班2打卡时间="13:00", 下班2打卡时间="21:05"),
            daily_row(下班1打卡时间="12:00", 上班2打卡时间="13:40", 上班2打卡结果="迟到"),
        ],
        single_columns=single_columns,
    )
    assert [(row.first_in, row.last_out, row.status) for row in rows] == [
        (at(1, 8, 20), at(1, 21, 5), "normal"),
        (at(1, 8, 20), at(1, 13, 40), "late"),
    ]


@pytest.mark.parametrize(
    ("cells", "status", "first_in", "last_out"),
    [
        ({"班次": "休息", "上班1打卡结果": "", "下班1打卡结果": ""}, "off", (8, 20), (18, 10)),
        ({"班次": "休息", "上班1打卡时间": "", "下班1打卡时间": ""}, "off", None, None),
        (
            {"上班1打卡结果": "请假", "下班1打卡时间": "", "下班1打卡结果": "请假"},
            "leave",
            (8, 20),
            None,
        ),
        (
            {
                "上班1打卡时间": "",
                "上班1打卡结果": "缺卡",
                "下班1打卡时间": "",
                "下班1打卡结果": "缺卡",
            },
            "absent",
            None,
            None,
        ),
        ({"下班1打卡时间": "", "下班1打卡结果": "缺卡"}, "partial", (8, 20), None),
        ({"上班1打卡时间": "", "上班1打卡结果": "未打卡"}, "partial", (18, 10), None),
        ({"上班1打卡结果": "迟到", "下班1打卡结果": "早退"}, "late_early", (8, 20), (18, 10)),
        ({"上班1打卡结果": "迟到"}, "late", (8, 20), (18, 10)),
        ({"下班1打卡结果": "早退"}, "early_leave", (8, 20), (18, 10)),
        (
            {"上班1打卡结果": "补卡审批通过", "下班1打卡结果": "管理员改为正常"},
            "normal",
            (8, 20),
            (18, 10),
        ),
        ({"上班1打卡结果": "外出"}, "normal", (8, 20), (18, 10)),
    ],
)
def test_daily_status_rules_in_order(tmp_path, cells, status, first_in, last_out):
    rows = parse_daily(tmp_path, [daily_row(**cells)])
    assert rows[0].status == status
    assert rows[0].first_in == (at(1, *first_in) if first_in else None)
    assert rows[0].last_out == (at(1, *last_out) if last_out else None)
    assert rows[0].work_minutes == (590 if first_in and last_out else 0)


def test_daily_two_identical_punches_make_no_last_out(tmp_path):
    rows = parse_daily(tmp_path, [daily_row(上班1打卡时间="08:20", 下班1打卡时间="08:20")])
    assert (rows[0].first_in, rows[0].last_out, rows[0].work_minutes) == (at(1, 8, 20), None, 0)


def test_daily_late_and_early_leave_minutes(tmp_path):
    single_columns = [*DAILY_SINGLE_COLUMNS, "早退时长"]
    rows = parse_daily(
        tmp_path,
        [daily_row(上班1打卡结果="迟到", 迟到时长="17", 下班1打卡结果="早退", 早退时长="25")],
        single_columns=single_columns,
    )
    assert (rows[0].late_minutes, rows[0].early_leave_minutes, rows[0].status) == (
        17,
        25,
        "late_early",
    )


def test_daily_ids_are_never_cast(tmp_path):
    rows = parse_daily(
        tmp_path,
        [
            daily_row(工号="00042"),
            daily_row(工号="  007 ", UserId=" 0123-456 "),
            daily_row(工号="", UserId="154335349840-3301595691"),
        ],
    )
    assert [(row.person.employee_no, row.person.dingtalk_user_id) for row in rows] == [
        ("00042", "0123456789-1234567890"),
        ("007", "0123-456"),
        ("", "154335349840-3301595691"),
    ]
    assert rows[2].person.label == "154335349840-3301595691"


def test_daily_left_company_suffix_is_dropped(tmp_path):
    rows = parse_daily(tmp_path, [daily_row(姓名="王芳[离职]"), daily_row(姓名="离职者")])
    assert [row.person.name for row in rows] == ["王芳", "离职者"]


def test_daily_blank_rows_are_ignored(tmp_path):
    sheet = daily_sheet([daily_row()])
    sheet.insert(4, [""] * len(sheet[3]))
    sheet.append([])
    path = write_csv(tmp_path / "d.csv", sheet)
    _, _, rows = parse(path)
    assert [row.row for row in rows] == [6]


@pytest.mark.parametrize(
    ("cells", "code", "column", "quoted"),
    [
        ({"日期": "26-13-01 星期五"}, RowCode.INVALID_DATE, "日期", '"26-13-01 星期五"'),
        ({"日期": "May first"}, RowCode.INVALID_DATE, "日期", '"May first"'),
        ({"日期": "2026-02-30"}, RowCode.INVALID_DATE, "日期", '"2026-02-30"'),
        ({"日期": ""}, RowCode.MISSING_VALUE, "日期", "日期"),
        ({"日期": "2026-11-26"}, RowCode.FUTURE_DATE, "日期", '"2026-11-26"'),
        ({"上班1打卡时间": "25:61"}, RowCode.INVALID_TIME, "上班1打卡时间", '"25:61"'),
        ({"下班1打卡时间": "18:00\n8点"}, RowCode.INVALID_TIME, "下班1打卡时间", '"18:00\\n8点"'),
        ({"工号": "", "UserId": ""}, RowCode.MISSING_EMPLOYEE, "工号", "工号"),
        ({"迟到时长": "-5"}, RowCode.INVALID_VALUE, "迟到时长", '"-5"'),
    ],
)
def test_daily_row_errors(tmp_path, cells, code, column, quoted):
    rows = parse_daily(tmp_path, [daily_row(), daily_row(**cells)])
    assert isinstance(rows[0], DayRow)
    error = only_error(rows)
    assert (error.row, error.code, error.column) == (6, code, column)
    assert quoted in error.message
    assert error.message.endswith(".")


def test_daily_today_is_not_in_the_future(tmp_path):
    options = ParseOptions(time_zone=SHANGHAI, today=dt.date(2026, 5, 1))
    path = write_csv(tmp_path / "d.csv", daily_sheet([daily_row(), daily_row(日期="26-05-02")]))
    table = open_table(path)
    rows = list(FORMATS["dingtalk_daily"].parse(table, options))
    assert isinstance(rows[0], DayRow)
    assert rows[1].code == RowCode.FUTURE_DATE


def test_daily_times_follow_the_options_time_zone(tmp_path):
    path = write_csv(tmp_path / "d.csv", daily_sheet([daily_row()]))
    amsterdam = ZoneInfo("Europe/Amsterdam")
    options = ParseOptions(time_zone=amsterdam, today=TODAY)
    row = next(FORMATS["dingtalk_daily"].parse(open_table(path), options))
    assert row.first_in == dt.datetime(2026, 5, 1, 8, 20, tzinfo=amsterdam)
    assert row.first_in.utcoffset() == dt.timedelta(hours=2)


def test_daily_header_mapping(tmp_path):
    sheet = daily_sheet([daily_row()])
    sheet[2] = ["Date" if cell == "日期" else cell for cell in sheet[2]]
    path = write_csv(tmp_path / "d.csv", sheet)
    table = open_table(path)
    with pytest.raises(UnsupportedFormat):
        detect_format(table)
    import_format = detect_format(table, {"Date": "日期"})
    assert import_format.name == "dingtalk_daily"
    options = ParseOptions(time_zone=SHANGHAI, today=TODAY, mapping={"Date": "日期"})
    assert next(import_format.parse(table, options)).work_date == dt.date(2026, 5, 1)


# --- DingTalk raw -------------------------------------------------------------------------

RAW_HEADER = [
    "姓名",
    "考勤组",
    "部门",
    "工号",
    "职位",
    "UserId",
    "考勤日期",
    "考勤时间",
    "打卡时间",
]
RAW_HEADER += ["打卡结果", "打卡地址", "打卡设备"]


def raw_sheet(rows: list[dict[str, str]]) -> list[list[str]]:
    def full(row):
        cells = {
            "姓名": "张三",
            "工号": "00042",
            "UserId": "0123-456",
            "部门": "研发中心",
            "考勤日期": "26-05-09 星期六",
            "打卡时间": "2026-05-09 08:27",
            "打卡结果": "正常",
            "打卡设备": "考勤机",
        }
        cells.update(row)
        return [cells.get(column, "") for column in RAW_HEADER]

    return [
        ["原始记录 统计日期：2026-05-01 至 2026-05-31"],
        ["报表生成时间：2026-06-01 15:22"],
        RAW_HEADER,
        *[full(row) for row in rows],
    ]


def test_raw_punches_skips_and_errors(tmp_path):
    path = write_xlsx(
        tmp_path / "raw.xlsx",
        raw_sheet(
            [
                {},
                {"打卡时间": "2026-05-10 00:27", "打卡设备": "手机_ca44eb86", "姓名": "张三[离职]"},
                {"打卡结果": "打卡无效:已经打过卡了，上班时间以最早打卡时间为准"},
                {"工号": "", "UserId": "7709-12"},
                {"工号": "", "UserId": ""},
                {"打卡时间": "2026-05-09 25:61"},
                {"考勤日期": "26-02-30 星期一"},
                {"考勤日期": "2026-12-01"},
                {"打卡时间": ""},
                {"打卡时间": "2026-05-10 00:27:30"},
            ]
        ),
    )
    _, import_format, rows = parse(path)
    assert import_format.name == "dingtalk_raw"
    summary = [
        (row.row, type(row).__name__, getattr(row, "code", ""), getattr(row, "column", ""))
        for row in rows
    ]
    assert summary == [
        (4, "PunchRow", "", ""),
        (5, "PunchRow", "", ""),
        (6, "RowSkipped", RowCode.INVALID_PUNCH, "打卡结果"),
        (7, "PunchRow", "", ""),
        (8, "RowError", RowCode.MISSING_EMPLOYEE, "工号"),
        (9, "RowError", RowCode.INVALID_TIME, "打卡时间"),
        (10, "RowError", RowCode.INVALID_DATE, "考勤日期"),
        (11, "RowError", RowCode.FUTURE_DATE, "考勤日期"),
        (12, "RowError", RowCode.MISSING_VALUE, "打卡时间"),
        (13, "PunchRow", "", ""),
    ]
    assert rows[0].occurred_at == dt.datetime(2026, 5, 9, 8, 27, tzinfo=SHANGHAI)
    assert (rows[1].work_date, rows[1].occurred_at, rows[1].person.name) == (
        dt.date(2026, 5, 9),
        dt.datetime(2026, 5, 10, 0, 27, tzinfo=SHANGHAI),
        "张三",
    )
    assert rows[3].person.label == "7709-12"
    assert rows[-1].occurred_at == dt.datetime(2026, 5, 10, 0, 27, 30, tzinfo=SHANGHAI)
    assert '"2026-05-09 25:61"' in rows[5].message


# --- ZKTeco -------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n"], ids=["LF", "CRLF"])
def test_zkteco_lines(tmp_path, eol):
    lines = [
        b"   700007\t2026-05-01 08:05:00\t1\t1\t15\t0",
        b"",
        b"    00042\t2026-05-01 23:59:59\t1\t0\t1\t0",
        b"\t2026-05-01 09:00:00\t1\t0\t1\t0",
        b"   700007\t2026-05-01 25:00:00\t1\t0\t1\t0",
        b"   700007\t2026-02-30 08:00:00\t1\t0\t1\t0",
        b"   700007\t2026-11-26 08:00:00\t1\t0\t1\t0",
        b"   700007\t01/05/2026 08:00\t1\t0\t1\t0",
        b"   700007",
        b"\x01\x02\t2026-05-01 09:00:00\t1\t0\t1\t0",
    ]
    path = tmp_path / "attlog.dat"
    path.write_bytes(eol.join(lines) + eol)
    _, import_format, rows = parse(path)
    assert import_format.name == "zkteco_attlog"
    summary = [(row.row, getattr(row, "code", ""), getattr(row, "column", "")) for row in rows]
    assert summary == [
        (1, "", ""),
        (3, "", ""),
        (4, RowCode.MISSING_EMPLOYEE, "PIN"),
        (5, RowCode.INVALID_TIME, "Punch time"),
        (6, RowCode.INVALID_DATE, "Punch time"),
        (7, RowCode.FUTURE_DATE, "Punch time"),
        (8, RowCode.INVALID_DATE, "Punch time"),
        (9, RowCode.MISSING_VALUE, "Punch time"),
        (10, RowCode.INVALID_VALUE, "PIN"),
    ]
    assert rows[0] == PunchRow(
        1,
        Person(device_pin="700007"),
        dt.date(2026, 5, 1),
        dt.datetime(2026, 5, 1, 8, 5, tzinfo=SHANGHAI),
        "unknown",
    )
    assert rows[1].person.device_pin == "00042"


# --- standard -----------------------------------------------------------------------------

STANDARD_HEADER = ["employee_no", "name", "work_date", "first_in", "last_out", "status"]
STANDARD_HEADER += ["work_minutes", "late_minutes"]


def parse_standard(tmp_path, rows: list[list[str]], header=STANDARD_HEADER, mapping=None):
    path = write_csv(tmp_path / "standard.csv", [header, *rows])
    table = open_table(path)
    import_format = detect_format(table, mapping)
    assert import_format.name == "standard"
    options = ParseOptions(time_zone=SHANGHAI, today=TODAY, mapping=mapping or {})
    return list(import_format.parse(table, options))


def test_standard_rows(tmp_path):
    rows = parse_standard(
        tmp_path,
        [
            ["00042", "Li Lei", "2026-05-01", "08:58", "18:05", "", "", ""],
            ["00043", "Han Meimei", "2026-05-01", "22:00", "06:00", "normal", "", ""],
            ["00044", "", "2026-05-01", "2026-05-01 08:30:15", "2026-05-01 17:00", "LATE", "", "3"],
            [
                "00045",
                "",
                "2026-05-01",
                "2026-05-01T00:30:00+00:00",
                "2026-05-01T09:00:00Z",
                "",
                "",
                "",
            ],
            ["00046", "", "2026-05-01", "2026-05-01T09:00:00+08:00", "", "partial", "", ""],
            ["00047", "", "2026-05-01", "", "", "off", "", ""],
            ["00048", "", "2026-05-01", "09:00", "18:00", "", "480", "0"],
        ],
    )
    assert [
        (row.person.employee_no, iso(row.first_in), iso(row.last_out), row.work_minutes)
        for row in rows
    ] == [
        ("00042", "2026-05-01T08:58:00+08:00", "2026-05-01T18:05:00+08:00", 547),
        ("00043", "2026-05-01T22:00:00+08:00", "2026-05-02T06:00:00+08:00", 480),
        ("00044", "2026-05-01T08:30:15+08:00", "2026-05-01T17:00:00+08:00", 509),
        ("00045", "2026-05-01T08:30:00+08:00", "2026-05-01T17:00:00+08:00", 510),
        ("00046", "2026-05-01T09:00:00+08:00", None, 0),
        ("00047", None, None, 0),
        ("00048", "2026-05-01T09:00:00+08:00", "2026-05-01T18:00:00+08:00", 480),
    ]
    assert [row.status for row in rows] == [None, "normal", "late", None, "partial", "off", None]
    assert rows[2].late_minutes == 3
    assert rows[0].person == Person(employee_no="00042", name="Li Lei")


@pytest.mark.parametrize(
    ("cells", "code", "column"),
    [
        ({"employee_no": ""}, RowCode.MISSING_EMPLOYEE, "employee_no"),
        ({"work_date": ""}, RowCode.MISSING_VALUE, "work_date"),
        ({"work_date": "01.05.2026x"}, RowCode.INVALID_DATE, "work_date"),
        ({"work_date": "2026-02-30"}, RowCode.INVALID_DATE, "work_date"),
        ({"work_date": "2026-11-26"}, RowCode.FUTURE_DATE, "work_date"),
        ({"first_in": "25:61"}, RowCode.INVALID_TIME, "first_in"),
        ({"last_out": "2026-02-30 18:00"}, RowCode.INVALID_DATE, "last_out"),
        ({"last_out": "2026-05-01 07:00"}, RowCode.INVALID_TIME, "last_out"),
        ({"status": "adjusted"}, RowCode.INVALID_VALUE, "status"),
        ({"status": "sick"}, RowCode.INVALID_VALUE, "status"),
        ({"work_minutes": "-5"}, RowCode.INVALID_VALUE, "work_minutes"),
        ({"late_minutes": "ten"}, RowCode.INVALID_VALUE, "late_minutes"),
    ],
)
def test_standard_row_errors(tmp_path, cells, code, column):
    good = {
        "employee_no": "00042",
        "name": "",
        "work_date": "2026-05-01",
        "first_in": "08:00",
        "last_out": "17:00",
        "status": "",
        "work_minutes": "",
        "late_minutes": "",
    }
    bad = {**good, **cells}
    rows = parse_standard(tmp_path, [list(good.values()), list(bad.values())])
    error = only_error(rows)
    assert (error.row, error.code, error.column) == (3, code, column)
    bad_value = next(iter(cells.values()))
    if bad_value:
        assert f'"{bad_value}"' in error.message


def test_standard_header_mapping(tmp_path):
    mapping = {"Staff No": "employee_no", "Date": "work_date", "In": "first_in", "Out": "last_out"}
    header = ["Staff No", "Date", "In", "Out"]
    with pytest.raises(UnsupportedFormat):
        detect_format(open_table(write_csv(tmp_path / "x.csv", [header, ["1", "2", "3", "4"]])))
    rows = parse_standard(
        tmp_path, [["007", "2026-05-01", "08:00", "17:30"]], header=header, mapping=mapping
    )
    assert [
        (row.person.employee_no, row.first_in, row.last_out, row.work_minutes) for row in rows
    ] == [("007", at(1, 8, 0), at(1, 17, 30), 570)]


def test_standard_after_blank_rows_in_xlsx(tmp_path):
    path = write_xlsx(
        tmp_path / "standard.xlsx",
        [[""], STANDARD_HEADER, ["00042", "", "2026-05-01", "08:00", "17:00", "", "", ""]],
    )
    _, import_format, rows = parse(path)
    assert import_format.name == "standard"
    assert [(row.row, row.work_minutes) for row in rows] == [(3, 540)]


# --- streaming ----------------------------------------------------------------------------


def write_daily_csv(path: Path, count: int) -> Path:
    """A DingTalk daily CSV of ``count`` rows shaped like the fixture."""
    with path.open("w", encoding="utf-8-sig", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerows(daily_sheet([])[:4])
        for number in range(count):
            day = number % 28 + 1
            late = number % 7 == 0
            writer.writerow(
                [
                    daily_row(
                        工号=f"{number // 28:08d}",
                        姓名=f"员工{number // 28}",
                        日期=f"26-05-{day:02d}",
                        上班1打卡时间=f"08:{number % 60:02d}",
                        上班1打卡结果="迟到" if late else "正常",
                        迟到时长="12" if late else "",
                    ).get(column, "")
                    for column in [*DAILY_SINGLE_COLUMNS, "事假(小时)", "年假(天)"]
                ]
            )
    return path


def peak_parse_memory(path: Path) -> tuple[int, int]:
    table = open_table(path)
    tracemalloc.start()
    try:
        count = sum(1 for _ in detect_format(table).parse(table, OPTIONS))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return count, peak


def test_parsing_streams(tmp_path):
    small = write_daily_csv(tmp_path / "small.csv", 10_000)
    large = write_daily_csv(tmp_path / "large.csv", 50_000)
    small_count, small_peak = peak_parse_memory(small)
    large_count, large_peak = peak_parse_memory(large)
    assert (small_count, large_count) == (10_000, 50_000)
    assert large_peak < 2 * small_peak
    assert large_peak < 20 * 1024 * 1024
