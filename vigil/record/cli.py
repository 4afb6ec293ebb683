"""`vigil entity TYPE KEY` and `vigil explain --event-id ID`: answers from the record."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import orjson

from vigil.record.base import Record, StoredEvent
from vigil.record.open import open_record, record_url
from vigil.record.redact import Redactor
from vigil.record.settings import RecordSettings, record_settings


def record_options(function: Any) -> Any:
    for option in reversed([
        click.option("--db", default=None,
                     help="The state store (store.url, env VIGIL_STORE; default vigil-data/vigil.sqlite): its "
                          "labels, and the record beside a SQLite store."),
        click.option("--record", "record", default=None,
                     help="The record, if not beside the store: a SQLite path or postgresql:// URL (record.url)."),
    ]):
        function = option(function)
    return function


def cli_settings(db: str | None, record: str | None) -> tuple[str, RecordSettings]:
    """The store and record settings of a read: vigil.toml, the environment (VIGIL_STORE, VIGIL_RECORD__URL,
    VIGIL_RECORD__HASH_KEY …), then the flags."""
    from vigil.settings import DEFAULT_STORE, ConfigError, load_settings

    flags: dict[str, Any] = {"store.url": db}
    try:
        settings = load_settings(flags)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    raw = {**settings.record, "enabled": True}
    if record:
        raw["url"] = record
    try:
        return settings.store_url(DEFAULT_STORE), record_settings(raw)
    except ValueError as error:
        raise click.ClickException(str(error)) from None


@contextmanager
def opened_record(db: str | None, record: str | None) -> Iterator[tuple[Record, RecordSettings, str]]:
    store_url, settings = cli_settings(db, record)
    url = record_url(settings, store_url)
    if url is None or url == "memory:":
        raise click.ClickException("no record to read: give --db (the record lies beside a SQLite store) or "
                                   "--record URL")
    if not url.startswith(("postgresql://", "postgres://")) and not os.path.exists(url):
        raise click.ClickException(f"no record at {url}: nothing has been recorded there yet (the record is "
                                   "written by vigil run --db, serve and worker), or give --record URL")
    opened = open_record(url)
    try:
        yield opened, settings, store_url
    finally:
        opened.close()


def stored_text(stored: StoredEvent) -> str:
    """A stored event's decisions as they were made, in the words of `vigil explain`."""
    lines = [f"event {stored.event_id} ({stored.type})" + (f" from {stored.source}" if stored.source else "")
             + f", recorded {stored.recorded_at:.3f}, rules version {stored.ruleset}: {stored.verdict.upper()}"]
    for decision in stored.decisions:
        stage = " (second stage)" if decision.get("stage") == 2 else (
            " (slow rules pending)" if decision.get("pending") else "")
        lines.append(f"  stage {decision.get('stage', 1)}{stage}: {str(decision.get('verdict')).upper()}")
        hits = decision.get("explanation", [])
        if not hits:
            lines.append("    no rule fired")
        for hit in hits:
            mode = "" if hit.get("mode") == "live" else f" [{hit.get('mode')}: not applied]"
            lines.append(f"    rule \"{hit['rule']}\" ({hit.get('severity')}){mode} → {hit.get('verdict') or 'no verdict'}")
            for name, value in hit.get("features", {}).items():
                lines.append(f"        {name} = {value!r}")
            for effect in hit.get("effects", []):
                lines.append(f"        effect: {orjson.dumps(effect).decode()}")
        applied = decision.get("effects", [])
        if applied:
            lines.append("    applied: " + ", ".join(orjson.dumps(e).decode() for e in applied))
    return "\n".join(lines)


def explain_recorded(event_id: str, source: str | None, db: str | None, record: str | None,
                     as_json: bool) -> None:
    """`vigil explain --event-id`: the decision as it was made, read from the record."""
    with opened_record(db, record) as (opened, _settings, _store):
        found = [opened.get(source, event_id)] if source is not None else opened.find(event_id)
        stored = [s for s in found if s is not None]
    if not stored:
        where = f" from source {source!r}" if source is not None else ""
        raise click.ClickException(f"event {event_id!r}{where} is not in the record (never recorded, or past "
                                   "retention); `vigil entity` or a search finds what is there")
    if len(stored) > 1 and source is None:
        sources = ", ".join(repr(s.source) for s in stored)
        raise click.ClickException(f"event id {event_id!r} was sent by several sources ({sources}): add --source")
    click.echo(orjson.dumps(stored[0].to_json()).decode() if as_json else stored_text(stored[0]))


@click.command("entity")
@click.argument("entity_type")
@click.argument("key")
@record_options
@click.option("--rules", "rules_paths", multiple=True, type=click.Path(exists=True),
              help="The running rules, to show the entity's counters (repeatable).")
@click.option("--limit", default=50, show_default=True, help="Events per page (at most 500).")
@click.option("--after", default=None, help="The cursor a previous page ended with: the next, older page.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def entity_command(entity_type: str, key: str, db: str | None, record: str | None, rules_paths: tuple[str, ...],
                   limit: int, after: str | None, as_json: bool) -> None:
    """The timeline of one entity: recent events and decisions, labels with their history, counters,
    and the other entities seen with it. ENTITY_TYPE is a name the rules declare (`entity user = …`)."""
    from vigil.record.timeline import entity_timeline, timeline_text
    from vigil.signals.labels import Labels
    from vigil.stores.open import open_store

    with opened_record(db, record) as (opened, settings, store_url):  # first: a missing record creates no store
        store = open_store(store_url) if store_url not in ("memory", "memory:") else None
        engine = None
        try:
            if rules_paths and store is not None:
                from vigil.cli import _load
                from vigil.engine import Engine

                engine = Engine(_load(rules_paths), store)
            labels = engine.labels if engine is not None else Labels(store) if store is not None else None
            timeline = entity_timeline(opened, entity_type, key, labels=labels, counters=engine,
                                       redactor=Redactor(settings), limit=limit, after=after)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        finally:
            if engine is not None:
                engine.close()
            elif store is not None:
                store.close()
    click.echo(orjson.dumps(timeline.to_json()).decode() if as_json else timeline_text(timeline))
