"""The beat task runs the scheduled gates; the HTTP gates only with a deployment to test."""

from __future__ import annotations

import pytest

from gates.models import GateRun
from gates.services import registry
from gates.tasks import run_scheduled_gates

pytestmark = pytest.mark.django_db


def finishing(ctx):
    ctx.check("base url given", lambda: ctx.options.get("base_url") or "none")
    ctx.finish()


def test_beat_runs_the_scheduled_gates_and_skips_http_ones_without_an_address(
    settings, monkeypatch
):
    monkeypatch.setitem(
        registry.GATES,
        "preflight",
        registry.GateSpec("preflight", "P0", f"{__name__}:finishing", "test stand-in"),
    )
    settings.GATES_SCHEDULED = ["preflight", "smoke"]
    settings.GATES_BASE_URL = ""

    assert run_scheduled_gates() == {
        "preflight": "pass",
        "smoke": "skipped: GATES_BASE_URL not set",
    }
    run = GateRun.objects.get()
    assert (run.gate, run.trigger, run.drill) == ("preflight", "beat", False)


def test_beat_gives_the_http_gates_the_configured_deployment(settings, monkeypatch):
    monkeypatch.setitem(
        registry.GATES,
        "metrics",
        registry.GateSpec("metrics", "P1", f"{__name__}:finishing", "test stand-in"),
    )
    settings.GATES_SCHEDULED = ["metrics"]
    settings.GATES_BASE_URL = "http://127.0.0.1:9"
    settings.GATES_TOKEN = "att_beat"

    assert run_scheduled_gates() == {"metrics": "pass"}
    run = GateRun.objects.get()
    assert run.base_url == "http://127.0.0.1:9" and "token" not in run.options
    assert run.evidence["checks"][0]["detail"] == "http://127.0.0.1:9"
