"""`vigil outbox …`: what waits in a store's outbox for the sinks, and the messages given up (dead
letters of the sinks): see them, and send them again once the receiver is fixed."""

from __future__ import annotations

import sys
import time
from typing import Any

import click
import orjson

from vigil.settings import DEFAULT_STORE, ConfigError, load_settings
from vigil.stores.cli import config_option, db_option


def _store(db: str | None, config_path: str | None) -> Any:
    """The store of `--db`, else of the settings (store.url: vigil.toml, VIGIL_STORE), else the default:
    the one every other command opens."""
    from vigil.stores.open import open_store

    try:
        settings = load_settings({"store.url": db}, config=config_path)
        return open_store(settings.store_url(DEFAULT_STORE), dead_letters=settings.dead_letters.limits())
    except (ConfigError, ValueError) as error:
        raise click.ClickException(str(error)) from None


@click.group("outbox")
def outbox_group() -> None:
    """The outbox: messages for sinks until delivered (docs/operations.md, "Sinks")."""


@outbox_group.command("status")
@db_option
@config_option
def status_command(db: str | None, config_path: str | None) -> None:
    """Per sink: messages waiting, the age of the oldest, messages given up."""
    store = _store(db, config_path)
    try:
        status = store.outbox_status()
    finally:
        store.close()
    if not status:
        click.echo("the outbox is empty")
    now = time.time()
    for sink, part in sorted(status.items()):
        lag = f", oldest {now - part.oldest:.0f} s ago" if part.oldest is not None else ""
        click.echo(f"{sink}: {part.pending} waiting{lag}, {part.dead} given up")


@outbox_group.command("dead")
@db_option
@config_option
@click.option("--sink", default=None, help="Only this sink's messages.")
@click.option("--limit", default=1000, show_default=True, help="The most recent N messages.")
def dead_command(db: str | None, config_path: str | None, sink: str | None, limit: int) -> None:
    """The messages given up, as JSONL: sink, key, attempts, last error and the message."""
    store = _store(db, config_path)
    try:
        rows = store.outbox_dead(sink, limit)
    finally:
        store.close()
    for row in rows:
        line = {"sink": row.sink, "key": row.key, "attempts": row.attempts, "error": row.last_error,
                "created_at": row.created_at, "message": orjson.Fragment(row.body)}
        sys.stdout.buffer.write(orjson.dumps(line) + b"\n")


@outbox_group.command("requeue")
@db_option
@config_option
@click.option("--sink", default=None, help="Only this sink's messages (default: every sink's).")
def requeue_command(db: str | None, config_path: str | None, sink: str | None) -> None:
    """Send the messages given up again (with no attempts counted), at the next dispatcher's look."""
    store = _store(db, config_path)
    try:
        count = store.requeue_outbox(sink, time.time())
    finally:
        store.close()
    click.echo(f"{count} message(s) to send again" + (f" to {sink}" if sink else ""))
