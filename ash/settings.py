"""The one settings module. Everything comes from the environment (django-environ).

With no configuration at all Ash runs "embedded": SQLite (WAL) under ASH_DATA_DIR, local file
storage, an in-process Celery worker on the memory transport, in-memory event transport.
`DATABASE_URL` switches to PostgreSQL (psycopg 3 pool), `REDIS_URL` to Redis.
"""

from __future__ import annotations

from pathlib import Path

import environ

from ash.eventloop import choice as _event_loop_choice
from ash.secrets import data_dir_secret

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

ASH_MODE = env.str("ASH_MODE", default="embedded")  # embedded | production
if ASH_MODE not in ("embedded", "production"):
    raise environ.ImproperlyConfigured("ASH_MODE must be 'embedded' or 'production'")
ASH_EMBEDDED = ASH_MODE == "embedded"

ASH_DATA_DIR = Path(env.str("ASH_DATA_DIR", default=str(Path.cwd() / "data"))).resolve()
ASH_DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret(name: str) -> str:
    """A secret from NAME or NAME_FILE; in embedded mode a generated one kept in the data dir."""
    if value := env.str(name, default=""):
        return value
    if path := env.str(f"{name}_FILE", default=""):
        return Path(path).read_text().strip()
    if ASH_EMBEDDED:
        return data_dir_secret(ASH_DATA_DIR / "secrets" / name.lower())
    raise environ.ImproperlyConfigured(f"{name} (or {name}_FILE) must be set in production mode")


SECRET_KEY = _secret("ASH_SECRET_KEY")
# Separate secrets, never SECRET_KEY: API-key hashes and credential encryption (a rotation list).
ASH_API_KEY_HMAC_SECRET = _secret("ASH_API_KEY_HMAC_SECRET")
# Fernet keys, newest first: encrypt with the first, decrypt with any (rotation).
ASH_CREDENTIAL_KEYS = env.list("ASH_CREDENTIAL_KEYS", default=[]) or [_secret("ASH_CREDENTIAL_KEY")]
ASH_API_KEY = env.str("ASH_API_KEY", default="")
ASH_INTERNAL_SECRET = env.str("ASH_INTERNAL_SECRET", default="")
ASH_AGENTS_ROOT = env.str("ASH_AGENTS_ROOT", default="")

DEBUG = env.bool("ASH_DEBUG", default=False)
ALLOWED_HOSTS = env.list("ASH_ALLOWED_HOSTS", default=["*"] if ASH_EMBEDDED else ["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("ASH_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "ash.core",
    "agents_app",
    "sessions_app",
    "queue_app",
    "usage_app",
    "credentials_app",
]

MIDDLEWARE = [
    "ash.middleware.BodySizeLimitMiddleware",
    "ash.middleware.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# /api/ and /health are served by ash.asgi's API handler with only these (async-native)
# middleware; the list above (sessions, CSRF, auth, messages, static files) is for the admin
# and the docs. Through Django's test client everything goes through MIDDLEWARE.
ASH_API_MIDDLEWARE = [
    "ash.middleware.BodySizeLimitMiddleware",
    "ash.middleware.SecurityHeadersMiddleware",
]
APPEND_SLASH = False
ROOT_URLCONF = "ash.urls"
ASGI_APPLICATION = "ash.asgi.application"
WSGI_APPLICATION = None

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
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default="")
if DATABASE_URL:
    _db = env.db_url_config(DATABASE_URL)
    if _db["ENGINE"] == "django.db.backends.postgresql":
        _db["CONN_MAX_AGE"] = 0  # the psycopg pool owns connection reuse
        _db.setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("ASH_DB_POOL_MIN", default=2),
            "max_size": env.int("ASH_DB_POOL_MAX", default=20),
            "timeout": env.int("ASH_DB_POOL_TIMEOUT", default=10),
        }
    DATABASES = {"default": _db}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ASH_DATA_DIR / "ash.sqlite3",
            # Persistent per-thread connections: request, worker and runner threads are
            # long-lived, and opening one (file, WAL pragmas, functions) costs ~1 ms each time.
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                # WAL lets readers (SSE, lists) run while the runner writes; IMMEDIATE avoids
                # lock-upgrade deadlocks between concurrent writers.
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- redis, celery, events ------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = REDIS_URL or "memory://"
# Plain redis:// only (rediss:// and the others keep kombu's own choice of transport).
CELERY_BROKER_TRANSPORT = "ash.celery:RedisTransport" if REDIS_URL.startswith("redis://") else None
CELERY_RESULT_BACKEND = REDIS_URL or None
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "ash"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
ASH_EVENT_TRANSPORT = "redis" if REDIS_URL else "memory"
ASH_REDIS_MAX_CONNECTIONS = env.int("ASH_REDIS_MAX_CONNECTIONS", default=10_000)
ASH_EMBEDDED_WORKER_THREADS = env.int("ASH_EMBEDDED_WORKER_THREADS", default=256)
ASH_SSE_KEEPALIVE_SECONDS = env.float("ASH_SSE_KEEPALIVE_SECONDS", default=15.0)
# A dispatched turn that no runner starts within this many seconds is failed (its runner is gone).
ASH_TURN_START_TIMEOUT = env.float("ASH_TURN_START_TIMEOUT", default=60.0)

