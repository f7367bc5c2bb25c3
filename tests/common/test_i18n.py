"""The zh-Hans catalogue is complete and current, and the pages, the scripts and the API
speak the reader's language.

- Every string a template shows is marked (``tests/common/template_text.py``).
- ``make messages`` would change nothing: gathering the marked strings again (in a copy of
  the sources) yields exactly the catalogue's entries, for Python/templates and scripts.
- Every entry is translated, nothing is fuzzy, placeholders and markup survive, and the
  compiled ``.mo`` files are the ones ``msgfmt`` makes of the ``.po`` files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation

from tests.common.template_text import template_files, unmarked_text

ROOT = Path(settings.BASE_DIR)
CATALOGUE = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES"
DOMAINS = ("django", "djangojs")
PLACEHOLDER = re.compile(r"%\(\w+\)[sdfr]|%[sd]|\{\w*\}|</?[a-z][^>]*>|`[^`]+`")


def entries(domain: str) -> list[polib.POEntry]:
    return [entry for entry in polib.pofile(str(CATALOGUE / f"{domain}.po")) if not entry.obsolete]


def test_every_string_a_template_shows_is_marked_for_translation():
    unmarked = {
        str(path.relative_to(ROOT)): found
        for path in template_files(ROOT / "templates", *ROOT.glob("*/templates"))
        if (found := unmarked_text(path.read_text(encoding="utf-8")))
    }
    assert unmarked == {}


def test_the_scan_finds_unmarked_text():
    """The scan itself: it must see prose, attributes and button captions, and nothing else."""
    source = """{% load i18n %}{% block body_class %}page-x{% endblock %}
    <h1>Plain text</h1><p>{% translate "Marked" %} {{ value }}</p>
    <a title="Read me">→</a><input type="submit" value="Send it">
    {% blocktranslate %}Inside {{ name }}{% endblocktranslate %} <code>UTC</code>
    {% comment %}A comment{% endcomment %}<script>const a = "Script";</script>"""
    assert unmarked_text(source) == ["Read me", "Send it", "Plain text"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_entry_is_translated_and_none_is_fuzzy(domain):
    catalogue = polib.pofile(str(CATALOGUE / f"{domain}.po"))
    assert [entry.msgid for entry in catalogue.untranslated_entries()] == []
    assert [entry.msgid for entry in catalogue.fuzzy_entries()] == []
    assert catalogue.metadata["Language"] == "zh_Hans"


@pytest.mark.parametrize("domain", DOMAINS)
def test_translations_keep_the_placeholders_and_the_markup(domain):
    lost = []
    for entry in entries(domain):
        translations = [entry.msgstr] if not entry.msgid_plural else entry.msgstr_plural.values()
        for msgstr in translations:
            wanted = sorted(PLACEHOLDER.findall(entry.msgid_plural or entry.msgid))
            if entry.msgid_plural:
                # The singular may name the count as text ("one"), the plural as %(count)s.
                wanted = sorted(set(wanted) | set(PLACEHOLDER.findall(entry.msgid)))
                found = sorted(set(PLACEHOLDER.findall(msgstr)))
            else:
                found = sorted(PLACEHOLDER.findall(msgstr))
            if found != wanted:
                lost.append((entry.msgid, msgstr))
    assert lost == []


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_compiled_catalogues_are_compiled_from_the_current_po_files(domain, tmp_path):
    compiled = tmp_path / f"{domain}.mo"
    subprocess.run(
        ["msgfmt", "--check-format", "-o", str(compiled), str(CATALOGUE / f"{domain}.po")],
        check=True,
    )
    assert compiled.read_bytes() == (CATALOGUE / f"{domain}.mo").read_bytes(), (
        "the .mo is stale: run make messages"
    )


def test_make_messages_would_change_nothing(tmp_path):
    """Run the catalogue's own makemessages on a copy of the tracked sources and compare the
    entries it gathers with the committed ones."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True
    ).stdout.decode()
    copy = tmp_path / "src"
    for name in filter(None, tracked.split("\0")):
        source = ROOT / name
        if name.startswith(("tests/", "benchmarks/")) or not source.is_file():
            continue
        target = copy / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    env = {
        **os.environ,
        # makemessages reads the settings only: a database that does not exist will do.
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/unused",
        "DATABASE_MIGRATE_URL": "",
        "PYTHONPATH": str(copy),
    }
    flags = ["-l", "zh_Hans", "--no-obsolete", "--no-location"]
    for domain in DOMAINS:
        subprocess.run(
            [sys.executable, "manage.py", "makemessages", "-d", domain, *flags],
            cwd=copy,
            env=env,
            check=True,
            capture_output=True,
        )
    for domain in DOMAINS:
        gathered = polib.pofile(str(copy / "locale" / "zh_Hans" / "LC_MESSAGES" / f"{domain}.po"))
        assert {(e.msgctxt, e.msgid) for e in gathered if not e.obsolete} == {
            (e.msgctxt, e.msgid) for e in entries(domain)
        }, f"{domain}.po is not what make messages gathers: run make messages"


