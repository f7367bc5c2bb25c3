"""The content security policy: sent on the pages, the admin centre and the API docs, and
kept honest by the templates (no inline script, event handler or style anywhere)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import ROOT

pytestmark = pytest.mark.django_db

TEMPLATES = ROOT / "templates"
# The project's templates and every app's own (gates/templates, …); never the venv's.
TEMPLATE_FILES = sorted([*TEMPLATES.rglob("*.html"), *ROOT.glob("*/templates/**/*.html")], key=str)
EXPECTED_DIRECTIVES = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
    "base-uri": "'self'",
    "object-src": "'none'",
}

# Each pattern: something the policy would refuse to run in a template.
INLINE = {
    "inline <script>": re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>", re.IGNORECASE),
    "event handler attribute": re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE | re.DOTALL),
    "style attribute": re.compile(r"<[a-z][^>]*\sstyle\s*=", re.IGNORECASE | re.DOTALL),
    "<style> element": re.compile(r"<style\b", re.IGNORECASE),
    "javascript URL": re.compile(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", re.I),
}


def policy(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    return directives


def inline_findings(text: str) -> list[str]:
    text = re.sub(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", "", text, flags=re.DOTALL)
    text = re.sub(r"{#.*?#}", "", text, flags=re.DOTALL)
    return [
        f"{kind}: {match.group(0)[:80]!r}"
        for kind, pattern in INLINE.items()
        for match in pattern.finditer(text)
    ]


@pytest.mark.parametrize(
    "path", ["/accounts/login/", "/admin/login/", "/api/docs/", "/api/docs/?script="]
)
def test_the_policy_is_sent(client, path):
    response = client.get(path)
    assert response.status_code == 200
    directives = policy(response)
    for name, value in EXPECTED_DIRECTIVES.items():
        assert directives.get(name) == value, (name, directives)
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "unsafe-eval" not in response["Content-Security-Policy"]


def test_the_policy_is_on_logged_in_pages_and_the_admin(people):
    from django.test import Client

    client = Client()
    client.force_login(people["admin"].user)
    for path in (
        "/attendance/",
        "/admin/",
        "/admin/attendance/employee/",
        "/admin/attendance/employee/export/",
        "/imports/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert policy(response)["script-src"] == "'self'", path


def test_the_docs_load_their_script_as_a_file(client):
    page = client.get("/api/docs/").content.decode()
    assert inline_findings(page) == []
    assert '<script src="/api/docs/?script="></script>' in page
    script = client.get("/api/docs/?script=")
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_no_template_holds_inline_script_handler_or_style():
    findings = {
        str(path.relative_to(ROOT)): found
        for path in dict.fromkeys(TEMPLATE_FILES)
        if (found := inline_findings(path.read_text(encoding="utf-8")))
    }
    assert findings == {}


@pytest.mark.parametrize(
    ("snippet", "kind"),
    [
        ("<script>alert(1)</script>", "inline <script>"),
        ('<script type="module">x()</script>', "inline <script>"),
        ('<button onclick="go()">', "event handler attribute"),
        ('<input\n  type="checkbox" onchange="f(event)">', "event handler attribute"),
        ('<p style="color: red">', "style attribute"),
        ("<style>p {}</style>", "<style> element"),
        ('<a href="javascript:void(0)">', "javascript URL"),
    ],
)
def test_the_template_check_catches_each_kind(snippet, kind):
    assert [finding.split(":")[0] for finding in inline_findings(snippet)] == [kind]


@pytest.mark.parametrize(
    "snippet",
    [
        '<script src="/static/js/app.js" defer></script>',
        '<form method="post" data-once data-confirm="Roll back?">',
        '<a href="?action=x" data-action="all">',
        "{% comment %}no <style> here{% endcomment %}",
    ],
)
def test_the_template_check_passes_what_the_policy_allows(snippet):
    assert inline_findings(snippet) == []


def test_templates_dir_exists():
    assert Path(TEMPLATES).is_dir()
    assert any("gates/templates" in str(path) for path in TEMPLATE_FILES)
