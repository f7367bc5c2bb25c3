"""An uploaded file's name, made safe to store, show and log.

The name comes from the client (a query parameter or a multipart header) and is kept only
for people to recognise their upload: files are stored under a generated id, never under
this name. It still reaches PostgreSQL (``ImportUpload.filename``, the audit event's JSON)
and the pages, so it must hold nothing PostgreSQL refuses (a NUL byte is a DataError in
``text`` and in ``jsonb``), nothing that forges log lines or reorders what a reader sees
(bidi overrides), and no path.
"""

from __future__ import annotations

import unicodedata

FALLBACK_FILENAME = "upload"
# ImportUpload.filename is a varchar(255); PostgreSQL counts characters, as Python does.
MAX_FILENAME_CHARS = 255
# Longer than this after the last dot, it is part of the name rather than an extension.
_MAX_EXTENSION_CHARS = 16

# Cc: C0/C1 controls (NUL, TAB, CR, LF, DEL…). Cf: invisible format characters (bidi
# overrides and isolates, zero-width spaces, BOM). Cs: lone surrogates, which a name decoded
# with surrogateescape carries and which cannot be encoded to UTF-8 for the database.
# Zl/Zp: the line and paragraph separators, which split a log line as LF does.
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def clean_filename(name: str | None) -> str:
    """``name`` without control or invisible format characters, without any directory part
    (``/`` or ``\\``), trimmed, at most 255 characters (the extension kept), or
    ``"upload"`` when nothing is left. Other text, Chinese included, is kept as it is.
    Cleaning a cleaned name changes nothing."""
    if not name:
        return FALLBACK_FILENAME
    text = "".join(
        char for char in str(name) if unicodedata.category(char) not in _REMOVED_CATEGORIES
    )
    # Controls go first: "..\x00/x" must not hide a separator from the split.
    parts = [part.strip() for part in text.replace("\\", "/").split("/")]
    parts = [part for part in parts if part not in ("", ".", "..")]
    text = parts[-1] if parts else ""
    return _shortened(text) or FALLBACK_FILENAME


def _shortened(text: str) -> str:
    if len(text) <= MAX_FILENAME_CHARS:
        return text
    stem, dot, extension = text.rpartition(".")
    if not dot or not stem or len(extension) > _MAX_EXTENSION_CHARS:
        return text[:MAX_FILENAME_CHARS].rstrip()
    extension = dot + extension
    return stem[: MAX_FILENAME_CHARS - len(extension)].rstrip() + extension
