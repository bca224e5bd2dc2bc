"""Extensions, created unbound here and bound to an app in `create_app` (nothing connects at import)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from flask_cors import CORS
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from shop.models.base import Base
from shop.openapi import ProblemApi
from shop.redis_client import RedisClient
from shop.security.passwords import Passwords

# objects stay readable after commit: responses are built from what was just written, without a re-query
SESSION_OPTIONS: Mapping[str, Any] = MappingProxyType({"expire_on_commit": False})

# a copy: Flask-SQLAlchemy adds its own defaults to the dict it is given
db = SQLAlchemy(model_class=Base, session_options=dict(SESSION_OPTIONS))
migrate = Migrate()
redis_client = RedisClient()
api = ProblemApi()
passwords = Passwords()
# limits are declared per route (login, registration); nothing is limited by default
limiter = Limiter(key_func=get_remote_address)
cors = CORS()
