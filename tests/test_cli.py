from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient, FlaskCliRunner

from shop.models import Product, User


def catalog(session: Any) -> list[tuple[str, str, str, str, int]]:
    rows = session.execute(
        sa.select(Product.sku, Product.name, Product.category, Product.price, Product.stock).order_by(Product.sku)
    )
    return [(sku, name, category, str(price), stock) for sku, name, category, price, stock in rows]


def test_load_sample_data_fills_an_empty_catalog(runner: FlaskCliRunner, db_session: Any) -> None:
    result = runner.invoke(args=["load-sample-data", "--products", "24"])

    assert result.exit_code == 0, result.output
    assert "Loaded 24 sample products." in result.output
    products = catalog(db_session)
    assert len(products) == 24
    assert len({category for _, _, category, _, _ in products}) == 8
    assert all(price.endswith((".99", ".49")) for _, _, _, price, _ in products)


def test_load_sample_data_leaves_a_non_empty_catalog_alone(runner: FlaskCliRunner, db_session: Any) -> None:
    runner.invoke(args=["load-sample-data", "--products", "5"])
    before = catalog(db_session)

    result = runner.invoke(args=["load-sample-data", "--products", "50"])

    assert result.exit_code == 0
    assert "already has products; nothing loaded" in result.output
    assert catalog(db_session) == before


def test_load_sample_data_is_deterministic_for_a_seed(runner: FlaskCliRunner, db_session: Any) -> None:
    runner.invoke(args=["load-sample-data", "--products", "10", "--seed", "7"])
    first = catalog(db_session)
    db_session.execute(sa.delete(Product))

    runner.invoke(args=["load-sample-data", "--products", "10", "--seed", "7"])

    assert catalog(db_session) == first


def test_load_sample_data_refuses_a_bad_count(runner: FlaskCliRunner, db_session: Any) -> None:
    result = runner.invoke(args=["load-sample-data", "--products", "0"])

    assert result.exit_code == 2
    assert "0 is not in the range 1<=x<=10000" in result.output
    assert catalog(db_session) == []


# --- create-user --------------------------------------------------------------------------------------


def accounts(session: Any) -> list[tuple[str, str, str]]:
    return [tuple(row) for row in session.execute(sa.select(User.email, User.name, User.role).order_by(User.id))]


def test_create_user_makes_a_staff_account_that_can_log_in(
    runner: FlaskCliRunner, client: FlaskClient, db_session: Any
) -> None:
    result = runner.invoke(
        args=[
            "create-user",
            "--email",
            "boss@example.com",
            "--name",
            "Boss",
            "--role",
            "staff",
            "--password",
            "s3cret-pass",
        ]
    )

    assert result.exit_code == 0, result.output
    assert "Created staff account" in result.output
    assert accounts(db_session) == [("boss@example.com", "Boss", "staff")]
    login = client.post("/api/v1/auth/tokens", json={"email": "boss@example.com", "password": "s3cret-pass"})
    assert login.status_code == 201
    assert login.get_json()["user"]["role"] == "staff"


def test_create_user_prompts_for_the_password_twice_without_echoing_it(runner: FlaskCliRunner, db_session: Any) -> None:
    result = runner.invoke(
        args=["create-user", "--email", "admin@example.com", "--name", "Ad Min", "--role", "admin"],
        input="long enough pw\nlong enough pw\n",
    )

    assert result.exit_code == 0, result.output
    assert "long enough pw" not in result.output
    assert "Repeat for confirmation" in result.output
    assert accounts(db_session) == [("admin@example.com", "Ad Min", "admin")]
    stored = db_session.scalar(sa.select(User.password_hash))
    assert stored.startswith("$argon2id$")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--email", "not-an-email", "--name", "X", "--password", "long enough"], "is not a valid email address"),
        (["--email", "x@example.com", "--name", "X", "--password", "short"], "must be 8 to 128 characters"),
        (["--email", "x@example.com", "--name", "X", "--role", "god", "--password", "long enough"], "'god' is not one"),
        (["--email", "x@example.com", "--name", "  ", "--password", "long enough"], "must not be blank"),
    ],
)
def test_create_user_refuses_bad_options_and_writes_nothing(
    runner: FlaskCliRunner, db_session: Any, arguments: list[str], message: str
) -> None:
    result = runner.invoke(args=["create-user", *arguments])

    assert result.exit_code == 2
    assert message in result.output
    assert accounts(db_session) == []


def test_create_user_refuses_a_taken_email(runner: FlaskCliRunner, db_session: Any) -> None:
    first = ["create-user", "--email", "x@example.com", "--name", "X", "--password", "long enough"]
    runner.invoke(args=first)

    result = runner.invoke(args=["create-user", "--email", "X@EXAMPLE.com", "--name", "Y", "--password", "long enough"])

    assert result.exit_code == 1
    assert "An account with the email X@EXAMPLE.com already exists." in result.output
    assert accounts(db_session) == [("x@example.com", "X", "customer")]


def test_purge_expired_tokens_deletes_only_expired_ones(runner: FlaskCliRunner, db_session: Any) -> None:
    user_id = db_session.execute(
        sa.text("INSERT INTO users (email, name, password_hash) VALUES ('t@example.com', 'T', 'x') RETURNING id")
    ).scalar_one()
    for digest, expires in (("a" * 64, "-1 hour"), ("b" * 64, "-1 second"), ("c" * 64, "+1 hour")):
        db_session.execute(
            sa.text(
                "INSERT INTO api_tokens (user_id, token_digest, created_at, expires_at)"
                " VALUES (:user_id, :digest, now() - interval '2 hours', now() + CAST(:expires AS interval))"
            ),
            {"user_id": user_id, "digest": digest, "expires": expires},
        )

    result = runner.invoke(args=["purge-expired-tokens"])

    assert result.exit_code == 0, result.output
    assert "Deleted 2 expired tokens." in result.output
    assert db_session.scalars(sa.text("SELECT token_digest FROM api_tokens")).all() == ["c" * 64]


def test_purge_idempotency_keys_keeps_a_day_of_them(runner: FlaskCliRunner, db_session: Any) -> None:
    user_id = db_session.execute(
        sa.text("INSERT INTO users (email, name, password_hash) VALUES ('k@example.com', 'K', 'x') RETURNING id")
    ).scalar_one()
    for key, age in (("old", "25 hours"), ("recent", "23 hours"), ("new", "1 second")):
        db_session.execute(
            sa.text(
                "INSERT INTO idempotency_records (user_id, key, request_fingerprint, created_at)"
                " VALUES (:user_id, :key, 'f', now() - CAST(:age AS interval))"
            ),
            {"user_id": user_id, "key": key, "age": age},
        )

    result = runner.invoke(args=["purge-idempotency-keys"])
    too_soon = runner.invoke(args=["purge-idempotency-keys", "--older-than-hours", "1"])

    assert result.exit_code == 0, result.output
    assert "Deleted 1 idempotency records older than 24 hours." in result.output
    assert sorted(db_session.scalars(sa.text("SELECT key FROM idempotency_records"))) == ["new", "recent"]
    assert too_soon.exit_code == 2
