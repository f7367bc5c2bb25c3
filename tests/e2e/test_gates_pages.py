"""In a real browser under the content security policy: an admin opens the gates from the
navigation, sees each gate's latest run (a stale one marked, a drill apart and labelled),
the perf chart drawn as SVG and styled by the static stylesheet, opens a run, then the
go/no-go packet and downloads its Markdown. No page logs a CSP violation (``new_page``
fails the test on any)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PASSWORD
from tests.e2e.test_today_and_phones import PHONE, assert_fits
from tests.gates.test_api import seed_run

pytestmark = pytest.mark.e2e

STALE_ORANGE = "rgb(180, 83, 9)"  # --gs-stale in static/css/gates.css


@pytest.fixture
def seeded(transactional_db, organisation, make_person, settings):
    """An admin and stored runs, committed so the live server's thread sees them."""
    settings.GATES_STALE_HOURS = 36
    make_person(organisation, "employee", "admin", username="e2e_gates_admin", name="Zhao Min")
    runs = {
        "preflight": seed_run("preflight", hours_ago=2),
        "smoke": seed_run("smoke", hours_ago=50),
        "drill": seed_run(
            "preflight",
            hours_ago=1,
            status="fail",
            drill=True,
            failed_check="secret-key",
            failure_kind="config",
            remediation="Set a long SECRET_KEY.",
            remediation_owner="ops",
            evidence={
                "checks": [
                    {
                        "name": "secret-key",
                        "ok": False,
                        "detail": "SECRET_KEY has 12 characters",
                        "kind": "config",
                        "remediation": "Set a long SECRET_KEY.",
                        "owner": "ops",
                        "blocking": True,
                        "elapsed_ms": 0.2,
                        "evidence": {},
                    }
                ],
                "warnings": [],
                "completed": True,
                "endMarker": "gate-complete",
            },
        ),
    }
    for index, commit_ms in enumerate((2100, 2500, 2300)):
        seed_run(
            "perf",
            hours_ago=30 - index * 10,
            summary={
                "rows": 10000,
                "phases": {
                    "previewMs": 900 + index * 50,
                    "commitMs": commit_ms,
                    "exportMs": 400,
                    "rollbackMs": 1500,
                },
            },
        )
    return runs


def log_in(page) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("e2e_gates_admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/dashboard/")  # an admin lands on the dashboard


def test_an_admin_reads_the_gates_and_the_decision(seeded, new_page, screenshot):
    page = new_page()
    log_in(page)
    page.get_by_role("link", name="Gates", exact=True).click()
    page.wait_for_url("**/gates/")
    assert page.get_by_role("heading", name="Gates", exact=True).is_visible()

    preflight = page.locator('.gate-latest tr[data-gate="preflight"]')
    assert preflight.get_attribute("data-effective-status") == "pass"
    assert preflight.locator(".badge.gs-pass").inner_text() == "Pass"
    assert f"#{seeded['preflight'].pk}" in preflight.inner_text()
    assert f"#{seeded['drill'].pk}" not in preflight.inner_text()

    smoke = page.locator('.gate-latest tr[data-gate="smoke"]')
    assert smoke.get_attribute("data-stale") == "true"
    stale_badge = smoke.locator(".badge.gs-stale")
    assert stale_badge.inner_text() == "Stale"
    # The static stylesheet is applied (not blocked): the badge has the stale colour.
    assert stale_badge.evaluate("e => getComputedStyle(e).backgroundColor") == STALE_ORANGE
    assert "2.1 days ago" in smoke.inner_text()

    drills = page.locator("[data-drills]")
    drill_row = drills.locator('tr[data-drill-of="preflight"]')
    assert drill_row.locator("[data-drill]").inner_text() == "Drill"
    assert drill_row.locator(".badge.gs-fail").inner_text() == "Fail"
    assert page.locator(f'.gate-history tr[data-run="{seeded["drill"].pk}"].is-drill').count() == 1

    chart = page.locator("[data-perf] svg.gate-perf")
    chart.wait_for()
    assert chart.locator("circle").count() == 12  # 3 runs × 4 phases
    assert chart.locator('[data-phase="commitMs"] polyline').count() == 1
    stroke = chart.locator('[data-phase="commitMs"] polyline').evaluate(
        "e => getComputedStyle(e).stroke"
    )
    assert stroke == "rgb(15, 143, 138)"  # --ph-commit: the series' colour comes from the css
    screenshot(page, "gates-dashboard")

    drill_row.get_by_role("link", name=f"#{seeded['drill'].pk}").click()
    page.wait_for_url(f"**/gates/runs/{seeded['drill'].pk}/")
    assert "This run is a drill" in page.locator("[data-drill].alert").inner_text()
    assert "Set a long SECRET_KEY." in page.locator("[data-failure]").inner_text()
    assert page.locator('[data-checks] tr[data-check="secret-key"]').get_attribute("data-ok") == (
        "false"
    )
    assert "gate-complete" in page.locator("[data-evidence]").inner_text()
    screenshot(page, "gates-run")

    page.get_by_role("link", name="Gates", exact=True).first.click()
    page.wait_for_url("**/gates/")
    page.get_by_role("link", name="Go/no-go decision").click()
    page.wait_for_url("**/gates/decision/")
    verdict = page.locator("[data-verdict]").get_attribute("data-verdict")
    assert verdict in ("GO", "CONDITIONAL", "NO-GO")
    # The smoke gate is stale and strict never ran: this deployment may not ship.
    assert verdict == "NO-GO"
    assert "NO-GO" in page.locator(".gate-decision").inner_text()
    with page.expect_download() as download_info:
        page.locator('[data-download="markdown"]').click()
    download = download_info.value
    assert download.suggested_filename.startswith("go-no-go-")
    assert download.suggested_filename.endswith(".md")
    assert "NO-GO" in Path(download.path()).read_text(encoding="utf-8")
    screenshot(page, "gates-decision")


@pytest.mark.parametrize("path", ["/gates/", "/gates/decision/", "run"])
def test_the_gates_pages_fit_a_phone(seeded, new_page, path):
    """At 375 px the page itself never scrolls sideways: wide tables scroll in their card."""
    page = new_page()
    page.set_viewport_size(PHONE)
    log_in(page)
    page.goto(f"/gates/runs/{seeded['drill'].pk}/" if path == "run" else path)
    assert_fits(page, path)
