"""Commands registered on the `flask` CLI by the app factory."""

from __future__ import annotations

import click
import marshmallow as ma
from flask import Flask, current_app
from flask.cli import with_appcontext

from shop.models import Role
from shop.services.accounts import EmailTaken, purge_expired_tokens, register_user
from shop.services.ordering import purge_idempotency_records
from shop.services.sample_catalog import load_sample_catalog

_valid_email = ma.validate.Email()


def _email(context: click.Context, parameter: click.Parameter, value: str) -> str:
    try:
        return str(_valid_email(value.strip()))
    except ma.ValidationError:
        raise click.BadParameter(f"{value!r} is not a valid email address.") from None


def _password(context: click.Context, parameter: click.Parameter, value: str) -> str:
    if not 8 <= len(value) <= 128:
        raise click.BadParameter("must be 8 to 128 characters long.")
    return value


@click.command("create-user")
@with_appcontext
@click.option("--email", required=True, callback=_email)
@click.option("--name", required=True)
@click.option(
    "--role", type=click.Choice([role.value for role in Role]), default=Role.CUSTOMER.value, show_default=True
)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    callback=_password,
    help="prompted for, hidden, when not given",
)
def create_user_command(email: str, name: str, role: str, password: str) -> None:
    """Create an account; the only way to make staff and admin accounts."""
    if not name.strip():
        raise click.BadParameter("must not be blank.", param_hint="--name")
    try:
        user = register_user(email, password, name.strip(), Role(role))
    except EmailTaken as taken:
        raise click.ClickException(taken.detail) from None
    click.echo(f"Created {user.role} account {user.id} for {user.email}.")


@click.command("load-sample-data")
@with_appcontext
@click.option("--products", default=60, show_default=True, type=click.IntRange(min=1, max=10_000))
@click.option("--seed", default=42, show_default=True, type=int, help="same seed, same catalog")
def load_sample_data_command(products: int, seed: int) -> None:
    """Fill an empty catalog with a small deterministic sample; leave a non-empty one alone."""
    inserted = load_sample_catalog(products, seed)
    if inserted:
        click.echo(f"Loaded {inserted} sample products.")
    else:
        click.echo("The catalog already has products; nothing loaded.")


@click.command("purge-expired-tokens")
@with_appcontext
def purge_expired_tokens_command() -> None:
    """Delete expired API tokens (they are refused anyway; this keeps the table small). Safe to run from cron."""
    click.echo(f"Deleted {purge_expired_tokens()} expired tokens.")


@click.command("purge-idempotency-keys")
@click.option(
    "--older-than-hours",
    type=click.IntRange(min=24),
    default=None,
    help="default IDEMPOTENCY_KEY_TTL_HOURS (24); never less: clients may retry for a day",
)
@with_appcontext
def purge_idempotency_keys_command(older_than_hours: int | None) -> None:
    """Delete Idempotency-Key records older than the retention period. Safe to run from cron."""
    hours = older_than_hours or max(current_app.config["IDEMPOTENCY_KEY_TTL_HOURS"], 24)
    click.echo(f"Deleted {purge_idempotency_records(hours)} idempotency records older than {hours} hours.")


def register_commands(app: Flask) -> None:
    app.cli.add_command(load_sample_data_command)
    app.cli.add_command(create_user_command)
    app.cli.add_command(purge_expired_tokens_command)
    app.cli.add_command(purge_idempotency_keys_command)
