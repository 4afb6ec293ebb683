"""`vigil serve` and `vigil token …`: the HTTP service and its API tokens, on the same store."""

from __future__ import annotations

import ipaddress
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vigil.cli import signal_options
from vigil.stores.base import DeadLetterLimits

if TYPE_CHECKING:
    from vigil.service.server import ConnectionBudget
from vigil.stores.cli import dead_letter_limits, dead_letter_options

DEFAULT_DB = "vigil-data/vigil.sqlite"
DEFAULT_BANKS = "vigil-data/banks.sqlite"


def _store(db: str, dead_letters: DeadLetterLimits | None = None):  # type: ignore[no-untyped-def]
    """SQLite path or URL, postgresql:// URL, or `memory` (no tokens, so --no-auth): vigil/stores/open.py."""
    from vigil.stores.open import open_store

    return open_store(db, dead_letters=dead_letters)


def default_banks(db: str) -> str:
    """banks.sqlite beside a SQLite state file (paths read as vigil/stores/sqlite.py reads them); in
    memory beside an in-memory store; otherwise (PostgreSQL) vigil-data/banks.sqlite.

    >>> default_banks("data/vigil.sqlite"), default_banks("sqlite:///srv/v.db"), default_banks("memory")
    ('data/banks.sqlite', 'srv/banks.sqlite', ':memory:')
    """
    if db in ("memory", "memory:"):
        return ":memory:"
    if "://" in db and not db.startswith("sqlite://"):
        return DEFAULT_BANKS
    path = db.removeprefix("sqlite:///") if db.startswith("sqlite:///") else db.removeprefix("sqlite://")
    return str(Path(path).parent / "banks.sqlite")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False),
              help="Rules directory: served and watched (reloaded within seconds of a change) when the rules "
                   "source is `directory`; with `store`, it only seeds a store that has no active version.")
@click.option("--rules-source", type=click.Choice(["auto", "directory", "store"]), default="auto",
              envvar="VIGIL_RULES_SOURCE", show_default=True,
              help="Where the running rules come from: the --rules directory (API uploads refused) or the "
                   "store (upload, activate, roll back through the API). auto: the directory when one is given, "
                   "unless the store's active version was put there through the API (env VIGIL_RULES_SOURCE).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback by default).")
@click.option("--port", default=8470, show_default=True)
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A name clients may give in Host, beyond the address served (repeatable; * for any). "
                   "Loopback serves localhost, 127.0.0.1 and ::1; 0.0.0.0 any name unless some are given.")
@click.option("--db", default=DEFAULT_DB, envvar="VIGIL_STORE", show_default=True,
              help="SQLite path, sqlite:/// or postgresql:// URL for state, rules versions and tokens (env VIGIL_STORE); "
                   "`memory` keeps everything in memory (with --no-auth).")
@click.option("--max-body", default=1 << 20, show_default=True, help="Largest event body, in bytes.")
@click.option("--max-batch", default=1000, show_default=True, help="Most events in one batch.")
@click.option("--max-batch-body", default=4 << 20, show_default=True, help="Largest batch body, in bytes.")
@click.option("--max-depth", default=64, show_default=True,
              help="Deepest nesting of objects and arrays in one event (deeper: 422 and a dead letter).")
@click.option("--rate-limit", default=0.0, show_default=True,
              help="Events a second per token: a request counts 1, a batch its events (0: no limit).")
@click.option("--rate-burst", default=100, show_default=True,
              help="Burst above the rate per token (also the largest batch a limited token may send).")
@click.option("--auth-failure-rate", default=1.0, show_default=True,
              help="Failed authentications a second per client address, after the burst (0: no limit).")
@click.option("--auth-failure-burst", default=20, show_default=True,
              help="Failed authentications a client address may make at once before it gets 429.")
@click.option("--public-metrics", is_flag=True,
              help="Serve /metrics without a token (rule names with hit counts: a private network only).")
@click.option("--header-timeout", default=10.0, show_default=True,
              help="Seconds a request's headers may take to arrive; slower connections get 408 and are closed.")
@click.option("--body-timeout", default=30.0, show_default=True,
              help="Seconds a request's body may take to arrive after its headers (one deadline); then 408 and close.")
@click.option("--max-connections", default=1000, show_default=True,
              help="Open connections at most; more are closed as they arrive (503).")
@click.option("--max-event-skew", default=300.0, show_default=True,
              help="Seconds an event's time may be ahead of this server's clock (later: refused, dead-lettered).")