# --- storage --------------------------------------------------------------------------------
MEDIA_ROOT = ASH_DATA_DIR / "files"
STATIC_URL = "static/"
STATIC_ROOT = ASH_DATA_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {
        "BACKEND": env.str("ASH_STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage"),
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# --- API ------------------------------------------------------------------------------------
try:  # read by ash.eventloop itself (before Django's setup): checked here so a typo fails at start
    ASH_EVENT_LOOP = _event_loop_choice()  # uvloop (when installed) | asyncio
except ValueError as exc:
    raise environ.ImproperlyConfigured(str(exc)) from None
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["ash.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["ash.auth.IsTenant"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["ash.parsers.JSONBodyParser"],
    "EXCEPTION_HANDLER": "ash.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # `?format=` is ours (agent/session file reads: json | raw), not DRF's renderer override.
    "URL_FORMAT_OVERRIDE": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ash API",
    "DESCRIPTION": "Deploy AI agents and run them as hosted, sandboxed sessions.",
    "VERSION": __import__("ash").__version__,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "ash.schema.add_async_views"],
}
ASH_MAX_BODY_BYTES = env.int("ASH_MAX_BODY_BYTES", default=16 << 20)
# Routes whose bodies legitimately carry base64 files (workspace bundles, file batches).
ASH_MAX_UPLOAD_BODY_BYTES = env.int("ASH_MAX_UPLOAD_BODY_BYTES", default=140 << 20)
DATA_UPLOAD_MAX_MEMORY_SIZE = None  # enforced by BodySizeLimitMiddleware with a clear 413
ASH_AGENT_MAX_BYTES = env.int("ASH_AGENT_MAX_BYTES", default=100 << 20)
ASH_AGENT_MAX_FILES = env.int("ASH_AGENT_MAX_FILES", default=5000)

# --- sandboxes --------------------------------------------------------------------------------
ASH_ISOLATION = env.str("ASH_ISOLATION", default="")  # "" = best available, "strict" = refuse to degrade
ASH_SANDBOX_BACKEND = env.str("ASH_SANDBOX_BACKEND", default="process")  # process | docker
ASH_DOCKER_IMAGE = env.str("ASH_DOCKER_IMAGE", default="")
ASH_DOCKER_HOST = env.str("ASH_DOCKER_HOST", default="") or env.str("DOCKER_HOST", default="")
ASH_MAX_SANDBOXES = env.int("ASH_MAX_SANDBOXES", default=100)
# Snapshot the workspace after turns (off the request path), once the session has been quiet for
# ASH_SNAPSHOT_DELAY seconds and at the latest ASH_SNAPSHOT_MAX_DELAY seconds after its first
# unsaved turn: a crashed runner loses at most that much workspace work (messages are in the DB).
ASH_SNAPSHOT_AFTER_TURN = env.bool("ASH_SNAPSHOT_AFTER_TURN", default=True)
ASH_SNAPSHOT_DELAY = env.float("ASH_SNAPSHOT_DELAY", default=2.0)
ASH_SNAPSHOT_MAX_DELAY = env.float("ASH_SNAPSHOT_MAX_DELAY", default=30.0)
ASH_IDLE_TIMEOUT = env.int("ASH_IDLE_TIMEOUT", default=1800)  # seconds

ASH_QUEUE_LEASE_SECONDS = env.int("ASH_QUEUE_LEASE_SECONDS", default=3600)
ASH_QUEUE_ENABLED = env.bool("ASH_QUEUE_ENABLED", default=True)
ASH_RUNNER_ID = env.str("ASH_RUNNER_ID", default="")
ASH_RUNNER_HEARTBEAT_SECONDS = env.int("ASH_RUNNER_HEARTBEAT_SECONDS", default=10)
ASH_RUNNER_DEAD_AFTER_SECONDS = env.int("ASH_RUNNER_DEAD_AFTER_SECONDS", default=30)

# --- the rest ---------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("ASH_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
    },
}
