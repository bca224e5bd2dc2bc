"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
import sqlalchemy as sa
from flask import current_app
from flask.views import MethodView
from sqlalchemy.exc import SQLAlchemyError

from shop.api.schemas import Blueprint
from shop.extensions import db, redis_client

blp = Blueprint("health", __name__, description="Liveness and readiness probes")


class LivenessSchema(ma.Schema):
    status = ma.fields.String(metadata={"example": "ok"})


class ChecksSchema(ma.Schema):
    database = ma.fields.String(metadata={"description": "ok or unavailable"})
    redis = ma.fields.String(metadata={"description": "ok or degraded (the service still serves without it)"})


class ReadinessSchema(ma.Schema):
    status = ma.fields.String(metadata={"description": "ok or unavailable"})
    checks = ma.fields.Nested(ChecksSchema)


@blp.route("/healthz")
class Liveness(MethodView):
    @blp.response(200, LivenessSchema)
    def get(self) -> dict[str, str]:
        """The process is up. Touches nothing else."""
        return {"status": "ok"}


@blp.route("/readyz")
class Readiness(MethodView):
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(503, schema=ReadinessSchema, description="PostgreSQL does not answer")
    def get(self) -> tuple[dict[str, Any], int]:
        """Ready when PostgreSQL answers; Redis is reported but not required."""
        database_ok = _database_answers()
        redis_ok = redis_client.is_up()
        body = {
            "status": "ok" if database_ok else "unavailable",
            "checks": {
                "database": "ok" if database_ok else "unavailable",
                "redis": "ok" if redis_ok else "degraded",
            },
        }
        return body, 200 if database_ok else 503


def _database_answers() -> bool:
    try:
        with db.engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        current_app.logger.warning("readiness: PostgreSQL does not answer", exc_info=True)
        return False
    return True
