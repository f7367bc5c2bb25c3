"""`make gates-demo`: a real GO and a real NO-GO decision packet, from real gate runs.

On a fresh database (--database, default ``attendance_gates_demo``, on the server of
DATABASE_URL, else the embedded PostgreSQL) it migrates, creates an organisation and its
admin (a bearer token), then starts gunicorn (2 workers) and one Celery worker on loopback in
a production-like environment: DJANGO_ENV=production, a random SECRET_KEY, ALLOWED_HOSTS
127.0.0.1, and SECURE_SSL_REDIRECT=false with security.W008 accepted in
GATES_PREFLIGHT_SILENCED (TLS ends at the load balancer in front of nginx).

In that environment it runs, as an operator would, ``manage.py gates preflight``, ``smoke``,
``strict``, ``perf --rows 2000`` and ``metrics`` against the stack, then ``gates decide
--markdown``: the GO packet (if the verdict is not GO it says why and exits 1). Then it breaks
one real thing, the Celery worker is stopped, and runs ``gates preflight`` again (no worker
answers its ping: the P0 gate fails) and ``gates decide --markdown``: the NO-GO packet.

Both packets go to stdout between markers, then one JSON line with the verdicts and every
command's exit code (progress on stderr). Everything is stopped and the database dropped
unless --keep.

    python -m benchmarks.gates_demo [--keep] [--database NAME] [--rows 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.stack import (  # noqa: E402
    PYTHON,
    BenchError,
    Database,
    Stack,
    child_env,
    database_name,
    log,
    prepare_database,
    provision_user,
)

DEMO_DATABASE = "attendance_gates_demo"
DEMO_ORG = "gates-demo"
ADMIN = "gates-demo-admin"
SILENCED_REASON = "TLS ends at the load balancer in front of nginx"
# manage.py gates decide: 0 GO, 1 NO-GO, 3 CONDITIONAL (gates.services.decision).
VERDICT_BY_EXIT = {0: "GO", 1: "NO-GO", 3: "CONDITIONAL"}
GATE_TIMEOUT_SECONDS = 600


def production_env(db: Database, workdir: Path) -> dict:
    """The children's environment: the bench's (this run's database, data directory and
    broker) made production-like, as tests/gates/test_preflight.py's passing one is."""
    env = child_env(db, workdir / "data", os.environ.get("CELERY_BROKER_URL") or None)
    env.update(
        {
            "DJANGO_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(64)[:64],
            "ALLOWED_HOSTS": "127.0.0.1",
            "DEBUG": "false",
            # The stack is served over plain HTTP on loopback, as behind a TLS-terminating
            # load balancer: the redirect is off, and the preflight is told why.
            "SECURE_SSL_REDIRECT": "false",
            "GATES_PREFLIGHT_SILENCED": f"security.W008={SILENCED_REASON}",
            "IMPORT_STORAGE_DIR": str(workdir / "uploads"),
            "STATIC_ROOT": str(workdir / "static"),
            "GATES_DEPLOY_DIR": str(ROOT / "deploy"),
            "GATES_PREFLIGHT_PING_TIMEOUT_SECONDS": "1",
        }
    )
    return env


def gates(stack: Stack, *args: str) -> tuple[int, str]:
    """``manage.py gates …`` in the stack's environment: (exit code, stdout). Its stderr goes
    to ours, so a traceback is seen."""
    log(f"manage.py gates {' '.join(_redacted(args))}")
    result = subprocess.run(
        [PYTHON, "manage.py", "gates", *args],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=GATE_TIMEOUT_SECONDS,
        check=False,
    )
    if result.stderr.strip():
        sys.stderr.write(result.stderr)
    log(f"  exit {result.returncode}")
    return result.returncode, result.stdout


def _redacted(args: tuple[str, ...]) -> list[str]:
    shown, hide_next = [], False
    for arg in args:
        shown.append("…" if hide_next else arg)
        hide_next = arg == "--token"
    return shown


def _last_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def packet_block(title: str, markdown: str) -> str:
    bar = "=" * 30
    return f"\n{bar} BEGIN {title} {bar}\n{markdown.rstrip()}\n{bar} END {title} {bar}\n"


