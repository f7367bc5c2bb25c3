"""Network exposure: the database and Redis reachable only privately, and not published by
the compose file.

- **Public interfaces.** A host is fine when it is a Unix socket, a loopback or private
  (RFC 1918, IPv6 unique-local or link-local) address, or a name that resolves only to such
  addresses. A name that does not resolve here is judged by its shape: a single label
  (``db``, ``redis``) is a compose or cluster service name, private by construction; a
  dotted name that does not resolve cannot be judged and fails. ``0.0.0.0``, public and
  other special addresses fail. A compose service must not publish 5432/6379 (or any port
  of a postgres/redis image) on anything but a loopback host address; no host address (the
  default) means every interface, as does ``network_mode: host``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml
from django.conf import settings
from django.utils.translation import gettext as _

from gates.services.runs import CheckFailed, GateContext

SENSITIVE_PORTS = {5432: "PostgreSQL", 6379: "Redis"}
DATABASE_IMAGES = {
    "postgres",
    "postgresql",
    "postgis",
    "timescaledb",
    "redis",
    "redis-stack",
    "redis-stack-server",
    "valkey",
    "keydb",
}
COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
PRIVATE_NETWORKS = [
    ipaddress.ip_network(network)
    for network in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
]


# --- network exposure --------------------------------------------------------------------


def split_urls(value: str) -> list[str]:
    """kombu accepts several broker URLs in one string (failover), ``;``-separated."""
    return [part.strip() for part in value.split(";") if part.strip()]


def cache_locations(config: dict) -> list[str]:
    backend = config.get("BACKEND", "")
    if not any(word in backend.lower() for word in ("redis", "memcache")):
        return []  # a table name (database cache) or an in-process cache: no host
    location = config.get("LOCATION") or []
    locations = [location] if isinstance(location, str) else list(location)
    return [part.strip() for item in locations for part in re.split(r"[,;]", item) if part]


def judge_host(host: str) -> tuple[bool, str]:
    """Whether a service at ``host`` is reachable only privately, and why (module docstring)."""
    host = (host or "").strip().strip("[]")
    if not host or host.startswith("/"):
        return True, _("a Unix socket")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return _judge_name(host)
    return _judge_address(address)


def _judge_address(address) -> tuple[bool, str]:
    if address.is_unspecified:
        return False, _("%(address)s means every interface") % {"address": address}
    if address.is_loopback:
        return True, _("%(address)s is loopback") % {"address": address}
    if any(address in network for network in PRIVATE_NETWORKS):
        return True, _("%(address)s is private") % {"address": address}
    return False, _("%(address)s is not a private address") % {"address": address}


def _judge_name(host: str) -> tuple[bool, str]:
    try:
        infos = socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        if "." not in host:
            return True, _("%(host)s is a service name (not resolvable here)") % {"host": host}
        return False, _("%(host)s does not resolve here, so it cannot be judged") % {"host": host}
    addresses = sorted({ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}, key=str)
    verdicts = [_judge_address(address) for address in addresses]
    public = [reason for ok, reason in verdicts if not ok]
    if public:
        return False, _("%(host)s resolves to %(reasons)s") % {
            "host": host,
            "reasons": "; ".join(public),
        }
    return True, _("%(host)s resolves to %(addresses)s only") % {
        "host": host,
        "addresses": ", ".join(map(str, addresses)),
    }


# Schemes that reach no network service of their own: in-process, folders, or the broker's.
LOCAL_SCHEMES = {"filesystem", "memory", "rpc", "file", "cache", "django-db", "db"}


def _url_hosts(url: str) -> list[str]:
    """The hosts a URL reaches ("" for a Unix socket; none when it reaches no server)."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return []
    if parts.scheme in ("unix", "redis+socket"):
        return [""]
    if parts.scheme:
        # kombu and redis-py connect to localhost when a URL names no host.
        return [unquote(parts.hostname or "") or "localhost"]
    if url.startswith(("unix:", "/")):  # memcached's socket spelling
        return [""]
    return [url.rsplit(":", 1)[0] if url.count(":") == 1 else url]


def _service_endpoints() -> list[tuple[str, str]]:
    """(setting, host) of every database and Redis (or other cache) endpoint configured."""
    endpoints = [
        (f"DATABASES[{alias}]", database.get("HOST") or "")
        for alias, database in settings.DATABASES.items()
    ]
    owner = getattr(settings, "DATABASE_OWNER", None)
    if owner:
        endpoints.append(("DATABASE_MIGRATE_URL", owner.get("HOST") or ""))
    for name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        value = getattr(settings, name, "") or ""
        if "://" not in value:
            continue  # unset, or a result backend named without a URL
        for url in split_urls(value):
            endpoints += [(name, host) for host in _url_hosts(url)]
    for alias, config in settings.CACHES.items():
        for location in cache_locations(config):
            endpoints += [(f"CACHES[{alias}]", host) for host in _url_hosts(location)]
    return endpoints


def probe_private_hosts():
    judged, public = [], []
    for setting, host in _service_endpoints():
        ok, reason = judge_host(host)
        judged.append({"setting": setting, "host": host, "private": ok, "reason": reason})
        if not ok:
            public.append(f"{setting}: {reason}")
    evidence = {"endpoints": judged}
    if public:
        raise CheckFailed(
            _("reachable on a public interface: %(which)s") % {"which": "; ".join(public)},
            evidence=evidence,
        )
    return _("%(count)s endpoint(s), all private") % {"count": len(judged)}, evidence


