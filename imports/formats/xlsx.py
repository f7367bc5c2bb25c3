"""XLSX workbooks: refused before they can exhaust the process, then opened once.

A workbook's size on disk says little about its cost. openpyxl parses some parts whole
when it opens a workbook, the shared strings among them (every distinct text cell, as one
Python list), so a 1.5 MB upload whose ``sharedStrings.xml`` inflates to 157 MB held a web
process for minutes, and the upload opened it three times (container, head, parse). Here:

- :func:`check_xlsx_archive` refuses, from the ZIP directory alone, what is not a workbook
  or is a zip bomb, and XML parts that declare entities;
- :func:`open_workbook` opens a workbook ONCE: the shared strings are read by a streaming
  parser that counts the bytes it inflates and the strings it keeps and stops at the
  bounds; only the parts the first worksheet's values need are parsed, and any part read
  whole must be small;
- :meth:`XlsxWorkbook.rows` streams the first worksheet with the strings kept, as often as
  it is asked, within the parse-time bound.

The bounds are settings read when a workbook is opened (see :class:`XlsxLimits`). Every
refusal is :class:`UnsupportedFormat` saying which limit was passed and what to do;
``details["limit"]`` names the limit.
"""

from __future__ import annotations

import codecs
import datetime as dt
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from defusedxml.ElementTree import iterparse
from django.conf import settings
from django.utils.translation import gettext
from openpyxl.cell.text import Text
from openpyxl.packaging.manifest import Manifest
from openpyxl.reader.excel import _find_workbook_part
from openpyxl.reader.workbook import WorkbookParser
from openpyxl.styles.stylesheet import apply_stylesheet
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._reader import WorkSheetParser
from openpyxl.xml.constants import ARC_CONTENT_TYPES, SHARED_STRINGS, SHEET_MAIN_NS
from openpyxl.xml.functions import fromstring

from imports.formats.base import UnsupportedFormat

XLSX_MAX_ENTRIES = 10_000
# An entry inflating more than this many times over, past the size below, is a zip bomb:
# real sheet XML compresses 10-30x, not hundreds.
XLSX_MAX_COMPRESSION_RATIO = 200
XLSX_RATIO_CHECK_MIN_BYTES = 10 * 1024 * 1024
# A DOCTYPE must come before the root element, so the start of each part is enough.
XLSX_XML_SCAN_BYTES = 4096
# Parts openpyxl reads whole into one tree (content types, workbook, relationships,
# styles) are a few KB in real exports. A styles part just under 16 MB took 7 s and 200 MB
# to parse; at 8 MB (some 60,000 cell formats, about Excel's own limit) half that.
XLSX_MAX_WHOLE_PART_BYTES = 8 * 1024 * 1024

# A 500,000-row DingTalk daily summary has about 12,000 distinct texts, 0.34 MB of shared
# strings XML (benchmarks/gen_dingtalk.py, written with a shared-strings table); a raw
# punch export with minute timestamps a few MB. 64 MB is ~190 times the first and keeps a
# workbook's strings in memory to about twice that at worst.
DEFAULT_MAX_SHARED_STRINGS_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_SHARED_STRINGS = 1_000_000
# gunicorn kills a sync worker silent for 30 s (deploy/ sets no --timeout): refusing at
# 20 s answers the client before that happens.
DEFAULT_MAX_PARSE_SECONDS = 20.0

ADVICE = "export the sheet as CSV, or split it into smaller files, and upload that"

# What openpyxl raises on a damaged or unexpected workbook (defusedxml's refusals are
# ValueErrors; a malformed XML part is a SyntaxError subclass).
WORKBOOK_ERRORS = (
    zipfile.BadZipFile,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    SyntaxError,
    OSError,
    InvalidFileException,
)
DAMAGED_MESSAGE = (
    "The XLSX workbook cannot be read; it is damaged or was not saved by a spreadsheet program."
)

_SI = f"{{{SHEET_MAIN_NS}}}si"
_T = f"{{{SHEET_MAIN_NS}}}t"
# Tests replace this to stand for a slow machine.
_now = time.perf_counter

# ``max_parse_seconds`` not given: IMPORT_XLSX_MAX_PARSE_SECONDS applies.
FROM_SETTINGS = object()


