"""Extensions, created unbound here and bound to an app in `create_app` (nothing connects at import)."""

from __future__ import annotations

from flask_caching import Cache
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy

from shop.models.base import Base
from shop.openapi import ProblemApi
from shop.redis_client import RedisClient

db = SQLAlchemy(model_class=Base)
migrate = Migrate()
cache = Cache()
redis_client = RedisClient()
api = ProblemApi()
