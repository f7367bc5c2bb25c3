"""imports.formats.reading: containers, encodings, delimiters, XLSX safety, header finding.

Pure unit tests: files are written to tmp_path; nothing touches the database.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import os
import time
import zipfile
from pathlib import Path

import defusedxml
import openpyxl
import openpyxl.xml
import pytest

from imports import formats
from imports.formats import reading, xlsx
from imports.formats.base import EmptyFile, ParseOptions, UnsupportedFormat
from imports.formats.reading import find_header, open_table

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Replaces the suite-wide fixture that clears the (database-backed) cache: these
    tests use neither the cache nor the database."""
    yield


def write_text(path: Path, rows: list[list[str]], *, encoding="utf-8", delimiter=",", eol="\n"):
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=eol).writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def write_xlsx(path: Path, rows: list[list], *, sheets: tuple[str, ...] = ("Sheet",)) -> Path:
    workbook = openpyxl.Workbook()
    workbook.active.title = sheets[0]
    for row in rows:
        workbook.active.append(row)
    for name in sheets[1:]:
        workbook.create_sheet(name).append(["not", "this", "sheet"])
    workbook.save(path)
    return path


def all_rows(table) -> list[tuple[int, list[str]]]:
    return list(table.rows())


def error_code(excinfo) -> str:
    return excinfo.value.code


# --- safety baseline ----------------------------------------------------------------------


def test_openpyxl_parses_xml_through_defusedxml():
    assert openpyxl.xml.DEFUSEDXML is True


# --- encodings, line endings, delimiters ---------------------------------------------------

ROWS = [["工号", "姓名", "日期"], ["00042", "张三", "26-05-01 星期五"], [" 007 ", "李四 ", ""]]
STRIPPED = [["工号", "姓名", "日期"], ["00042", "张三", "26-05-01 星期五"], ["007", "李四", ""]]


@pytest.mark.parametrize(
    ("encoding", "write_as", "reported"),
    [
        ("utf-8", "utf-8", "utf-8"),
        ("utf-8 with BOM", "utf-8-sig", "utf-8-sig"),
        ("GB18030", "gb18030", "gb18030"),
        ("GBK (a subset of GB18030)", "gbk", "gb18030"),
        ("UTF-16LE with BOM", "utf-16", "utf-16"),
    ],
)
@pytest.mark.parametrize("eol", ["\n", "\r\n"], ids=["LF", "CRLF"])
def test_text_encodings_and_line_endings(tmp_path, encoding, write_as, reported, eol):
    path = write_text(tmp_path / "f.csv", ROWS, encoding=write_as, eol=eol)
    if write_as == "utf-16":
        assert path.read_bytes().startswith(codecs.BOM_UTF16_LE)  # this machine is LE
    table = open_table(path)
    assert (table.container, table.encoding, table.delimiter) == ("csv", reported, ",")
    assert all_rows(table) == list(enumerate(STRIPPED, 1))


