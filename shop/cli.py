"""Commands registered on the `flask` CLI by the app factory."""

from __future__ import annotations

import click
from flask import Flask

from shop.services.sample_catalog import load_sample_catalog


@click.command("load-sample-data")
@click.option("--products", default=60, show_default=True, type=click.IntRange(min=1, max=10_000))
@click.option("--seed", default=42, show_default=True, type=int, help="same seed, same catalog")
def load_sample_data_command(products: int, seed: int) -> None:
    """Fill an empty catalog with a small deterministic sample; leave a non-empty one alone."""
    inserted = load_sample_catalog(products, seed)
    if inserted:
        click.echo(f"Loaded {inserted} sample products.")
    else:
        click.echo("The catalog already has products; nothing loaded.")


def register_commands(app: Flask) -> None:
    app.cli.add_command(load_sample_data_command)
