"""`vigil serve` and `vigil token …`: the HTTP service and its API tokens, on the same store."""

from __future__ import annotations

import ipaddress
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vigil.cli import settings_from, signal_options
from vigil.settings import DEFAULT_STORE, ServiceSettings, Settings
from vigil.stores.cli import dead_letter_flags, dead_letter_options

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from vigil.service.server import ConnectionBudget

DEFAULT_DB = DEFAULT_STORE
DEFAULT_BANKS = "vigil-data/banks.sqlite"


def _store(db: str | None):  # type: ignore[no-untyped-def]
    """The store of `--db`, else of the settings (store.url: vigil.toml, VIGIL_STORE), else the default,
    within the settings' dead-letter limits."""
    from vigil.settings import ConfigError, load_settings
    from vigil.stores.open import open_store

    try:
        settings = load_settings({"store.url": db})
        return open_store(settings.store_url(DEFAULT_DB), dead_letters=settings.dead_letters.limits())
    except (ConfigError, ValueError) as error:
        raise click.ClickException(str(error)) from None


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


def _default(key: str) -> str:
    """A flag's default as its help shows it: the service setting's own default (vigil.settings)."""
    return str(ServiceSettings.model_fields[key].default)


# `vigil serve`'s flags and the settings they override (each None unless given: vigil.toml and the
# environment apply below them): the option, its `service.` key, its type, its help.
SERVE_FLAGS: list[tuple[str, str, type, str]] = [
    ("--host", "host", str, "Address to bind (loopback by default)."),
    ("--port", "port", int, "Port to bind."),
    ("--max-body", "max_body_bytes", int, "Largest event body, in bytes."),
    ("--max-batch", "max_batch", int, "Most events in one batch."),
    ("--max-batch-body", "max_batch_bytes", int, "Largest batch body, in bytes."),
    ("--max-depth", "max_depth", int,
     "Deepest nesting of objects and arrays in one event (deeper: 422 and a dead letter)."),
    ("--rate-limit", "rate_limit", float,
     "Events a second per token: a request counts 1, a batch its events (0: no limit)."),
    ("--rate-burst", "rate_burst", int,
     "Burst above the rate per token (also the largest batch a limited token may send)."),
    ("--auth-failure-rate", "auth_failure_rate", float,
     "Failed authentications a second per client address, after the burst (0: no limit)."),
    ("--auth-failure-burst", "auth_failure_burst", int,
     "Failed authentications a client address may make at once before it gets 429."),
    ("--header-timeout", "header_timeout", float,
     "Seconds a request's headers may take to arrive; slower connections get 408 and are closed."),
    ("--body-timeout", "body_timeout", float,
     "Seconds a request's body may take to arrive after its headers (one deadline); then 408 and close."),
    ("--max-connections", "max_connections", int, "Open connections at most; more are closed as they arrive (503)."),
    ("--max-event-skew", "max_event_skew", float,
     "Seconds an event's time may be ahead of this server's clock (later: refused, dead-lettered)."),
    ("--queue-size", "queue_size", int, "Events accepted with mode=async, waiting."),
    ("--engine-threads", "engine_threads", int,
     "Threads that decide events, write the store and activate rules, off the event loop."),
    ("--event-deadline", "event_deadline", float,
     ("Seconds an event may take: not started by then, 503 (not decided); still running, 504 "
      "(decided later, its slow signals unknown from then on).")),
    ("--second-stage-queue", "second_stage_queue", int,
     "Events waiting for a policy model; when full, events with policy rules get 503."),
    ("--reload-interval", "reload_interval", float, "Seconds between reload checks."),
    ("--rule-tests-time-limit", "rule_tests_time_limit", float,
     "Seconds a new rules version's tests may run before it is refused."),
]


def serve_flags(function: Any) -> Any:
    for flag, key, kind, text in reversed(SERVE_FLAGS):
        function = click.option(flag, key, type=kind, default=None, show_default=_default(key),
                                help=f"{text} (service.{key})")(function)
    return function


@click.command("serve")
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False),
              help="Rules directory: served and watched (reloaded within seconds of a change) when the rules "
                   "source is `directory`; with `store`, it only seeds a store that has no active version.")
@click.option("--rules-source", type=click.Choice(["auto", "directory", "store"]), default=None,
              show_default="auto",
              help="Where the running rules come from: the --rules directory (API uploads refused) or the "
                   "store (upload, activate, roll back through the API). auto: the directory when one is given, "
                   "unless the store's active version was put there through the API (service.rules_source, "
                   "env VIGIL_RULES_SOURCE).")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="A name clients may give in Host, beyond the address served (repeatable; * for any). "
                   "Loopback serves localhost, 127.0.0.1 and ::1; 0.0.0.0 any name unless some are given.")
