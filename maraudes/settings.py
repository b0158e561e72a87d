"""Maraudes settings: one file, every deploy-time value from the environment.

Every variable read here is listed and explained in `.env.example`. With no environment at
all the project runs against the project-local PostGIS cluster that `make run` starts.
"""

from __future__ import annotations

from datetime import time
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

from maraudes.env import (
    env_bbox,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_optional,
    env_path,
    env_str,
    env_time,
    local_cluster_host,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", True)
_DEV_KEY = "dev-only-not-secret-change-me-in-production-0123456789abcdef"
SECRET_KEY = env_str("SECRET_KEY", _DEV_KEY)
if not DEBUG and SECRET_KEY == _DEV_KEY:
    raise ValueError("SECRET_KEY must be set when DEBUG is off")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.gis",
    "rest_framework",
    "rest_framework.authtoken",
    "rest_framework_gis",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "leaflet",
    "channels",
    "maraudes",
    "zones",
    "api",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "api.middleware.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: the whole chain in sync mode, in one thread (see its docstring).
    "api.middleware.SyncChainMiddleware",
]

ROOT_URLCONF = "maraudes.urls"
ASGI_APPLICATION = "maraudes.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# Default: the project-local cluster started by scripts/env.sh (127.0.0.1, its own port).
LOCAL_PG_PORT = env_int("MARAUDES_PG_PORT", 54329, minimum=1)
DATABASE_URL = env_str("DATABASE_URL", f"postgis://postgres@127.0.0.1:{LOCAL_PG_PORT}/maraudes")
_db = dj_database_url.parse(DATABASE_URL, engine="django.contrib.gis.db.backends.postgis")
if env_optional("DATABASE_URL") is None:
    _db["HOST"] = local_cluster_host(BASE_DIR, LOCAL_PG_PORT)
_db["ENGINE"] = "django.contrib.gis.db.backends.postgis"
# No JIT: PostGIS functions carry high planner costs, so short coverage statements cross
# jit_above_cost and spend tens of milliseconds compiling what runs in one. Generic plans for
# prepared statements (the only ones are the write paths', see DB_PREPARED below): left to
# choose, PostgreSQL planned the coverage statements again at every batch (their custom
# plans look cheaper to it), two milliseconds of a 30-fix batch's database time.
_db.setdefault("OPTIONS", {})
_db["OPTIONS"]["options"] = (
    f"{_db['OPTIONS'].get('options', '')} -c jit=off -c plan_cache_mode=force_generic_plan"
).strip()
# Statements the write paths run for every batch of fixes (maraudes.db.prepared_cursor,
# executed with prepare=True) are prepared once per connection: parsing and planning them
# was a third of PostgreSQL's work for a 30-fix batch. Django disables prepared statements
# (prepare_threshold None) for poolers such as PgBouncer in transaction mode before 1.21; a
# huge threshold prepares those statements only, never the ORM's. DB_PREPARED=false for such a
# pooler.
if env_bool("DB_PREPARED", True):
    _db["OPTIONS"]["prepare_threshold"] = 2**31 - 1
# Under ASGI persistent connections are not reused across requests: use psycopg's pool.
if env_bool("DB_POOL", True):
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DB_POOL_MIN", 2, minimum=0),
        "max_size": env_int("DB_POOL_MAX", 20, minimum=1),
        "timeout": 10,
    }
    _db["CONN_MAX_AGE"] = 0
_test_name = env_optional("TEST_DATABASE_NAME")
if _test_name:
    _db["TEST"] = {"NAME": _test_name}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis / Channels -----------------------------------------------------------------------
REDIS_URL = env_optional("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 reads with a 5 s socket timeout by default, the length of the layer's
            # blocking pop: every websocket idle for 5 s died on a read timeout. A dead Redis
            # connection is still noticed, after 30 s.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 24 * 30, minimum=60)
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- I18n: French first ---------------------------------------------------------------------
LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", _("Français")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Europe/Paris")
USE_I18N = True
USE_TZ = True

# --- Static files (served by the app through WhiteNoise; no CDN) -----------------------------
STATIC_URL = "/static/"
STATIC_ROOT = env_path("STATIC_ROOT", BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": None,
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Maraudes API",
    "DESCRIPTION": "Coordination des maraudes : équipes, tournées, positions, zones blanches.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Maps -----------------------------------------------------------------------------------
TILES_URL = env_str("TILES_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
TILES_ATTRIBUTION = env_str("TILES_ATTRIBUTION", "&copy; les contributeurs d'OpenStreetMap")
LEAFLET_CONFIG = {
    "DEFAULT_CENTER": (48.8566, 2.3522),
    "DEFAULT_ZOOM": 12,
    "MIN_ZOOM": 3,
    "MAX_ZOOM": 19,
    "TILES": [("OpenStreetMap", TILES_URL, {"attribution": TILES_ATTRIBUTION})],
    "ATTRIBUTION_PREFIX": "Maraudes",
    "RESET_VIEW": False,
}

# --- The coverage contract (DESIGN.md, "Coverage model") -------------------------------------
SRID = env_int("SRID", 2154, minimum=1)
MAX_ACCURACY_M = env_float("MAX_ACCURACY_M", 50.0, minimum=0)
MAX_GAP_S = env_float("MAX_GAP_S", 120.0, minimum=0)
MAX_SPEED_FOOT = env_float("MAX_SPEED_FOOT", 4.0, minimum=0)
MAX_SPEED_VEHICLE = env_float("MAX_SPEED_VEHICLE", 30.0, minimum=0)
COVERAGE_RADIUS_FOOT = env_float("COVERAGE_RADIUS_FOOT", 100.0, minimum=1)
COVERAGE_RADIUS_VEHICLE = env_float("COVERAGE_RADIUS_VEHICLE", 50.0, minimum=1)
DAY_START: time = env_time("DAY_START", time(6, 0))
# Territory the API accepts fixes in (WGS84 lon/lat bbox): Île-de-France by default.
TERRITORY_BBOX = env_bbox("TERRITORY_BBOX", (1.40, 48.10, 3.60, 49.25))
SHIFT_MAX_HOURS = env_float("SHIFT_MAX_HOURS", 12.0, minimum=1)
POSITION_RETENTION_DAYS = env_int("POSITION_RETENTION_DAYS", 60, minimum=1)
MAX_FIXES_PER_REQUEST = env_int("MAX_FIXES_PER_REQUEST", 5000, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 10 * 1024 * 1024, minimum=1024)
# How tracker points reach coverage (zones/catchup.py): "background", a thread in each worker
# process drains the queue after the request answered; "inline", in the request, after commit.
TRACKER_COVERAGE = env_str("TRACKER_COVERAGE", "background")
if TRACKER_COVERAGE not in {"background", "inline"}:
    raise ValueError(f"TRACKER_COVERAGE={TRACKER_COVERAGE!r}: expected background or inline")

# --- Demo -----------------------------------------------------------------------------------
DEMO_PASSWORD = env_str("DEMO_PASSWORD", "maraudes-demo")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

# GDAL < 3.9 (Debian 12 ships 3.6) cannot block file/network access from spatial references.
# Only administrators feed GDAL (import_zones) and the app reads WGS84 JSON from everyone
# else, so the warning is known and accepted on these machines.
SILENCED_SYSTEM_CHECKS = ["gis.W001"]
