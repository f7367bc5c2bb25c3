"""Find text in Django templates that a person reads but no translation tag wraps.

The scan removes what is not prose (template tags and variables, comments, scripts and
styles, the markup itself, entities) and everything inside `{% translate %}` and
`{% blocktranslate %}`; whatever still holds a Latin letter was left unmarked. Attribute
values that people read (title, aria-label, placeholder, alt) are scanned as well.
"""

import re
from pathlib import Path

BLOCK_TRANSLATE = re.compile(
    r"{%\s*block(?:trans|translate)\b.*?%}.*?{%\s*endblock(?:trans|translate)\s*%}", re.S
)
COMMENT_BLOCK = re.compile(r"{%\s*comment\s*%}.*?{%\s*endcomment\s*%}", re.S)
# `{% block body_class %}page-imports{% endblock %}`: CSS class names, not prose.
CLASS_BLOCK = re.compile(r"{%\s*block\s+\w*class\w*\s*%}.*?{%\s*endblock\b.*?%}", re.S)
# A placeholder that shows a format or a code name (`YYYY-MM-DD`, `imports.batch.committed`).
CODE_LIKE = re.compile(r"^[\w.\[\]:-]*[.\[\]_][\w.\[\]:-]*$|^[A-Z0-9_-]+$")
SCRIPT_OR_STYLE = re.compile(r"<(script|style)\b.*?</\1>", re.S | re.I)
TEMPLATE_SYNTAX = re.compile(r"{%.*?%}|{{.*?}}|{#.*?#}", re.S)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
READ_ATTRIBUTE = re.compile(
    r"""\b(?:title|aria-label|placeholder|alt)\s*=\s*(["'])(.*?)\1""", re.S | re.I
)
# The caption of a submit or button input.
BUTTON_VALUE = re.compile(
    r"""<input\b[^>]*\btype=["'](?:submit|button)["'][^>]*\bvalue=(["'])(.*?)\1""", re.S | re.I
)
TAG = re.compile(r"<[^>]*>", re.S)
ENTITY = re.compile(r"&[#\w]+;")
LETTER = re.compile(r"[A-Za-z]")
# Not prose: units, the product's own code names and marks that read the same in every language.
ALLOWED = {"UTC", "CSV", "XLSX", "SHA", "API", "JSON", "ID", "IP", "p50", "p95", "ms", "s", "×"}


def unmarked_text(source: str) -> list[str]:
    text = COMMENT_BLOCK.sub(" ", source)
    text = CLASS_BLOCK.sub(" ", text)
    text = BLOCK_TRANSLATE.sub(" ", text)
    text = SCRIPT_OR_STYLE.sub(" ", text)
    text = HTML_COMMENT.sub(" ", text)
    found = []
    for match in [*READ_ATTRIBUTE.finditer(text), *BUTTON_VALUE.finditer(text)]:
        value = TEMPLATE_SYNTAX.sub(" ", match.group(2))
        if _is_prose(value) and not CODE_LIKE.match(value.strip()):
            found.append(value.strip())
    text = TEMPLATE_SYNTAX.sub("\n", text)
    text = TAG.sub("\n", text)
    text = ENTITY.sub(" ", text)
    for chunk in text.split("\n"):
        if _is_prose(chunk):
            found.append(chunk.strip())
    return found


def _is_prose(chunk: str) -> bool:
    words = [word for word in re.split(r"[\s·:,.()/\-–—|]+", chunk) if word]
    return any(LETTER.search(word) and word not in ALLOWED for word in words)


def template_files(*roots: Path) -> list[Path]:
    return sorted(path for root in roots for path in root.rglob("*.html"))