@click.option("--queue-size", default=10_000, show_default=True, help="Events accepted with mode=async, waiting.")
@click.option("--engine-threads", default=8, show_default=True,
              help="Threads that decide events, write the store and activate rules, off the event loop.")
@click.option("--event-deadline", default=5.0, show_default=True,
              help="Seconds an event may take: not started by then, 503 (not decided); still running, 504 "
                   "(decided later, its slow signals unknown from then on).")
@click.option("--second-stage-queue", default=10_000, show_default=True,
              help="Events waiting for a policy model; when full, events with policy rules get 503.")
@click.option("--reload-interval", default=1.0, show_default=True, help="Seconds between reload checks.")
@click.option("--rule-tests-time-limit", default=60.0, show_default=True,
              help="Seconds a new rules version's tests may run before it is refused.")
@click.option("--no-auth", is_flag=True, help="No API tokens (allowed on a loopback address only).")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@dead_letter_options
@signal_options
def serve_command(rules_dir: str | None, rules_source: str, host: str, port: int, allowed_hosts: tuple[str, ...], db: str,
                  max_body: int, max_batch: int, max_batch_body: int, max_depth: int, rate_limit: float,
                  rate_burst: int, auth_failure_rate: float, auth_failure_burst: int, public_metrics: bool,
                  max_event_skew: float, header_timeout: float, body_timeout: float, max_connections: int,
                  queue_size: int, engine_threads: int, event_deadline: float, second_stage_queue: int,
                  reload_interval: float, rule_tests_time_limit: float, no_auth: bool,
                  log_level: str, banks_db: str | None, media_roots: tuple[str, ...], **signal_opts: Any) -> None:
    """Serve the HTTP API: events in, decisions out; labels, rules versions, hash banks, health and metrics.

    Hash banks default to banks.sqlite beside the --db SQLite file (vigil-data/banks.sqlite otherwise)."""
    try:
        import uvicorn
    except ImportError:
        raise click.ClickException("the HTTP service needs the serve extra: pip install 'vigil[serve]'") from None
    from vigil.service.app import RulesRejected, create_app, prepare
    from vigil.service.state import ServiceSettings

    if rules_source == "directory" and rules_dir is None:
        raise click.UsageError("--rules-source directory needs --rules DIR")
    if no_auth and not _loopback(host):
        raise click.ClickException("--no-auth is refused on a non-loopback address; create a token instead")
    if db in ("memory", "memory:") and not no_auth:
        raise click.ClickException("an in-memory store holds no tokens: add --no-auth, or give --db a file")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    connections = _connection_cap(max_connections)  # refused here, before anything is opened
    settings = ServiceSettings(host=host, port=port, allowed_hosts=allowed_hosts, rules_dir=rules_dir,
                               rules_source=rules_source, auth=not no_auth,
                               max_body_bytes=max_body, max_batch=max_batch, max_batch_bytes=max_batch_body,
                               max_depth=max_depth, max_event_skew=max_event_skew,
                               rate_limit=rate_limit, rate_burst=rate_burst,
                               auth_failure_rate=auth_failure_rate, auth_failure_burst=auth_failure_burst,
                               public_metrics=public_metrics, queue_size=queue_size,
                               engine_threads=engine_threads, event_deadline=event_deadline,
                               second_stage_queue=second_stage_queue,
                               reload_interval=reload_interval, rule_tests_time_limit=rule_tests_time_limit,
                               tune_gc=True,
                               banks=_banks(banks_db, db))
    letters = dead_letter_limits(signal_opts)  # before the signal options are read: they share **kwargs
    app = create_app(settings, _store(db, letters), signals=_signals(signal_opts, media_roots))
    try:
        prepare(app)  # the start-up gate, before the server: a refusal is one message, not a traceback
    except RulesRejected as error:
        app.state.service.store.close()
        raise click.ClickException(f"rules in {rules_dir} refused, so the service did not start: {error}") from None
    from vigil.service.server import server_config

    _say_connection_cap(connections)
    uvicorn.Server(server_config(app, host, port, header_timeout=header_timeout,
                                 max_connections=connections.max_connections,
                                 body_timeout=body_timeout, log_level=log_level)).run()