def test_utf16_big_endian_with_bom(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(codecs.BOM_UTF16_BE + "a,b\r\n1,2\r\n".encode("utf-16-be"))
    table = open_table(path)
    assert table.encoding == "utf-16"
    assert all_rows(table) == [(1, ["a", "b"]), (2, ["1", "2"])]


@pytest.mark.parametrize(("delimiter", "name"), [(",", "comma"), ("\t", "tab"), (";", "semicolon")])
def test_delimiters(tmp_path, delimiter, name):
    rows = [["每日汇总 统计日期：2026-05-01 至 2026-05-31"], [], *ROWS]
    table = open_table(write_text(tmp_path / f"{name}.csv", rows, delimiter=delimiter))
    assert table.delimiter == delimiter
    assert table.container == "csv"
    assert all_rows(table)[2:] == list(enumerate(STRIPPED, 3))


def test_semicolon_with_decimal_commas_is_semicolon(tmp_path):
    path = tmp_path / "f.csv"
    path.write_text("a;b;c\n1,5;2;x\n3,25;4;y\n", encoding="utf-8")
    assert open_table(path).delimiter == ";"


def test_quoted_cell_keeps_internal_newlines_and_strips_its_ends(tmp_path):
    path = write_text(tmp_path / "f.csv", [["a", "b"], ["  08:01 \n12:00 \n18:00  ", " x "]])
    assert all_rows(open_table(path))[1] == (2, ["08:01 \n12:00 \n18:00", "x"])


def test_rows_can_be_read_twice(tmp_path):
    table = open_table(write_text(tmp_path / "f.csv", ROWS))
    assert all_rows(table) == all_rows(table)


def test_device_log_is_a_dat_container_read_without_quoting(tmp_path):
    path = tmp_path / "attlog.txt"
    path.write_bytes(
        b'   700007\t2026-05-01 08:05:00\t1\t1\t15\t0\n  "42\t2026-05-01 09:00:00\t1\n'
    )
    table = open_table(path, filename="attlog.txt")
    assert (table.container, table.delimiter, table.encoding) == ("dat", "\t", "utf-8")
    assert all_rows(table) == [
        (1, ["700007", "2026-05-01 08:05:00", "1", "1", "15", "0"]),
        (2, ['"42', "2026-05-01 09:00:00", "1"]),
    ]


def test_container_comes_from_bytes_not_name(tmp_path):
    path = write_xlsx(tmp_path / "export.csv", [["a", "b"]])
    assert open_table(path, filename="export.csv").container == "xlsx"
    text = write_text(tmp_path / "export.xlsx", ROWS)
    assert open_table(text).container == "csv"


# --- xlsx ---------------------------------------------------------------------------------


def test_xlsx_cells_become_text(tmp_path):
    path = write_xlsx(
        tmp_path / "f.xlsx",
        [
            ["text ", 42, 42.0, 1.5, None, True],
            [dt.datetime(2026, 5, 1, 8, 30), dt.datetime(2026, 5, 1, 8, 30, 15), "00042"],
            [dt.date(2026, 5, 1), dt.time(8, 30), "08:01 \n12:00 "],
        ],
    )
    table = open_table(path)
    assert (table.container, table.encoding, table.delimiter) == ("xlsx", "", "")
    assert all_rows(table) == [
        (1, ["text", "42", "42", "1.5", "", "TRUE"]),
        (2, ["2026-05-01 08:30", "2026-05-01 08:30:15", "00042"]),
        # openpyxl reads a date-formatted cell back as a datetime at midnight.
        (3, ["2026-05-01 00:00", "08:30", "08:01 \n12:00"]),
    ]


def test_xlsx_reads_the_first_worksheet_with_gapless_row_numbers(tmp_path):
    path = write_xlsx(tmp_path / "f.xlsx", [["title"], [], ["a", "b"]], sheets=("每日统计", "x"))
    table = open_table(path)
    assert table.sheet_name == "每日统计"
    assert [(number, cells) for number, cells in all_rows(table) if any(cells)] == [
        (1, ["title"]),
        (3, ["a", "b"]),
    ]
    assert [number for number, _ in all_rows(table)] == [1, 2, 3]


def test_xlsx_with_a_wrong_dimension_is_read_whole(tmp_path):
    """Some generators write <dimension ref="A1"/>; openpyxl would then cut every row."""
    source = write_xlsx(tmp_path / "f.xlsx", [["a", "b", "c"], ["1", "2", "3"]])
    damaged = tmp_path / "damaged.xlsx"
    rewrite_zip(
        source,
        damaged,
        {
            "xl/worksheets/sheet1.xml": lambda xml: xml.replace(
                b'<dimension ref="A1:C2"/>', b'<dimension ref="A1"/>'
            )
        },
    )
    assert all_rows(open_table(damaged)) == [(1, ["a", "b", "c"]), (2, ["1", "2", "3"])]


def rewrite_zip(source: Path, target: Path, changes: dict) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for entry in old.infolist():
            data = old.read(entry)
            if entry.filename in changes:
                data = changes[entry.filename](data)
            new.writestr(entry.filename, data)
    return target


# --- refusals -----------------------------------------------------------------------------


def test_legacy_xls_is_refused_with_advice(tmp_path):
    path = tmp_path / "f.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600)
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(path)
    assert error_code(excinfo) == "UNSUPPORTED_FORMAT"
    assert excinfo.value.message == (
        "Legacy .xls workbooks are not read; save the sheet as XLSX or CSV and upload that."
    )


def test_random_binary_is_refused(tmp_path):
    path = tmp_path / "photo.csv"
    path.write_bytes(os.urandom(64 * 1024))
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(path)
    assert error_code(excinfo) == "UNSUPPORTED_FORMAT"


def test_bytes_neither_utf8_nor_gb18030_are_refused(tmp_path):
    path = tmp_path / "f.csv"
    # 0xFF never starts a UTF-8 or a GB18030 sequence.
    path.write_bytes(b"a,b\n\xff\xfe\xff,1\n")
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(path)
    assert "UTF-8" in excinfo.value.message


def test_zip_that_is_not_a_workbook_is_refused(tmp_path):
    path = tmp_path / "f.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(path)
    assert error_code(excinfo) == "UNSUPPORTED_FORMAT"
    assert "not an XLSX workbook" in excinfo.value.message


def test_truncated_zip_is_refused(tmp_path):
    source = write_xlsx(tmp_path / "f.xlsx", [["a"]])
    path = tmp_path / "cut.xlsx"
    path.write_bytes(source.read_bytes()[:300])
    with pytest.raises(UnsupportedFormat):
        open_table(path)


def minimal_workbook_entries() -> dict[str, bytes]:
    source = io.BytesIO()
    workbook = openpyxl.Workbook()
    workbook.active.append(["a"])
    workbook.save(source)
    with zipfile.ZipFile(source) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_zip_bomb_sheet_is_refused_before_openpyxl(tmp_path):
    """50 MB of one repeated byte deflates to ~50 KB: a ratio no real sheet has."""
    path = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in minimal_workbook_entries().items():
            if name != "xl/worksheets/sheet1.xml":
                archive.writestr(name, data)
        with archive.open("xl/worksheets/sheet1.xml", "w") as part:
            chunk = b"A" * (1024 * 1024)
            for _ in range(50):
                part.write(chunk)
    entry = zipfile.ZipFile(path).getinfo("xl/worksheets/sheet1.xml")
    assert entry.file_size / entry.compress_size > 200
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(path)
    assert error_code(excinfo) == "UNSUPPORTED_FORMAT"
    assert "zip bomb" in excinfo.value.message


def test_workbook_inflating_past_the_setting_is_refused(tmp_path, settings):
    settings.IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES = 2000
    path = write_xlsx(tmp_path / "f.xlsx", [["a", "b"]])
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(path)
    assert error_code(excinfo) == "UNSUPPORTED_FORMAT"
    assert "more than the 2000 allowed" in excinfo.value.message


def test_workbook_with_too_many_parts_is_refused(tmp_path):
    path = tmp_path / "many.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in minimal_workbook_entries().items():
            archive.writestr(name, data)
        for number in range(xlsx.XLSX_MAX_ENTRIES):
            archive.writestr(f"xl/media/{number}.bin", b"")
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(path)
    assert "parts" in excinfo.value.message


BILLION_LAUGHS = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="1" '
    b'uniqueCount="1"><si><t>&lol3;</t></si></sst>'
)


