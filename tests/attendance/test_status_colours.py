"""static/css/app.css gives each day status its own colour, and badge text on it is legible.

Parsed from the stylesheet itself, so a colour changed there is judged here: every status
(RecordStatus plus the page-only ``in_progress``) has a custom property ``--st-<status>``
and a ``.st-<status>`` rule, the colours are pairwise apart (CIE76 distance in Lab, where
about 2.3 is "just noticeable" and 25 is plainly another colour) and the badge text colour
on each meets WCAG AA for normal text (4.5:1).
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest

from attendance.choices import RecordStatus
from attendance.views import IN_PROGRESS

APP_CSS = Path(__file__).resolve().parents[2] / "static" / "css" / "app.css"
STATUSES = [*RecordStatus.values, IN_PROGRESS]
MIN_DISTANCE = 25
AA_NORMAL_TEXT = 4.5


def custom_properties(css: str) -> dict[str, str]:
    root = re.search(r":root\s*\{(.*?)\}", re.sub(r"/\*.*?\*/", "", css, flags=re.S), re.S)
    return dict(re.findall(r"--([\w-]+)\s*:\s*([^;]+);", root[1]))


def rgb(hex_colour: str) -> tuple[int, int, int]:
    value = hex_colour.strip().lstrip("#")
    if len(value) == 3:
        value = "".join(part * 2 for part in value)
    assert re.fullmatch(r"[0-9a-fA-F]{6}", value), f"not a hex colour: {hex_colour!r}"
    return tuple(int(value[index : index + 2], 16) for index in (0, 2, 4))


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def relative_luminance(hex_colour: str) -> float:
    r, g, b = (_linear(c) for c in rgb(hex_colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    high, low = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def lab(hex_colour: str) -> tuple[float, float, float]:
    r, g, b = (_linear(c) for c in rgb(hex_colour))
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    return 116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z))


@pytest.fixture(scope="module")
def css() -> str:
    return APP_CSS.read_text()


@pytest.fixture(scope="module")
def colours(css) -> dict[str, str]:
    properties = custom_properties(css)
    missing = [status for status in STATUSES if f"st-{status}" not in properties]
    assert not missing, f"no --st-<status> colour for {missing}"
    return {status: properties[f"st-{status}"] for status in STATUSES}


def test_the_helpers_measure_what_they_claim():
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21)
    assert contrast_ratio("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)
    assert math.dist(lab("#ffffff"), (100, 0, 0)) < 0.5
    # The colours the issue reported as looking the same are too close by this measure.
    assert math.dist(lab("#d97706"), lab("#ea7a0c")) < MIN_DISTANCE


def test_every_status_has_a_rule_using_its_colour(css):
    for status in STATUSES:
        assert re.search(rf"\.st-{status}\s*\{{\s*--c:\s*var\(--st-{status}\)", css), status


def test_status_colours_are_pairwise_distinct(colours):
    too_close = [
        (a, b, round(math.dist(lab(colours[a]), lab(colours[b])), 1))
        for a, b in itertools.combinations(STATUSES, 2)
        if math.dist(lab(colours[a]), lab(colours[b])) < MIN_DISTANCE
    ]
    assert not too_close, f"status colours closer than {MIN_DISTANCE}: {too_close}"


def test_badge_text_meets_wcag_aa_on_every_status(css, colours):
    text = custom_properties(css)["badge-text"]
    assert re.search(r"\.badge\s*\{[^}]*color:\s*var\(--badge-text\)", css)
    weak = {
        status: round(contrast_ratio(text, colour), 2)
        for status, colour in colours.items()
        if contrast_ratio(text, colour) < AA_NORMAL_TEXT
    }
    assert not weak, f"badge text below {AA_NORMAL_TEXT}:1 on {weak}"


def test_request_state_badges_meet_wcag_aa(css):
    properties = custom_properties(css)
    text = properties["badge-text"]
    for state in ("pending", "approved", "rejected", "cancelled"):
        assert contrast_ratio(text, properties[f"rq-{state}"]) >= AA_NORMAL_TEXT, state
