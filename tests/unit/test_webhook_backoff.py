"""How long a failed delivery waits before its next try: doubling, jittered, capped."""

from __future__ import annotations

from shop.webhooks.settings import Settings

SETTINGS = Settings(
    timeout_seconds=5, retry_seconds=86_400, retry_base_seconds=10, retry_max_seconds=3600,
    disable_after_seconds=259_200, allow_private=False, require_https=True,
)  # fmt: skip


def test_each_wait_falls_between_half_and_all_of_a_doubling_ceiling() -> None:
    for attempts, ceiling in [(1, 10), (2, 20), (3, 40), (4, 80), (8, 1280)]:
        waits = [SETTINGS.backoff(attempts) for _ in range(200)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits), attempts
        assert max(waits) - min(waits) > ceiling / 10  # jittered: retries of many deliveries spread out


def test_the_wait_stops_growing_at_the_cap() -> None:
    assert all(1800 <= SETTINGS.backoff(30) <= 3600 for _ in range(100))


def test_a_batch_holds_what_it_took_past_its_last_sends_deadline() -> None:
    # no send starts after the budget; one that starts just before it may take a whole timeout, then the record
    assert SETTINGS.hold_seconds > SETTINGS.send_budget_seconds + SETTINGS.timeout_seconds