def _connection_cap(requested: int) -> ConnectionBudget:
    """--max-connections as the descriptor limit allows it; refused with a hint when it was asked for
    explicitly and cannot be had (vigil.service.server.fit_connections)."""
    from vigil.service.server import DescriptorLimitError, apply_descriptor_limit

    source = click.get_current_context().get_parameter_source("max_connections")
    try:
        return apply_descriptor_limit(requested, explicit=source is not click.core.ParameterSource.DEFAULT)
    except DescriptorLimitError as error:
        raise click.ClickException(str(error)) from None


def _say_connection_cap(budget: ConnectionBudget) -> None:
    """Said as the server starts (after the stores opened, whose errors are one line of their own)."""
    if budget.warning is not None:
        click.echo(f"warning: {budget.warning}", err=True)
    limit = "no limit" if budget.descriptor_limit < 0 else f"ulimit -n {budget.descriptor_limit}"
    logging.getLogger("vigil.service").info("at most %d connections (file descriptors: %s)",
                                            budget.max_connections, limit)


def _banks(banks_db: str | None, db: str) -> str | None:
    """The bank file to serve: --banks, else the default beside --db; none without the hashing extra."""
    try:
        import vigil.hashing.service  # noqa: F401 - pdqhash, numpy, Pillow
    except ImportError as error:
        if banks_db is not None:
            raise click.ClickException(f"--banks needs the hashing extra ({error}): pip install 'vigil[hashing]'"
                                       ) from None
        return None
    return banks_db if banks_db is not None else default_banks(db)


def _signals(options: dict[str, Any], media_roots: tuple[str, ...]) -> Any:
    """Classifiers and policy models from the options; the app opens the banks itself (settings.banks)."""
    from vigil.plugins import PluginError
    from vigil.signals.providers import build_signals

    try:
        signals = build_signals(**options)  # with the installed plugins' functions
    except PluginError as error:
        raise click.ClickException(str(error)) from None
    if media_roots:
        from vigil.hashing.media import MediaPolicy

        signals.media_policy = MediaPolicy(file_roots=tuple(Path(r).resolve() for r in media_roots))
    return signals


@click.group("token")
def token_group() -> None:
    """API tokens for `vigil serve`: created with scopes, stored hashed, revocable."""


@token_group.command("create")
@click.argument("name")
@click.option("--scopes", default="ingest", show_default=True, help="Comma-separated: ingest, read, admin.")
@click.option("--read-source", "read_sources", multiple=True, metavar="TOKEN",
              help="Another token whose events' decisions this one may read (repeatable; '*': all). "
                   "A token reads its own; an admin token reads every one.")
@click.option("--db", default=DEFAULT_DB, envvar="VIGIL_STORE", show_default=True)
def token_create(name: str, scopes: str, read_sources: tuple[str, ...], db: str) -> None:
    """Create a token NAME and print its secret (shown once: only its hash is stored)."""
    from vigil.service.auth import create_token, parse_scopes

    try:
        parse_scopes(scopes)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--scopes") from None
    store = _store(db)
    try:
        token, secret = create_token(store, name, scopes.split(","), read_sources=read_sources)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    finally:
        store.close()
    grants = f", reads the decisions of {','.join(token.read_sources)}" if token.read_sources else ""
    click.echo(f"created token {token.name!r} (id {token.id}, scopes {','.join(token.scopes)}{grants}); "
               "this is the only time the secret is shown:", err=True)
    click.echo(secret.value)


@token_group.command("list")
@click.option("--db", default=DEFAULT_DB, envvar="VIGIL_STORE", show_default=True)
def token_list(db: str) -> None:
    """List tokens (never their secrets)."""
    store = _store(db)
    try:
        tokens = store.list_tokens()
    finally:
        store.close()
    for t in tokens:
        created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(t.created_at))
        state = "revoked" if t.revoked else "active"
        grants = f"  reads {','.join(t.read_sources)}" if t.read_sources else ""
        click.echo(f"{t.id}  {t.name:<24} {','.join(t.scopes):<20} {created}  {state}{grants}")


@token_group.command("revoke")
@click.argument("name_or_id")
@click.option("--db", default=DEFAULT_DB, envvar="VIGIL_STORE", show_default=True)
def token_revoke(name_or_id: str, db: str) -> None:
    """Revoke a token by name or id (running services notice within seconds)."""
    store = _store(db)
    try:
        found = store.revoke_token(name_or_id)
    finally:
        store.close()
    if not found:
        raise click.ClickException(f"no token {name_or_id!r}")
    click.echo(f"revoked {name_or_id}")