def run(args: argparse.Namespace) -> tuple[dict, int]:
    summary: dict = {"exitCodes": {}, "verdicts": {}}
    workdir = Path(tempfile.mkdtemp(prefix="gates-demo-"))
    db = Database(name=args.database, keep=args.keep)
    stack: Stack | None = None
    code = 0
    try:
        db.open()
        stack = Stack(env=production_env(db, workdir), workdir=workdir, queue="celery")
        prepare_database(stack, {DEMO_ORG: {"name": "Gates demo", "time_zone": "Asia/Shanghai"}})
        token = provision_user(
            stack,
            ADMIN,
            org=DEMO_ORG,
            employee_no="GATES-DEMO-ADMIN",
            name="Gates demo admin",
            role="admin",
            bearer_label="gates demo",
        )
        stack.manage("collectstatic", "--noinput", "-v", "0")
        stack.start()
        base_url = f"http://127.0.0.1:{stack.port}"
        stack.env["GATES_BASE_URL"] = base_url  # the packet names the deployment it judges
        over_http = ("--base-url", base_url, "--token", token)

        steps = [
            ("preflight", ()),
            ("smoke", over_http),
            ("strict", over_http),
            ("perf", (*over_http, "--rows", str(args.rows))),
            ("metrics", ("--base-url", base_url)),
        ]
        for name, extra in steps:
            exit_code, output = gates(stack, name, *extra)
            summary["exitCodes"][name] = exit_code
            if exit_code != 0:
                print(output, file=sys.stderr)
            else:
                log(f"  {_last_line(output)}")

        exit_code, go_packet = gates(stack, "decide", "--markdown")
        summary["exitCodes"]["decide"] = exit_code
        summary["verdicts"]["healthy"] = VERDICT_BY_EXIT.get(exit_code, f"exit {exit_code}")
        print(packet_block("GO PACKET", go_packet), flush=True)
        if exit_code != 0:
            failing = {name: rc for name, rc in summary["exitCodes"].items() if rc != 0}
            print(
                f"The healthy stack's verdict is {summary['verdicts']['healthy']}, not GO;"
                f" failing commands: {failing or 'none'} (the packet above says why).",
                flush=True,
            )
            return summary, 1

        # Break one real thing: the worker goes away, the web keeps serving.
        log("Stopping the Celery worker (the one real thing broken)")
        _stop_worker(stack)
        exit_code, output = gates(stack, "preflight")
        summary["exitCodes"]["preflightWithoutWorker"] = exit_code
        log(f"  {_last_line(output)}")
        exit_code, no_go_packet = gates(stack, "decide", "--markdown")
        summary["exitCodes"]["decideWithoutWorker"] = exit_code
        summary["verdicts"]["workerStopped"] = VERDICT_BY_EXIT.get(exit_code, f"exit {exit_code}")
        print(packet_block("NO-GO PACKET", no_go_packet), flush=True)
        if summary["exitCodes"]["preflightWithoutWorker"] == 0 or exit_code != 1:
            print("Without its worker the preflight should fail and the verdict be NO-GO.")
            code = 1
    except Exception as error:
        code = 1
        summary["error"] = f"{type(error).__name__}: {error}"
        traceback.print_exc()
        if stack is not None:
            for name in ("web", "worker"):
                print(stack.tail(name), file=sys.stderr)
    finally:
        if stack is not None:
            stack.stop()
        db.close()
        if args.keep:
            log(f"Kept the run's files in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return summary, code


def _stop_worker(stack: Stack) -> None:
    """Stop the worker only (Stack.stop stops both): SIGTERM to its process group."""
    worker = stack.worker
    if worker is None or worker.poll() is not None:
        raise BenchError("the worker is not running")
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    log(f"Worker stopped (exit {worker.returncode})")
    stack.worker = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="rows of the perf gate's import")
    parser.add_argument("--keep", action="store_true", help="keep the database and the files")
    parser.add_argument(
        "--database",
        type=database_name,
        default=DEMO_DATABASE,
        help="name of the demo database (dropped and created)",
    )
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be ≥ 1")
    summary, code = run(args)
    summary["exit"] = code
    print(json.dumps(summary, ensure_ascii=False), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
