"""Settings for EORA points, read from the environment (see the README's table)."""

from ipaddress import ip_network
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from eora.env import env_bool, env_decimal, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("EORA_DATA_DIR", str(BASE_DIR / "data")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set it in the environment, or set DEBUG=true "
            "for local development."
        )
    SECRET_KEY = "development-only-key-never-used-when-debug-is-off"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    # First, so that its `createsuperuser` replaces Django's.
    "accounts",
    "points.admin_site.EoraAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "points",
    "billing",
    "chat",
]

MIDDLEWARE = [
    # First and last: requests and latency by view for /metrics (common.metrics).
    # Session, CSRF, its user and messages are Django's, left out on /v1.
    "common.metrics.PrometheusBeforeMiddleware",
    "common.middleware.SecurityMiddleware",
    "common.middleware.SecurityHeadersMiddleware",
    "common.middleware.StaticFilesMiddleware",
    "common.db_retry.RetryReadsOnLostConnectionMiddleware",
    "common.middleware.SessionMiddleware",
    "common.middleware.LanguageMiddleware",
    "common.middleware.AnonymousBodyLimitMiddleware",
    "common.middleware.CommonMiddleware",
    "common.middleware.CsrfViewMiddleware",
    "common.middleware.AuthenticationMiddleware",
    "common.middleware.MessageMiddleware",
    "common.middleware.XFrameOptionsMiddleware",
    "common.metrics.PrometheusAfterMiddleware",
]

# Django's deploy checks look for its security, CSRF and X-Frame-Options
# middleware by name; ours subclass them (common.middleware), so the checks that
# only test for the name are silenced, and tests check the headers themselves.
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "eora.urls"
WSGI_APPLICATION = "eora.wsgi.application"
ASGI_APPLICATION = "eora.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "points.context_processors.points_summary",
            ],
        },
    },
]


def database_from_url(url: str) -> dict:
    """Return Django's database settings for a URL, tuned per engine.

    SQLite gets WAL, a busy timeout and IMMEDIATE transactions so that concurrent
    writers queue instead of failing; PostgreSQL gets psycopg 3's connection pool.
    Both use this project's backends, which let `manage.py flush` (and the test
    runner) empty the append-only ledger table.
    """
    config = dj_database_url.parse(url)
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": env_int("SQLITE_BUSY_TIMEOUT_SECONDS", 20, minimum=1),
            "init_command": (
                "PRAGMA journal_mode=WAL;"
                "PRAGMA synchronous=NORMAL;"
                "PRAGMA foreign_keys=ON;"
            ),
        }
    elif engine == "django.db.backends.postgresql":
        config["CONN_MAX_AGE"] = 0
        if env_bool("DATABASE_POOL", True):
            # With a pool, Django passes psycopg_pool its `check`: each connection
            # is tested as it leaves the pool, so one that a PostgreSQL restart
            # killed is replaced instead of handed out (see the README's sizing).
            config["CONN_HEALTH_CHECKS"] = True
            config["OPTIONS"] = {
                "pool": {
                    "min_size": env_int("DATABASE_POOL_MIN", 2, minimum=0),
                    "max_size": env_int("DATABASE_POOL_MAX", 10, minimum=1),
                    "timeout": env_int("DATABASE_POOL_TIMEOUT", 30, minimum=1),
                }
            }
    else:
        raise ImproperlyConfigured(
            f"DATABASE_URL must point at SQLite or PostgreSQL, not {engine}."
        )
    config.setdefault("TEST", {})
    test_name = env_str("TEST_DATABASE_NAME", "")
    if test_name:
        config["TEST"]["NAME"] = test_name
    return config


DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
    )
}

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation."
        "UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "chat:index"
LOGOUT_REDIRECT_URL = "accounts:login"

LANGUAGE_CODE = "ko"
LANGUAGES = [("ko", _("Korean")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "Asia/Seoul")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # httpx logs every upstream request at INFO: a line per turn that costs CPU on
    # the gateway's path and says nothing the metrics do not.
    "loggers": {"httpx": {"level": "WARNING"}, "httpcore": {"level": "WARNING"}},
}

# The ledger.
SIGNUP_BONUS_POINTS = env_int("SIGNUP_BONUS_POINTS", 100_000, minimum=0)
POINTS_PER_TOKEN = env_decimal("POINTS_PER_TOKEN", "2")
HOLD_TTL_SECONDS = env_int("HOLD_TTL_SECONDS", 900, minimum=1)
# Free points each account gets per day (TIME_ZONE's days); 0 turns them off.
DAILY_FREE_POINTS = env_int("DAILY_FREE_POINTS", 0, minimum=0)