@click.option("--db", default=None,
              help="SQLite path, sqlite:/// or postgresql:// URL for state, rules versions and tokens (store.url, "
                   f"env VIGIL_STORE; default {DEFAULT_DB}); `memory` keeps everything in memory (with --no-auth).")
@click.option("--redis", "redis_url", default=None,
              help="Redis URL for counters and labels shared by several instances and workers (store.redis, "
                   "env VIGIL_REDIS).")
@serve_flags
@click.option("--public-metrics", is_flag=True, default=None,
              help="Serve /metrics without a token (rule names with hit counts: a private network only).")
@click.option("--no-auth", is_flag=True, help="No API tokens (allowed on a loopback address only).")
@click.option("--log-level", default=None, show_default=_default("log_level"),
              type=click.Choice(["debug", "info", "warning", "error"]))
@dead_letter_options
@signal_options
def serve_command(rules_dir: str | None, rules_source: str | None, allowed_hosts: tuple[str, ...], db: str | None,
                  redis_url: str | None, public_metrics: bool | None, no_auth: bool, log_level: str | None,
                  **options: Any) -> None:
    """Serve the HTTP API: events in, decisions out; labels, rules versions, hash banks, health and metrics.

    Hash banks default to banks.sqlite beside the --db SQLite file (vigil-data/banks.sqlite otherwise)."""
    try:
        import uvicorn
    except ImportError:
        raise click.ClickException("the HTTP service needs the serve extra: pip install 'vigil[serve]'") from None
    from vigil.plugins import PluginError
    from vigil.service.app import RulesRejected, prepare

    flags: dict[str, Any] = {f"service.{key}": options.pop(key) for _, key, _, _ in SERVE_FLAGS}
    flags.update(dead_letter_flags(options))
    flags.update({"store.url": db, "store.redis": redis_url, "service.rules_dir": rules_dir,
                  "service.rules_source": rules_source, "service.allowed_hosts": allowed_hosts or None,
                  "service.public_metrics": public_metrics, "service.auth": False if no_auth else None,
                  "service.log_level": log_level})
    settings = settings_from(options, flags)
    service = settings.service
    if service.rules_source == "directory" and service.rules_dir is None:
        raise click.UsageError("--rules-source directory needs --rules DIR")
    if not service.auth and not _loopback(service.host):
        raise click.ClickException("--no-auth is refused on a non-loopback address; create a token instead")
    if settings.store_url(DEFAULT_DB) in ("memory", "memory:") and service.auth:
        raise click.ClickException("an in-memory store holds no tokens: add --no-auth, or give --db a file")
    logging.basicConfig(level=service.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Refused here, before anything is opened. A cap set anywhere (flag, file, environment) is explicit.
    connections = _connection_cap(service.max_connections, explicit="max_connections" in service.model_fields_set)
    try:
        app = serve_app(settings)
    except (ValueError, PluginError) as error:  # a store URL or sinks settings that cannot be used, a plugin
        raise click.ClickException(str(error)) from None
    try:
        prepare(app)  # the start-up gate, before the server: a refusal is one message, not a traceback
    except RulesRejected as error:
        app.state.service.store.close()
        app.state.service.backends.close()
        raise click.ClickException(f"rules in {service.rules_dir} refused, so the service did not start: {error}"
                                   ) from None
    from vigil.service.server import server_config

    _say_connection_cap(connections)
    uvicorn.Server(server_config(app, service.host, service.port, header_timeout=service.header_timeout,
                                 max_connections=connections.max_connections, body_timeout=service.body_timeout,
                                 log_level=service.log_level)).run()


def serve_app(settings: Settings, *, tune_gc: bool = True) -> Starlette:
    """The app `vigil serve` runs for `settings`: the store (within the dead-letter limits) with its Redis
    counters and labels when `store.redis` is set (so several instances decide as one), the signals, the
    hash banks (opened by the app, sharing one matcher with its /v1/banks routes), the second stage and
    the sinks. Tests build it without `tune_gc`, which changes the process's garbage collector."""
    from vigil.runtime import open_signals
    from vigil.service.app import create_app
    from vigil.sinks import validate
    from vigil.stores.open import open_backends

    validate(settings.sinks, settings.outputs)  # SinkConfigError before anything opens, not in the lifespan
    url = settings.store_url(DEFAULT_DB)
    settings = settings.with_flags({"store.url": url})  # the runtime (and the record beside it) sees the store
    service = settings.service.model_copy(update={"tune_gc": tune_gc, "banks": _banks(settings.signals.banks, url)})
    backends = open_backends(settings, DEFAULT_DB)
    try:
        signals = open_signals(settings, banks=False)
    except BaseException:
        backends.store.close()
        backends.close()
        raise
    return create_app(service, backends.store, signals=signals, config=settings, backends=backends)


def _connection_cap(requested: int, *, explicit: bool) -> ConnectionBudget:
    """--max-connections as the descriptor limit allows it; refused with a hint when it was asked for
    explicitly and cannot be had (vigil.service.server.fit_connections)."""
    from vigil.service.server import DescriptorLimitError, apply_descriptor_limit

    try:
        return apply_descriptor_limit(requested, explicit=explicit)
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
    """The bank file to serve: signals.banks (--banks), else the default beside the store; none without
    the hashing extra."""
    try:
        import vigil.hashing.service  # noqa: F401 - pdqhash, numpy, Pillow
    except ImportError as error:
        if banks_db is not None:
            raise click.ClickException(f"--banks needs the hashing extra ({error}): pip install 'vigil[hashing]'"
                                       ) from None
        return None
    return banks_db if banks_db is not None else default_banks(db)


@click.group("token")
def token_group() -> None:
    """API tokens for `vigil serve`: created with scopes, stored hashed, revocable."""


@token_group.command("create")
@click.argument("name")
@click.option("--scopes", default="ingest", show_default=True, help="Comma-separated: ingest, read, review, admin.")
@click.option("--read-source", "read_sources", multiple=True, metavar="TOKEN",
              help="Another token whose events' decisions this one may read (repeatable; '*': all). "
                   "A token reads its own; an admin token reads every one.")
@click.option("--user", "person", default=None, metavar="PERSON",
              help="The person it belongs to: it acts with their roles, and its actions are recorded as theirs.")
@click.option("--db", default=None, help=f"The store (store.url, env VIGIL_STORE; default {DEFAULT_DB}).")
def token_create(name: str, scopes: str, read_sources: tuple[str, ...], person: str | None, db: str | None) -> None:
    """Create a token NAME and print its secret (shown once: only its hash is stored)."""
    from vigil.service.auth import create_token, parse_scopes

    try:
        parse_scopes(scopes)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--scopes") from None
    store = _store(db)
    try:
        if person is not None:
            _audit_token(store, person)  # the person must exist
        token, secret = create_token(store, name, scopes.split(","), read_sources=read_sources, person=person)
        if person is not None:
            _audit_token(store, person, token.id, token.name)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    finally:
        store.close()
    grants = f", reads the decisions of {','.join(token.read_sources)}" if token.read_sources else ""
    click.echo(f"created token {token.name!r} (id {token.id}, scopes {','.join(token.scopes)}{grants}); "
               "this is the only time the secret is shown:", err=True)
    click.echo(secret.get_secret_value())


def _audit_token(store: Any, person: str, token_id: str | None = None, name: str = "") -> None:
    """Check that the person exists; with `token_id`, audit the creation of their token."""
    import getpass

    from vigil.audit import AuditLog
    from vigil.people.accounts import People

    audit = AuditLog.over(store)
    people = People.over(store, audit)
    try:
        if people.get(person) is None:
            raise ValueError(f"no person named {person!r}; create them with `vigil user create {person} --role …`")
        if token_id is not None:
            audit.append(f"cli:{getpass.getuser()}", "token.create", f"token:{token_id}",
                         {"name": name, "person": person})
    finally:
        people.close()
        audit.close()


@token_group.command("list")
@click.option("--db", default=None, help=f"The store (store.url, env VIGIL_STORE; default {DEFAULT_DB}).")
def token_list(db: str | None) -> None:
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
@click.option("--db", default=None, help=f"The store (store.url, env VIGIL_STORE; default {DEFAULT_DB}).")
def token_revoke(name_or_id: str, db: str | None) -> None:
    """Revoke a token by name or id (running services notice within seconds)."""
    store = _store(db)
    try:
        found = store.revoke_token(name_or_id)
    finally:
        store.close()
    if not found:
        raise click.ClickException(f"no token {name_or_id!r}")
    click.echo(f"revoked {name_or_id}")
