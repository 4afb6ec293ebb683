"""`vigil search` and `vigil backtest`: the record read in the rules language, and candidate rules replayed
over it. Both read the record beside the state store (`--db`, as `vigil run` and `serve` write it) or the
one `--record` names."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson

DEFAULT_DB = "vigil-data/vigil.sqlite"


def _record(record_url: str | None, db: str | None) -> Any:
    """The record to read: `--record`, else the one beside the state store (vigil.record.open)."""
    from vigil.record.open import open_record
    from vigil.record.open import record_url as url_beside
    from vigil.record.settings import record_settings

    url = record_url or url_beside(record_settings(None), db or DEFAULT_DB)
    if url is None or url in ("memory", "memory:"):
        raise click.UsageError("a state store in memory keeps no record: give --db FILE or --record URL")
    if not url.startswith(("postgresql://", "postgres://")):
        path = Path(url.removeprefix("sqlite:///").removeprefix("sqlite://"))
        if not path.exists():
            raise click.ClickException(f"no record at {path}: run `vigil serve`, `vigil run --db …` or "
                                       "`vigil demo` with the record on first, or give --record URL")
    return open_record(url)


def _when(text: str | None, now: float, option: str) -> float | None:
    from vigil.analysis.search import parse_when

    if text is None:
        return None
    try:
        return parse_when(text, now)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


def _rule_exists(record: Any) -> Any:
    """Whether the record holds a hit of a rule by that name: one indexed read."""
    from vigil.record.base import Query

    return lambda name: next(iter(record.scan(Query(rules=(name,), limit=1))), None) is not None


def _redact() -> Any:
    """How the record stores a field (its `[record]` settings in vigil.toml and the environment), so a
    hashed field is searched by its hash; None where nothing is redacted."""
    from vigil.analysis.query import record_redact
    from vigil.record.redact import Redactor
    from vigil.record.settings import record_settings
    from vigil.settings import ConfigError, load_settings

    try:
        settings = record_settings(load_settings().record)
    except (ConfigError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    return record_redact(Redactor(settings)) if settings.redact else None


def _search_limits() -> Any:
    """The `[search]` settings (vigil.toml, VIGIL_SEARCH__…) as the search's limits; flags go on top."""
    from vigil.settings import ConfigError, load_settings

    try:
        return load_settings().search.limits()
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def record_options(function: Any) -> Any:
    for option in reversed([
        click.option("--db", default=None, envvar="VIGIL_STORE",
                     help=f"The state store (labels' history; the record lies beside it). Default {DEFAULT_DB}."),
        click.option("--record", "record_url", default=None, envvar="VIGIL_RECORD__URL",
                     help="The record's own URL, where it is not beside the state store."),
    ]):
        function = option(function)
    return function


@click.command("search")
@click.argument("query", nargs=-1, required=True)
@click.option("--since", default="7d", show_default=True, help="From: 7d, 24h, 30m before now, or a time.")
@click.option("--until", default=None, help="Until (exclusive): as --since. Default: now.")
@click.option("--limit", default=50, show_default=True, help="Events in one page (newest first).")
@click.option("--after", "cursor", default=None, help="Continue after this cursor (the last page's).")
@click.option("--by", type=click.Choice(["hour", "day"]), default=None, help="Count matches per hour or day.")
@click.option("--top", "top_n", default=10, show_default=True, help="How many values `top EXPR` lists.")
@click.option("--rules", "rules", multiple=True, type=click.Path(exists=True),
              help="Rules whose entities, definitions and lists the query may use (and whose rule names it knows).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout instead of a table.")
