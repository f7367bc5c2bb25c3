"""deploy/: the compose file as Debian's docker-compose validates it (no engine needed), and
the deploy and rollback scripts' order of stages, exit codes and dry runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support import ROOT

DEPLOY = ROOT / "deploy"
# Debian's docker-compose (1.29) validates a compose file without an engine; make test
# installs it (deploy/scripts/ensure_test_deps.sh).
DOCKER_COMPOSE = shutil.which("docker-compose") or "docker-compose"
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what a port without a host address binds to


def compose_config(*files: str) -> dict:
    arguments = [item for name in files for item in ("-f", str(DEPLOY / name))]
    result = subprocess.run(
        [DOCKER_COMPOSE, *arguments, "config"],
        cwd=DEPLOY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def published(service: dict) -> list[tuple[str, int]]:
    """(host address, host port) of each port a service publishes."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append((port.get("host_ip", ALL_INTERFACES), int(port["published"])))
        else:
            parts = str(port).split("/")[0].split(":")
            host = parts[0] if len(parts) == 3 else ALL_INTERFACES
            found.append((host, int(parts[-2])))
    return found


def test_the_compose_file_is_valid_and_publishes_no_database_or_redis_port():
    config = compose_config("compose.yaml")
    services = config["services"]
    assert {"db", "redis", "migrate", "web", "worker", "worker-imports", "beat", "nginx"} <= set(
        services
    )
    for name, service in services.items():
        for _, port in published(service):
            assert port not in (5432, 6379), f"{name} publishes {port} on the host"
    assert published(services["db"]) == [] and published(services["redis"]) == []
    assert published(services["nginx"]) == [(ALL_INTERFACES, 80)]
    # The web waits for the migrations; web and workers share the uploads volume.
    assert services["web"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("web", "worker", "worker-imports"):
        assert any("uploads" in str(volume) for volume in services[name]["volumes"]), name
    assert "imports" in services["worker-imports"]["command"]
    assert "imports" not in services["worker"]["command"]


def test_the_debug_override_binds_database_and_redis_to_loopback_only():
    services = compose_config("compose.yaml", "compose.debug.yaml")["services"]
    assert published(services["db"]) == [("127.0.0.1", 5432)]
    assert published(services["redis"]) == [("127.0.0.1", 6379)]


STAND_IN = """#!/bin/sh
# docker-compose's stand-in (no engine here): records each call, fails the one asked.
echo "$*" >> "$CALLS"
if [ -n "$FAIL_ON" ]; then
  case "$*" in *"$FAIL_ON"*) echo "stand-in: $FAIL_ON failed"; exit 1 ;; esac
fi
exit 0
"""


def run_script(tmp_path: Path, script: str, *arguments: str, fail_on: str = "", **env):
    stand_in = tmp_path / "compose"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    environment = {
        "PATH": os.environ["PATH"],
        "COMPOSE": str(stand_in),
        "CALLS": str(calls),
        "FAIL_ON": fail_on,
        "DEPLOY_STATE_DIR": str(tmp_path / "state"),
        "DEPLOY_LOG_DIR": str(tmp_path / "logs"),
        "ATTENDANCE_TAG": "v2",
        **env,
    }
    result = subprocess.run(
        ["bash", str(DEPLOY / "scripts" / script), *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return result, calls.read_text().splitlines()


def stage_of(call: str) -> str:
    for marker, stage in (
        ("gates preflight", "preflight"),
        (" build", "build"),
        ("run --rm migrate", "migrate"),
        ("up -d", "start"),
        ("gates smoke", "smoke"),
    ):
        if marker in call:
            return stage
    return call


def test_a_deploy_migrates_before_the_new_web_starts_and_remembers_the_previous_tag(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "current_tag").write_text("v1\n")

    result, calls = run_script(tmp_path, "deploy.sh")

    assert result.returncode == 0, result.stdout + result.stderr
    assert [stage_of(call) for call in calls] == ["preflight", "build", "migrate", "start", "smoke"]
    assert "web" in calls[3].split()
    assert (tmp_path / "state" / "previous_tag").read_text().strip() == "v1"
    assert (tmp_path / "state" / "current_tag").read_text().strip() == "v2"
    assert "smoke      ok" in result.stdout


def test_the_first_deploy_runs_the_preflight_once_the_deployment_runs(tmp_path):
    result, calls = run_script(tmp_path, "deploy.sh")
    assert result.returncode == 0, result.stdout
    assert [stage_of(call) for call in calls] == ["build", "migrate", "start", "preflight", "smoke"]


@pytest.mark.parametrize(
    ("fail_on", "code", "stages_run"),
    [
        ("gates preflight", 10, ["preflight"]),
        (" build", 20, ["preflight", "build"]),
        ("run --rm migrate", 30, ["preflight", "build", "migrate"]),
        ("up -d", 40, ["preflight", "build", "migrate", "start"]),
        ("gates smoke", 50, ["preflight", "build", "migrate", "start", "smoke"]),
    ],
)
def test_a_deploy_stops_at_the_first_failing_stage_with_its_exit_code(
    tmp_path, fail_on, code, stages_run
):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "current_tag").write_text("v1\n")

    result, calls = run_script(tmp_path, "deploy.sh", fail_on=fail_on)

    assert result.returncode == code, result.stdout
    assert [stage_of(call) for call in calls] == stages_run
    failed = stages_run[-1]
    assert f"{failed:<10} FAILED   exit {code}: stand-in: {fail_on} failed" in result.stdout
    log = next((tmp_path / "logs").glob("deploy-*-v2.log"))
    assert f"log: {log}" in result.stdout
    # A failed deploy is not the current one: rollback still returns to what ran.
    assert (tmp_path / "state" / "current_tag").read_text().strip() == "v1"


def test_a_dry_run_prints_the_commands_and_runs_none(tmp_path):
    result, calls = run_script(tmp_path, "deploy.sh", "--dry-run")
    assert result.returncode == 0 and calls == []
    printed = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert [stage_of(line) for line in printed] == [
        "build",
        "migrate",
        "start",
        "preflight",
        "smoke",
    ]
    assert "(dry run)" in result.stdout


def test_rollback_restarts_the_previous_tag(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "previous_tag").write_text("v1\n")

    dry, calls = run_script(tmp_path, "rollback.sh", "--dry-run", ATTENDANCE_TAG="")
    assert dry.returncode == 0 and calls == [] and "ATTENDANCE_TAG=v1" in dry.stdout

    result, calls = run_script(tmp_path, "rollback.sh", ATTENDANCE_TAG="")
    assert result.returncode == 0, result.stderr
    assert len(calls) == 1 and calls[0].endswith(
        "up -d --no-deps static web worker worker-imports beat nginx"
    )
    assert (tmp_path / "state" / "current_tag").read_text().strip() == "v1"


def test_rollback_without_a_previous_tag_says_so(tmp_path):
    result, calls = run_script(tmp_path, "rollback.sh", ATTENDANCE_TAG="")
    assert result.returncode == 1 and calls == []
    assert "no previous tag" in result.stderr
