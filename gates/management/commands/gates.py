"""``manage.py gates <gate>`` runs a gate and stores the run; ``gates dashboard`` and
``gates decide`` report on the stored runs.

Exit codes: a gate run 0 pass, 1 fail, 2 error; ``decide`` 0 only on GO (1 NO-GO,
3 CONDITIONAL); ``dashboard`` 0."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from gates.choices import RunStatus
from gates.services.registry import GATES

EXIT_BY_STATUS = {RunStatus.PASS: 0, RunStatus.FAIL: 1, RunStatus.ERROR: 2}
REPORTS = ("dashboard", "decide")


class Command(BaseCommand):
    help = "Run a readiness gate (preflight, smoke, strict, perf, metrics) or report on them."

    def add_arguments(self, parser):
        parser.add_argument("name", choices=[*GATES, *REPORTS])
        parser.add_argument("--drill", action="store_true", help="Store the run as a drill.")
        parser.add_argument(
            "--base-url", help="The deployment under test (smoke, perf, …; GATES_BASE_URL)."
        )
        parser.add_argument("--token", help="An admin's bearer token for --base-url (GATES_TOKEN).")
        parser.add_argument(
            "--requester-token",
            help="smoke, strict: the token of a dedicated test employee of the same "
            "organisation, who asks for the correction the admin approves (it stays on their "
            "days); default: the smoke's own synthetic employee, with a token for the run.",
        )
        parser.add_argument("--rows", type=int, help="perf: rows to import.")
        parser.add_argument("--compose", help="preflight: a compose file to inspect.")
        parser.add_argument("--json", action="store_true", help="Print JSON.")
        parser.add_argument("--markdown", action="store_true", help="Print Markdown.")
        parser.add_argument("--html", action="store_true", help="decide: print HTML.")

    def handle(self, *args, name, **options):
        if name == "dashboard":
            return self._dashboard(options)
        if name == "decide":
            return self._decide(options)
        return self._run(name, options)

    def _run(self, name, options):
        from django.conf import settings

        from gates.services import run_gate
        from gates.tasks import OVER_HTTP

        gate_options = {
            key: options[key]
            for key in ("base_url", "token", "requester_token", "rows", "compose")
            if options.get(key) not in (None, "")
        }
        if name in OVER_HTTP:  # the deployment's own address and token (deploy.sh's smoke)
            gate_options.setdefault("base_url", settings.GATES_BASE_URL)
            gate_options.setdefault("token", settings.GATES_TOKEN)
            gate_options = {key: value for key, value in gate_options.items() if value}
        if name == "perf" and (gate_options.get("rows") or 0) >= settings.GATES_PERF_SCALE_ROWS:
            name = "perf-scale"  # the high-scale variant is its own P2 gate
        run = run_gate(name, options=gate_options, drill=options["drill"], trigger="cli")
        if options["json"]:
            from gates.selectors import run_as_dict

            self.stdout.write(json.dumps(run_as_dict(run, log=False), indent=2, default=str))
        else:
            self.stdout.write(run.log)
            self.stdout.write(
                f"\n{run.gate} run #{run.pk}: {run.status.upper()}"
                + (" (drill)" if run.drill else "")
                + (
                    f" — {run.failed_check} ({run.failure_kind}): {run.remediation}"
                    if run.status != RunStatus.PASS
                    else ""
                )
            )
        raise SystemExit(EXIT_BY_STATUS[run.status])

    def _dashboard(self, options):
        from gates.services.dashboard import dashboard, dashboard_markdown

        data = dashboard()
        if options["json"]:
            self.stdout.write(json.dumps(data, indent=2, default=str))
        else:
            self.stdout.write(dashboard_markdown(data))

    def _decide(self, options):
        from gates.services.decision import DECISION_EXIT_CODES, decide, render

        packet = decide()
        if options["json"]:
            self.stdout.write(json.dumps(packet, indent=2, default=str))
        elif options["html"]:
            self.stdout.write(render(packet, "html"))
        else:
            self.stdout.write(render(packet, "markdown"))
        code = DECISION_EXIT_CODES[packet["verdict"]]
        if code:
            raise SystemExit(code)
