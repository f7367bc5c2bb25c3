"""What an audit event must never keep: secrets, masked by a reviewed list.

Two kinds of rules, both applied to the event's ``data`` at any depth (dicts, lists):

**Key names.** A key is split into words (``_``, ``-``, ``.``, spaces and camelCase
boundaries; case folded; trailing digits dropped), so ``privateKey``, ``private_key`` and
``PRIVATE-KEY`` are the same name, and ``password2`` (Django's confirmation field) is
``password``. The key's whole value becomes :data:`MASK` when

- the whole name is in :data:`SECRET_NAMES` (``cookie``, ``sessionid``, ``dsn`` …), or
- its LAST word is in :data:`SECRET_LAST_WORDS` (``new_password``, ``webhookSecret``,
  ``commit_token``, ``X-CSRFToken``), or
- its last TWO words are in :data:`SECRET_LAST_PAIRS` (``stripe_api_key``,
  ``ssh_private_key``, ``SessionID``).

Word-based, never substring-based, so these stay visible: ``passport_no``, ``bypassed``,
``tokens_issued``, ``token_count``, ``token_prefix`` / ``prefix`` (the first characters of
an API token, shown to tell tokens apart), ``password_changed``, ``key_hash``.

Reviewed decisions (change them here, with a test):

- ``pin`` / ``device_pin`` is NOT a secret in this application: it is the employee's id on
  the attendance device (ZKTeco PIN), an identifier people search the log by.
- ``key`` alone, ``idempotency_key``, ``source_key``, ``sort_key`` are NOT secrets: "key"
  as a last word is only a secret in the pairs listed (api, private, secret, session,
  signing, encryption, access, master). An idempotency key is chosen by the client to
  make a retry safe; it authorises nothing.
- ``tokens`` (plural) is not a secret name: here it is a count far more often than a list
  of tokens. ``secrets``, ``passwords``, ``credentials`` and ``cookies`` are.
- A secret-named key whose value is ``None``, ``""`` or a boolean keeps it: such a value
  holds no secret and says something useful ("no password was set").
- Hashes of tokens (``key_hash``) stay: a SHA-256 of 256 random bits gives nothing away.

**Value patterns.** Every string value (whatever its key, inside lists too) has the
secret PART of these replaced, keeping the rest readable:

- URLs and DSNs with a password: ``postgres://app:s3cret@db/x`` → ``postgres://app:***@db/x``;
- ``name=value`` pairs whose name ends in a secret word (query strings, libpq conninfo,
  cookie headers, env lines): ``?token=abc&page=2`` → ``?token=***&page=2``;
- ``"password": "…"`` inside JSON held as text;
- HTTP credentials: ``Bearer <token>`` (8+ characters), ``Basic <base64 of user:pass>``,
  ``Token <key>`` (20+ characters with a digit, so the English word "token" survives);
- JWTs (``eyJ…`` header, three base64url parts);
- PEM private key blocks (``-----BEGIN … PRIVATE KEY-----`` … ``END``);
- well-known key formats: this application's API tokens (``att_`` + 43 characters; the
  10-character prefix kept in events does not match), Stripe (``sk_live_`` …), GitHub
  (``ghp_`` …, ``github_pat_``), Slack (``xox?-``), Google API keys (``AIza…``) and AWS
  access key ids (``AKIA``/``ASIA`` + 16; the secret half of an AWS pair has no
  recognisable shape: it is masked by its key name, ``aws_secret_access_key``).

Commit tokens of the import pipeline are bare random strings: only their key names
(``commitToken``) identify them, and those are masked by the last-word rule.
"""

from __future__ import annotations

import base64
import binascii
import re

MASK = "***"

SECRET_NAMES = frozenset(
    {
        "pass",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "auth_token",
        "bearer",
        "api_key",
        "apikey",
        "private_key",
        "privatekey",
        "secret_key",
        "credentials",
        "credential",
        "authorization",
        "proxy_authorization",
        "cookie",
        "cookies",
        "set_cookie",
        "sessionid",
        "session_id",
        "session_key",
        "csrftoken",
        "csrf_token",
        "csrfmiddlewaretoken",
        "otp",
        "totp",
        "signature",
        "dsn",
        "database_url",
    }
)

SECRET_LAST_WORDS = frozenset(
    {
        "password",
        "passwords",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "cookie",
        "cookies",
        "credential",
        "credentials",
        "authorization",
        "apikey",
        "privatekey",
        "sessionid",
        "csrftoken",
        "csrfmiddlewaretoken",
        "otp",
        "dsn",
        "signature",
    }
)

SECRET_LAST_PAIRS = frozenset(
    {
        ("api", "key"),
        ("private", "key"),
        ("secret", "key"),
        ("session", "key"),
        ("session", "id"),
        ("signing", "key"),
        ("encryption", "key"),
        ("access", "key"),
        ("master", "key"),
        ("database", "url"),
    }
)

# camelCase and acronyms: "APIKey" → API, Key; "privateKey" → private, Key; "X-CSRFToken" →
# X, CSRF, Token. Digits are their own word (dropped when trailing).
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def key_words(key) -> tuple[str, ...]:
    """A key as lower-case words, trailing numbers dropped: ``newPassword2`` → new, password."""
    words = [word.lower() for word in _WORD.findall(str(key))]
    while words and words[-1].isdigit():
        words.pop()
    return tuple(words)