@click.option("--max-scan", default=None, type=int, help="Stored events one search may read (default: search.max_scanned, 200,000).")
@click.option("--time-budget", default=None, type=float, help="Seconds one search may run (default: search.time_budget, 10).")
@record_options
def search_command(query: tuple[str, ...], since: str, until: str | None, limit: int, cursor: str | None,
                   by: str | None, top_n: int, rules: tuple[str, ...], as_json: bool, max_scan: int | None,
                   time_budget: float | None, db: str | None, record_url: str | None) -> None:
    """Search the record with a condition in the rules language, e.g.

        vigil search 'rule "Known stuffing IP" fired and event.ip == "203.0.113.9"' --since 2d

        vigil search top event.ip where 'rule "Credential stuffing: many accounts from one IP" fired'

    Fields, functions, the rules' definitions (--rules), `rule "X" fired`, `verdict is review` and
    `ENTITY has label "x"` (as labels were at each event's time, from --db) may be used; see docs/record.md."""
    from dataclasses import replace

    from vigil.analysis import search as run
    from vigil.analysis.query import QueryError, compile_query
    from vigil.cli import _load

    text = " ".join(query)
    now = time.time()
    window = run.Window(_when(since, now, "--since"), _when(until, now, "--until"))
    limits = _search_limits()
    if max_scan is not None:
        limits = replace(limits, max_scanned=max_scan)
    if time_budget is not None:
        limits = replace(limits, time_budget=time_budget)
    context = _load(rules) if rules else _active_rules(db)
    record = _record(record_url, db)
    store = labels = None
    try:
        if db is not None or Path(DEFAULT_DB).exists():
            from vigil.signals.labels import Labels
            from vigil.stores.open import open_store

            store = open_store(db or DEFAULT_DB)
            labels = Labels(store)
        try:
            compiled = compile_query(text, context=context, rule_exists=_rule_exists(record), labels=labels,
                                     redact=_redact())
        except QueryError as error:
            click.echo(error.render(), err=True)
            raise SystemExit(1) from None
        try:
            if compiled.has_top:
                result: Any = run.top(record, compiled, window, n=top_n, limits=limits)
            elif by is not None:
                result = run.counts(record, compiled, window, by=by, limits=limits)
            else:
                result = run.search(record, compiled, window, limit=limit, after=cursor, limits=limits)
        except run.SearchRefused as error:
            raise click.ClickException(f"{error.message}: {error.hint}") from None
        except ValueError as error:  # a cursor that is not one
            raise click.BadParameter(str(error), param_hint="--after") from None
    finally:
        record.close()
        if store is not None:
            store.close()
    if as_json:
        click.echo(orjson.dumps(result.to_json(), option=orjson.OPT_NON_STR_KEYS).decode())
        return
    _print(result)


