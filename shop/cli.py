"""Commands registered on the `flask` CLI by the app factory."""

from __future__ import annotations

import hashlib
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime

import click
import marshmallow as ma
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import with_appcontext

from shop.extensions import db, passwords
from shop.models import Role
from shop.reports.summaries import roll_up
from shop.seeding.generate import DEMO_ACCOUNTS, SeedPlan
from shop.seeding.load import NOT_EMPTY, SeedRefused, seed_store, shop_is_empty
from shop.services.accounts import EmailTaken, purge_expired_tokens, register_user
from shop.services.events import KEEP_DAYS, purge_events
from shop.services.order_expiry import expire_overdue, sweep
from shop.services.ordering import purge_idempotency_records
from shop.services.sample_catalog import load_sample_catalog
from shop.webhooks.worker import Settings, run_round, serve

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


DEMO_PASSWORD = "shop-demo-password"  # noqa: S105 - printed for developers; demo accounts never exist in production
DAY = click.DateTime(formats=["%Y-%m-%d"])
MAX_SEED_ORDERS = 10_000_000  # keeps every product's units sold far inside the stock column's range


@click.command("seed-db")
@click.option("--users", default=200, show_default=True, type=click.IntRange(min=0, max=5_000_000))
@click.option("--products", default=500, show_default=True, type=click.IntRange(min=0, max=1_000_000))
@click.option("--orders", default=5_000, show_default=True, type=click.IntRange(min=0, max=MAX_SEED_ORDERS))
@click.option("--since", type=DAY, help="first day of orders  [default: --months before --until]")
@click.option("--months", type=click.IntRange(min=1, max=120), help="months of orders before --until  [default: 18]")
@click.option("--until", type=DAY, help="the day after the last orders  [default: today]")
@click.option("--seed", default=42, show_default=True, type=int, help="same options and seed, same data")
@click.option("--reset", is_flag=True, help="empty the shop's tables first (asks unless --yes)")
@click.option("--yes", is_flag=True, help="do not ask before --reset")
@click.option("--if-empty", is_flag=True, help="leave a database that already has data alone (for `make run`)")
@click.option("--force", is_flag=True, help="allow seeding when APP_ENV=production")
@with_appcontext
def seed_db_command(
    users: int,
    products: int,
    orders: int,
    since: datetime | None,
    months: int | None,
    until: datetime | None,
    seed: int,
    reset: bool,
    yes: bool,
    if_empty: bool,
    force: bool,
) -> None:
    """Fill the database with a realistic, deterministic store: customers, a catalog and a history of orders."""
    production = current_app.config["APP_ENV"] == "production"
    if production and not force:
        raise click.UsageError(
            "APP_ENV is production: seeding would write fixtures into it. Add --force if you mean it."
        )
    if since is not None and months is not None:
        raise click.UsageError("Give --since or --months, not both.")
    last_day = until.date() if until is not None else datetime.now(UTC).date()
    first_day = since.date() if since is not None else _months_before(last_day, months or 18)
    if first_day >= last_day:
        raise click.BadParameter(f"must be before {last_day.isoformat()}.", param_hint="--since")
    if orders and not (users and products):
        raise click.UsageError("Orders need at least one customer (--users) and one product (--products).")

    with db.engine.connect() as connection:
        if not sa.inspect(connection).has_table("orders"):
            raise click.ClickException("The database has no shop tables yet: run `flask db upgrade` first.")
        empty = shop_is_empty(connection)
    if not empty and not reset:
        if if_empty:
            click.echo("The database already has data; nothing seeded (use --reset to replace it).")
            return
        raise SeedRefused(NOT_EMPTY)
    if reset and not empty and not yes:
        database = db.engine.url.database
        click.confirm(f"This deletes every user, product and order in {database!r}. Go on?", abort=True)

    demo_hashes = None
    if not production:
        # a salt derived from the seed keeps even these rows the same from run to run
        demo_hashes = {
            email: passwords.fixture_hash(
                DEMO_PASSWORD, hashlib.sha256(f"seed-db:{seed}:{email}".encode()).digest()[:16]
            )
            for email in DEMO_ACCOUNTS.values()
        }
    plan = SeedPlan(users, products, orders, first_day, last_day, seed, demo_accounts=demo_hashes is not None)
    report = seed_store(
        plan,
        reset=reset,
        currency=current_app.config["CURRENCY"],
        demo_password_hashes=demo_hashes,
        progress=sys.stderr.isatty(),
    )
    counts = ", ".join(f"{rows:,} {table}" for table, rows in report.rows.items())
    click.echo(f"Seeded {counts} ({first_day} to {last_day}, seed {seed}) in {report.seconds:.1f} s.")
    if not report.cache_cleared:
        click.echo("Warning: Redis was unreachable, so the catalog cache was not cleared; flush it.", err=True)
    if demo_hashes is not None:
        for role, email in DEMO_ACCOUNTS.items():
            click.echo(f"Demo {role}: {email} / {DEMO_PASSWORD}")


