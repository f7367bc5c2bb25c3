"""The webhooks told about escalations: which are configured, the bodies they take, and one
delivery with a bounded number of attempts.

``GATES_WEBHOOKS`` lists entries ``kind=url``; a bare URL is Slack-style. Kinds:

- ``slack``: ``{"text": …}`` (Slack incoming webhooks, and the many chat tools that accept
  the same body: Mattermost, Rocket.Chat, Microsoft Teams' legacy connectors);
- ``dingtalk``: a DingTalk robot, ``{"msgtype": "markdown", "markdown": {"title", "text"}}``.
  DingTalk answers 200 even when it refuses a message; its ``errcode`` says whether it was
  taken.

A webhook's URL is a credential (whoever knows it may post to the channel): it is never
stored, logged or shown whole; :func:`mask_url` keeps its scheme and host only.

A delivery retries what may pass on a second try (no answer, 429, 5xx, DingTalk's "too
fast") after a short backoff, at most ``GATES_WEBHOOK_ATTEMPTS`` times, each attempt bounded
by ``GATES_WEBHOOK_TIMEOUT_SECONDS``; a refusal (another 4xx, a DingTalk error) is final.
It never raises: the outcome of each attempt is in the returned :class:`Delivery`.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.utils.translation import gettext as _

SLACK, DINGTALK = "slack", "dingtalk"
KINDS = (SLACK, DINGTALK)
# "kind=url": the part before "=" is a bare word. A bare URL with "=" in its query
# (DingTalk's "?access_token=…") has "://" before its first "=", so it is never read as a
# kind.
KIND_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*)$", re.DOTALL)
BACKOFF_BASE_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 2.0
# DingTalk's robot: 0 taken; 130101 sent too fast (worth another try after the backoff).
DINGTALK_OK, DINGTALK_TOO_FAST = 0, 130101
ERROR_MAX_CHARS = 2000
BODY_EXCERPT_CHARS = 200


class WebhookConfigError(ValueError):
    """A GATES_WEBHOOKS entry that cannot be used (its message never holds the URL)."""


@dataclass(frozen=True)
class Webhook:
    kind: str
    url: str = field(repr=False)

    @property
    def target(self) -> str:
        return mask_url(self.url)

    def __str__(self) -> str:
        return f"{self.kind} {self.target}"


@dataclass
class Notice:
    """What an escalation's notification says, before it takes a webhook's shape."""

    title: str
    lines: list[str]
    link: str = ""
    link_label: str = ""


@dataclass
class Delivery:
    webhook: Webhook
    sent: bool = False
    attempts: int = 0
    response_status: int | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def error(self) -> str:
        return "; ".join(self.errors)[:ERROR_MAX_CHARS]


def mask_url(url: str) -> str:
    """``scheme://host[:port]`` and ``/***`` when the URL had a path or a query: enough to
    tell webhooks apart, useless to post with."""
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "***"
    if not parts.scheme or not host:
        return "***"
    if ":" in host:
        host = f"[{host}]"
    address = f"{parts.scheme}://{host}{f':{port}' if port else ''}"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        address += "/***"
    return address


def parse_webhook(entry: str, *, position: int = 1) -> Webhook:
    """One GATES_WEBHOOKS entry (``kind=url`` or a bare URL, Slack-style)."""
    text = str(entry).strip()
    if not text:
        raise WebhookConfigError(
            _("GATES_WEBHOOKS entry %(position)d is empty.") % {"position": position}
        )
    kind, url = SLACK, text
    prefix = KIND_PREFIX.match(text)
    if prefix:
        kind, url = prefix[1].lower(), prefix[2].strip()
        if kind not in KINDS:
            raise WebhookConfigError(
                _(
                    "GATES_WEBHOOKS entry %(position)d has the unknown kind %(kind)r; write"
                    " slack=https://… or dingtalk=https://… (a bare URL is Slack-style)."
                )
                % {"position": position, "kind": kind}
            )
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise WebhookConfigError(
            _("GATES_WEBHOOKS entry %(position)d (%(kind)s) is not an http(s) URL.")
            % {"position": position, "kind": kind}
        )
    return Webhook(kind, url)


def configured_webhooks(entries=None) -> tuple[list[Webhook], list[str]]:
    """The usable webhooks of ``entries`` (default GATES_WEBHOOKS) and a problem for each
    entry that is not: one bad entry does not silence the others."""
    if entries is None:
        entries = settings.GATES_WEBHOOKS
    if isinstance(entries, str):  # a settings override may hand the raw variable
        entries = entries.split(",")
    webhooks, problems = [], []
    for position, entry in enumerate(entries or (), start=1):
        if not str(entry).strip():
            continue  # "a,,b" or a trailing comma: nothing was meant there
        try:
            webhooks.append(parse_webhook(entry, position=position))
        except WebhookConfigError as problem:
            problems.append(str(problem))
    return webhooks, problems


# --- bodies ------------------------------------------------------------------------------


def slack_body(notice: Notice) -> dict:
    text = "\n".join([f"*{notice.title}*", *notice.lines])
    if notice.link:
        text += f"\n<{notice.link}|{notice.link_label or notice.link}>"
    return {"text": text}


def dingtalk_body(notice: Notice) -> dict:
    text = "\n".join([f"### {notice.title}", "", *(f"- {line}" for line in notice.lines)])
    if notice.link:
        text += f"\n\n[{notice.link_label or notice.link}]({notice.link})"
    return {"msgtype": "markdown", "markdown": {"title": notice.title, "text": text}}


BODIES = {SLACK: slack_body, DINGTALK: dingtalk_body}


def body_for(webhook: Webhook, notice: Notice) -> dict:
    return BODIES[webhook.kind](notice)


# --- delivery ----------------------------------------------------------------------------


def _backoff(attempt: int) -> float:
    return min(BACKOFF_BASE_SECONDS * 2 ** (attempt - 1), BACKOFF_MAX_SECONDS)


def _judge(webhook: Webhook, response: httpx.Response) -> tuple[bool, bool, str]:
    """(taken, worth retrying, what went wrong) for one answer."""
    status = response.status_code
    if status == 429 or status >= 500:
        return False, True, f"HTTP {status} {response.text[:BODY_EXCERPT_CHARS]}".strip()
    if not 200 <= status < 300:
        return False, False, f"HTTP {status} {response.text[:BODY_EXCERPT_CHARS]}".strip()
    if webhook.kind == DINGTALK:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        code = answer.get("errcode") if isinstance(answer, dict) else None
        if code not in (None, DINGTALK_OK):
            message = str(answer.get("errmsg", ""))[:BODY_EXCERPT_CHARS]
            return False, code == DINGTALK_TOO_FAST, f"DingTalk errcode {code}: {message}"
    return True, False, ""


def deliver(webhook: Webhook, body: dict, *, client: httpx.Client | None = None) -> Delivery:
    """POST ``body`` to ``webhook`` (see the module's docstring). Never raises."""
    attempts_allowed = max(1, settings.GATES_WEBHOOK_ATTEMPTS)
    delivery = Delivery(webhook)
    own_client = client is None
    if own_client:
        client = httpx.Client(
            timeout=settings.GATES_WEBHOOK_TIMEOUT_SECONDS,
            follow_redirects=False,  # a webhook that redirects is not the one configured
            headers={"User-Agent": "attendance-gates"},
        )
    try:
        for attempt in range(1, attempts_allowed + 1):
            if attempt > 1:
                time.sleep(_backoff(attempt - 1))  # a pause between tries, not a wait on us
            delivery.attempts = attempt
            try:
                response = client.post(webhook.url, json=body)
            except httpx.HTTPError as exc:
                delivery.response_status = None
                retry, problem = True, f"{type(exc).__name__}: {exc}".strip()
            except Exception as exc:  # a webhook must never break the gate's run
                delivery.response_status = None
                retry, problem = False, f"{type(exc).__name__}: {exc}".strip()
            else:
                delivery.response_status = response.status_code
                taken, retry, problem = _judge(webhook, response)
                if taken:
                    delivery.sent = True
                    return delivery
            # The URL may appear in an exception's text; it is a credential.
            problem = problem.replace(webhook.url, webhook.target)
            delivery.errors.append(
                _("attempt %(attempt)d: %(problem)s") % {"attempt": attempt, "problem": problem}
            )
            if not retry:
                break
        return delivery
    finally:
        if own_client:
            client.close()
