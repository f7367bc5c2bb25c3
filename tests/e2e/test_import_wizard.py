"""End to end in a real browser with a real Celery worker: an importer uploads a DingTalk
daily summary in the wizard, previews it, commits it asynchronously, reads the batch report
and rolls the batch back."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path

import pytest

from attendance.models import AttendanceRecord
from imports.models import ImportBatch, ImportJob
from tests.conftest import PASSWORD
from tests.e2e.test_today_and_phones import PHONE, assert_fits
from tests.support import start_celery_worker

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "dingtalk_daily_utf8bom.csv"
JOB_TIMEOUT_MS = 90_000


@pytest.fixture
def importer(transactional_db, organisation, make_person):
    """An importer, committed so the live server's thread and the worker see them."""
    return make_person(organisation, "employee", "importer", username="e2e_importer")


@pytest.fixture
def import_worker(transactional_db, settings, tmp_path):
    """A real Celery worker on a queue of its own; the live server (in this process) sends
    import jobs there, and both read uploads from the same private folder."""
    queue = f"test-imports-{uuid.uuid4().hex[:8]}"
    storage = tmp_path / "uploads"
    settings.IMPORT_TASK_QUEUE = queue
    settings.IMPORT_STORAGE_DIR = storage
    log_path = tmp_path / "worker.log"
    worker = start_celery_worker(
        queue, log_path=log_path, IMPORT_TASK_QUEUE=queue, IMPORT_STORAGE_DIR=str(storage)
    )
    worker.log_path = log_path
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)


@pytest.fixture
def people_to_import(transactional_db, organisation, make_person):
    """An employee the test file names."""
    return make_person(organisation, "employee", username="e2e_known", name="Li Lei")


def log_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/attendance/")


def worker_log(worker) -> str:
    alive = "running" if worker.poll() is None else f"exited with {worker.returncode}"
    return f"worker {alive}; log:\n{worker.log_path.read_text()}"


