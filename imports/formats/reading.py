"""Reading an uploaded file as rows of text cells, whatever its container and encoding.

:func:`open_table` looks at the file's bytes (never its name) and returns a :class:`Table`:

- ``container="xlsx"``: an Office Open XML workbook, checked for zip bombs and XML entity
  tricks, then opened once within bounds on its shared strings and parse time
  (:mod:`imports.formats.xlsx`); the first worksheet is read.
- ``container="dat"``: tab-separated text whose first non-blank line looks like a ZKTeco
  device log line (``PIN<TAB>YYYY-MM-DD HH:MM:SS…``). Read without CSV quoting, because a
  device log has none and a stray ``"`` in a corrupted PIN must not swallow lines.
- ``container="csv"``: any other delimited text (comma, tab or semicolon).

Every cell comes out as ``str`` with surrounding whitespace stripped; internal newlines
stay (DingTalk puts several punches in one cell). Rows are streamed: reading a file twice
re-opens it, and memory does not grow with the file. A workbook's shared strings are the
exception: they are parsed once, when it is opened, and kept with the :class:`Table`.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple

from django.utils.translation import gettext

from imports.formats.base import EmptyFile, UnsupportedFormat
from imports.formats.xlsx import FROM_SETTINGS, XlsxWorkbook, check_xlsx_archive, open_workbook

CONTAINER_CSV = "csv"
CONTAINER_DAT = "dat"
CONTAINER_XLSX = "xlsx"

LEGACY_XLS_MESSAGE = (
    "Legacy .xls workbooks are not read; save the sheet as XLSX or CSV and upload that."
)

_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# How much of the file decides "binary or text" and UTF-16 without a BOM.
_SNIFF_BYTES = 8192
# How much decoded text decides the delimiter.
_DELIMITER_SAMPLE_CHARS = 64 * 1024
_DELIMITER_SAMPLE_LINES = 50
_CANDIDATE_DELIMITERS = (",", "\t", ";")
_DECODE_CHUNK_BYTES = 1024 * 1024

# Rows of a workbook read once when it is opened; header detection scans 20 (+1).
_XLSX_HEAD_ROWS = 32

_DEVICE_LOG_LINE = re.compile(r"[^\t]*\t\s*\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\s*(\t|$)")


@dataclass(eq=False)
class Table:
    """An opened file: how it is encoded, :meth:`rows` to stream its cells and
    :meth:`head` for its first rows (shared between callers: do not modify them)."""

    path: Path
    container: str  # "csv", "dat" or "xlsx"
    encoding: str = ""  # "" for xlsx
    delimiter: str = ""  # "" for xlsx
    sheet_name: str = ""  # "" for text files
    filename: str = ""  # the uploaded name, for messages only
    # The first rows, kept: detection asks every format and each looks at the top.
    _head: list[tuple[int, list[str]]] = field(default_factory=list, init=False, repr=False)
    _head_complete: bool = field(default=False, init=False, repr=False)
    # The opened workbook (its shared strings): every pass over the rows reuses it.
    _workbook: XlsxWorkbook | None = field(default=None, init=False, repr=False)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """``(row_number, cells)`` for every row, blank ones included. ``row_number`` is the
        1-based sheet row, or the 1-based CSV record (a record holding a quoted newline
        counts once, as it does when a spreadsheet opens the file)."""
        if self.container == CONTAINER_XLSX:
            if self._workbook is None:
                self._workbook = open_workbook(self.path)
            return self._workbook.rows()
        quoting = csv.QUOTE_NONE if self.container == CONTAINER_DAT else csv.QUOTE_MINIMAL
        return _text_rows(self.path, self.encoding, self.delimiter, quoting)

    def head(self, count: int) -> list[tuple[int, list[str]]]:
        """The first ``count`` rows (fewer when the file is shorter), read once and kept."""
        if len(self._head) < count and not self._head_complete:
            with contextlib.closing(self.rows()) as rows:
                self._remember_head(rows, count)
        return self._head[:count]

    def _remember_head(self, rows: Iterator[tuple[int, list[str]]], count: int) -> None:
        head: list[tuple[int, list[str]]] = []
        for row in rows:
            head.append(row)
            if len(head) >= count:
                break
        else:
            self._head_complete = True
        self._head = head


def open_table(
    path: Path, *, filename: str = "", max_parse_seconds: float | None = FROM_SETTINGS
) -> Table:
    """Identify ``path``'s container and encoding from its bytes; raise
    :class:`UnsupportedFormat` for anything that is not a readable CSV, DAT or XLSX file and
    :class:`EmptyFile` for a file with nothing in it. For a workbook, ``max_parse_seconds``
    overrides ``IMPORT_XLSX_MAX_PARSE_SECONDS``; ``None`` lifts the time bound, for readers
    no client waits on (a worker, a command)."""
    path = Path(path)
    with path.open("rb") as stream:
        start = stream.read(_SNIFF_BYTES)
    if not start:
        raise EmptyFile()
    # By name too: many systems save an HTML table as ".xls", which no format reads either.
    if start.startswith(_OLE_MAGIC) or filename.lower().endswith(".xls"):
        raise UnsupportedFormat(LEGACY_XLS_MESSAGE)
    if start.startswith((_ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
        return _open_xlsx(path, filename, max_parse_seconds)
    return _open_text(path, filename, start)


# --- text ---------------------------------------------------------------------------------


def _open_text(path: Path, filename: str, start: bytes) -> Table:
    encoding = _detect_encoding(path, start)
    with path.open(encoding=encoding, newline="") as stream:
        sample = stream.read(_DELIMITER_SAMPLE_CHARS)
    delimiter = _detect_delimiter(sample, cut=len(sample) == _DELIMITER_SAMPLE_CHARS)
    container = CONTAINER_CSV
    if delimiter == "\t" and _DEVICE_LOG_LINE.match(_first_non_blank_line(sample)):
        container = CONTAINER_DAT
    return Table(
        path=path,
        container=container,
        encoding=encoding,
        delimiter=delimiter,
        filename=filename,
    )


def _detect_encoding(path: Path, start: bytes) -> str:
    """UTF-8 BOM, UTF-16 BOM, valid UTF-8, then GB18030 (what Excel saves a Chinese CSV
    in). Each candidate must decode the whole file, so a bad byte on line 400,000 is
    refused here rather than half-way through an import."""
    if start.startswith(codecs.BOM_UTF8):
        candidates = ("utf-8-sig",)
    elif start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ("utf-16",)
    elif b"\x00" in start:
        bomless_utf16 = _bomless_utf16(start)
        if bomless_utf16 is None:
            raise UnsupportedFormat(
                gettext("The file is binary, not a CSV, DAT or XLSX export (it holds NUL bytes).")
            )
        candidates = (bomless_utf16,)
    else:
        candidates = ("utf-8", "gb18030")
    for encoding in candidates:
        verdict = _decode_whole_file(path, encoding)
        if verdict is None:
            continue
        if not verdict:
            raise EmptyFile()
        return encoding
    raise UnsupportedFormat(
        gettext(
            "The file is neither a workbook nor text in UTF-8, UTF-16 or GB18030; "
            "save it as XLSX or as a UTF-8 CSV and upload that."
        )
    )


def _bomless_utf16(start: bytes) -> str | None:
    """UTF-16 without a BOM shows as NUL bytes at every other position for Latin text;
    anything else with NUL bytes is binary."""
    even, odd = start[0::2], start[1::2]
    if odd and odd.count(0) >= 0.9 * len(odd) and even.count(0) == 0:
        return "utf-16-le"
    if even and even.count(0) >= 0.9 * len(even) and odd.count(0) == 0:
        return "utf-16-be"
    return None


def _decode_whole_file(path: Path, encoding: str) -> bool | None:
    """None: the file does not decode. Otherwise whether it holds anything but whitespace
    (a BOM alone, or blank lines, is an empty file)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    has_content = False
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(_DECODE_CHUNK_BYTES):
                text = decoder.decode(chunk)
                if not has_content and text.strip():
                    has_content = True
            text = decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    # utf-8-sig and utf-16 decode their BOM to nothing, so a BOM alone is an empty file.
    return has_content or bool(text.strip())


