"""The delivery worker's settings, read once from the app's configuration (docs/configuration.md)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from flask import Flask


@dataclass(frozen=True)
class Settings:
    timeout_seconds: float
    retry_seconds: float
    retry_base_seconds: float
    retry_max_seconds: float
    disable_after_seconds: float
    allow_private: bool
    require_https: bool

    @classmethod
    def of(cls, app: Flask) -> Settings:
        config = app.config
        return cls(
            timeout_seconds=float(config["WEBHOOK_TIMEOUT_SECONDS"]),
            retry_seconds=float(config["WEBHOOK_RETRY_HOURS"]) * 3600,
            retry_base_seconds=float(config["WEBHOOK_RETRY_BASE_SECONDS"]),
            retry_max_seconds=float(config["WEBHOOK_RETRY_MAX_SECONDS"]),
            disable_after_seconds=float(config["WEBHOOK_DISABLE_AFTER_HOURS"]) * 3600,
            allow_private=bool(config["WEBHOOK_ALLOW_PRIVATE_ADDRESSES"]),
            require_https=bool(config["WEBHOOK_REQUIRE_HTTPS"]),
        )

    @property
    def hold_seconds(self) -> float:
        """How long a worker holds what it took (an endpoint's cursor, claimed deliveries) before another may take
        it: the sending budget, one more send's deadline, and room to record."""
        return self.send_budget_seconds + self.timeout_seconds + 5

    @property
    def send_budget_seconds(self) -> float:
        """No send starts later than this into a batch: what is left goes back, due now, so a slow endpoint never
        keeps a batch past its hold (when another worker would send it all again)."""
        return 2 * self.timeout_seconds

    def backoff(self, attempts: int) -> float:
        """Seconds before the next try after `attempts` tries: exponential, capped, jittered (so endpoints that come
        back are not hit by every waiting delivery at once)."""
        ceiling = min(self.retry_max_seconds, self.retry_base_seconds * 2 ** (max(attempts, 1) - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - spreading retries, not a secret