# Chat and the model provider.
LLM_PROVIDER = env_str("LLM_PROVIDER", "demo")
LLM_BASE_URL = env_str("LLM_BASE_URL", "https://api.openai.com/v1")
LLM_API_KEY = env_str("LLM_API_KEY", "")
LLM_MODELS = env_list(
    "LLM_MODELS", "eora-demo" if LLM_PROVIDER == "demo" else "gpt-4o-mini"
)
LLM_TIMEOUT = env_int("LLM_TIMEOUT", 60, minimum=1)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 2, minimum=0)
LLM_CONTEXT_TOKENS = env_int("LLM_CONTEXT_TOKENS", 128_000, minimum=256)
DEMO_STREAM_DELAY_MS = env_int("DEMO_STREAM_DELAY_MS", 25, minimum=0)
CHAT_SYSTEM_PROMPT = env_str(
    "CHAT_SYSTEM_PROMPT",
    "You are EORA, a helpful assistant. Answer in the language of the question.",
)
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 8000, minimum=1)
CHAT_MAX_COMPLETION_TOKENS = env_int("CHAT_MAX_COMPLETION_TOKENS", 1024, minimum=1)
CHAT_MIN_COMPLETION_TOKENS = env_int("CHAT_MIN_COMPLETION_TOKENS", 16, minimum=1)


def cache_from_url(url: str) -> dict:
    """Return the default cache: Redis at `url` if given, else the database's.

    Redis gets connect and read timeouts, so that one which accepts connections
    but never answers costs a request those milliseconds (the throttles then let
    it through and log the error) instead of hanging it.
    """
    if not url:
        return {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "eora_cache",
        }
    connect_ms = env_int("REDIS_CONNECT_TIMEOUT_MS", 300, minimum=1)
    socket_ms = env_int("REDIS_SOCKET_TIMEOUT_MS", 300, minimum=1)
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        # Passed on to redis-py's connection pool.
        "OPTIONS": {
            "socket_connect_timeout": connect_ms / 1000,
            "socket_timeout": socket_ms / 1000,
        },
    }


# Pages and email.
LOW_BALANCE_POINTS = env_int("LOW_BALANCE_POINTS", 1000, minimum=0)
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "EORA points <no-reply@localhost>")

# The API.
REDIS_URL = env_str("REDIS_URL", "")
CACHES = {"default": cache_from_url(REDIS_URL)}
# Seconds a process keeps an API key or a model rate it has read (0: none). A key
# revoked in another process works there for at most this long.
API_KEY_CACHE_SECONDS = env_int("API_KEY_CACHE_SECONDS", 1, maximum=1)
MODEL_RATE_CACHE_SECONDS = env_int("MODEL_RATE_CACHE_SECONDS", 1, maximum=1)
API_THROTTLE_RATES = {
    "user": env_str("API_THROTTLE_USER", "600/min"),
    "api_key": env_str("API_THROTTLE_KEY", "300/min"),
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 1_048_576, minimum=1024)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # The user's and the key's rates (API_THROTTLE_RATES), in one round trip.
    "DEFAULT_THROTTLE_CLASSES": ["common.throttles.RequestRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["common.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.rendering.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "EORA points API",
    "DESCRIPTION": "Chat with an AI model and pay in points, metered per token.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "common.schema.add_chat_endpoint",
    ],
}

# Security headers (common.middleware.SecurityHeadersMiddleware); "" leaves one out.
# An inline script runs only with the request's nonce, {nonce} in the policy.
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self'; "
    "img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'",
)
# Swagger UI at /api/docs/ starts from an inline script holding the CSRF token and
# draws its icons from data: URLs.
API_DOCS_CONTENT_SECURITY_POLICY = env_str(
    "API_DOCS_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
)
PERMISSIONS_POLICY = env_str(
    "PERMISSIONS_POLICY",
    "camera=(), microphone=(), geolocation=(), payment=(self), usb=(), "
    "accelerometer=(), gyroscope=(), magnetometer=()",
)
# Larger bodies without a session cookie or Authorization header get 413 unread.
ANONYMOUS_MAX_BODY_BYTES = env_int("ANONYMOUS_MAX_BODY_BYTES", 65_536, minimum=1024)
# Sign-up form posts per client address (REMOTE_ADDR) and hour.
SIGNUP_RATE_PER_HOUR = env_int("SIGNUP_RATE_PER_HOUR", 10, minimum=1)
# Login form posts an hour, per client address and per account the email names.
LOGIN_RATE_PER_HOUR = env_int("LOGIN_RATE_PER_HOUR", 20, minimum=1)
# Password reset requests (each sends an email) an hour, per address and per account.
PASSWORD_RESET_RATE_PER_HOUR = env_int("PASSWORD_RESET_RATE_PER_HOUR", 5, minimum=1)

