"""Django settings for Labformer, read from the environment (see ``.env.example``).

Defaults give the embedded single-machine setup: SQLite, kombu's filesystem broker and
filesystem storage, all under ``var/``. A lab deployment sets DATABASE_URL (PostgreSQL),
CELERY_BROKER_URL (Redis) and, for several machines, shared storage (a shared filesystem path or
S3-compatible object storage).
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from portal.config.env import env_bool, env_int, env_list, env_str, secret_key_from_env_or_file

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("LABFORMER_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = secret_key_from_env_or_file(name="SECRET_KEY", path=VAR_DIR / "secret_key")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_plotly_dash.apps.DjangoPlotlyDashConfig",
    "portal.accounts",
    "portal.datasets",
    "portal.jobs",
    "portal.results",
    "portal.api",
    "portal.dashboards",
    "portal.web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.config.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Collects the header/footer content of django-plotly-dash's direct-embedding template tags.
    "django_plotly_dash.middleware.BaseMiddleware",
]

ROOT_URLCONF = "portal.config.urls"
WSGI_APPLICATION = "portal.config.wsgi.application"
ASGI_APPLICATION = "portal.config.asgi.application"

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
                "portal.web.context_processors.labs",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'labformer.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default has a web process and a worker writing one file: wait on the lock
    # instead of failing at once, and start write transactions eagerly to avoid upgrade deadlocks.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth -----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "web:home"
LOGOUT_REDIRECT_URL = "login"

# --- i18n / time ----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# --- static and media storage ---------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every request when it is missing
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

STORAGE_BACKEND = env_str("STORAGE_BACKEND", "filesystem")
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("S3_BUCKET"),
            "endpoint_url": env_str("S3_ENDPOINT_URL") or None,
            "access_key": env_str("S3_ACCESS_KEY_ID"),
            "secret_key": env_str("S3_SECRET_ACCESS_KEY"),
            "region_name": env_str("S3_REGION") or None,
            "default_acl": None,
            "file_overwrite": False,
            # Files are served through our access checks, never by public URL.
            "querystring_auth": True,
        },
    }
elif STORAGE_BACKEND == "filesystem":
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT},
    }
else:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"STORAGE_BACKEND={STORAGE_BACKEND!r}: expected 'filesystem' or 's3'")
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # Dash's renderer and component bundles (dcc, html, dash_table, plotly.js) served as our own
    # static files: no CDN (django-plotly-dash's finders, made to work under WhiteNoise).
    "portal.dashboards.finders.DashAssetFinder",
    "portal.dashboards.finders.DashComponentFinder",
    "portal.dashboards.finders.DashAppDirectoryFinder",
]
# Tests and `runserver` without collectstatic still find static files through the finders.
WHITENOISE_USE_FINDERS = True
WHITENOISE_MANIFEST_STRICT = False

# --- uploads --------------------------------------------------------------------------------
# The largest dataset file accepted, in bytes (default 5 GiB). Bigger uploads go through the
# chunked path, which enforces the same limit on the total.
LABFORMER_MAX_UPLOAD_BYTES = env_int("LABFORMER_MAX_UPLOAD_BYTES", 5 * 1024**3)
# Where chunked uploads are assembled before they become datasets (shared by all web processes).
LABFORMER_UPLOAD_STAGING = Path(env_str("LABFORMER_UPLOAD_STAGING", str(VAR_DIR / "uploads")))
# Chunked uploads untouched for this many seconds are abandoned: the dataset sweep removes their
# staging files (default 24 h).
LABFORMER_UPLOAD_STAGING_MAX_AGE = env_int("LABFORMER_UPLOAD_STAGING_MAX_AGE", 24 * 3600)
# Bounds on validating one file, so no upload can exhaust a worker (mlcore.readers.Limits): the
# longest line and header in bytes, how far a gzip may expand (bytes, and times its compressed
# size), and the wall-clock seconds one validation may take. Exceeding one ends it `invalid` with
# one reason saying which.
LABFORMER_VALIDATION_MAX_LINE_BYTES = env_int("LABFORMER_VALIDATION_MAX_LINE_BYTES", 16 * 1024**2)
LABFORMER_VALIDATION_MAX_HEADER_BYTES = env_int("LABFORMER_VALIDATION_MAX_HEADER_BYTES", 1024**2)
LABFORMER_VALIDATION_MAX_DECOMPRESSED_BYTES = env_int("LABFORMER_VALIDATION_MAX_DECOMPRESSED_BYTES", 16 * 1024**3)
LABFORMER_VALIDATION_MAX_GZIP_RATIO = env_int("LABFORMER_VALIDATION_MAX_GZIP_RATIO", 100)
LABFORMER_VALIDATION_MAX_SECONDS = env_int("LABFORMER_VALIDATION_MAX_SECONDS", 3600)
# Requests bigger than this are streamed to a temporary file instead of held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024**2
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 64 * 1024**2)

# --- Celery ---------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("out", "processed", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Producer and consumer share one folder: that is the whole queue.
        "data_folder_in": str(BROKER_DIR / "out"),
        "data_folder_out": str(BROKER_DIR / "out"),
        "processed_folder": str(BROKER_DIR / "processed"),
        # Exchange bindings (which queue gets what); kombu's default is ./control in the cwd.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # A Redis message not acknowledged within this many seconds is delivered again: it must be
    # longer than the longest job, or a running job would be handed to a second worker.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 7 * 24 * 3600)
    }
    # Several installations (or test runs) can share one Redis database with distinct prefixes.
    if env_str("CELERY_BROKER_KEY_PREFIX"):
        CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = env_str("CELERY_BROKER_KEY_PREFIX")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_ALWAYS_EAGER = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.authentication.APITokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["portal.api.throttling.TokenRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"token": env_str("API_THROTTLE_RATE", "6000/min")},
    "EXCEPTION_HANDLER": "portal.api.exceptions.api_exception_handler",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Labformer API",
    "DESCRIPTION": "Upload datasets, launch training jobs and read their results. Authenticate with a "
                   "personal API token: `Authorization: Bearer lf_<prefix>_<secret>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI assets come from drf-spectacular-sidecar, served by us: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation also documents its error answers (400/401/403/404/409/...) with the one error body.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "portal.api.schema.add_error_responses"],
    "ENUM_NAME_OVERRIDES": {
        "DatasetStatusEnum": "portal.datasets.models.Dataset.Status",
        "JobStatusEnum": "portal.jobs.models.Job.Status",
        "PredictionStatusEnum": "portal.results.models.Prediction.Status",
        "UploadStatusEnum": "portal.datasets.models.UploadSession.Status",
        "VisibilityEnum": "portal.accounts.models.Visibility",
        "PolicyEnum": "portal.datasets.models.Dataset.Policy",
        "DeviceEnum": "portal.jobs.models.Job.Device",
        "TaskEnum": "portal.api.serializers.TASK_CHOICES",  # callables: read from the catalog
        "ProfileEnum": "portal.api.serializers.PROFILE_CHOICES",
        "ModalityEnum": "portal.api.serializers.MODALITY_CHOICES",
    },
}
# Throttle counters and the dashboards' arguments live in this cache, which every web process must
# share: Redis when CACHE_URL is set, else files under VAR_DIR (several workers on one machine).
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env_str("CACHE_URL")}
        if env_str("CACHE_URL")
        else {
            "BACKEND": "portal.config.cache.ExpiringFileCache",
            "LOCATION": str(VAR_DIR / "cache"),
            # Expired entries go first when full (see portal/config/cache.py).
            "OPTIONS": {"MAX_ENTRIES": 20000},
        }
    )
}

# --- security -------------------------------------------------------------------------------
# HTTPS=1 in a deployment behind TLS turns on every transport-security default at once; the
# embedded default serves plain HTTP on 127.0.0.1, where these would lock the user out.
HTTPS = env_bool("HTTPS", False)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", HTTPS)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", HTTPS)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
# The preload directive only makes the site eligible for browsers' built-in HSTS lists (it is
# submitted separately, at hstspreload.org); set 0 for a host whose subdomains are not all on HTTPS.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", HTTPS)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Behind a TLS-terminating proxy (the compose deployment), trust its forwarded scheme.
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Dash dashboards are embedded in our own pages through iframes, so our own origin may frame us;
# no other origin can. That is the deliberate exception Django's W019 asks about.
X_FRAME_OPTIONS = "SAMEORIGIN"
# Content-Security-Policy on every response (portal/config/security.py explains each allowance);
# "off" turns it off, REPORT_ONLY=1 sends it as Content-Security-Policy-Report-Only.
DEFAULT_CSP = "; ".join([
    "default-src 'self'", "script-src 'self' 'unsafe-inline' 'unsafe-eval'", "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:", "font-src 'self' data:", "connect-src 'self'", "frame-src 'self'",
    "worker-src 'self' blob:", "frame-ancestors 'self'", "object-src 'none'", "base-uri 'self'",
    "form-action 'self'",
])
CONTENT_SECURITY_POLICY = env_str("CONTENT_SECURITY_POLICY").strip() or DEFAULT_CSP
if CONTENT_SECURITY_POLICY.lower() == "off":
    CONTENT_SECURITY_POLICY = ""
CONTENT_SECURITY_POLICY_REPORT_ONLY = env_bool("CONTENT_SECURITY_POLICY_REPORT_ONLY", False)
SILENCED_SYSTEM_CHECKS = ["security.W019"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- dashboards (django-plotly-dash) -------------------------------------------------------
PLOTLY_DASH = {
    # Every Dash asset comes from our static files, never a CDN (labs run behind firewalls).
    "serve_locally": True,
    # Every Dash endpoint needs a signed-in user, and an unknown dashboard or embedding is a 404
    # (portal/dashboards/access.py); each callback still loads its job or dataset through the
    # selectors for that user (portal/dashboards/common.py).
    "view_decorator": "portal.dashboards.access.dashboard_view",
    # The ids a page hands its dashboards (initial_arguments) live in the default cache, shared by
    # every web process, bound to the user who rendered the page (portal/dashboards/access.py). Not
    # in the session: each Dash callback writes the session back, and one still running from the
    # previous page would save over the arguments the next page had just stored.
    "cache_arguments": True,
    # A page left open for a day still works; each request of its dashboard extends this again.
    "cache_timeout_initial_arguments": 24 * 3600,
}

# --- jobs -----------------------------------------------------------------------------------
# A running job whose worker has not sent a heartbeat for this many seconds is considered lost.
LABFORMER_HEARTBEAT_TIMEOUT = env_int("LABFORMER_HEARTBEAT_TIMEOUT", 300)
# Seconds between a running job's heartbeats (progress and metric points are flushed with them).
LABFORMER_HEARTBEAT_INTERVAL = env_int("LABFORMER_HEARTBEAT_INTERVAL", 3)
# Seconds a worker keeps retrying a write that failed with a transient database error (a dropped
# connection: failover, pooler restart) before giving up; below the heartbeat timeout, so a job
# whose database stays away longer is requeued rather than failed by a worker that gave up early.
LABFORMER_DB_RETRY_S = env_int("LABFORMER_DB_RETRY_S", 120)
# Local scratch space of workers (datasets copied from storage, checkpoints before upload).
LABFORMER_WORK_DIR = Path(env_str("LABFORMER_WORK_DIR", str(VAR_DIR / "work")))
# Default soft time limit of a job in seconds (a job may ask for less or more at submission).
LABFORMER_JOB_TIME_LIMIT = env_int("LABFORMER_JOB_TIME_LIMIT", 24 * 3600)
# Queued jobs whose message was sent longer ago than this are sent again (a broker that restarted
# without persistence loses messages; a duplicate delivery is harmless).
LABFORMER_REDISPATCH_AFTER = env_int("LABFORMER_REDISPATCH_AFTER", 1800)
# GPUs a job may get on this worker (its CUDA_VISIBLE_DEVICES should list that many). A job asking for
# more is passed on to the queue `gpu-x<N>`, which a `gpu` worker also consumes for every N up to its own.
LABFORMER_WORKER_GPUS = env_int("LABFORMER_WORKER_GPUS", 1)
# Device of a multi-GPU job's ranks: "cuda" (NCCL). "cpu" (gloo) is a rehearsal and testing switch for
# machines without GPUs, never for real jobs.
LABFORMER_DDP_DEVICE = env_str("LABFORMER_DDP_DEVICE", "cuda")
