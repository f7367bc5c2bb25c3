"""nginx: the proxy in front of the application lets the largest import through.

- **nginx.** Every ``*.conf`` under ``GATES_DEPLOY_DIR/nginx``; for each server, the location
  nginx would choose for the import endpoints (exact, longest prefix, ``^~``, then regexes
  in order) and, where it proxies to the app, the effective ``client_max_body_size``
  (location, else server, else http, else nginx's 1m; 0 is unlimited) must hold the largest
  upload plus the API's multipart slack, and ``proxy_read_timeout``, ``proxy_send_timeout``
  and ``client_body_timeout`` (nginx's default 60s) must reach
  ``GATES_PREFLIGHT_MIN_PROXY_TIMEOUT_SECONDS`` (see config/settings.py). ``include`` is
  not followed (listed in the evidence). No configuration at all fails: unverified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.utils.translation import gettext as _

from gates.services.runs import CheckFailed, GateContext

NGINX_DEFAULTS = {
    "client_max_body_size": "1m",
    "proxy_read_timeout": "60s",
    "proxy_send_timeout": "60s",
    "client_body_timeout": "60s",
}
NGINX_TIMEOUTS = ("proxy_read_timeout", "proxy_send_timeout", "client_body_timeout")
# The requests of an import: the upload carries the file, preview and commit the long work.
IMPORT_URL_NAMES = ("import-api:upload", "import-api:preview", "import-api:commit")


@dataclass
class NginxBlock:
    name: str
    args: list[str]
    directives: list[tuple[str, list[str]]] = field(default_factory=list)
    blocks: list[NginxBlock] = field(default_factory=list)

    def value(self, name: str) -> str | None:
        found = [args for directive, args in self.directives if directive == name]
        return " ".join(found[-1]) if found else None

    def children(self, name: str) -> list[NginxBlock]:
        return [block for block in self.blocks if block.name == name]


def _nginx_tokens(text: str):
    index, length = 0, len(text)
    while index < length:
        char = text[index]
        if char.isspace():
            index += 1
        elif char == "#":
            newline = text.find("\n", index)
            index = length if newline < 0 else newline + 1
        elif char in "{};":
            yield char
            index += 1
        elif char in "\"'":
            end = index + 1
            while end < length and text[end] != char:
                end += 2 if text[end] == "\\" else 1
            yield text[index + 1 : end]
            index = end + 1
        else:
            end = index
            while end < length and not text[end].isspace() and text[end] not in "{};":
                end += 1
            yield text[index:end]
            index = end


def parse_nginx(text: str) -> NginxBlock:
    """The configuration as a tree of blocks and their directives (``main`` at the top)."""
    root = NginxBlock("main", [])
    stack, words = [root], []
    for piece in _nginx_tokens(text):
        if piece == ";":
            if words:
                stack[-1].directives.append((words[0], words[1:]))
            words = []
        elif piece == "{":
            block = NginxBlock(words[0] if words else "", words[1:])
            stack[-1].blocks.append(block)
            stack.append(block)
            words = []
        elif piece == "}":
            if len(stack) == 1:
                raise ValueError(_("unbalanced '}'"))
            stack.pop()
            words = []
        else:
            words.append(piece)
    if len(stack) != 1:
        raise ValueError(_("unclosed block"))
    return root


def parse_nginx_size(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", value.strip())
    if not match:
        raise ValueError(_("not an nginx size: %(value)s") % {"value": value})
    unit = match.group(2).lower()
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


NGINX_TIME_UNITS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "M": 30 * 86400,
    "y": 365 * 86400,
}


def parse_nginx_time(value: str) -> float:
    """Seconds: ``90``, ``90s``, ``5m``, ``1h``, ``1h 30m``, ``500ms`` (bare = seconds)."""
    text = value.strip()
    if not re.fullmatch(r"(?:\d+(?:ms|[smhdwMy])?\s*)+", text):
        raise ValueError(_("not an nginx time: %(value)s") % {"value": value})
    return sum(
        int(number) * NGINX_TIME_UNITS[unit or "s"]
        for number, unit in re.findall(r"(\d+)(ms|[smhdwMy]?)", text)
    )


def _location_pattern(location: NginxBlock) -> tuple[str, str]:
    args = location.args
    if len(args) >= 2:
        return args[0], args[1]
    pattern = args[0] if args else ""
    for modifier in ("^~", "~*", "=", "~"):
        if pattern.startswith(modifier) and pattern != modifier:
            return modifier, pattern[len(modifier) :]
    return "", pattern


def match_location(server: NginxBlock, path: str) -> NginxBlock | None:
    """The location nginx chooses for ``path`` among the server's own locations."""
    prefixes, regexes = [], []
    for location in server.children("location"):
        modifier, pattern = _location_pattern(location)
        if pattern.startswith("@"):
            continue
        if modifier == "=":
            if pattern == path:
                return location
        elif modifier in ("", "^~"):
            if path.startswith(pattern):
                prefixes.append((len(pattern), modifier, location))
        elif modifier in ("~", "~*"):
            regexes.append((re.IGNORECASE if modifier == "~*" else 0, pattern, location))
    longest = max(prefixes, key=lambda item: item[0]) if prefixes else None
    if longest and longest[1] == "^~":
        return longest[2]
    for flags, pattern, location in regexes:
        try:
            if re.search(pattern, path, flags):
                return location
        except re.error:
            continue
    return longest[2] if longest else None