# --- compose -----------------------------------------------------------------------------


@dataclass
class PortMapping:
    host_ip: str
    published: str
    targets: set[int]
    raw: str


def _compose_path(ctx: GateContext) -> tuple[Path | None, bool]:
    """The compose file to read and whether it was asked for explicitly."""
    if ctx.options.get("compose"):
        return Path(ctx.options["compose"]), True
    deploy_dir = Path(settings.GATES_DEPLOY_DIR)
    for name in COMPOSE_FILES:
        if (deploy_dir / name).is_file():
            return deploy_dir / name, False
    return None, False


def _interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``$VAR`` and ``$$``."""

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("braced") or match.group("bare")
        operator, default = match.group("operator"), match.group("default") or ""
        current = variables.get(name)
        if operator == ":-" and not current:
            return default
        if operator == "-" and current is None:
            return default
        return current or ""

    pattern = r"\$\$|\$\{(?P<braced>\w+)(?:(?P<operator>:?-)(?P<default>[^}]*))?\}|\$(?P<bare>\w+)"
    return re.sub(pattern, replace, value)


def _port_range(text: str) -> set[int]:
    text = text.strip()
    if not text:
        return set()
    start, _dash, end = text.partition("-")
    try:
        first, last = int(start), int(end or start)
    except ValueError:
        return set()
    return set(range(first, min(last, first + 65535) + 1))


def parse_port(entry, variables: dict[str, str]) -> PortMapping:
    """One ``ports:`` entry, short (``[ip:][host:]container[/proto]``) or long syntax."""
    if isinstance(entry, dict):
        published = str(entry.get("published", ""))
        target = _interpolate(str(entry.get("target", "")), variables)
        host_ip = _interpolate(str(entry.get("host_ip", "") or ""), variables)
        return PortMapping(host_ip, published, _port_range(target), str(entry))
    raw = str(entry)
    text = _interpolate(raw, variables).split("/", 1)[0]
    host_ip = ""
    if text.startswith("["):  # [::1]:5432:5432
        host_ip, _bracket, text = text[1:].partition("]")
        text = text.lstrip(":")
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        host_ip, published, target = parts
    elif len(parts) == 2:
        published, target = parts
    else:
        published, target = "", parts[0]
    return PortMapping(host_ip.strip("[]"), published, _port_range(target), raw)


def _is_database_image(image: str) -> bool:
    name = image.rsplit("@", 1)[0]
    name = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    return any(part in DATABASE_IMAGES for part in name.lower().split("/"))


def _loopback(host_ip: str) -> bool:
    if host_ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(host_ip).is_loopback
    except ValueError:
        return False


def compose_exposures(document: dict, variables: dict[str, str]) -> list[dict]:
    """The services that publish a database or Redis port beyond loopback."""
    exposures = []
    services = (document or {}).get("services") or {}
    for name, service in services.items():
        service = service or {}
        image = str(service.get("image") or "")
        database_image = _is_database_image(image)
        if database_image and service.get("network_mode") == "host":
            exposures.append(
                {
                    "service": name,
                    "image": image,
                    "port": "network_mode: host",
                    "why": _("shares the host's network: it listens on every host interface"),
                }
            )
        for entry in service.get("ports") or []:
            mapping = parse_port(entry, variables)
            published = _port_range(mapping.published)
            sensitive = sorted((mapping.targets | published) & set(SENSITIVE_PORTS))
            if not (sensitive or database_image) or _loopback(mapping.host_ip):
                continue
            exposures.append(
                {
                    "service": name,
                    "image": image,
                    "port": mapping.raw,
                    "why": _("published on %(where)s")
                    % {
                        "where": mapping.host_ip
                        or _("every host interface (no host address given)")
                    },
                }
            )
    return exposures


def _dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    values = {}
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _equals, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values


def probe_compose(ctx: GateContext):
    path, explicit = _compose_path(ctx)
    if path is None:
        return _("no compose file in %(dir)s: nothing to inspect") % {
            "dir": settings.GATES_DEPLOY_DIR
        }, {"composeFile": None}
    evidence = {"composeFile": str(path), "explicit": explicit}
    if not path.is_file():
        raise CheckFailed(
            _("the compose file %(path)s does not exist") % {"path": path}, evidence=evidence
        )
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise CheckFailed(
            _("the compose file %(path)s is not YAML: %(error)s") % {"path": path, "error": exc},
            evidence=evidence,
        ) from exc
    if not isinstance(document, dict):
        raise CheckFailed(
            _("the compose file %(path)s holds no services") % {"path": path}, evidence=evidence
        )
    # Compose interpolates from the environment, then the project's .env file.
    variables = {**_dotenv(path.parent / ".env"), **os.environ}
    exposures = compose_exposures(document, variables)
    evidence.update(services=sorted(document.get("services") or {}), exposures=exposures)
    if exposures:
        raise CheckFailed(
            _("%(path)s publishes the database or Redis: %(which)s")
            % {
                "path": path.name,
                "which": "; ".join(
                    f"{item['service']} {item['port']} ({item['why']})" for item in exposures
                ),
            },
            evidence=evidence,
        )
    return _("%(path)s publishes no database or Redis port beyond loopback") % {
        "path": path.name
    }, evidence