# --- the reader's language -------------------------------------------------------------------


def zh(text: str) -> str:
    with translation.override("zh-hans"):
        translated = translation.gettext(text)
    assert translated != text
    return translated


def test_the_login_page_follows_accept_language(db):
    english = Client().get("/accounts/login/").content.decode()
    chinese = Client(headers={"accept-language": "zh-CN,zh;q=0.9"}).get("/accounts/login/")
    page = chinese.content.decode()
    assert '<html lang="zh-hans">' in page and '<html lang="en">' in english
    assert zh("Use your attendance account.") in page
    assert "Use your attendance account." in english


def test_the_language_chosen_in_the_switcher_sticks(db):
    client = Client()
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/accounts/login/"})
    assert response.status_code == 302
    assert zh("Sign in") in client.get("/accounts/login/").content.decode()


def test_my_month_in_chinese(client, organisation, make_person):
    person = make_person(organisation, "employee", username="zh_month")
    client.force_login(person.user)
    page = client.get("/attendance/", headers={"accept-language": "zh-hans"}).content.decode()
    for text in ("My month", "Request a correction", "Send for approval", "Punch in"):
        assert zh(text) in page


def test_the_scripts_catalogue_answers_in_the_readers_language(db):
    """/jsi18n/ carries the djangojs entries (what imports.js says) in the reader's language."""
    chinese = Client(headers={"accept-language": "zh-hans"}).get("/jsi18n/")
    english = Client().get("/jsi18n/")
    translated = polib.pofile(str(CATALOGUE / "djangojs.po")).find("Previewing…").msgstr
    as_in_script = json.dumps(translated)  # the catalogue is JSON inside the script
    assert chinese.status_code == 200
    assert as_in_script in chinese.content.decode()
    assert as_in_script not in english.content.decode()


def test_api_messages_follow_the_language_and_codes_do_not(client, organisation, make_person):
    person = make_person(organisation, "employee", "importer", username="zh_api")
    client.force_login(person.user)
    url = "/api/attendance/import/batches/999999"
    chinese = client.get(url, headers={"accept-language": "zh-hans"}).json()
    english = client.get(url).json()
    assert chinese["error"]["code"] == english["error"]["code"] == "NOT_FOUND"
    assert english["error"]["message"] == "No such batch in your organisation."
    assert chinese["error"]["message"] == zh("No such batch in your organisation.")


def test_dingtalk_column_names_stay_as_the_export_writes_them():
    """The formats read DingTalk's own headers; the catalogue must not have them."""
    msgids = {entry.msgid for entry in entries("django")}
    assert not {"工号", "姓名", "日期", "上班1打卡时间"} & msgids


def test_the_scripts_catalogue_is_revalidated_not_sent_again(db):
    client = Client(headers={"accept-language": "zh-hans"})
    first = client.get("/jsi18n/")
    again = client.get("/jsi18n/", headers={"if-modified-since": first["Last-Modified"]})
    assert first.status_code == 200 and again.status_code == 304
