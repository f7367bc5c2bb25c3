"""``make test`` beside ``make run``: the tests' embedded server and broker folders are not
the site's, so stopping one never stops the database under the other."""

from __future__ import annotations

import subprocess

from tests.support import PYTHON, ROOT


def _embedded_paths(*, under_pytest: bool, **env: str) -> list[str]:
    code = (
        ("import pytest\n" if under_pytest else "")
        + "from config import embedded\n"
        + "print(embedded.PGDATA); print(embedded.BROKER_DIR)\n"
    )
    clean = {"PATH": "/usr/bin:/bin", **env}
    result = subprocess.run(
        [PYTHON, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def test_the_tests_use_an_embedded_server_of_their_own():
    site = _embedded_paths(under_pytest=False)
    tests = _embedded_paths(under_pytest=True)
    assert site == [str(ROOT / ".data" / "pg"), str(ROOT / ".data" / "broker")]
    assert tests == [str(ROOT / ".data" / "test" / "pg"), str(ROOT / ".data" / "test" / "broker")]


def test_a_child_of_the_tests_finds_the_tests_server():
    """A worker started by a test is no pytest process: it inherits the tests' data folder."""
    inherited = _embedded_paths(
        under_pytest=False, ATTENDANCE_DATA_DIR=str(ROOT / ".data" / "test")
    )
    assert inherited[0] == str(ROOT / ".data" / "test" / "pg")
