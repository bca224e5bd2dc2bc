from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy.pool import NullPool

from config import ConfigError, load_config
from tests.conftest import PROJECT_ROOT

GOOD_PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": "k" * 48,
    "DATABASE_URL": "postgresql://shop@db.internal:5432/shop",
    "REDIS_URL": "redis://cache.internal:6379/0",
}


def test_production_with_good_settings_loads() -> None:
    settings = load_config(GOOD_PRODUCTION)

    assert settings["APP_ENV"] == "production"
    assert settings["DEBUG"] is False
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg2://shop@db.internal:5432/shop"


def test_production_refuses_a_short_secret_key() -> None:
    with pytest.raises(ConfigError, match="SECRET_KEY is 10 characters long; production needs at least 32"):
        load_config(GOOD_PRODUCTION | {"SECRET_KEY": "0123456789"})


def test_production_refuses_a_missing_secret_key() -> None:
    environ = {key: value for key, value in GOOD_PRODUCTION.items() if key != "SECRET_KEY"}

    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        load_config(environ)


def test_production_refuses_a_missing_database_url() -> None:
    environ = {key: value for key, value in GOOD_PRODUCTION.items() if key != "DATABASE_URL"}

    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        load_config(environ)


@pytest.mark.parametrize("name", ["test", "shop_test", "test_shop", "shop-test", "TEST"])
def test_production_refuses_a_test_database(name: str) -> None:
    with pytest.raises(ConfigError, match=f"names the database '{name}', which looks like a test database"):
        load_config(GOOD_PRODUCTION | {"DATABASE_URL": f"postgresql://shop@db/{name}"})


@pytest.mark.parametrize("name", ["shop", "contest", "latest_orders", "testimonials"])
def test_production_accepts_names_that_merely_contain_test(name: str) -> None:
    assert load_config(GOOD_PRODUCTION | {"DATABASE_URL": f"postgresql://shop@db/{name}"})


def test_production_refuses_debug() -> None:
    with pytest.raises(ConfigError, match="DEBUG is on"):
        load_config(GOOD_PRODUCTION | {"DEBUG": "true"})


def test_production_names_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as refused:
        load_config({"APP_ENV": "production", "SECRET_KEY": "short", "DEBUG": "1"})

    message = str(refused.value)
    for problem in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DEBUG"):
        assert problem in message


def test_a_non_postgresql_database_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be a PostgreSQL URL, got 'sqlite'"):
        load_config(GOOD_PRODUCTION | {"DATABASE_URL": "sqlite:///shop.db"})


def test_a_replica_must_be_postgresql_too() -> None:
    with pytest.raises(ConfigError, match="DATABASE_REPLICA_URL must be a PostgreSQL URL, got 'mysql'"):
        load_config(GOOD_PRODUCTION | {"DATABASE_REPLICA_URL": "mysql://shop@replica/shop"})
    settings = load_config(GOOD_PRODUCTION | {"DATABASE_REPLICA_URL": "postgres://shop@replica/shop"})
    assert settings["DATABASE_REPLICA_URL"] == "postgresql+psycopg2://shop@replica/shop"  # as DATABASE_URL is
    assert settings["REPLICA_MAX_LAG_SECONDS"] == 10.0


def test_unknown_app_env_is_refused() -> None:
    with pytest.raises(ConfigError, match="APP_ENV must be one of development, testing, production; got 'staging'"):
        load_config(GOOD_PRODUCTION | {"APP_ENV": "staging"})


def test_pool_settings_come_from_the_environment() -> None:
    pool = {"DB_POOL_SIZE": "12", "DB_MAX_OVERFLOW": "3", "DB_POOL_RECYCLE": "600", "DB_PING_AFTER_IDLE_SECONDS": "2.5"}
    settings = load_config(GOOD_PRODUCTION | pool)

    options = settings["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["pool_size"] == 12
    assert options["max_overflow"] == 3
    assert options["pool_recycle"] == 600
    # idle connections are pinged by shop.db.connections instead, after this long
    assert options["pool_pre_ping"] is False
    assert settings["DB_PING_AFTER_IDLE_SECONDS"] == 2.5


def test_behind_an_external_pooler_the_app_keeps_no_connections() -> None:
    options = load_config(GOOD_PRODUCTION | {"DB_EXTERNAL_POOL": "true"})["SQLALCHEMY_ENGINE_OPTIONS"]

    assert options["poolclass"] is NullPool
    assert "pool_size" not in options  # NullPool takes no size: it keeps none
    assert load_config(GOOD_PRODUCTION)["SQLALCHEMY_ENGINE_OPTIONS"]["pool_size"] == 5


def test_a_malformed_number_is_named() -> None:
    with pytest.raises(ConfigError, match="DB_POOL_SIZE must be a whole number, got 'lots'"):
        load_config(GOOD_PRODUCTION | {"DB_POOL_SIZE": "lots"})


def test_heroku_style_postgres_urls_use_psycopg2() -> None:
    settings = load_config(GOOD_PRODUCTION | {"DATABASE_URL": "postgres://shop@db/shop"})

    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg2://shop@db/shop"


def test_the_wsgi_entry_point_refuses_to_start_with_a_short_secret_key() -> None:
    environ = {"PATH": os.environ["PATH"]} | GOOD_PRODUCTION | {"SECRET_KEY": "0123456789"}

    result = subprocess.run(
        [sys.executable, "-c", "import wsgi"],
        cwd=PROJECT_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "shop cannot start with APP_ENV=production" in result.stderr
    assert "SECRET_KEY is 10 characters long; production needs at least 32" in result.stderr