def billion_laughs_workbook(tmp_path) -> Path:
    """A workbook whose shared strings (a part openpyxl parses on opening) declare nested
    entities. openpyxl itself writes inline strings, so the part is added and registered."""
    source = write_xlsx(tmp_path / "source.xlsx", [["text cell"]])
    content_type = (
        b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
        b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>'
    )
    target = rewrite_zip(
        source,
        tmp_path / "laughs.xlsx",
        {"[Content_Types].xml": lambda xml: xml.replace(b"</Types>", content_type)},
    )
    with zipfile.ZipFile(target, "a") as archive:
        archive.writestr("xl/sharedStrings.xml", BILLION_LAUGHS)
    return target


def test_entity_declarations_are_refused(tmp_path):
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(billion_laughs_workbook(tmp_path))
    assert error_code(excinfo) == "UNSUPPORTED_FORMAT"
    assert "xl/sharedStrings.xml" in excinfo.value.message


def test_defusedxml_refuses_entities_even_without_the_pre_check(tmp_path, monkeypatch):
    monkeypatch.setattr(reading, "check_xlsx_archive", lambda path: None)
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(billion_laughs_workbook(tmp_path))
    assert "cannot be read" in excinfo.value.message
    assert str(tmp_path) not in excinfo.value.message  # no server path reaches the client
    causes, error = [], excinfo.value
    while error is not None:
        causes.append(error)
        error = error.__cause__ or error.__context__
    assert any(isinstance(cause, defusedxml.DefusedXmlException) for cause in causes)


