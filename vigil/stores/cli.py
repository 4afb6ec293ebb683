"""`vigil dead-letters …`: list, export and replay the events a store keeps because they could not be
decided (SQLite or PostgreSQL: the `--db` of `vigil run`, `vigil serve` and the workers)."""

from __future__ import annotations

import base64
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import click
import orjson

from vigil.effects import DeadLetter
from vigil.settings import DEFAULT_STORE, ConfigError, DeadLetterSettings, Settings, load_settings

db_option = click.option("--db", default=None,
                         help="The store: a SQLite path, sqlite:/// or postgresql:// URL (store.url, env "
                              f"VIGIL_STORE; default {DEFAULT_STORE}).")
config_option = click.option("--config", "config_path", default=None, type=click.Path(exists=True, dir_okay=False),
                             help="Settings file (default: $VIGIL_CONFIG, or ./vigil.toml if present).")
limit_option = click.option("--limit", default=1000, show_default=True, help="The most recent N letters.")


def filter_options(function: Any) -> Any:
    """Which letters: by reason (words it contains, any case) and by source."""
    function = click.option("--source", "sources", multiple=True,
                            help="Only letters from this source (repeatable), e.g. http:TOKEN or a file name.")(function)
    return click.option("--reason", "reasons", multiple=True,
                        help="Only letters whose reason contains this text, any case (repeatable: any of them), "
                             "e.g. --reason 'not valid JSON'.")(function)


def letter_matches(letter: DeadLetter, reasons: tuple[str, ...], sources: tuple[str, ...]) -> bool:
    """Whether `letter` is one of those `--reason` and `--source` select (none given: every letter).

    >>> letter_matches(DeadLetter("not valid JSON: x", b"{"), ("valid json",), ())
    True
    >>> letter_matches(DeadLetter("too deep", b"[]", "feed"), ("json",), ()), letter_matches(DeadLetter("", b"", "a"), (), ("b",))
    (False, False)
    """
    if reasons and not any(r.casefold() in letter.reason.casefold() for r in reasons):
        return False
    return not sources or letter.source in sources