def is_secret_key(key) -> bool:
    words = key_words(key)
    if not words:
        return False
    return (
        "_".join(words) in SECRET_NAMES
        or words[-1] in SECRET_LAST_WORDS
        or words[-2:] in SECRET_LAST_PAIRS
    )


# --- value patterns ---------------------------------------------------------------------

# scheme://authority: the authority ends at the first / ? # or whitespace; its userinfo is
# everything up to the LAST @ (a password may hold an unencoded @, as parsers allow).
_URL_AUTHORITY = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<authority>[^/?#\s]+)")

_MASKED_NAME_WORDS = (
    r"(?:password|passwd|pwd|passphrase|secret|token|api_?key|access_?key|private_?key"
    r"|signature|sessionid|session_?key|credentials?|dsn)"
)
# name=value (query strings, conninfo, cookies, env lines): the name ENDS in a secret word.
_NAME_VALUE = re.compile(
    r"(?P<name>(?<![\w-])[\w-]*?" + _MASKED_NAME_WORDS + r")(?P<eq>\s*=\s*)"
    r"(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;,'\"]+)",
    re.IGNORECASE,
)
# "password": "…" in JSON held as text.
_QUOTED_PAIR = re.compile(
    r"(?P<name>([\"'])[\w-]*?" + _MASKED_NAME_WORDS + r"\2\s*:\s*)"
    r"(?P<value>\"(?:[^\"\\]|\\.)*\"|'[^']*')",
    re.IGNORECASE,
)
_TOKEN68 = r"[A-Za-z0-9\-._~+/]+=*"
_BEARER = re.compile(r"(?P<scheme>\bBearer\s+)(?P<value>" + _TOKEN68 + ")", re.IGNORECASE)
_BASIC = re.compile(r"(?P<scheme>\bBasic\s+)(?P<value>[A-Za-z0-9+/]+={0,2})", re.IGNORECASE)
_TOKEN_SCHEME = re.compile(r"(?P<scheme>\bToken\s+)(?P<value>" + _TOKEN68 + ")", re.IGNORECASE)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
_KNOWN_KEYS = re.compile(
    r"\b(?:"
    r"att_[A-Za-z0-9_-]{32,}"  # this application's API tokens (attendance/services.py)
    r"|(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe (pk_live_ is public but cheap)
    r"|whsec_[A-Za-z0-9]{16,}"  # Stripe webhook secrets
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API keys
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids
    r")(?![A-Za-z0-9_-])"  # not \b: a urlsafe token may end in "-"
)


def _mask_url(match: re.Match) -> str:
    authority = match["authority"]
    userinfo, at, host = authority.rpartition("@")
    if not at or ":" not in userinfo:
        return match[0]
    user = userinfo.split(":", 1)[0]
    return f"{match['scheme']}{user}:{MASK}@{host}"


def _mask_basic(match: re.Match) -> str:
    # Only real Basic credentials: base64 of "user:password" (the English word stays).
    try:
        decoded = base64.b64decode(match["value"], validate=True)
    except (binascii.Error, ValueError):
        return match[0]
    if b":" not in decoded:
        return match[0]
    return match["scheme"] + MASK


def _mask_bearer(match: re.Match) -> str:
    return match["scheme"] + MASK if len(match["value"]) >= 8 else match[0]


def _mask_token_scheme(match: re.Match) -> str:
    value = match["value"]
    looks_random = len(value) >= 20 and any(c.isdigit() for c in value)
    return match["scheme"] + MASK if looks_random else match[0]


def mask_text(text: str) -> str:
    """The string with every secret-looking part replaced by :data:`MASK`."""
    text = _PEM_PRIVATE_KEY.sub(MASK, text)
    text = _URL_AUTHORITY.sub(_mask_url, text)
    text = _JWT.sub(MASK, text)
    text = _KNOWN_KEYS.sub(MASK, text)
    text = _BEARER.sub(_mask_bearer, text)
    text = _BASIC.sub(_mask_basic, text)
    text = _TOKEN_SCHEME.sub(_mask_token_scheme, text)
    text = _QUOTED_PAIR.sub(lambda m: m["name"] + f'"{MASK}"', text)
    return _NAME_VALUE.sub(lambda m: m["name"] + m["eq"] + MASK, text)


def _keeps_nothing_secret(value) -> bool:
    return value is None or value == "" or isinstance(value, bool)


def mask_secrets(value):
    """``value`` with secrets masked at any depth (a new object; the input is not changed).

    NUL characters are dropped from keys and strings on the way: PostgreSQL's jsonb refuses
    them, and one NUL (a crafted path, a pasted value) would otherwise fail the event's write.
    """
    if isinstance(value, dict):
        return {
            (key.replace("\x00", "") if isinstance(key, str) else key): (
                MASK
                if is_secret_key(key) and not _keeps_nothing_secret(item)
                else mask_secrets(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_secrets(item) for item in value]
    if isinstance(value, str):
        return mask_text(value.replace("\x00", ""))
    return value
