"""Configuration, read from the environment when the app is created (never at import time).

`load_config(environ, overrides)` picks a settings class by `APP_ENV` (development, testing, production),
builds it from the environment, applies overrides (tests pass a dict to `create_app`) and validates it.
Every variable is listed in docs/configuration.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

Number = TypeVar("Number", int, float)

MIN_SECRET_KEY_LENGTH = 32
# A database whose name starts or ends with "test" (test, test_shop, shop_test, shop-test) belongs to a test suite.
TEST_DATABASE_NAME = re.compile(r"(^test([_-]|$))|([_-]test$)", re.IGNORECASE)


def derived_fernet_key(secret_key: str) -> str:
    """A Fernet key (32 bytes, URL-safe base64) from SECRET_KEY: outside production only."""
    digest = hashlib.sha256(b"shop-webhook-secrets:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def fernet_key_problem(keys: str) -> str | None:
    for key in (part.strip() for part in keys.split(",")):
        try:
            if len(base64.urlsafe_b64decode(key.encode())) == 32:
                continue
        except (ValueError, binascii.Error):
            pass
        return "WEBHOOK_SECRETS_KEY must be Fernet keys (32 bytes in URL-safe base64), comma-separated"
    return None


class ConfigError(RuntimeError):
    """The configuration cannot run the app; the message names every problem."""


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"expected a boolean (true/false), got {value!r}")


def _number(environ: Mapping[str, str], name: str, default: Number, kind: type[Number]) -> Number:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return kind(raw)
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{name} must be {expected}, got {raw!r}") from None


class BaseConfig:
    """Settings shared by every environment. Each attribute in UPPER case ends up in `app.config`."""

    APP_ENV = "base"
    DEBUG = False
    TESTING = False
    # webhooks to http:// and to this machine's or this network's addresses (a receiver under development)
    LOCAL_WEBHOOKS = False

    def __init__(self, environ: Mapping[str, str]) -> None:
        env = environ.get
        self.SECRET_KEY: str | None = env("SECRET_KEY") or self.default_secret_key()
        self.SQLALCHEMY_DATABASE_URI: str | None = normalize_database_url(env("DATABASE_URL") or None)
        self.REDIS_URL: str | None = env("REDIS_URL") or None
        self.DEBUG = _bool(env("DEBUG"), type(self).DEBUG)
        # the staff pages' browser session (shop/staff): a signed cookie holding a bearer token and a CSRF token,
        # out of scripts' reach, never sent on cross-site requests other than top-level navigation, and over HTTPS
        # only in production
        self.SESSION_COOKIE_NAME = "shop_staff"
        self.SESSION_COOKIE_PATH = "/staff"
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = _bool(env("SESSION_COOKIE_SECURE"), type(self).APP_ENV == "production")

        # behind pgbouncer in session mode the app keeps no connections of its own: each request opens one to the
        # pooler and closes it at its end, so the pooler shares its few server connections among every app server
        # (docs/operations.md); an app-side pool would pin a server connection to each of its idle connections
        self.DB_EXTERNAL_POOL = _bool(env("DB_EXTERNAL_POOL"), False)
        pool: dict[str, Any] = (
            {"poolclass": NullPool}
            if self.DB_EXTERNAL_POOL
            else {
                "pool_recycle": _number(environ, "DB_POOL_RECYCLE", 1800, int),
                "pool_size": _number(environ, "DB_POOL_SIZE", 5, int),
                "max_overflow": _number(environ, "DB_MAX_OVERFLOW", 10, int),
                "pool_timeout": _number(environ, "DB_POOL_TIMEOUT", 10, int),
            }
        )
        self.SQLALCHEMY_ENGINE_OPTIONS: dict[str, Any] = {
            # not on every checkout: shop.db.connections pings connections that sat idle (DB_PING_AFTER_IDLE_SECONDS)
            "pool_pre_ping": False,
            **pool,
            # a database error's text never carries the statement's values (names, addresses, emails)
            "hide_parameters": True,
            "connect_args": {
                "connect_timeout": _number(environ, "DB_CONNECT_TIMEOUT", 5, int),
                "application_name": env("DB_APPLICATION_NAME", "shop"),
            },
        }
        self.SQLALCHEMY_RECORD_QUERIES = False
        # reports, the staff dashboard and the event feed read from a streaming replica when one is named and keeps
        # up; from the primary otherwise (shop/db/replica.py)
        self.DATABASE_REPLICA_URL: str | None = normalize_database_url(env("DATABASE_REPLICA_URL") or None)
        self.REPLICA_MAX_LAG_SECONDS = _number(environ, "REPLICA_MAX_LAG_SECONDS", 10.0, float)
        self.REPLICA_PROBE_TIMEOUT_SECONDS = _number(environ, "REPLICA_PROBE_TIMEOUT_SECONDS", 1.0, float)
        self.REPLICA_READ_TIMEOUT_SECONDS = _number(environ, "REPLICA_READ_TIMEOUT_SECONDS", 30.0, float)
        self.REPLICA_RETRY_SECONDS = _number(environ, "REPLICA_RETRY_SECONDS", 5.0, float)
        self.DB_REPLICA_CONNECT_TIMEOUT = _number(environ, "DB_REPLICA_CONNECT_TIMEOUT", 2, int)
        # a pooled connection idle this long is pinged before use, and replaced if dead (0: ping every checkout)
        self.DB_PING_AFTER_IDLE_SECONDS = _number(environ, "DB_PING_AFTER_IDLE_SECONDS", 1.0, float)

        self.REDIS_SOCKET_TIMEOUT = _number(environ, "REDIS_SOCKET_TIMEOUT", 0.25, float)
        # after Redis fails to answer, each process leaves it alone this long (shop/redis_client.py Breaker)
        self.REDIS_BREAKER_SECONDS = _number(environ, "REDIS_BREAKER_SECONDS", 2.0, float)
        self.CACHE_KEY_PREFIX = env("CACHE_KEY_PREFIX", "shop:")
        self.CACHE_DEFAULT_TIMEOUT = _number(environ, "CACHE_DEFAULT_TIMEOUT", 300, int)

        # request bodies larger than this are refused with 413 before any parsing
        self.MAX_CONTENT_LENGTH = _number(environ, "MAX_CONTENT_LENGTH", 1024 * 1024, int)
        self.CURRENCY = env("CURRENCY", "USD").upper()

        # accounts: opaque bearer tokens, Argon2id password hashes (argon2-cffi's defaults: RFC 9106 low-memory)
        self.TOKEN_TTL_SECONDS = _number(environ, "TOKEN_TTL_SECONDS", 7 * 24 * 3600.0, float)
        self.ARGON2_TIME_COST = _number(environ, "ARGON2_TIME_COST", 3, int)
        self.ARGON2_MEMORY_COST = _number(environ, "ARGON2_MEMORY_COST", 65536, int)  # KiB
        self.ARGON2_PARALLELISM = _number(environ, "ARGON2_PARALLELISM", 4, int)
        # hashes and checks at once per process, each holding ARGON2_MEMORY_COST (shop/security/passwords.py)
        self.ARGON2_MAX_CONCURRENT = _number(environ, "ARGON2_MAX_CONCURRENT", 1, int)

        # rate limits (Flask-Limiter); counters live in Redis unless RATELIMIT_STORAGE_URI says otherwise
        self.RATELIMIT_STORAGE_URI: str | None = env("RATELIMIT_STORAGE_URI") or None
        # sign-in (shop/security/login_throttle.py): failures per address, per email from one address, per email
        # from everywhere (then only addresses that have not failed for it may try), and every token request
        self.LOGIN_LIMIT_PER_ADDRESS = env("LOGIN_LIMIT_PER_ADDRESS", "10 per minute")
        self.LOGIN_LIMIT_PER_EMAIL = env("LOGIN_LIMIT_PER_EMAIL", "5 per minute")
        self.LOGIN_LIMIT_PER_EMAIL_ANYWHERE = env("LOGIN_LIMIT_PER_EMAIL_ANYWHERE", "50 per hour")
        self.TOKEN_REQUESTS_PER_ADDRESS = env("TOKEN_REQUESTS_PER_ADDRESS", "30 per minute")
        self.TOKEN_REQUESTS_PER_ACCOUNT = env("TOKEN_REQUESTS_PER_ACCOUNT", "10 per minute")
        # a new token beyond this many live ones for a user retires that user's oldest
        self.MAX_TOKENS_PER_USER = _number(environ, "MAX_TOKENS_PER_USER", 20, int)
        self.REGISTER_LIMIT_PER_ADDRESS = env("REGISTER_LIMIT_PER_ADDRESS", "20 per hour")
        self.REGISTER_LIMIT_PER_EMAIL = env("REGISTER_LIMIT_PER_EMAIL", "5 per hour")

        # browsers may call the API from these storefront origins (comma-separated); none by default
        self.CORS_ORIGINS = [origin.strip() for origin in env("CORS_ORIGINS", "").split(",") if origin.strip()]
        self.HSTS_SECONDS = _number(environ, "HSTS_SECONDS", 0, int)

        # order transactions: bounded waits, bounded retries (shop/db/transactions.py)
        self.TX_LOCK_TIMEOUT_MS = _number(environ, "TX_LOCK_TIMEOUT_MS", 2000, int)
        self.TX_STATEMENT_TIMEOUT_MS = _number(environ, "TX_STATEMENT_TIMEOUT_MS", 5000, int)
        self.TX_ATTEMPTS = _number(environ, "TX_ATTEMPTS", 4, int)
        self.TX_RETRY_BASE_SECONDS = _number(environ, "TX_RETRY_BASE_SECONDS", 0.02, float)
        self.IDEMPOTENCY_KEY_TTL_HOURS = _number(environ, "IDEMPOTENCY_KEY_TTL_HOURS", 24, int)
        # refused orders (out of stock) keep their key's answer too; only this many newest per customer
        self.IDEMPOTENCY_REFUSALS_PER_USER = _number(environ, "IDEMPOTENCY_REFUSALS_PER_USER", 100, int)
        # a pending order holds its units this long, then `flask orders expire` cancels it (services/order_expiry.py)
        self.ORDER_PAYMENT_WINDOW_MINUTES = _number(environ, "ORDER_PAYMENT_WINDOW_MINUTES", 30.0, float)
        # what one customer may hold unpaid at once (pending orders, and units in them), so one account cannot empty
        # the store; 0: no limit
        self.UNPAID_ORDERS_PER_CUSTOMER = _number(environ, "UNPAID_ORDERS_PER_CUSTOMER", 5, int)
        self.UNPAID_UNITS_PER_CUSTOMER = _number(environ, "UNPAID_UNITS_PER_CUSTOMER", 200, int)
        # payment providers' notifications (shop/payments/): each provider's signing secrets, `name:secret` pairs,
        # comma-separated (a provider listed twice has two secrets, while one is rotated); a notification whose
        # signed timestamp is further than the tolerance from now is refused (a replay)
        self.PAYMENT_PROVIDER_SECRETS = parse_provider_secrets(env("PAYMENT_PROVIDER_SECRETS", ""))
        self.PAYMENT_NOTIFICATION_TOLERANCE_SECONDS = _number(
            environ, "PAYMENT_NOTIFICATION_TOLERANCE_SECONDS", 300, int
        )
        # a delivered order's lines may be asked back for this long after delivery
        self.RETURN_WINDOW_DAYS = _number(environ, "RETURN_WINDOW_DAYS", 30, int)
        # what needs attention (GET /api/v1/reports/attention, /metrics): paid orders not shipped this long after their
        # payment, and active products with this many units or fewer
        self.SHIP_WITHIN_HOURS = _number(environ, "SHIP_WITHIN_HOURS", 48.0, float)
        self.LOW_STOCK_THRESHOLD = _number(environ, "LOW_STOCK_THRESHOLD", 5, int)

        # catalog: Redis-cached reads (off only to measure what the cache is worth), CDN max-age for anonymous reads
        self.CATALOG_CACHE_ENABLED = _bool(env("CATALOG_CACHE_ENABLED"), True)
        self.CATALOG_MAX_AGE = _number(environ, "CATALOG_MAX_AGE", 5, int)
        # per-process copies of what was read from Redis, dropped when Redis reports a change (catalog/near_cache.py)
        self.CATALOG_NEAR_CACHE = _bool(env("CATALOG_NEAR_CACHE"), True)
        self.CATALOG_NEAR_CACHE_BYTES = _number(environ, "CATALOG_NEAR_CACHE_BYTES", 32 * 1024 * 1024, int)
        self.CATALOG_NEAR_CACHE_LIVENESS_SECONDS = _number(environ, "CATALOG_NEAR_CACHE_LIVENESS_SECONDS", 2.0, float)
        # every process re-applies recorded catalog changes this often, so the cache hears of every commit even
        # when the invalidation after it failed or never ran (shop/catalog/relay.py); 0 turns the relay off
        self.CATALOG_RELAY_SECONDS = _number(environ, "CATALOG_RELAY_SECONDS", 1.0, float)
        # webhooks (shop/webhooks/): the Fernet key(s) their signing secrets are encrypted with, comma-separated, the
        # first encrypting (docs/configuration.md says how to make one); unset: derived from SECRET_KEY
        self.WEBHOOK_SECRETS_KEY: str | None = env("WEBHOOK_SECRETS_KEY") or None
        # addresses a webhook may point at: in production never loopback, private, link-local or metadata ones
        self.WEBHOOK_ALLOW_PRIVATE_ADDRESSES = _bool(env("WEBHOOK_ALLOW_PRIVATE_ADDRESSES"), type(self).LOCAL_WEBHOOKS)
        self.WEBHOOK_REQUIRE_HTTPS = _bool(env("WEBHOOK_REQUIRE_HTTPS"), not type(self).LOCAL_WEBHOOKS)
        # after a secret is rotated, the previous one still signs deliveries this long (receivers switch meanwhile)
        self.WEBHOOK_ROTATION_HOURS = _number(environ, "WEBHOOK_ROTATION_HOURS", 24, int)
        # delivery (shop/webhooks/worker.py): the answer's deadline, retries for about a day with exponential backoff
        # and jitter from WEBHOOK_RETRY_BASE_SECONDS up to WEBHOOK_RETRY_MAX_SECONDS apart, then dead; an endpoint
        # with no success for WEBHOOK_DISABLE_AFTER_HOURS is turned off
        self.WEBHOOK_TIMEOUT_SECONDS = _number(environ, "WEBHOOK_TIMEOUT_SECONDS", 5.0, float)
        # wake the delivery workers after commits that wrote events (shop/webhooks/notifier.py)
        self.WEBHOOK_NOTIFY = _bool(env("WEBHOOK_NOTIFY"), True)
        self.WEBHOOK_RETRY_HOURS = _number(environ, "WEBHOOK_RETRY_HOURS", 24.0, float)
        self.WEBHOOK_RETRY_BASE_SECONDS = _number(environ, "WEBHOOK_RETRY_BASE_SECONDS", 10.0, float)
        self.WEBHOOK_RETRY_MAX_SECONDS = _number(environ, "WEBHOOK_RETRY_MAX_SECONDS", 3600.0, float)
        self.WEBHOOK_DISABLE_AFTER_HOURS = _number(environ, "WEBHOOK_DISABLE_AFTER_HOURS", 72.0, float)
        self.LOG_LEVEL = env("LOG_LEVEL", "INFO").upper()
        # proxies in front that append to X-Forwarded-For/-Proto/-Host (0: trust none, the client address is the peer's)
        self.TRUSTED_PROXIES = _number(environ, "TRUSTED_PROXIES", 0, int)
        # json: one JSON object a line on stdout (what log shippers want); text: Flask's own lines, for a terminal
        self.LOG_FORMAT = env("LOG_FORMAT", "text").lower()

        # statements at least this slow are logged (with their duration, never their parameters); 0 turns it off
        self.SLOW_SQL_MS = _number(environ, "SLOW_SQL_MS", 200, float)

        # Sentry, only with a DSN (shop/observability/sentry.py)
        self.SENTRY_DSN = env("SENTRY_DSN") or None
        self.SENTRY_ENVIRONMENT = env("SENTRY_ENVIRONMENT") or None
        self.SENTRY_RELEASE = env("SENTRY_RELEASE") or None
        self.SENTRY_TRACES_SAMPLE_RATE = _number(environ, "SENTRY_TRACES_SAMPLE_RATE", 0.0, float)

        # flask-smorest / OpenAPI
        self.API_TITLE = "shop"
        self.API_VERSION = "v1"
        self.OPENAPI_VERSION = "3.1.0"
        self.OPENAPI_URL_PREFIX = "/api/v1"
        self.OPENAPI_JSON_PATH = "openapi.json"
        # the browsable docs are shop's own route (shop/api/docs.py), with Swagger UI from a pinned package
        self.OPENAPI_SWAGGER_UI_PATH = None

    def default_secret_key(self) -> str | None:
        return None

    def derive(self) -> None:
        """Settings computed from others, after overrides are applied."""
        # Flask-Limiter: counters in the same Redis, under this deployment's prefix; if Redis fails, limits
        # go on per process in memory rather than failing the request
        if not self.RATELIMIT_STORAGE_URI and self.REDIS_URL:
            self.RATELIMIT_STORAGE_URI = redis_storage_uri(self.REDIS_URL)
        self.RATELIMIT_STORAGE_OPTIONS = {
            "key_prefix": f"{self.CACHE_KEY_PREFIX}limits",
            "socket_timeout": self.REDIS_SOCKET_TIMEOUT,
            "socket_connect_timeout": self.REDIS_SOCKET_TIMEOUT,
        }
        if not self.WEBHOOK_SECRETS_KEY and self.SECRET_KEY:
            # a key of its own is better (SECRET_KEY may be rotated for other reasons), but this one is not in the
            # database either
            self.WEBHOOK_SECRETS_KEY = derived_fernet_key(self.SECRET_KEY)
        self.RATELIMIT_HEADERS_ENABLED = True
        self.RATELIMIT_SWALLOW_ERRORS = True
        self.RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True

    def problems(self) -> list[str]:
        """Every reason this configuration cannot serve, in words an operator can act on."""
        found = []
        if not self.SQLALCHEMY_DATABASE_URI:
            found.append(
                "DATABASE_URL is not set: point it at PostgreSQL, or use `make run` / `make test`, "
                "which start an embedded PostgreSQL when it is unset"
            )
        else:
            found += _postgresql_url_problems("DATABASE_URL", self.SQLALCHEMY_DATABASE_URI)
        if self.DATABASE_REPLICA_URL:
            found += _postgresql_url_problems("DATABASE_REPLICA_URL", self.DATABASE_REPLICA_URL)
        if not self.REDIS_URL:
            found.append("REDIS_URL is not set: point it at Redis (redis://host:6379/0 or unix:///path.sock)")
        if "*" in self.CORS_ORIGINS:
            found.append("CORS_ORIGINS must list storefront origins, not '*'")
        if self.WEBHOOK_SECRETS_KEY and (problem := fernet_key_problem(self.WEBHOOK_SECRETS_KEY)):
            found.append(problem)
        if self.CURRENCY and not re.fullmatch(r"[A-Z]{3}", self.CURRENCY):
            found.append(f"CURRENCY must be a three-letter ISO 4217 code, got {self.CURRENCY!r}")
        return found

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in dir(self) if name.isupper()}


def _postgresql_url_problems(name: str, value: str) -> list[str]:
    try:
        url = make_url(value)
    except ArgumentError:
        return [f"{name} is not a valid database URL"]
    if url.get_backend_name() != "postgresql":
        return [f"{name} must be a PostgreSQL URL, got {url.get_backend_name()!r}"]
    return []


class DevelopmentConfig(BaseConfig):
    APP_ENV = "development"
    DEBUG = True
    LOCAL_WEBHOOKS = True

    def default_secret_key(self) -> str:
        return "development-only-secret-key-never-use-in-production"


class TestingConfig(BaseConfig):
    APP_ENV = "testing"
    TESTING = True
    LOCAL_WEBHOOKS = True

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(environ)
        # cheap hashes keep the suite fast; the parameters are still Argon2id's
        self.ARGON2_TIME_COST = 1
        self.ARGON2_MEMORY_COST = 1024
        self.ARGON2_PARALLELISM = 1
        # the tests that need the relay turn it on: a thread polling the database would show in statement counts
        self.CATALOG_RELAY_SECONDS = _number(environ, "CATALOG_RELAY_SECONDS", 0.0, float)
        # likewise the webhook workers' wake-up NOTIFY (the tests of the workers turn it on)
        self.WEBHOOK_NOTIFY = _bool(environ.get("WEBHOOK_NOTIFY"), False)

    def default_secret_key(self) -> str:
        return "testing-only-secret-key-never-use-in-production"


class ProductionConfig(BaseConfig):
    APP_ENV = "production"

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(environ)
        # behind TLS in production: browsers must never fall back to plain HTTP (two years)
        self.HSTS_SECONDS = _number(environ, "HSTS_SECONDS", 63_072_000, int)
        self.LOG_FORMAT = (environ.get("LOG_FORMAT") or "json").lower()

    def problems(self) -> list[str]:
        found = super().problems()
        if not self.SECRET_KEY:
            found.append(
                "SECRET_KEY is not set: generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        elif len(self.SECRET_KEY) < MIN_SECRET_KEY_LENGTH:
            found.append(
                f"SECRET_KEY is {len(self.SECRET_KEY)} characters long; "
                f"production needs at least {MIN_SECRET_KEY_LENGTH}"
            )
        database = _database_name(self.SQLALCHEMY_DATABASE_URI)
        if database and TEST_DATABASE_NAME.search(database):
            found.append(f"DATABASE_URL names the database {database!r}, which looks like a test database")
        if self.DEBUG:
            found.append("DEBUG is on; production must run with DEBUG=false")
        return found


CONFIGS: dict[str, type[BaseConfig]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def parse_provider_secrets(text: str) -> dict[str, list[str]]:
    """`stripe:whsec_1,stripe:whsec_2,adyen:abc` -> {"stripe": ["whsec_1", "whsec_2"], "adyen": ["abc"]}."""
    secrets: dict[str, list[str]] = {}
    for pair in text.split(","):
        name, _, secret = pair.strip().partition(":")
        if name.strip() and secret.strip():
            secrets.setdefault(name.strip(), []).append(secret.strip())
        elif pair.strip():
            raise ConfigError(f"PAYMENT_PROVIDER_SECRETS: {name.strip()!r} has no secret; write provider:secret pairs")
    return secrets


def normalize_database_url(uri: str | None) -> str | None:
    """Pin the psycopg2 driver: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which we do not ship."""
    if not uri:
        return uri
    for bare in ("postgres://", "postgresql://"):
        if uri.startswith(bare):
            return "postgresql+psycopg2://" + uri.removeprefix(bare)
    return uri


def redis_storage_uri(redis_url: str) -> str:
    """The `limits` library spells a unix-socket Redis redis+unix://."""
    return "redis+unix://" + redis_url.removeprefix("unix://") if redis_url.startswith("unix://") else redis_url


def _database_name(uri: str | None) -> str | None:
    if not uri:
        return None
    try:
        url: URL = make_url(uri)
    except ArgumentError:
        return None
    return url.database


def load_config(environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build, override and validate the settings for the environment named by APP_ENV."""
    overrides = dict(overrides or {})
    app_env = str(overrides.pop("APP_ENV", None) or environ.get("APP_ENV") or "development").lower()
    if app_env not in CONFIGS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(CONFIGS)}; got {app_env!r}")
    settings = CONFIGS[app_env](environ)
    for name, value in overrides.items():
        setattr(settings, name, value)
    settings.derive()
    problems = settings.problems()
    if problems:
        raise ConfigError(f"shop cannot start with APP_ENV={app_env}:\n  - " + "\n  - ".join(problems))
    return settings.as_dict() | {"APP_ENV": app_env}
