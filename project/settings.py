"""Settings of the example project.

Everything that differs between a laptop and production comes from the environment; the
defaults need nothing running (SQLite in ``var/``, Django's local-memory cache).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.management.utils import get_random_secret_key

from llm_gateway.conf import env_flag
from llm_gateway.observe.logs import build_logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("LLM_GATEWAY_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """DJANGO_SECRET_KEY, else a random key kept in var/ so sessions survive restarts."""
    if key := os.environ.get("DJANGO_SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_flag("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
    if h.strip()
]

# Production behind a TLS-terminating proxy (README "Deployment"): each from the environment,
# so that `manage.py check --deploy` has nothing to report with the documented values.
if proxy_ssl_header := os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER"):
    header_name, _, header_value = proxy_ssl_header.partition(",")
    SECURE_PROXY_SSL_HEADER = (header_name.strip(), header_value.strip() or "https")
SECURE_SSL_REDIRECT = env_flag("DJANGO_SECURE_SSL_REDIRECT", False)
# Probes and scrapers speak plain HTTP to the process itself: never redirected.
SECURE_REDIRECT_EXEMPT = [r"^health$", r"^live$", r"^ready$", r"^metrics$"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_flag("DJANGO_SECURE_COOKIES", False)
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS") or 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_flag("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_flag("DJANGO_SECURE_HSTS_PRELOAD", False)
CSRF_TRUSTED_ORIGINS = [
    origin.strip()
    for origin in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",")
    if origin.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "auditlog",  # django-auditlog: the gateway's audit trail (llm_gateway.audit)
    "llm_gateway",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The admin's CSS and JS under daphne (collected into STATIC_ROOT by scripts/setup.sh):
    # servestatic is whitenoise's successor with an async middleware (no thread hop).
    "servestatic.middleware.ServeStaticMiddleware",
    # The gateway's Django face: project views (and llm_gateway.urls, wherever included) get
    # request.request_id and request.api_key; under the fast path's /v1 they reuse its result.
    "llm_gateway.middleware.RequestIdMiddleware",
    "llm_gateway.middleware.EngineErrorMiddleware",
    "llm_gateway.middleware.ApiKeyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "project" / "templates"],  # registration/login.html
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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=int(os.environ.get("DJANGO_CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # End-to-end tests run daphne in another process: it must see the test database, so the
    # test database is a file, never SQLite's in-memory default.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_db.sqlite3")}
    # WAL: readers and the request log's writer in other processes do not block each other,
    # and a commit does not wait for fsync (synchronous=NORMAL is durable in WAL mode).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

# Django's cache holds only the last-used write's throttle (one write per key and interval
# in the fleet). Its Redis backend speaks to one server: behind Sentinel (redis+sentinel://)
# or on a Redis Cluster each process throttles its own writes instead; the limits still go
# through Sentinel or the cluster.
redis_url = os.environ.get("REDIS_URL", "")
on_cluster = os.environ.get("LLM_GATEWAY_REDIS_CLUSTER", "").lower() in ("1", "true", "yes", "on")
if redis_url.startswith(("redis://", "rediss://")) and not on_cluster:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": os.environ.get("LLM_GATEWAY_CACHE_PREFIX", "llm_gateway"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Collected by scripts/setup.sh; one folder for every VAR_DIR (tests and benchmarks use their own).
STATIC_ROOT = BASE_DIR / "var" / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# The self-service portal (/gateway/) signs people in with Django's own login page; with
# OIDC_RP_CLIENT_ID set, also with an OpenID Connect provider (docs/portal.md).
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/gateway/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
OIDC_ENABLED = bool(os.environ.get("OIDC_RP_CLIENT_ID"))
if OIDC_ENABLED:
    INSTALLED_APPS.append("mozilla_django_oidc")
    AUTHENTICATION_BACKENDS = [
        "llm_gateway.portal.sso.GroupsFromClaims",  # groups from the provider's claim
        "django.contrib.auth.backends.ModelBackend",  # password users, the admin's too
    ]
    OIDC_RP_CLIENT_ID = os.environ["OIDC_RP_CLIENT_ID"]
    OIDC_RP_CLIENT_SECRET = os.environ.get("OIDC_RP_CLIENT_SECRET", "")
    OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ["OIDC_OP_AUTHORIZATION_ENDPOINT"]
    OIDC_OP_TOKEN_ENDPOINT = os.environ["OIDC_OP_TOKEN_ENDPOINT"]
    OIDC_OP_USER_ENDPOINT = os.environ["OIDC_OP_USER_ENDPOINT"]
    OIDC_OP_JWKS_ENDPOINT = os.environ.get("OIDC_OP_JWKS_ENDPOINT")
    OIDC_RP_SIGN_ALGO = os.environ.get("OIDC_RP_SIGN_ALGO", "RS256")
    OIDC_RP_SCOPES = os.environ.get("OIDC_RP_SCOPES", "openid email profile")
    OIDC_USE_PKCE = env_flag("OIDC_USE_PKCE", True)
    OIDC_GROUPS_CLAIM = os.environ.get("OIDC_GROUPS_CLAIM", "groups")
    OIDC_USERNAME_ALGO = "llm_gateway.portal.sso.username_of"
    OIDC_TIMEOUT = float(os.environ.get("OIDC_TIMEOUT", "10"))

# LLM_GATEWAY_LOG_CONFIG_FILE, LLM_GATEWAY_DISABLE_ACCESS_LOG_FOR_ENDPOINTS, LLM_GATEWAY_LOG_FORMAT
# (text or json), LLM_GATEWAY_LOG_LEVEL and LLM_GATEWAY_ACCESS_LOG shape this
# (llm_gateway.observe.logs; every setting: docs/settings.md).
LOGGING = build_logging_config()

# The gateway's own settings (LLM_GATEWAY_*) need no entry here: llm_gateway.conf reads each
# one from Django settings first and from the environment of the same name second, at call
# time. Set them here only to pin a value for every environment.