@pytest.mark.xdist_group("celery-worker")
def test_importer_uploads_previews_commits_and_rolls_back(
    importer, import_worker, new_page, screenshot
):
    organisation = importer.organisation
    page = new_page()
    log_in(page, "e2e_importer")
    page.get_by_role("link", name="Imports").click()
    page.wait_for_url("**/imports/")

    # A file no format reads, dropped on the drop zone: a clear error with its code.
    garbage = page.evaluate_handle(
        """() => {
            const transfer = new DataTransfer();
            const bytes = new Uint8Array([0, 1, 2, 3, 255, 254, 0, 0, 80, 75, 3, 4]);
            transfer.items.add(new File([bytes], "garbage.csv", { type: "text/csv" }));
            return transfer;
        }"""
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": garbage})
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Upload failed" in alert.inner_text()
    assert alert.locator("[data-code]").get_attribute("data-code") == "UNSUPPORTED_FORMAT", (
        alert.inner_text()
    )

    # Step 1: upload through the file input (the drop zone's keyboard fallback).
    page.get_by_label("File to import").set_input_files(str(FIXTURE))
    page.wait_for_selector("#upload-result:not([hidden]), #wizard-alert:not([hidden])")
    if alert.is_visible():
        pytest.fail(f"The upload was refused: {alert.inner_text()}", pytrace=False)
    assert not alert.is_visible()
    assert page.locator("#upload-filename").inner_text() == FIXTURE.name
    assert page.locator("#upload-format").inner_text() == "dingtalk_daily"
    assert page.locator("#upload-rows").inner_text() == "620"
    assert page.locator("#upload-encoding").inner_text() == "utf-8-sig"
    assert "Uploaded" in page.locator("#wizard-status").inner_text()

    # Step 2: the detected format is preselected; the people are not employees yet.
    assert page.get_by_label("Format", exact=True).input_value() == "dingtalk_daily"
    assert page.get_by_label("Time zone").input_value() == organisation.time_zone
    page.get_by_label("Create missing employees").check()

    # Step 3: preview.
    page.get_by_role("button", name="Preview").click()
    insert = page.locator('#preview-stats [data-stat="insert"] .stat-value')
    page.locator("#step-preview").wait_for()
    assert insert.inner_text() == "620"
    assert page.locator('#preview-stats [data-stat="invalid"] .stat-value').inner_text() == "0"
    assert page.locator("#preview-items tbody tr").count() == 50
    # Times in the organisation's zone, as in the file; a night shift ends the next day.
    day_shift = page.locator('#preview-items tr[data-row="6"]').inner_text()
    assert "24000013" in day_shift and "08:16" in day_shift and "19:18" in day_shift
    night_shift = page.locator('#preview-items tr[data-row="16"]').inner_text()
    assert "19:48" in night_shift and "08:16 +1" in night_shift
    assert int(page.locator("#employees-to-create").get_attribute("data-count")) > 0
    screenshot(page, "import-preview")
    assert not AttendanceRecord.objects.filter(employee__organisation=organisation).exists()

    # Step 4: commit; the worker runs the job while the page polls it.
    page.get_by_role("button", name="Commit import").click()
    page.locator("#commit-progress").wait_for()
    try:
        # Read the finished bar in one go: the page moves on to the report soon after.
        done = page.wait_for_function(
            """() => {
                const text = document.getElementById("progress-text");
                if (text.dataset.status !== "succeeded") return null;
                return {
                    value: document.getElementById("commit-progress").value,
                    percent: document.getElementById("progress-percent").textContent,
                    text: text.textContent,
                };
            }""",
            timeout=JOB_TIMEOUT_MS,
        ).json_value()
    except Exception as exc:
        job = ImportJob.objects.filter(organisation=organisation).first()
        pytest.fail(
            f"The import job did not succeed ({job and job.status}, {job and job.error}): "
            f"{exc}\n{worker_log(import_worker)}\n"
            f"alert: {page.locator('#wizard-alert').text_content()}"
        )
    assert done["value"] == 100
    assert done["percent"] == "100%"
    counts = re.search(r"Done · (\d+) / (\d+)", done["text"])
    assert counts and counts[1] == counts[2], done["text"]
    page.wait_for_url(re.compile(r".*/imports/batches/\d+/$"))

    # The batch report.
    batch = ImportBatch.objects.get(organisation=organisation)
    assert page.url.endswith(f"/imports/batches/{batch.pk}/")
    assert page.locator('#batch-stats [data-stat="insert"] .stat-value').inner_text() == "620"
    assert page.locator("#batch-status").get_attribute("data-status") == "committed"
    assert page.locator(".tab[aria-current]").inner_text().startswith("All")
    assert page.locator("table.items tbody tr").count() == 100  # the first page of 620
    page.get_by_role("link", name=re.compile(r"^Inserted")).click()
    page.wait_for_url("**?action=inserted*")
    assert page.locator('table.items tbody tr[data-action="inserted"]').count() == 100
    assert AttendanceRecord.objects.filter(batch=batch).count() == 620
    night_shift = page.locator('table.items tr[data-row="16"]').inner_text()
    assert "24000143" in night_shift and "19:48" in night_shift and "08:16 +1" in night_shift
    screenshot(page, "import-batch-report")

    # Roll it back (after confirming).
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Roll back").click()
    page.wait_for_selector('#batch-status[data-status="rolled_back"]')
    status = page.locator("#batch-status")
    assert status.inner_text() == "Rolled back"
    assert (
        f"Batch {batch.pk} rolled back: 620 day(s) deleted"
        in page.locator(".messages").inner_text()
    )
    assert page.get_by_role("button", name="Roll back").count() == 0
    batch.refresh_from_db()
    assert batch.status == ImportBatch.Status.ROLLED_BACK
    assert not AttendanceRecord.objects.filter(employee__organisation=organisation).exists()
    screenshot(page, "import-rolled-back")

    # The report and the history on a phone: wide tables scroll in their card, not the page.
    page.set_viewport_size(PHONE)
    for url in (page.url, "/imports/batches/"):
        page.goto(url)
        assert_fits(page, url)


def test_mapping_preview_errors_and_their_csv(importer, people_to_import, new_page, tmp_path):
    """A file whose headers the standard format does not know: pick the format, map the
    header, preview, read the errors and download them as CSV (no commit, so no worker)."""
    known = people_to_import
    path = tmp_path / "renamed.csv"
    path.write_text(
        "staff_id,name,work_date,first_in,last_out,status\n"
        f"{known.employee_no},{known.name},2026-05-04,09:00,18:00,\n"
        "NOBODY,Nobody,2026-05-04,09:00,18:00,\n"
        f"{known.employee_no},{known.name},2026-13-45,09:00,18:00,\n",
        encoding="utf-8",
    )
    page = new_page()
    log_in(page, "e2e_importer")
    page.goto("/imports/")
    page.get_by_label("File to import").set_input_files(str(path))
    page.wait_for_selector("#upload-result:not([hidden]), #wizard-alert:not([hidden])")
    alert = page.get_by_role("alert")
    if alert.is_visible():
        pytest.fail(f"The upload was refused: {alert.inner_text()}", pytrace=False)
    assert page.locator("#upload-format").inner_text() == "not detected"

    page.get_by_label("Format", exact=True).select_option("standard")
    page.get_by_text("Columns of this format").click()
    assert "employee_no" in page.locator("#format-columns").inner_text()
    page.get_by_role("button", name="Add a mapping").click()
    page.get_by_label("Header in my file").fill("staff_id")
    page.get_by_label("Expected header").fill("employee_no")
    page.get_by_label("Merge").check()
    page.get_by_role("button", name="Preview").click()
    page.locator("#step-preview").wait_for()

    stat = page.locator("#preview-stats")
    assert stat.locator('[data-stat="insert"] .stat-value').inner_text() == "1"
    assert stat.locator('[data-stat="skip"] .stat-value').inner_text() == "1"
    assert stat.locator('[data-stat="invalid"] .stat-value').inner_text() == "1"
    errors = page.locator("#preview-errors tbody")
    assert "UNKNOWN_EMPLOYEE" in errors.inner_text()
    shown = errors.locator("tr").count()
    assert shown >= 2

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download all errors (CSV)").click()
    download = download_info.value
    assert download.suggested_filename == "import-errors.csv"
    lines = Path(download.path()).read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "row,column,code,message"
    assert len(lines) - 1 == shown
    assert any("UNKNOWN_EMPLOYEE" in line for line in lines)

    # Changing an option makes the preview stale: no commit until previewed again.
    page.get_by_label("Create missing employees").check()
    assert page.get_by_role("button", name="Commit import").is_disabled()
    page.get_by_role("button", name="Preview").click()
    page.wait_for_selector("#preview-stale[hidden]", state="attached")
    assert page.get_by_role("button", name="Commit import").is_enabled()
    assert stat.locator('[data-stat="insert"] .stat-value').inner_text() == "2"


def preview_the_sample(page) -> None:
    """Sign in as the importer, upload the DingTalk sample and preview it as it comes."""
    log_in(page, "e2e_importer")
    page.goto("/imports/")
    page.get_by_label("File to import").set_input_files(str(FIXTURE))
    page.locator("#upload-result").wait_for()
    page.get_by_role("button", name="Preview").click()
    page.locator("#step-preview").wait_for()


def test_a_preview_that_skips_every_row_says_why_and_offers_no_commit(
    importer, new_page, screenshot
):
    """The DingTalk sample names 620 days of people the organisation does not have: the
    preview groups the problem (one kind, 620 rows), pages the rows 50 at a time, points at
    "Create missing employees", and keeps the commit button disabled with its reason. With
    the box ticked the same file previews as 620 inserts and may be committed."""
    page = new_page()
    preview_the_sample(page)

    stats = page.locator("#preview-stats")
    assert stats.locator('[data-stat="skip"] .stat-value').inner_text() == "620"
    assert stats.locator('[data-stat="insert"] .stat-value').inner_text() == "0"
    groups = page.locator("#preview-error-groups tbody tr")
    assert groups.count() == 1
    assert groups.first.get_attribute("data-code") == "UNKNOWN_EMPLOYEE"
    assert "Unknown employee" in groups.first.inner_text()
    assert "620" in groups.first.inner_text()

    # 50 rows a page, with a pager; the page stays short enough to read.
    rows = page.locator("#preview-errors tbody tr")
    assert rows.count() == 50
    assert page.locator("#errors-page").inner_text() == "1–50 of 620"
    first = rows.first.inner_text()
    page.locator("#errors-next").click()
    assert page.locator("#errors-page").inner_text() == "51–100 of 620"
    assert rows.first.inner_text() != first
    assert page.evaluate("document.documentElement.scrollHeight") < 8000

    # The hint names the cure and leads to it.
    hint = page.locator("#create-missing-hint")
    assert hint.is_visible()
    assert page.locator("#unknown-employee-count").inner_text() == "620"
    hint.get_by_role("link", name="Create missing employees").click()
    assert page.evaluate("document.activeElement.id") == "import-create-missing"

    # Nothing would change: no commit, and the page says why.
    commit = page.get_by_role("button", name="Commit import")
    assert commit.is_disabled()
    assert page.locator("#commit-reason").is_visible()
    assert "Nothing to commit" in page.locator("#commit-reason").inner_text()
    screenshot(page, "import-preview-all-skipped")

    page.get_by_label("Create missing employees").check()
    page.get_by_role("button", name="Preview").click()
    page.wait_for_selector("#preview-stale[hidden]", state="attached")
    assert stats.locator('[data-stat="insert"] .stat-value').inner_text() == "620"
    assert page.locator("#create-missing-hint").is_hidden()
    assert page.locator("#preview-errors-box").is_hidden()
    assert commit.is_enabled()
    assert page.locator("#commit-reason").is_hidden()
    # Labels, not codes: what each row would do, and the day's status.
    assert page.locator("#preview-items tbody .badge[data-action]").first.inner_text() == "Inserted"
    statuses = page.locator("#preview-items tbody .badge[data-status]").all_inner_texts()
    assert statuses and not [text for text in statuses if "_" in text or text.islower()]


def test_the_wizard_fits_a_phone(importer, new_page):
    page = new_page()
    page.set_viewport_size(PHONE)
    preview_the_sample(page)
    assert_fits(page, "the wizard's preview")
    # Every tile keeps its figure inside it.
    overflowing = page.evaluate(
        """() => [...document.querySelectorAll('#preview-stats .stat')]
            .filter((tile) => tile.scrollWidth > tile.clientWidth + 1).length"""
    )
    assert overflowing == 0
