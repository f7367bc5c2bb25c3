"""`make screenshots`: the everyday pages as each demo user sees them, in English and in
Chinese, on a desktop (1366 px) and a phone (375 px), written to docs/screenshots/.

The script brings up its own site: the embedded PostgreSQL under .data/screenshots (or
DATABASE_URL when set), migrated and seeded with the demo organisation, served by Django on
a free loopback port. Debian's chromium draws the pages (CHROMIUM_PATH overrides it); the
Chinese set needs a CJK font (fonts-noto-cjk), which `make screenshots` installs when it may.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "screenshots"
SAMPLE = ROOT / "tests" / "fixtures" / "dingtalk_daily_utf8bom.csv"
PASSWORD = os.environ.get("DEMO_PASSWORD", "attendance-demo")
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
SIZES = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 375, "height": 812}}
LANGUAGES = {"en": "en-GB", "zh": "zh-CN"}
# (file name, demo user, path): what each role opens every day.
PAGES = [
    ("login", None, "/accounts/login/"),
    ("my-month", "employee", "/attendance/"),
    ("approvals", "approver", "/attendance/approvals/"),
    ("team-month", "approver", "/attendance/team/"),
    ("events", "employee", "/events/"),
    ("dashboard", "admin", "/dashboard/"),
    ("audit-log", "admin", "/audit/"),
    ("gates", "admin", "/gates/"),
    ("admin-centre", "admin", "/admin/"),
    ("import-preview", "importer", "/imports/"),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_site(env: dict) -> tuple[subprocess.Popen, str]:
    def manage(*args: str) -> None:
        subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)

    manage("migrate", "--noinput", "-v", "0")
    manage("createcachetable")
    manage("seed_demo")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/livez", timeout=2)  # noqa: S310 (our own loopback)
            return server, url
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit("The site did not start; see the output above.") from None
            time.sleep(0.3)


def log_in(page, username: str) -> None:
    page.goto("/accounts/login/")
    page.locator("#id_username").fill(username)
    page.locator("#id_password").fill(PASSWORD)
    page.locator("form.stack button[type=submit]").click()
    page.wait_for_load_state()


def show_import_preview(page) -> None:
    """The wizard with the DingTalk sample previewed: the demo has none of its people."""
    page.locator("#import-file").set_input_files(str(SAMPLE))
    page.locator("#upload-result").wait_for()
    page.locator("#preview-button").click()
    page.locator("#step-preview").wait_for()
    page.locator("#step-preview").scroll_into_view_if_needed()


def main() -> int:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(
            f"No chromium at {CHROMIUM}: install Debian's chromium or set CHROMIUM_PATH."
        )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    if not env.get("DATABASE_URL"):
        env["ATTENDANCE_DATA_DIR"] = str(ROOT / ".data" / "screenshots")
    OUT.mkdir(parents=True, exist_ok=True)
    server, url = start_site(env)
    written = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            for language, locale in LANGUAGES.items():
                for size_name, viewport in SIZES.items():
                    sessions = {}
                    for name, user, path in PAGES:
                        if user not in sessions:
                            context = browser.new_context(
                                base_url=url, viewport=viewport, locale=locale
                            )
                            page = context.new_page()
                            if user:
                                log_in(page, user)
                            sessions[user] = page
                        page = sessions[user]
                        page.goto(path)
                        page.wait_for_load_state("networkidle")
                        if name == "import-preview":
                            show_import_preview(page)
                        target = OUT / f"{name}-{language}-{size_name}.png"
                        page.screenshot(path=str(target))
                        written.append(target)
                    for page in sessions.values():
                        page.context.close()
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=15)
        if not env.get("DATABASE_URL"):
            sys.path.insert(0, str(ROOT))
            os.environ["ATTENDANCE_DATA_DIR"] = env["ATTENDANCE_DATA_DIR"]
            from config import embedded

            embedded.stop_database(Path(env["ATTENDANCE_DATA_DIR"]) / "pg")
    print(f"{len(written)} screenshots in {OUT.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