@pytest.mark.parametrize(
    "content",
    [b"", b"   \r\n\r\n\t ", codecs.BOM_UTF8, codecs.BOM_UTF8 + b"\r\n", codecs.BOM_UTF16_LE],
    ids=["zero bytes", "whitespace", "utf-8 BOM", "BOM and newline", "utf-16 BOM"],
)
def test_empty_files(tmp_path, content):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    with pytest.raises(EmptyFile) as excinfo:
        open_table(path)
    assert error_code(excinfo) == "EMPTY_FILE"


def test_empty_workbook(tmp_path):
    with pytest.raises(EmptyFile) as excinfo:
        open_table(write_xlsx(tmp_path / "f.xlsx", []))
    assert error_code(excinfo) == "EMPTY_FILE"


# --- headers ------------------------------------------------------------------------------


def has_date_and_person(cells: list[str]) -> bool:
    return "日期" in cells and "工号" in cells


def test_header_after_title_and_blank_rows(tmp_path):
    rows = [
        ["每日汇总 统计日期：2026-05-01 至 2026-05-31", ""],
        ["", ""],
        ["工号", "日期"],
        ["1", "2"],
    ]
    table = open_table(write_text(tmp_path / "f.csv", rows))
    assert find_header(table, has_date_and_person) == (3, ["工号", "日期"])


@pytest.mark.parametrize(
    "leave_columns",
    [("事假(小时)", "年假(天)"), ("事假(小时)", "年假(天)", "调休(小时)", "病假(小时)")],
)
def test_two_level_header_names_sub_columns_by_their_second_row(tmp_path, leave_columns):
    blanks = [""] * (len(leave_columns) - 1)
    rows = [
        ["每日汇总"],
        ["报表生成时间：2026-06-01 15:22"],
        ["姓名", "工号", "日期", "请假", *blanks, "备注"],
        ["", "", "", *leave_columns, ""],
        ["张三", "00042", "26-05-01 星期五", "8", *blanks, ""],
    ]
    table = open_table(write_xlsx(tmp_path / "f.xlsx", rows))
    assert find_header(table, has_date_and_person) == (
        4,
        ["姓名", "工号", "日期", *leave_columns, "备注"],
    )


def test_a_group_of_one_sub_column_is_not_recognised(tmp_path):
    """Known limit of the rule (blank row-one cells mark a group): a group with a single
    sub-column has no blank cell, so its second row is read as a data row (which then
    fails for want of an employee)."""
    rows = [["姓名", "工号", "日期", "请假"], ["", "", "", "事假(小时)"]]
    table = open_table(write_text(tmp_path / "f.csv", rows))
    assert find_header(table, has_date_and_person) == (1, ["姓名", "工号", "日期", "请假"])


def test_a_data_row_after_the_header_is_not_a_second_header_row(tmp_path):
    rows = [["工号", "日期", "请假", ""], ["00042", "2026-05-01", "8", ""]]
    table = open_table(write_text(tmp_path / "f.csv", rows))
    assert find_header(table, has_date_and_person) == (1, ["工号", "日期", "请假", ""])


def test_header_mapping_applies_before_the_predicate(tmp_path):
    table = open_table(write_text(tmp_path / "f.csv", [["Staff No", "Date"], ["1", "2"]]))
    assert find_header(table, has_date_and_person) is None
    mapping = {"Staff No": "工号", "Date": "日期"}
    assert find_header(table, has_date_and_person, mapping=mapping) == (1, ["工号", "日期"])


def test_header_beyond_the_scanned_rows_is_not_found(tmp_path):
    rows = [[f"title {number}"] for number in range(25)] + [["工号", "日期"]]
    table = open_table(write_text(tmp_path / "f.csv", rows))
    assert find_header(table, has_date_and_person) is None
    assert find_header(table, has_date_and_person, max_scan=30) == (26, ["工号", "日期"])