# --- limits ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class XlsxLimits:
    """``IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES``: inflated bytes of the shared strings part;
    ``IMPORT_XLSX_MAX_SHARED_STRINGS``: how many strings it holds;
    ``IMPORT_XLSX_MAX_PARSE_SECONDS``: seconds to open the workbook and read its rows once
    (``None``: no bound)."""

    shared_strings_bytes: int
    shared_strings: int
    parse_seconds: float | None

    @classmethod
    def from_settings(cls, parse_seconds=FROM_SETTINGS) -> XlsxLimits:
        if parse_seconds is FROM_SETTINGS:
            parse_seconds = getattr(
                settings, "IMPORT_XLSX_MAX_PARSE_SECONDS", DEFAULT_MAX_PARSE_SECONDS
            )
        return cls(
            shared_strings_bytes=getattr(
                settings, "IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES", DEFAULT_MAX_SHARED_STRINGS_BYTES
            ),
            shared_strings=getattr(
                settings, "IMPORT_XLSX_MAX_SHARED_STRINGS", DEFAULT_MAX_SHARED_STRINGS
            ),
            parse_seconds=parse_seconds,
        )


class _ParseClock:
    """Seconds spent reading one workbook: opening it, then one pass over its rows. The
    time a caller spends between two rows (writing them to the database) is not the
    workbook's, so it is not counted."""

    def __init__(self, limit: float | None, spent: float = 0.0):
        self.limit = limit
        self.spent = spent
        self._since: float | None = None

    def start(self) -> None:
        self._since = _now()

    def pause(self) -> None:
        self.check()
        self.spent += _now() - self._since
        self._since = None

    def check(self) -> None:
        if self.limit is None or self._since is None:
            return
        if self.spent + _now() - self._since > self.limit:
            raise UnsupportedFormat(
                f"Reading the XLSX workbook took longer than the {self.limit:g} seconds "
                f"allowed; {ADVICE}.",
                details={"limit": "IMPORT_XLSX_MAX_PARSE_SECONDS", "maxSeconds": self.limit},
            )


class _MeteredPart:
    """A ZIP member as the XML parser reads it: the clock is checked at every chunk, so no
    single row or string, however large, escapes the time bound; and the bytes inflated are
    counted, whatever the ZIP directory declared."""

    def __init__(self, part, clock: _ParseClock, name: str, max_bytes: int | None = None):
        self._part = part
        self._clock = clock
        self._name = name
        self._max_bytes = max_bytes
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        self._clock.check()
        data = self._part.read(size)
        self.bytes_read += len(data)
        if self._max_bytes is not None and self.bytes_read > self._max_bytes:
            raise _shared_strings_too_large(self._name, self._max_bytes)
        return data


def _shared_strings_too_large(name: str, limit: int, declared: int | None = None):
    size = f"would inflate to {declared} bytes, more than" if declared else "inflate to more than"
    return UnsupportedFormat(
        f'The XLSX workbook\'s shared strings ("{name}") {size} the {limit} bytes allowed; '
        f"{ADVICE}.",
        details={"limit": "IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES", "maxBytes": limit},
    )


class _WholePartsCapped(zipfile.ZipFile):
    """The archive openpyxl is given: a part it reads whole must be small; the parts
    streamed (shared strings, the worksheet) have their own bounds."""

    def read(self, name, pwd=None):
        info = name if isinstance(name, zipfile.ZipInfo) else self.getinfo(name)
        if info.file_size > XLSX_MAX_WHOLE_PART_BYTES:
            raise UnsupportedFormat(
                f'The XLSX part "{info.filename}" inflates to {info.file_size} bytes, more '
                f"than the {XLSX_MAX_WHOLE_PART_BYTES} a real export has; {ADVICE}.",
                details={
                    "limit": "XLSX_MAX_WHOLE_PART_BYTES",
                    "maxBytes": XLSX_MAX_WHOLE_PART_BYTES,
                    "part": info.filename,
                },
            )
        return super().read(name, pwd)


# --- the archive ----------------------------------------------------------------------------