def _detect_delimiter(sample: str, *, cut: bool) -> str:
    """The candidate that splits the first lines most consistently into the most fields
    (comma when none splits anything). Title rows (one long cell) and quoted delimiters do
    not fool it, because the sample is split with the csv module itself."""
    best, best_score = ",", (0, 0)
    for delimiter in _CANDIDATE_DELIMITERS:
        field_counts = []
        try:
            for cells in csv.reader(io.StringIO(sample), delimiter=delimiter):
                if any(cell.strip() for cell in cells):
                    field_counts.append(len(cells))
                if len(field_counts) > _DELIMITER_SAMPLE_LINES:
                    cut = True
                    break
        except csv.Error:
            continue
        if cut and len(field_counts) > 1:
            # The sample's last line may stop in the middle.
            field_counts.pop()
        widths = [count for count in field_counts if count > 1]
        if not widths:
            continue
        common_width = max(set(widths), key=widths.count)
        score = (widths.count(common_width), common_width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _first_non_blank_line(sample: str) -> str:
    for line in sample.splitlines():
        if line.strip():
            return line
    return ""


def _text_rows(
    path: Path, encoding: str, delimiter: str, quoting: int
) -> Iterator[tuple[int, list[str]]]:
    strip = str.strip
    number = 0
    with path.open(encoding=encoding, newline="") as stream:
        reader = csv.reader(stream, delimiter=delimiter, quoting=quoting)
        try:
            for number, cells in enumerate(reader, 1):
                yield number, list(map(strip, cells))
        except csv.Error as error:
            raise UnsupportedFormat(
                f"Row {number + 1} of the file cannot be read as delimited text: {error}."
            ) from error
        except UnicodeDecodeError as error:
            raise UnsupportedFormat(
                f"Row {number + 1} of the file is not valid {encoding} text."
            ) from error


# --- xlsx ---------------------------------------------------------------------------------


def _open_xlsx(path: Path, filename: str, max_parse_seconds) -> Table:
    check_xlsx_archive(path)
    workbook = open_workbook(path, max_parse_seconds=max_parse_seconds)
    table = Table(
        path=path, container=CONTAINER_XLSX, sheet_name=workbook.sheet_name, filename=filename
    )
    table._workbook = workbook
    # The rows detection looks at are kept now rather than re-read by every format.
    with contextlib.closing(table.rows()) as rows:
        table._remember_head(rows, _XLSX_HEAD_ROWS)
        if not any(any(cells) for _, cells in table._head) and not any(
            any(cells) for _, cells in rows
        ):
            raise EmptyFile(
                gettext('The worksheet "%(sheet)s" is empty.') % {"sheet": workbook.sheet_name}
            )
    return table


# --- headers ------------------------------------------------------------------------------


class HeaderMatch(NamedTuple):
    """Where a format's header is. ``row`` is the LAST header row (row 4 of DingTalk's
    two-level header): data rows are the rows after it. ``cells`` are the column names,
    ``ParseOptions.mapping`` already applied, one per column position."""

    row: int
    cells: list[str]


def apply_mapping(cells: list[str], mapping: Mapping[str, str] | None) -> list[str]:
    """Source header → the header a format expects; unmapped names stay."""
    if not mapping:
        return list(cells)
    return [mapping.get(cell, cell) for cell in cells]


def find_header(
    table: Table,
    predicate: Callable[[list[str]], bool],
    *,
    max_scan: int = 20,
    mapping: Mapping[str, str] | None = None,
) -> HeaderMatch | None:
    """The first of the top ``max_scan`` rows for which ``predicate(cells)`` holds (title
    and blank rows come before a header). When the next row is the second level of a
    two-level header (see :func:`_is_sub_header`), each column under a group takes its
    row-two name (``事假(小时)``) and the data starts after that row."""
    head = table.head(max_scan + 1)
    for index, (number, cells) in enumerate(head[:max_scan]):
        if not any(cells):
            continue
        if not predicate(apply_mapping(cells, mapping)):
            continue
        if index + 1 < len(head):
            next_number, next_cells = head[index + 1]
            group_columns = _group_columns(cells, len(next_cells))
            if _is_sub_header(next_cells, group_columns):
                combined = [
                    sub if sub and position in group_columns else top
                    for position, (top, sub) in enumerate(
                        zip(_padded(cells, len(next_cells)), next_cells, strict=False)
                    )
                ]
                combined += cells[len(combined) :]
                return HeaderMatch(next_number, apply_mapping(combined, mapping))
        return HeaderMatch(number, apply_mapping(cells, mapping))
    return None


class ColumnLayout:
    """Where a header's columns are. Every data row is fitted to the header's width plus one
    trailing '' cell, at which absent columns point, so a format reads a missing column as
    empty without a check per cell. The first of two same-named columns wins."""

    def __init__(self, header: list[str]):
        self.width = len(header)
        self.blank = self.width
        self.positions: dict[str, int] = {}
        for position, name in enumerate(header):
            self.positions.setdefault(name, position)

    def position_of(self, name: str) -> int:
        return self.positions.get(name, self.blank)

    def reader(self, *names: str) -> Callable[[list[str]], tuple[str, ...]]:
        """An itemgetter of these columns' cells from a fitted row."""
        return itemgetter(*(self.position_of(name) for name in names))

    def fit(self, cells: list[str]) -> list[str]:
        width = self.width
        if len(cells) == width:
            cells.append("")
            return cells
        return cells[:width] + [""] * (width + 1 - min(len(cells), width))


def _padded(cells: list[str], width: int) -> list[str]:
    return cells + [""] * (width - len(cells)) if len(cells) < width else cells


def _group_columns(header: list[str], width: int) -> set[int]:
    """Positions under a merged group heading: the blank header cells and the named cell
    that starts each blank run (a merged cell keeps its text in its first cell)."""
    group: set[int] = set()
    last_named = None
    for position, name in enumerate(_padded(header, width)):
        if name:
            last_named = position
            continue
        group.add(position)
        if last_named is not None:
            group.add(last_named)
    return group


def _is_sub_header(cells: list[str], group_columns: set[int]) -> bool:
    """A second header row is blank under every single column and has names only under
    group columns. Never decided by position: a file without groups has no such row."""
    filled = [position for position, cell in enumerate(cells) if cell]
    return bool(filled) and all(position in group_columns for position in filled)