def test_synthetic_fixtures_are_in_the_repository():
    for name in (
        "dingtalk_daily.xlsx",
        "dingtalk_daily_utf8bom.csv",
        "dingtalk_daily_gbk.csv",
        "dingtalk_raw.xlsx",
        "attlog.dat",
        "employees.csv",
        "expected_daily.json",
        "expected_raw.json",
        "expected_attlog.json",
    ):
        assert (FIXTURES / name).is_file(), name


# --- xlsx: read once, within bounds ---------------------------------------------------------

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
SHARED_STRINGS_TYPE = (
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"
)
SAMPLE_STRINGS = [
    "<si><t>工号</t></si>",
    '<si><t xml:space="preserve">  张三 </t></si>',
    "<si><r><rPr><b/></rPr><t>打卡</t></r><r><t>时间</t></r></si>",
    '<si><t>东京</t><rPh sb="0" eb="2"><t>トウキョウ</t></rPh><phoneticPr fontId="1"/></si>',
    "<si><t/></si>",
    "<si><t>a_x005F_x000D_b</t></si>",
    "<si><t>08:01\n12:00 </t></si>",
    "<si/>",
    "<si><t>a &amp; b</t></si>",
]
# Gaps, a row numbered before one already read, a row and cells without coordinates.
SAMPLE_SHEET = (
    '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
    '<row r="3"><c r="A3" t="s"><v>2</v></c><c r="C3" t="s"><v>3</v></c>'
    '<c r="D3"><v>42</v></c><c r="E3" t="b"><v>1</v></c><c r="F3"><v>1.5</v></c></row>'
    '<row r="4"><c r="B4" t="s"><v>4</v></c><c r="C4" t="s"><v>5</v></c>'
    '<c r="D4" t="s"><v>6</v></c><c r="E4" t="s"><v>7</v></c><c r="F4" t="s"><v>8</v></c></row>'
    '<row><c t="str"><v>no coordinate</v></c><c t="s"><v>0</v></c></row>'
    '<row r="2"><c r="A2"><v>1</v></c></row>'
)
SAMPLE_ROWS = [
    (1, ["工号", "张三"]),
    (2, []),
    (3, ["打卡时间", "", "东京", "42", "TRUE", "1.5"]),
    (4, ["", "", "a_x000D_b", "08:01\n12:00", "", "a & b"]),
    (5, ["no coordinate", "工号"]),
]


def shared_strings_workbook(
    path: Path,
    strings: list[str] | None = None,
    sheet_data: str = SAMPLE_SHEET,
    *,
    part: str = "xl/sharedStrings.xml",
) -> Path:
    """A workbook whose sheet refers to a shared strings part, as Excel and DingTalk write
    them (openpyxl itself writes inline strings). ``strings`` may be any iterable of
    ``<si>`` elements (or runs of them): the part is streamed into the archive."""
    strings = SAMPLE_STRINGS if strings is None else strings
    override = f'<Override PartName="/{part}" ContentType="{SHARED_STRINGS_TYPE}"/></Types>'
    sheet = f'<worksheet xmlns="{MAIN_NS}"><sheetData>{sheet_data}</sheetData></worksheet>'
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in minimal_workbook_entries().items():
            if name == "[Content_Types].xml":
                data = data.replace(b"</Types>", override.encode())
            elif name == "xl/worksheets/sheet1.xml":
                data = sheet.encode()
            archive.writestr(name, data)
        with archive.open(part, "w") as stream:
            stream.write(f'<sst xmlns="{MAIN_NS}">'.encode())
            for element in strings:
                stream.write(element.encode())
            stream.write(b"</sst>")
    return path


def openpyxl_rows(path: Path) -> list[tuple[int, list[str]]]:
    """How the first worksheet read before the workbook was opened once: openpyxl's own
    read-only worksheet, dimensions reset."""
    with path.open("rb") as stream:
        workbook = openpyxl.load_workbook(stream, read_only=True, data_only=True)
        try:
            sheet = workbook.worksheets[0]
            sheet.reset_dimensions()
            return [
                (number, [xlsx._cell_text(value) for value in values])
                for number, values in enumerate(sheet.iter_rows(values_only=True), 1)
            ]
        finally:
            workbook.close()


