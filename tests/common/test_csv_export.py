"""common.csv_export: BOM, formula neutralising, chunked streaming."""

from __future__ import annotations

import csv
import io

import pytest
from django.http import StreamingHttpResponse

from common.csv_export import BOM, csv_lines, neutralise, streaming_csv_response

# Only because the shared autouse fixture clears the (database-backed) cache.
pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+2", "'=1+2"),
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+31 6 1234", "'+31 6 1234"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (42, 42),
        (-5, -5),
    ],
)
def test_neutralise(value, expected):
    assert neutralise(value) == expected


def test_csv_lines_start_with_a_bom_and_neutralise_every_cell():
    rows = [["=cmd", "ok", None, 3], ["x", "@evil", "", -1]]
    text = "".join(csv_lines(["a", "b", "c", "d"], rows))
    assert text.startswith(BOM + "a,b,c,d\r\n")
    assert text.count(BOM) == 1
    assert list(csv.reader(io.StringIO(text.removeprefix(BOM)))) == [
        ["a", "b", "c", "d"],
        ["'=cmd", "ok", "", "3"],
        ["x", "'@evil", "", "-1"],
    ]


def test_csv_lines_quote_separators_and_newlines():
    text = "".join(csv_lines(["name"], [['Doe, "J"\nline two']]))
    assert list(csv.reader(io.StringIO(text.removeprefix(BOM)))) == [
        ["name"],
        ['Doe, "J"\nline two'],
    ]


def test_csv_lines_stream_in_chunks_without_reading_ahead():
    consumed = []

    def rows():
        for number in range(1200):
            consumed.append(number)
            yield [number]

    chunks = csv_lines(["n"], rows())
    assert next(chunks) == BOM + "n\r\n"
    assert consumed == []  # the header needs no row
    first = next(chunks)
    assert first.count("\r\n") == 500
    assert len(consumed) == 500
    rest = list(chunks)
    assert [chunk.count("\r\n") for chunk in rest] == [500, 200]
    assert len(consumed) == 1200


def test_streaming_csv_response():
    response = streaming_csv_response("report.csv", ["name"], iter([["Zoë"], ["=1"]]))
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="report.csv"'
    assert response["X-Content-Type-Options"] == "nosniff"
    body = b"".join(response.streaming_content)
    assert body == "\ufeffname\r\nZoë\r\n'=1\r\n".encode()
    assert body.startswith(b"\xef\xbb\xbf")


def test_an_empty_result_is_just_the_header():
    body = b"".join(streaming_csv_response("x.csv", ["a", "b"], iter([])).streaming_content)
    assert body == b"\xef\xbb\xbfa,b\r\n"