def _months_before(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    return date(month_index // 12, month_index % 12 + 1, 1)


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


def until_terminated(started: str, work: Callable[[threading.Event], None]) -> None:
    """Run a long-lived command's loop until SIGTERM or SIGINT sets its stop event (it finishes what it is doing)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(started)
    work(stop)
    click.echo("stopped")


@click.group("orders")
def orders_group() -> None:
    """Orders, as shop itself looks after them."""


@orders_group.command("expire")
@click.option("--once", is_flag=True, help="expire one batch of overdue orders, then exit")
@click.option("--interval", type=click.FloatRange(min=1), default=30.0, show_default=True, help="seconds apart")
@with_appcontext
def expire_orders_command(once: bool, interval: float) -> None:
    """Cancel, as expired, pending orders not paid within ORDER_PAYMENT_WINDOW_MINUTES, their units back to stock,
    until SIGTERM or SIGINT. Safe to run from several places at once: each order expires once."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if once:
        expired = expire_overdue(float(app.config["ORDER_PAYMENT_WINDOW_MINUTES"]))
        click.echo(f"Expired {expired} unpaid orders.")
        return
    until_terminated(
        "expiring unpaid orders; SIGTERM stops after the current sweep", lambda stop: sweep(app, stop, interval)
    )


@click.group("events")
def events_group() -> None:
    """The event outbox."""


@events_group.command("purge")
@click.option(
    "--older-than-days",
    type=click.IntRange(min=KEEP_DAYS),
    default=KEEP_DAYS,
    show_default=True,
    help=f"never less than {KEEP_DAYS}: followers may catch up for a month",
)
@with_appcontext
def purge_events_command(older_than_days: int) -> None:
    """Delete events older than the retention period. Safe to run from cron."""
    click.echo(f"Deleted {purge_events(older_than_days)} events older than {older_than_days} days.")


@events_group.command("deliver")
@click.option("--once", is_flag=True, help="one round (new events for each endpoint, then due retries), then exit")
@with_appcontext
def deliver_events_command(once: bool) -> None:
    """Deliver events to the webhook endpoints until SIGTERM or SIGINT (the current round finishes first).
    Run as many as you like: they never send one attempt twice."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if once:
        click.echo(f"{run_round(Settings.of(app)).work} events read and retries attempted.")
        return
    until_terminated("delivering events; SIGTERM stops after the current round", lambda stop: serve(app, stop))


@click.group("reports")
def reports_group() -> None:
    """The reports' summaries."""


@reports_group.command("roll-up")
@with_appcontext
def roll_up_command() -> None:
    """Fold the summaries' pending changes into them (`flask orders expire` does it every round). Safe from cron."""
    click.echo(f"Folded {roll_up()} changes into the report summaries.")


def register_commands(app: Flask) -> None:
    app.cli.add_command(seed_db_command)
    app.cli.add_command(load_sample_data_command)
    app.cli.add_command(create_user_command)
    app.cli.add_command(purge_expired_tokens_command)
    app.cli.add_command(purge_idempotency_keys_command)
    app.cli.add_command(events_group)
    app.cli.add_command(orders_group)
    app.cli.add_command(reports_group)