def test_shared_strings_read_as_openpyxl_reads_them(tmp_path):
    path = shared_strings_workbook(tmp_path / "f.xlsx")
    assert all_rows(open_table(path)) == SAMPLE_ROWS == openpyxl_rows(path)


@pytest.mark.parametrize("name", ["dingtalk_daily.xlsx", "dingtalk_raw.xlsx"])
def test_fixture_workbooks_read_exactly_as_openpyxl_reads_them(name):
    table = open_table(FIXTURES / name)
    assert table.sheet_name == openpyxl.load_workbook(FIXTURES / name, read_only=True).sheetnames[0]
    assert all_rows(table) == openpyxl_rows(FIXTURES / name)


def test_an_upload_opens_its_workbook_once(monkeypatch):
    """What an upload does: open, detect (the head), parse (every row); then a second
    parse, as a preview after the upload does."""
    opened = []

    def counted_open(path, **options):
        opened.append(path)
        return xlsx.open_workbook(path, **options)

    monkeypatch.setattr(reading, "open_workbook", counted_open)
    table = open_table(FIXTURES / "dingtalk_daily.xlsx")
    fmt = formats.detect_format(table)
    options = ParseOptions(time_zone=dt.timezone(dt.timedelta(hours=8)), today=dt.date(2026, 12, 1))
    assert fmt.name == "dingtalk_daily"
    assert sum(1 for _ in fmt.parse(table, options)) == sum(1 for _ in fmt.parse(table, options))
    assert opened == [FIXTURES / "dingtalk_daily.xlsx"]


def test_shared_strings_are_kept_from_the_one_opening(tmp_path):
    """Were the strings parsed again by a later read, it would see the new ones."""
    path = shared_strings_workbook(tmp_path / "f.xlsx")
    table = open_table(path)
    other = [element.replace("工号", "changed") for element in SAMPLE_STRINGS]
    shared_strings_workbook(tmp_path / "other.xlsx", other).replace(path)
    assert all_rows(table) == SAMPLE_ROWS
    assert all_rows(open_table(path))[0] == (1, ["changed", "张三"])


def limit_of(excinfo) -> str:
    assert excinfo.value.code == "UNSUPPORTED_FORMAT"
    assert "export the sheet as CSV, or split it" in excinfo.value.message
    return excinfo.value.details["limit"]


def test_shared_strings_declared_past_the_byte_limit_are_refused_unread(tmp_path, settings):
    path = shared_strings_workbook(tmp_path / "f.xlsx")
    size = zipfile.ZipFile(path).getinfo("xl/sharedStrings.xml").file_size
    settings.IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES = size - 1
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(path)
    assert limit_of(excinfo) == "IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES"
    assert excinfo.value.details["maxBytes"] == size - 1
    assert f"would inflate to {size} bytes" in excinfo.value.message
    settings.IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES = size
    assert all_rows(open_table(path)) == SAMPLE_ROWS


def test_shared_strings_are_found_by_content_type_not_by_name(tmp_path, settings):
    path = shared_strings_workbook(tmp_path / "f.xlsx", part="xl/strings/other.xml")
    assert all_rows(open_table(path)) == SAMPLE_ROWS
    settings.IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES = 100
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(path)
    assert "xl/strings/other.xml" in excinfo.value.message


def test_bytes_inflated_are_counted_whatever_the_directory_declares():
    """zipfile itself stops at the declared size; the count does not rely on it."""

    class Archive:
        def getinfo(self, name):
            return zipfile.ZipInfo(name)  # declares 0 bytes

        def open(self, name):
            strings = b"<si><t>x</t></si>" * 1000
            return io.BytesIO(f'<sst xmlns="{MAIN_NS}">'.encode() + strings + b"</sst>")

    class Package:
        def find(self, content_type):
            return openpyxl.packaging.manifest.Override("/xl/sharedStrings.xml", content_type)

    limits = xlsx.XlsxLimits(shared_strings_bytes=5000, shared_strings=10**6, parse_seconds=None)
    clock = xlsx._ParseClock(None)
    with pytest.raises(UnsupportedFormat) as excinfo:
        xlsx._read_shared_strings(Archive(), Package(), limits, clock)
    assert limit_of(excinfo) == "IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES"
    assert "inflate to more than the 5000 bytes allowed" in excinfo.value.message
    limits = xlsx.XlsxLimits(shared_strings_bytes=20_000, shared_strings=10**6, parse_seconds=None)
    assert xlsx._read_shared_strings(Archive(), Package(), limits, clock) == ["x"] * 1000