def _effective(name: str, *levels: tuple[str, NginxBlock]) -> tuple[str, str]:
    for level, block in levels:
        value = block.value(name)
        if value is not None:
            return value, level
    return NGINX_DEFAULTS[name], "default"


def _server_label(server: NginxBlock) -> str:
    names = server.value("server_name")
    listen = server.value("listen")
    return " ".join(part for part in (names, f"listen {listen}" if listen else "") if part)


def nginx_problems(
    text: str, *, paths: list[str], min_body: int, min_timeout: float
) -> tuple[list[dict], list[str], list[str]]:
    """The proxied (server, path) pairs with their effective limits, the problems found and
    the includes not followed."""
    root = parse_nginx(text)
    http_blocks = root.children("http")
    contexts = [(block, block) for block in http_blocks] or [(root, root)]
    judged, problems = [], []
    includes = sorted({value for name, value in _all_directives(root) if name == "include"})
    for http, container in contexts:
        for server in container.children("server"):
            for path in paths:
                location = match_location(server, path)
                if location is None or location.value("proxy_pass") is None:
                    continue
                levels = (("location", location), ("server", server), ("http", http))
                entry = {
                    "server": _server_label(server),
                    "path": path,
                    "location": " ".join(location.args),
                }
                value, source = _effective("client_max_body_size", *levels)
                size = parse_nginx_size(value)
                entry["client_max_body_size"] = {"value": value, "bytes": size, "from": source}
                if size and size < min_body:
                    problems.append(
                        _("client_max_body_size %(value)s (%(source)s) is below %(minimum)s bytes")
                        % {"value": value, "source": source, "minimum": min_body}
                    )
                for name in NGINX_TIMEOUTS:
                    value, source = _effective(name, *levels)
                    seconds = parse_nginx_time(value)
                    entry[name] = {"value": value, "seconds": seconds, "from": source}
                    if seconds < min_timeout:
                        problems.append(
                            _("%(name)s %(value)s (%(source)s) is below %(minimum)s s")
                            % {
                                "name": name,
                                "value": value,
                                "source": source,
                                "minimum": min_timeout,
                            }
                        )
                judged.append(entry)
    return judged, list(dict.fromkeys(problems)), includes


def _all_directives(block: NginxBlock):
    for name, args in block.directives:
        yield name, " ".join(args)
    for child in block.blocks:
        yield from _all_directives(child)


def probe_nginx(ctx: GateContext):
    from django.urls import reverse

    from imports.api.views import MULTIPART_SLACK

    directory = Path(settings.GATES_DEPLOY_DIR) / "nginx"
    files = sorted(directory.glob("*.conf")) if directory.is_dir() else []
    min_body = settings.IMPORT_UPLOAD_MAX_BYTES + MULTIPART_SLACK
    min_timeout = settings.GATES_PREFLIGHT_MIN_PROXY_TIMEOUT_SECONDS
    paths = [reverse(name) for name in IMPORT_URL_NAMES]
    evidence = {
        "directory": str(directory),
        "files": [path.name for path in files],
        "paths": paths,
        "minBodyBytes": min_body,
        "minTimeoutSeconds": min_timeout,
        "servers": [],
        "includesNotFollowed": [],
    }
    if not files:
        raise CheckFailed(
            _(
                "no nginx configuration (*.conf) in %(dir)s: the upload limit and the "
                "timeouts could not be verified"
            )
            % {"dir": directory},
            evidence=evidence,
        )
    problems = []
    for path in files:
        try:
            judged, found, includes = nginx_problems(
                path.read_text(errors="replace"),
                paths=paths,
                min_body=min_body,
                min_timeout=min_timeout,
            )
        except ValueError as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        evidence["servers"] += [{"file": path.name, **entry} for entry in judged]
        evidence["includesNotFollowed"] += includes
        problems += [f"{path.name}: {problem}" for problem in found]
    ctx.figures["nginxServers"] = len({(s["file"], s["server"]) for s in evidence["servers"]})
    if not evidence["servers"] and not problems:
        problems.append(
            _("no nginx server proxies %(path)s to the application") % {"path": paths[0]}
        )
    if problems:
        raise CheckFailed("; ".join(problems), evidence=evidence)
    return _(
        "%(count)s proxied server(s) take uploads of %(body)s bytes and wait %(timeout)s s"
    ) % {"count": ctx.figures["nginxServers"], "body": min_body, "timeout": min_timeout}, evidence
