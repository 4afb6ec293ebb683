"""`vigil rules stages|stage|promote|pause|rollback|history`: each rule's stage in the store the services and
workers share; they run a change within a poll interval. Changes are audited as `cli:<login name>`
(`--as NAME` to name the person at the keyboard), as `vigil user` does."""

from __future__ import annotations

import getpass
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from vigil.audit import AuditLog
from vigil.lifecycle.overlay import effective_modes, written_mode
from vigil.lifecycle.states import STAGES, LifecycleError, RuleState, RuleStates, next_stage

DB_HELP = "The store (store.url, env VIGIL_STORE; default vigil-data/vigil.sqlite)."
db_option = click.option("--db", default=None, help=DB_HELP)
as_option = click.option("--as", "as_name", default=None, metavar="NAME",
                         help="The person making the change, for the audit log (default cli:<login name>).")
reason_option = click.option("--reason", default="", help="Why, for the audit log and the console.")


@contextmanager
def _opened(db: str | None) -> Iterator[tuple[Any, RuleStates]]:
    from vigil.service.cli import _store

    store = _store(db)
    audit = AuditLog.over(store)
    states = RuleStates.over(store, audit)
    try:
        yield store, states
    except LifecycleError as error:
        raise click.ClickException(str(error)) from None
    finally:
        states.close()
        audit.close()
        store.close()


def _active(store: Any) -> Any:
    """The store's active version as written (checked), or a ClickException."""
    from vigil.gate import RulesRejected, load_checked
    from vigil.plugins import load_functions

    version = store.active_rules_version() if hasattr(store, "active_rules_version") else None
    if version is None:
        raise click.ClickException("the store has no active rules version (vigil serve or vigil worker seed it)")
    try:
        return load_checked(version.files, version.entry, load_functions())
    except RulesRejected as error:
        raise click.ClickException(f"the store's active version {version.seq} does not pass the checker: {error}"
                                   ) from None


def _rule(ruleset: Any, name: str) -> Any:
    for rule in ruleset.program.rules:
        if rule.name == name:
            return rule
    names = ", ".join(repr(r.name) for r in ruleset.program.rules) or "none"
    raise click.ClickException(f"the active rules version has no rule {name!r} (its rules: {names})")


def _actor(as_name: str | None) -> str:
    return as_name or f"cli:{getpass.getuser()}"


def _echo(state: RuleState) -> None:
    click.echo(f"{state.rule}: {state.describe()} (change {state.seq} by {state.actor})")


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) + "Z"


@click.group("rules")
def rules_group() -> None:
    """Each rule's stage: draft → shadow → rollout → live → paused, over the active version's text."""


@rules_group.command("stages")
@db_option
def stages_command(db: str | None) -> None:
    """Every rule of the active version: its written mode and the stage it runs in."""
    with _opened(db) as (store, states):
        ruleset = _active(store)
        for m in effective_modes(ruleset, states.current()):
            stage = m["stage"] + (f" {m['percent']:g}% by {m['entity']}" if m["stage"] == "rollout" else "")
            state = m["state"]
            since = f"  (since {_when(state['at'])} by {state['actor']}: {state['reason']})" if state else ""
            click.echo(f"{m['rule']}: {stage}  [written: {m['written']['mode']}]{since}")


def _change(db: str | None, rule: str, stage: str | None, as_name: str | None, reason: str,
            percent: float | None = None, entity: str | None = None) -> None:
    with _opened(db) as (store, states):
        ruleset = _active(store)
        _rule(ruleset, rule)
        if stage == "rollout" and entity not in ruleset.program.entities:
            raise click.ClickException(f"a rollout by {entity!r}: the rules declare no such entity "
                                       f"(declared: {', '.join(sorted(ruleset.program.entities)) or 'none'})")
        _echo(states.change(rule, stage, actor=_actor(as_name), percent=percent, entity=entity, reason=reason))


@rules_group.command("stage")
@click.argument("rule")
@click.argument("stage", type=click.Choice([*STAGES, "written"]))
@click.option("--percent", type=float, default=None, help="A rollout's share of entities (above 0, at most 100).")
@click.option("--by", "entity", default=None, help="The entity a rollout is assigned by (e.g. user).")
@reason_option
@as_option
@db_option
def stage_command(rule: str, stage: str, percent: float | None, entity: str | None, reason: str,
                  as_name: str | None, db: str | None) -> None:
    """Put RULE in STAGE (`written`: back to what its text says)."""
    _change(db, rule, None if stage == "written" else stage, as_name, reason, percent, entity)


@rules_group.command("promote")
@click.argument("rule")
@click.option("--percent", type=float, default=None, help="Needed to promote shadow to a rollout.")
@click.option("--by", "entity", default=None, help="The entity a rollout is assigned by (e.g. user).")
@reason_option
@as_option
@db_option
def promote_command(rule: str, percent: float | None, entity: str | None, reason: str, as_name: str | None,
                    db: str | None) -> None:
    """Move RULE one step along draft → shadow → rollout → live (paused: back to live)."""
    with _opened(db) as (store, states):
        ruleset = _active(store)
        current = states.current().get(rule)
        stage = next_stage(current.stage if current else None, written_mode(_rule(ruleset, rule))["mode"])
    if stage == "rollout" and (percent is None or entity is None):
        raise click.ClickException("promoting from shadow is a rollout: give --percent N --by ENTITY "
                                   "(or `vigil rules stage RULE live`)")
    _change(db, rule, stage, as_name, reason, percent, entity)


@rules_group.command("pause")
@click.argument("rule")
@reason_option
@as_option
@db_option
def pause_command(rule: str, reason: str, as_name: str | None, db: str | None) -> None:
    """Stop RULE: it is not evaluated until promoted or rolled back."""
    _change(db, rule, "paused", as_name, reason)


@rules_group.command("rollback")
@click.argument("rule")
@reason_option
@as_option
@db_option
def rollback_command(rule: str, reason: str, as_name: str | None, db: str | None) -> None:
    """Return RULE to the stage it had before its latest change."""
    with _opened(db) as (_, states):
        _echo(states.rollback(rule, actor=_actor(as_name), reason=reason))


@rules_group.command("history")
@click.argument("rule")
@click.option("--limit", default=50, show_default=True)
@db_option
def history_command(rule: str, limit: int, db: str | None) -> None:
    """RULE's stage changes, newest first."""
    with _opened(db) as (_, states):
        for s in states.history(rule, limit):
            click.echo(f"{s.seq}  {_when(s.at)}  {s.describe():<24} {s.actor}  {s.reason}")