def test_shared_strings_past_the_count_limit_are_refused(tmp_path, settings):
    settings.IMPORT_XLSX_MAX_SHARED_STRINGS = len(SAMPLE_STRINGS) - 1
    path = shared_strings_workbook(tmp_path / "f.xlsx")
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(path)
    assert limit_of(excinfo) == "IMPORT_XLSX_MAX_SHARED_STRINGS"
    assert excinfo.value.details["maxStrings"] == len(SAMPLE_STRINGS) - 1
    settings.IMPORT_XLSX_MAX_SHARED_STRINGS = len(SAMPLE_STRINGS)
    assert all_rows(open_table(path)) == SAMPLE_ROWS


def test_a_part_openpyxl_reads_whole_must_be_small(tmp_path, monkeypatch):
    path = write_xlsx(tmp_path / "f.xlsx", [["a"]])
    styles = zipfile.ZipFile(path).getinfo("xl/styles.xml").file_size
    monkeypatch.setattr(xlsx, "XLSX_MAX_WHOLE_PART_BYTES", styles - 1)
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(path)
    assert limit_of(excinfo) == "XLSX_MAX_WHOLE_PART_BYTES"
    assert excinfo.value.details["part"] == "xl/styles.xml"


class FakeClock:
    """Stands for time.perf_counter: ``step`` seconds pass at every reading of it."""

    def __init__(self, step: float = 0.0):
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_a_slow_read_is_refused_past_the_parse_time(monkeypatch, settings):
    settings.IMPORT_XLSX_MAX_PARSE_SECONDS = 1
    monkeypatch.setattr(xlsx, "_now", FakeClock(step=0.01))
    table = open_table(FIXTURES / "dingtalk_daily.xlsx")  # the opening and the head: quick
    with pytest.raises(UnsupportedFormat) as excinfo:
        all_rows(table)
    assert limit_of(excinfo) == "IMPORT_XLSX_MAX_PARSE_SECONDS"
    assert excinfo.value.details["maxSeconds"] == 1
    assert "longer than the 1 seconds allowed" in excinfo.value.message


def test_the_time_between_rows_is_the_callers_not_the_parse(monkeypatch, settings):
    settings.IMPORT_XLSX_MAX_PARSE_SECONDS = 1
    clock = FakeClock()
    monkeypatch.setattr(xlsx, "_now", clock)
    table = open_table(FIXTURES / "dingtalk_daily.xlsx")
    count = 0
    for _ in table.rows():
        clock.now += 60  # a slow database, say
        count += 1
    assert count == len(openpyxl_rows(FIXTURES / "dingtalk_daily.xlsx"))


def test_no_parse_time_bound_when_the_caller_lifts_it(monkeypatch, settings):
    settings.IMPORT_XLSX_MAX_PARSE_SECONDS = 1
    monkeypatch.setattr(xlsx, "_now", FakeClock(step=0.01))
    table = open_table(FIXTURES / "dingtalk_daily.xlsx", max_parse_seconds=None)
    assert all_rows(table) == openpyxl_rows(FIXTURES / "dingtalk_daily.xlsx")


def test_a_row_numbered_a_billion_is_refused_in_time(tmp_path, settings):
    """Every missing row before it is a blank row to yield: without a bound, hours."""
    settings.IMPORT_XLSX_MAX_PARSE_SECONDS = 0.5
    path = shared_strings_workbook(
        tmp_path / "f.xlsx", sheet_data='<row r="1000000000"><c r="A1000000000"><v>1</v></c></row>'
    )
    started = time.monotonic()
    with pytest.raises(UnsupportedFormat) as excinfo:
        open_table(path)  # the head is blank, so opening looks for any non-blank row
    assert limit_of(excinfo) == "IMPORT_XLSX_MAX_PARSE_SECONDS"
    assert time.monotonic() - started < 3