def dead_letter_options(function: Any) -> Any:
    """The dead-letter store's limits as options (`vigil serve`, `vigil run`, `vigil worker`), each
    overriding its `dead_letters.` setting when given (`dead_letter_flags` turns them into settings)."""
    defaults = DeadLetterSettings()
    options = [
        click.option("--dead-letter-max-raw", type=click.IntRange(min=0), default=None,
                     show_default=str(defaults.max_raw),
                     help="Bytes of a dead letter's raw body kept; its size and SHA-256 are always kept "
                          "(dead_letters.max_raw, env VIGIL_DEAD_LETTER_MAX_RAW)."),
        click.option("--dead-letter-max-count", type=click.IntRange(min=1), default=None,
                     show_default=str(defaults.max_count),
                     help="Dead letters kept at most; the oldest go first (dead_letters.max_count, env "
                          "VIGIL_DEAD_LETTER_MAX_COUNT)."),
        click.option("--dead-letter-retention-days", type=click.FloatRange(min=0, min_open=True), default=None,
                     show_default=f"{defaults.retention_days:g}",
                     help="Days a dead letter is kept (dead_letters.retention_days, env "
                          "VIGIL_DEAD_LETTER_RETENTION_DAYS)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def dead_letter_flags(options: dict[str, Any]) -> dict[str, Any]:
    """The settings `dead_letter_options` give (popped from `options`; None: not given)."""
    return {f"dead_letters.{key}": options.pop(f"dead_letter_{key}") for key in ("max_raw", "max_count",
                                                                                "retention_days")}


def _settings(db: str | None, config_path: str | None) -> Settings:
    try:
        return load_settings({"store.url": db}, config=config_path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def _letters(settings: Settings, limit: int, reasons: tuple[str, ...] = (),
             sources: tuple[str, ...] = ()) -> list[DeadLetter]:
    from vigil.stores.open import open_store

    try:
        store = open_store(settings.store_url(DEFAULT_STORE))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    try:
        letters: list[DeadLetter] = store.dead_letters(limit)
    finally:
        store.close()
    return [letter for letter in letters if letter_matches(letter, reasons, sources)]


def letter_json(letter: DeadLetter) -> dict[str, Any]:
    """One letter as JSON: the raw body as text where it is UTF-8, else base64."""
    out: dict[str, Any] = {"time": letter.time, "source": letter.source, "reason": letter.reason}
    try:
        out["raw"] = letter.raw.decode("utf-8")
    except UnicodeDecodeError:
        out["raw_base64"] = base64.b64encode(letter.raw).decode()
    if letter.details:
        out["details"] = letter.details
    return out


@click.group("dead-letters")
def dead_letters_group() -> None:
    """Events that could not be decided, kept in the store with the reason: list, export, replay."""


@dead_letters_group.command("list")
@db_option
@config_option
@limit_option
@filter_options
def list_command(db: str | None, config_path: str | None, limit: int, reasons: tuple[str, ...],
                 sources: tuple[str, ...]) -> None:
    """One line per letter, oldest first: time, source, size and reason; then how many letters each
    reason has (its first 80 characters), most frequent first."""
    letters = _letters(_settings(db, config_path), limit, reasons, sources)
    for letter in letters:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(letter.time))
        size = letter.details.get("raw_size", len(letter.raw))
        replayed = letter.details.get("replayed")
        mark = (f"  (replayed {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(replayed.get('at', 0)))} by "
                f"{replayed.get('by')}: {replayed.get('outcome')})") if isinstance(replayed, dict) else ""
        click.echo(f"{when}  {letter.source or '-'}  {size} B  {letter.reason}{mark}")
    click.echo(f"{len(letters)} dead letters", err=True)
    by_reason = Counter(letter.reason[:80] for letter in letters)
    for reason, count in by_reason.most_common(10):
        click.echo(f"  {count:>6}  {reason}", err=True)


@dead_letters_group.command("export")
@db_option
@config_option
@limit_option
@filter_options
@click.option("--out", "out_path", default="-", show_default=True, help="JSONL file; - is stdout.")
def export_command(db: str | None, config_path: str | None, limit: int, reasons: tuple[str, ...],
                   sources: tuple[str, ...], out_path: str) -> None:
    """Write letters as JSONL (time, source, reason, raw or raw_base64, details), oldest first."""
    letters = _letters(_settings(db, config_path), limit, reasons, sources)
    out = sys.stdout.buffer if out_path == "-" else open(out_path, "wb")  # noqa: SIM115
    try:
        for letter in letters:
            out.write(orjson.dumps(letter_json(letter)) + b"\n")
    finally:
        if out is sys.stdout.buffer:
            out.flush()
        else:
            out.close()
    click.echo(f"exported {len(letters)} dead letters", err=True)


@dead_letters_group.command("replay")
@click.argument("rules", nargs=-1, required=True, type=click.Path(exists=True))
@db_option
@config_option
@limit_option
@filter_options
@click.option("--out", "out_path", default="-", show_default=True, help="Where decisions go (JSONL); - is stdout.")
@click.option("--again", is_flag=True, help="Also replay the letters an earlier replay decided or found dead again.")
@click.option("--by", "by", default=None, help="Who replays, kept on each letter (default: the login name).")
def replay_command(rules: tuple[str, ...], db: str | None, config_path: str | None, limit: int,
                   reasons: tuple[str, ...], sources: tuple[str, ...], out_path: str, again: bool,
                   by: str | None) -> None:
    """Decide the letters' events again with RULES (after a fix to the rules or the events' producer),
    on the store's state, both stages as `vigil run` decides them; decisions out as JSONL and into the
    record (source "replay:" and the letter's). Each letter replayed is marked (when, by whom, the event
    id and outcome), so a second replay skips it unless --again. --reason and --source replay only the
    letters fixed. A letter whose body was cut to the store's limit is skipped; one that fails again is
    dead-lettered again with its new reason (that new letter is replayed next time). Exit 3 if any failed."""
    import getpass
    import threading

    from vigil.cli import _load
    from vigil.effects import Decision
    from vigil.events import parse_event
    from vigil.runtime import build_runtime

    settings = _settings(db, config_path)
    letters = _letters(settings, limit, reasons, sources)
    done_before = [x for x in letters if x.details.get("replayed")]
    if not again:
        letters = [x for x in letters if not x.details.get("replayed")]
    who = by or _login(getpass)
    # The runtime every front door runs: the store's state, Redis counters and labels when configured,
    # the signals of the settings (the rules loaded with their functions), the second stage.
    runtime = build_runtime(settings, lambda store, signals: _load(rules, signals.functions),
                            default_store=DEFAULT_STORE)
    engine = runtime.engine
    out = sys.stdout.buffer if out_path == "-" else open(out_path, "wb")  # noqa: SIM115
    write_lock = threading.Lock()

    def write(decision: Decision) -> None:
        with write_lock:
            out.write(orjson.dumps(decision.to_json()) + b"\n")

    runtime.subscribe(write)  # the second stage's decisions, from its thread
    slow = runtime.second_stage
    slow.start()
    decided = failed = skipped = 0
    try:
        for letter in letters:
            if letter.details.get("raw_truncated"):
                skipped += 1
                continue
            result = engine.process(letter.raw, source=f"replay:{letter.source}")
            mark: dict[str, Any] = {"at": time.time(), "by": who, "rules": engine.version}
            if isinstance(result, DeadLetter):
                failed += 1
                mark |= {"outcome": "dead again", "reason": result.reason}
                click.echo(f"still dead: {result.reason}", err=True)
            else:
                decided += 1
                mark |= {"outcome": "decided", "event_id": result.event_id, "source": f"replay:{letter.source}"}
                write(result)
                if result.pending:
                    slow.submit(parse_event(letter.raw), result)
            if letter.id is not None:
                history = [*letter.details.get("replays", ()), mark]
                engine.store.mark_dead_letter(letter.id, {**letter.details, "replayed": mark, "replays": history})
        slow.close()
    finally:
        runtime.close()  # the second stage's last decisions are written before the output closes
        if out is sys.stdout.buffer:
            out.flush()
        else:
            out.close()
    earlier = f", {len(done_before)} replayed before ({'again' if again else 'left; --again replays them'})" \
        if done_before else ""
    click.echo(f"replayed {len(letters)} dead letters: {decided} decided, {failed} dead again, "
               f"{skipped} skipped (body cut to the store's limit){earlier}", err=True)
    if failed:
        raise SystemExit(3)


def _login(getpass: Any) -> str:
    try:
        return str(getpass.getuser())
    except (KeyError, OSError):  # no login name in this environment
        return "unknown"


@click.group("store")
def store_group() -> None:
    """The durable store itself: check a SQLite file for damage."""


@store_group.command("check")
@db_option
@click.option("--full", is_flag=True, help="PRAGMA integrity_check (also compares every index with its table); "
                                           "default quick_check (every page and its structure).")
@click.option("--max-problems", default=100, show_default=True, help="Problems listed at most.")
def check_command(db: str | None, full: bool, max_problems: int) -> None:
    """Read a SQLite store whole and say whether it is sound (exit 0) or damaged (exit 1, with what
    SQLite found). Opening a store checks only its header and schema once it is larger than 16 MiB."""
    from vigil.stores.open import open_store
    from vigil.stores.sqlite import SqliteStore, damaged_store

    db = _settings(db, None).store_url(DEFAULT_STORE)
    store = open_store(db)
    try:
        if not isinstance(store, SqliteStore):
            click.echo(f"{db}: not a SQLite store; its server checks its own storage", err=True)
            return
        started = time.perf_counter()
        problems = store.integrity_problems(limit=max_problems, full=full)
    finally:
        store.close()
    if problems:
        for problem in problems:
            click.echo(problem)
        raise click.ClickException(str(damaged_store(db, problems)))
    size = Path(store.path).stat().st_size / (1 << 20) if store.path.exists() else 0.0
    click.echo(f"{db}: ok ({size:.1f} MiB checked in {time.perf_counter() - started:.2f} s)", err=True)