# Buying points (billing): card payments through Stripe, and redemption codes.
# Without STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY the top-up page offers
# redemption codes only. STRIPE_API_BASE and STRIPE_JS_URL point elsewhere only
# in tests (localstripe).
STRIPE_SECRET_KEY = env_str("STRIPE_SECRET_KEY", "")
STRIPE_PUBLISHABLE_KEY = env_str("STRIPE_PUBLISHABLE_KEY", "")
STRIPE_WEBHOOK_SECRET = env_str("STRIPE_WEBHOOK_SECRET", "")
STRIPE_API_BASE = env_str("STRIPE_API_BASE", "https://api.stripe.com")
STRIPE_JS_URL = env_str("STRIPE_JS_URL", "https://js.stripe.com/v3/")
STRIPE_TIMEOUT_SECONDS = env_int("STRIPE_TIMEOUT_SECONDS", 10, minimum=1)
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env_int(
    "STRIPE_WEBHOOK_TOLERANCE_SECONDS", 300, minimum=1
)
# Frames that Stripe.js opens besides its own host (its fields, 3-D Secure).
STRIPE_FRAME_SOURCES = env_list(
    "STRIPE_FRAME_SOURCES", "https://*.js.stripe.com,https://hooks.stripe.com"
)
# Wrong redemption codes allowed per user and per client address (REMOTE_ADDR).
REDEMPTION_GUESS_RATES = {
    "user": env_str("REDEMPTION_GUESS_RATE_USER", "10/hour"),
    "address": env_str("REDEMPTION_GUESS_RATE_ADDRESS", "30/hour"),
}
# The Stripe SDK logs each request at INFO.
LOGGING["loggers"] = {**LOGGING.get("loggers", {}), "stripe": {"level": "WARNING"}}


def origin_of(url: str) -> str:
    """Return the scheme, host and port of a URL: a source in a CSP directive."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def with_sources(policy: str, added: dict[str, list[str]]) -> str:
    """Return the policy with sources added to directives (made from default-src)."""
    directives = [part.strip() for part in policy.split(";") if part.strip()]
    names = [directive.split()[0] for directive in directives]
    default = next(
        (d.split()[1:] for d in directives if d.split()[0] == "default-src"), []
    )
    for name, sources in added.items():
        if name in names:
            index = names.index(name)
            directives[index] = " ".join([directives[index], *sources])
        else:
            directives.append(" ".join([name, *default, *sources]))
            names.append(name)
    return "; ".join(directives)


# Stripe.js runs from its own host, frames its fields from it and talks to the API.
if STRIPE_SECRET_KEY and STRIPE_PUBLISHABLE_KEY and CONTENT_SECURITY_POLICY:
    CONTENT_SECURITY_POLICY = with_sources(
        CONTENT_SECURITY_POLICY,
        {
            "script-src": [origin_of(STRIPE_JS_URL)],
            "frame-src": [origin_of(STRIPE_JS_URL), *STRIPE_FRAME_SOURCES],
            "connect-src": [origin_of(STRIPE_JS_URL), origin_of(STRIPE_API_BASE)],
        },
    )


# Prometheus metrics at /metrics (common.metrics): served only with METRICS_TOKEN,
# to `Authorization: Bearer <token>`, and only from METRICS_ALLOWED_IPS if set.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_ALLOWED_IPS = env_list("METRICS_ALLOWED_IPS", "")
for _network in METRICS_ALLOWED_IPS:
    try:
        ip_network(_network, strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"METRICS_ALLOWED_IPS: {_network!r} is not an address or a network."
        ) from exc
# Several server processes: prometheus_client reads the same variable when it is
# imported and writes each process's metrics there; /metrics adds them up.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR {PROMETHEUS_MULTIPROC_DIR!r} is not a directory."
    )