def _print(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    from vigil.analysis.report import _when as when
    from vigil.analysis.search import Page

    console = Console()
    if isinstance(result, Page):
        table = Table(title=f"{len(result.events)} events, newest first ({result.scanned:,} read)")
        for column in ("time", "type", "event", "verdict", "rules"):
            table.add_column(column)
        for e in result.events:
            table.add_row(when(e.time), e.type, f"{e.source} {e.event_id}", e.verdict, ", ".join(e.rules))
        console.print(table)
        if result.cursor is not None:
            click.echo(f"more: --after {result.cursor}", err=True)
        return
    table = Table(title=f"{result.matched:,} events matched ({result.scanned:,} read)")
    table.add_column("hour" if result.by == "hour" else "day" if result.by else "value")
    table.add_column("events", justify="right")
    for key, count in result.rows:
        table.add_row(str(key), f"{count:,}")
    console.print(table)


@click.command("backtest")
@click.argument("candidate", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--since", default="30d", show_default=True, help="From: 30d, 24h before now, or a time.")
@click.option("--until", default=None, help="Until (exclusive): as --since. Default: now.")
@click.option("--current", "current_rules", multiple=True, type=click.Path(exists=True),
              help="The rules the record's decisions came from (default: the store's active version, if any).")
@click.option("--truth-field", "--truth", "truth_field", default=None,
              help="An event field holding ground truth (the demo's: truth.attack) for precision and recall.")
@click.option("--reviews/--no-reviews", default=True, show_default=True,
              help="Also score both sides against reviewers' decisions in the record (review.decision events).")
@click.option("--positive-verdict", type=click.Choice(["flag", "review", "block"]), default="flag",
              show_default=True, help="The verdict, or stronger, that counts as catching an event.")
@click.option("--examples", default=5, show_default=True, help="Events shown for each kind of change.")
@click.option("--json", "json_out", default=None, help="Write the report as JSON to this file (- for stdout).")
@click.option("--html", "html_out", default=None, help="Write the report as a self-contained HTML page.")
@click.option("--progress/--no-progress", default=None, help="Progress on stderr (default: on a terminal).")
@record_options
def backtest_command(candidate: tuple[str, ...], since: str, until: str | None, current_rules: tuple[str, ...],
                     truth_field: str | None, reviews: bool, positive_verdict: str, examples: int, json_out: str | None,
                     html_out: str | None, progress: bool | None, db: str | None, record_url: str | None) -> None:
    """Replay the stored events of a time range through CANDIDATE rules (fresh state, warmed by the longest
    counter window) and compare with the decisions the record holds: rules added, changed and removed,
    hits gained and lost per rule with examples, verdict changes, and precision and recall where ground
    truth is known (--truth-field, and reviewers' decisions in the record). Exit 1 when the candidate has errors or the range holds no events."""
    from vigil.analysis.backtest import BacktestError, FieldTruth, backtest
    from vigil.analysis.report import render_html, text_summary
    from vigil.cli import _load

    now = time.time()
    start = _when(since, now, "--since")
    end = _when(until, now, "--until") or now
    assert start is not None  # --since has a default
    ruleset = _load(candidate)
    current = _load(current_rules) if current_rules else _active_rules(db)
    record = _record(record_url, db)
    show = progress if progress is not None else sys.stderr.isatty()
    bar = _progress_bar() if show else None
    try:
        report = backtest(record, ruleset, since=start, until=end, current=current,
                          truth=FieldTruth(truth_field) if truth_field else None, positive_verdict=positive_verdict,
                          examples=examples, progress=bar, reviews=reviews)
    except BacktestError as error:
        raise click.ClickException(str(error)) from None
    finally:
        if bar is not None:
            bar(1.0, 0)
        record.close()
    doc = report.to_json()
    if json_out is not None:
        data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
        if json_out == "-":
            sys.stdout.buffer.write(data + b"\n")
        else:
            Path(json_out).write_bytes(data)
    if html_out is not None:
        Path(html_out).write_text(render_html(doc), "utf-8")
    if json_out != "-":
        click.echo(text_summary(doc))


def _active_rules(db: str | None) -> Any:
    """The rules version the store has active (what `vigil serve` runs), or None."""
    from vigil.dsl.loader import load_ruleset

    path = db or DEFAULT_DB
    if not path.startswith(("postgresql://", "postgres://")) and not Path(
            path.removeprefix("sqlite:///").removeprefix("sqlite://")).exists():
        return None
    from vigil.stores.open import open_store

    store = open_store(path)
    try:
        active = getattr(store, "active_rules_version", lambda: None)()
        return None if active is None else load_ruleset(list(active.entry), files=dict(active.files))
    except Exception as error:  # noqa: BLE001 - only the comparison of definitions is lost
        click.echo(f"the store's active rules version did not load ({error}); comparing by rule names", err=True)
        return None
    finally:
        store.close()


def _progress_bar() -> Any:
    from rich.console import Console
    from rich.progress import Progress

    bar = Progress(transient=True, console=Console(stderr=True))
    task = bar.add_task("replaying", total=1.0)
    bar.start()

    def update(share: float, events: int) -> None:
        if share >= 1.0:
            bar.stop()  # at the end, and on an error (stopping twice is harmless)
            return
        bar.update(task, completed=share, description=f"replaying ({events:,} events)")

    return update
