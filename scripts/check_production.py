"""Check an environment before a deploy, as production would read it; exit 1 naming every problem, 0 when ready.

    SECRET_KEY=... DATABASE_URL=... REDIS_URL=... python scripts/check_production.py

Checks: everything production refuses to start with (secret strength, a PostgreSQL database that is not a test
one, DEBUG off, Redis configured, CORS, currency), then that Redis answers, and that the database answers and is
migrated to the newest revision. It reads the environment only, never `.env` files, and changes nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import redis
import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

from config import CONFIGS  # noqa: E402 - the project root is on the path only now

TIMEOUT_SECONDS = 5


def problems(environ: Mapping[str, str]) -> list[str]:
    settings = CONFIGS["production"](environ)
    settings.derive()
    found = list(settings.problems())
    if settings.REDIS_URL:
        found.extend(_redis_problems(settings.REDIS_URL))
    database = settings.SQLALCHEMY_DATABASE_URI
    if database and database.startswith("postgresql"):
        found.extend(_database_problems(database))
    return found


def _redis_problems(url: str) -> list[str]:
    try:
        redis.Redis.from_url(url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS).ping()
    except (redis.RedisError, OSError) as error:
        return [f"Redis at REDIS_URL does not answer: {error}"]
    return []


def _database_problems(url: str) -> list[str]:
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    engine = sa.create_engine(url, connect_args={"connect_timeout": TIMEOUT_SECONDS})
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("alembic_version"):
                return [f"the database has no migrations applied; run `flask db upgrade` (head is {head})"]
            current = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    except sa.exc.OperationalError as error:
        return [f"the database at DATABASE_URL does not answer: {str(error.orig).strip()}"]
    finally:
        engine.dispose()
    if current != [head]:
        return [f"the database is at migration {', '.join(current) or 'none'}, not {head}; run `flask db upgrade`"]
    return []


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig(str(PROJECT_ROOT / "migrations" / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return config


def main() -> int:
    found = problems(os.environ)
    if found:
        print("Not ready for production:", file=sys.stderr)
        for problem in found:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("Ready for production: configuration, Redis, database and migrations all check out.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
