"""One redis-py client per app, with short timeouts: a dead Redis costs milliseconds, not a worker."""

from __future__ import annotations

import redis
from flask import Flask, current_app


class RedisClient:
    def init_app(self, app: Flask) -> None:
        timeout = app.config["REDIS_SOCKET_TIMEOUT"]
        app.extensions["redis"] = redis.Redis.from_url(
            app.config["REDIS_URL"],
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
        )

    @property
    def client(self) -> redis.Redis:
        client: redis.Redis = current_app.extensions["redis"]
        return client

    def is_up(self) -> bool:
        try:
            return bool(self.client.ping())
        except redis.RedisError:
            return False