def check_xlsx_archive(path: Path) -> None:
    """Refuse, before any XML is parsed, a ZIP that is not a workbook, a zip bomb (too many
    entries, too much inflated data, an entry that inflates absurdly) and XML parts that
    declare a DOCTYPE or entities (billion laughs, external entities). defusedxml, which
    parses every part, refuses entities too; this check is the cheap first line and gives a
    clear message."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise UnsupportedFormat(
            gettext(
                "The file starts like a ZIP archive (as XLSX workbooks do) but cannot be opened."
            )
        ) from error
    with archive:
        entries = archive.infolist()
        names = {entry.filename for entry in entries}
        if "xl/workbook.xml" not in names:
            if "xl/workbook.bin" in names:
                raise UnsupportedFormat(
                    gettext(
                        "Binary .xlsb workbooks are not read; save the sheet as XLSX or CSV and "
                        "upload that."
                    )
                )
            raise UnsupportedFormat(
                gettext(
                    "The file is a ZIP archive but not an XLSX workbook (it has no "
                    "xl/workbook.xml); upload the XLSX or CSV export itself."
                )
            )
        if len(entries) > XLSX_MAX_ENTRIES:
            raise UnsupportedFormat(
                f"The XLSX workbook holds {len(entries)} parts, more than the "
                f"{XLSX_MAX_ENTRIES} a real export has; it is refused."
            )
        total_size = sum(entry.file_size for entry in entries)
        limit = settings.IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES
        if total_size > limit:
            raise UnsupportedFormat(
                f"The XLSX workbook would inflate to {total_size} bytes, more than the "
                f"{limit} allowed; split it or export it as CSV."
            )
        for entry in entries:
            if entry.file_size > XLSX_RATIO_CHECK_MIN_BYTES and entry.file_size > (
                XLSX_MAX_COMPRESSION_RATIO * max(entry.compress_size, 1)
            ):
                raise UnsupportedFormat(
                    f'The XLSX part "{entry.filename}" inflates {entry.file_size} bytes from '
                    f"{entry.compress_size}, which only a zip bomb does; it is refused."
                )
        for entry in entries:
            if entry.filename.endswith((".xml", ".rels", ".vml")):
                try:
                    with archive.open(entry) as part:
                        start = part.read(XLSX_XML_SCAN_BYTES)
                except (zipfile.BadZipFile, RuntimeError, OSError, ValueError) as error:
                    raise UnsupportedFormat(
                        f'The XLSX part "{entry.filename}" cannot be read; the workbook is damaged.'
                    ) from error
                if _declares_doctype(start):
                    raise UnsupportedFormat(
                        f'The XLSX part "{entry.filename}" declares a DOCTYPE or entities, '
                        "which real exports never do; it is refused."
                    )


def _declares_doctype(start: bytes) -> bool:
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = start.decode("utf-16", errors="ignore")
    else:
        text = start.decode("utf-8", errors="ignore")
    text = text.upper()
    return "<!DOCTYPE" in text or "<!ENTITY" in text


# --- opening --------------------------------------------------------------------------------


@dataclass(eq=False)
class XlsxWorkbook:
    """What reading the first worksheet's values needs, kept from the one opening: its
    shared strings, which styles are dates, the date epoch. The archive itself is not kept
    open; each pass over the rows opens it again."""

    path: Path
    sheet_name: str
    sheet_part: str
    shared_strings: list[str]
    epoch: dt.datetime
    date_formats: set
    timedelta_formats: set
    limits: XlsxLimits
    opening_seconds: float

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """``(row_number, cells)`` for every row of the first worksheet, blank ones
        included; the time bound counts this pass plus the opening."""
        clock = _ParseClock(self.limits.parse_seconds, spent=self.opening_seconds)
        number = 0
        clock.start()
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(self.sheet_part) as part:
                parser = WorkSheetParser(
                    _MeteredPart(part, clock, self.sheet_part),
                    self.shared_strings,
                    data_only=True,
                    epoch=self.epoch,
                    date_formats=self.date_formats,
                    timedelta_formats=self.timedelta_formats,
                )
                for number, values in _sheet_values(parser.parse()):
                    cells = [_cell_text(value) for value in values]
                    clock.pause()
                    yield number, cells
                    clock.start()
        except WORKBOOK_ERRORS as error:
            raise UnsupportedFormat(
                f"Row {number + 1} of the XLSX workbook cannot be read; the workbook is damaged."
            ) from error


def open_workbook(path: Path, *, max_parse_seconds=FROM_SETTINGS) -> XlsxWorkbook:
    """Open ``path`` (already through :func:`check_xlsx_archive`) once. ``max_parse_seconds``
    overrides ``IMPORT_XLSX_MAX_PARSE_SECONDS``; ``None`` lifts the time bound (a worker or
    a command, where no client is waiting)."""
    limits = XlsxLimits.from_settings(max_parse_seconds)
    clock = _ParseClock(limits.parse_seconds)
    clock.start()
    try:
        with _WholePartsCapped(path) as archive:
            return _open(path, archive, limits, clock)
    except WORKBOOK_ERRORS as error:
        # openpyxl's messages name the stored file's path: the client gets none of it.
        raise UnsupportedFormat(DAMAGED_MESSAGE) from error


def _open(path: Path, archive: zipfile.ZipFile, limits: XlsxLimits, clock) -> XlsxWorkbook:
    package = Manifest.from_tree(fromstring(archive.read(ARC_CONTENT_TYPES)))
    shared_strings = _read_shared_strings(archive, package, limits, clock)
    clock.check()
    # Only what the values need: no external links (they cache whole other workbooks), no
    # properties, theme, defined names or other sheets.
    parser = WorkbookParser(archive, _find_workbook_part(package).PartName[1:], keep_links=False)
    parser.parse()
    workbook = parser.wb
    apply_stylesheet(archive, workbook)
    clock.check()
    names = set(archive.namelist())
    for sheet, relationship in parser.find_sheets():
        # As openpyxl: a sheet whose part is missing is skipped, a chart sheet has no cells.
        if relationship.target not in names or "chartsheet" in relationship.Type:
            continue
        clock.pause()
        return XlsxWorkbook(
            path=path,
            sheet_name=sheet.name,
            sheet_part=relationship.target,
            shared_strings=shared_strings,
            epoch=workbook.epoch,
            date_formats=workbook._date_formats,
            timedelta_formats=workbook._timedelta_formats,
            limits=limits,
            opening_seconds=clock.spent,
        )
    raise UnsupportedFormat(gettext("The XLSX workbook holds no worksheet."))


def _read_shared_strings(archive, package, limits: XlsxLimits, clock) -> list[str]:
    """The shared strings part (found as openpyxl finds it, by content type), refused past
    the bounds: its declared size first, then the bytes actually inflated and the strings
    counted while it streams. The strings are openpyxl's (the text of every run, no
    phonetic guide), with no tree of elements kept behind them."""
    override = package.find(SHARED_STRINGS)
    if override is None:
        return []
    name = override.PartName[1:]
    declared = archive.getinfo(name).file_size
    if declared > limits.shared_strings_bytes:
        raise _shared_strings_too_large(name, limits.shared_strings_bytes, declared)
    strings: list[str] = []
    with archive.open(name) as part:
        stream = _MeteredPart(part, clock, name, max_bytes=limits.shared_strings_bytes)
        root = None
        for event, node in iterparse(stream, events=("start", "end"), forbid_dtd=True):
            if root is None:
                root = node
            if event != "end" or node.tag != _SI:
                continue
            if len(strings) >= limits.shared_strings:
                raise UnsupportedFormat(
                    f'The XLSX workbook\'s shared strings ("{name}") hold more than '
                    f"{limits.shared_strings} distinct texts; {ADVICE}.",
                    details={
                        "limit": "IMPORT_XLSX_MAX_SHARED_STRINGS",
                        "maxStrings": limits.shared_strings,
                    },
                )
            strings.append(_string_text(node).replace("x005F_", ""))
            node.clear()
            # Parsed strings would otherwise stay attached to the root as empty elements.
            del root[:]
    return strings


def _string_text(node) -> str:
    if len(node) == 1 and node[0].tag == _T and not len(node[0]):
        return node[0].text or ""  # the common <si><t>text</t></si>, without Text's cost
    return Text.from_tree(node).content


# --- rows -----------------------------------------------------------------------------------


def _sheet_values(parsed) -> Iterator[tuple[int, tuple]]:
    """What openpyxl's read-only worksheet yields with no dimensions trusted: a row for every
    row number up to the last, missing ones empty, each as wide as its last cell (a row
    numbered before one already read is dropped)."""
    counter = 1
    for index, cells in parsed:
        while counter < index:
            yield counter, ()
            counter += 1
        if counter <= index:
            yield counter, _row_values(cells)
            counter += 1


def _row_values(cells: list[dict]) -> tuple:
    if not cells:
        return ()
    width = cells[-1]["column"]
    values = [None] * width
    for cell in cells:
        column = cell["column"]
        if 1 <= column <= width:
            values[column - 1] = cell["value"]
    return tuple(values)


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return f"{value:.15g}"
    if isinstance(value, dt.datetime):
        if value.second or value.microsecond:
            return value.strftime("%Y-%m-%d %H:%M:%S")
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S" if value.second else "%H:%M")
    if isinstance(value, dt.timedelta):
        minutes, seconds = divmod(int(value.total_seconds()), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}:{minutes:02d}:{seconds:02d}" if seconds else f"{hours}:{minutes:02d}"
    return str(value).strip()
