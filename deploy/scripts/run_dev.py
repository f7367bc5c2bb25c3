"""`make run`: one command from a fresh clone to a working site.

Starts the embedded PostgreSQL when DATABASE_URL is unset, migrates, loads the demo data,
then serves the site with a real Celery worker and embedded beat. Ctrl-C stops everything
it started, including the embedded database; a second run reuses the data under .data/.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

PYTHON = sys.executable
HOST = os.environ.get("HOST", "127.0.0.1")
PORT = os.environ.get("PORT", "8000")


def manage(*args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], check=True)


def main() -> int:
    started_at = time.monotonic()
    embedded = not os.environ.get("DATABASE_URL")
    if embedded:
        from config import embedded as embedded_services

        embedded_services.database_settings()  # starts the server once, before the children
        print(f"Embedded PostgreSQL running with data in {embedded_services.PGDATA}")
    manage("migrate", "--noinput", "-v", "0")
    manage("createcachetable")
    manage("seed_demo")

    children = [
        subprocess.Popen([PYTHON, "manage.py", "runserver", f"{HOST}:{PORT}", "--noreload"]),
        subprocess.Popen(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-B",
                "--loglevel",
                "INFO",
                "--concurrency",
                "1",
                "--hostname",
                "dev@%h",
            ]
        ),
    ]
    stopping = False

    def stop(*_):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    print(
        f"\nAttendance is starting on http://{HOST}:{PORT}/ "
        f"(set-up took {time.monotonic() - started_at:.1f} s). Ctrl-C stops everything.\n"
    )
    try:
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.5)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded:
            from config import embedded as embedded_services

            embedded_services.stop_database()
            print("Embedded PostgreSQL stopped.")
    failed = [
        child.args[3]
        for child in children
        if child.returncode not in (0, -15, None) and not stopping
    ]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
