"""`vigil user …` (people and their roles) and `vigil audit …` (the audit log), on the service's store.

Changes made here are audited as `cli:<login name>` (`--as NAME` to name the person at the keyboard):
whoever runs these commands can write the store directly anyway.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from vigil.audit import AuditLog
from vigil.people.accounts import People, PeopleError
from vigil.people.roles import ROLES, parse_grants

DB_HELP = "The store (store.url, env VIGIL_STORE; default vigil-data/vigil.sqlite)."


@contextmanager
def _opened(db: str | None) -> Iterator[tuple[Any, AuditLog, People]]:
    from vigil.service.cli import _store

    store = _store(db)
    audit = AuditLog.over(store)
    people = People.over(store, audit)
    try:
        yield store, audit, people
    except (PeopleError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    finally:
        people.close()
        audit.close()
        store.close()


def _actor(as_name: str | None) -> str:
    return as_name or f"cli:{getpass.getuser()}"


def _password(prompt: bool, stdin: bool) -> str | None:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    if prompt:
        return str(click.prompt("password", hide_input=True, confirmation_prompt=True))
    return None


as_option = click.option("--as", "as_name", default=None, metavar="NAME",
                         help="The person making the change, for the audit log (default cli:<login name>).")
db_option = click.option("--db", default=None, help=DB_HELP)
role_option = click.option("--role", "roles", multiple=True, metavar="ROLE[:QUEUE]",
                           help=f"Repeatable; ROLE for every queue or ROLE:QUEUE for one. Roles: {', '.join(ROLES)}.")


@click.group("user")
def user_group() -> None:
    """People: accounts with roles (per queue), argon2-hashed passwords, tokens of their own."""


@user_group.command("create")
@click.argument("name")
@role_option
@click.option("--password", "ask", is_flag=True, help="Ask for a password (else: none, tokens only).")
@click.option("--password-stdin", "stdin", is_flag=True, help="Read the password from the first line of stdin.")
@as_option
@db_option
def user_create(name: str, roles: tuple[str, ...], ask: bool, stdin: bool, as_name: str | None,
                db: str | None) -> None:
    """Create a person NAME with roles."""
    grants = _grants(roles)
    password = _password(ask, stdin)
    with _opened(db) as (_, _, people):
        person = people.create(name, grants, actor=_actor(as_name), password=password)
    click.echo(f"created {person.name} ({', '.join(str(g) for g in person.grants) or 'no roles'})")


def _grants(roles: tuple[str, ...]) -> Any:
    try:
        return parse_grants(roles)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--role") from None


@user_group.command("list")
@db_option
def user_list(db: str | None) -> None:
    """People, their roles and state (never their password hashes)."""
    with _opened(db) as (_, _, people):
        for p in people.list_people():
            state = "disabled" if p.disabled else "active"
            login = "password" if p.has_password else "tokens only"
            click.echo(f"{p.name:<24} {','.join(str(g) for g in p.grants) or '-':<40} {state:<8} {login}")


@user_group.command("roles")
@click.argument("name")
@role_option
@as_option
@db_option
def user_roles(name: str, roles: tuple[str, ...], as_name: str | None, db: str | None) -> None:
    """Replace NAME's roles (their console sessions end)."""
    grants = _grants(roles)
    with _opened(db) as (_, _, people):
        person = people.set_roles(name, grants, actor=_actor(as_name))
    click.echo(f"{person.name}: {', '.join(str(g) for g in person.grants) or 'no roles'}")


@user_group.command("set-password")
@click.argument("name")
@click.option("--password-stdin", "stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option("--none", "remove", is_flag=True, help="No password: the person logs in with tokens only.")
@as_option
@db_option
def user_set_password(name: str, stdin: bool, remove: bool, as_name: str | None, db: str | None) -> None:
    """Set NAME's password (asked for unless --password-stdin); their console sessions end."""
    password = None if remove else _password(True, stdin)
    with _opened(db) as (_, _, people):
        people.set_password(name, password, actor=_actor(as_name))
    click.echo(f"{name}: password {'removed' if remove else 'set'}")


@user_group.command("disable")
@click.argument("name")
@as_option
@db_option
def user_disable(name: str, as_name: str | None, db: str | None) -> None:
    """Disable NAME: no login, sessions ended, tokens refused (other processes: within seconds)."""
    with _opened(db) as (_, _, people):
        people.set_disabled(name, True, actor=_actor(as_name))
    click.echo(f"disabled {name}")


@user_group.command("enable")
@click.argument("name")
@as_option
@db_option
def user_enable(name: str, as_name: str | None, db: str | None) -> None:
    """Enable NAME again."""
    with _opened(db) as (_, _, people):
        people.set_disabled(name, False, actor=_actor(as_name))
    click.echo(f"enabled {name}")


@click.group("audit")
def audit_group() -> None:
    """The audit log: append-only, each entry chained to the one before by SHA-256."""


@audit_group.command("verify")
@click.option("--head", default=None, metavar="SEQ:HASH",
              help="A head printed by an earlier verify: the log must still contain it (catches a cut-off end).")
@db_option
def audit_verify(head: str | None, db: str | None) -> None:
    """Check the chain: exit 0 when it holds, 1 naming the first broken entry."""
    expected = None
    if head is not None:
        seq, _, digest = head.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            raise click.BadParameter("give SEQ:HASH as printed by `vigil audit verify`", param_hint="--head")
        expected = (int(seq), digest)
    with _opened(db) as (_, audit, _):
        result = audit.verify(head=expected)
    if not result.ok:
        click.echo(f"audit log broken at entry {result.broken}: {result.problem} "
                   f"({result.checked} entries before it hold)", err=True)
        sys.exit(1)
    click.echo(f"audit log holds: {result.checked} entries; head {result.head_seq}:{result.head_hash}")


@audit_group.command("list")
@click.option("--after", default=0, show_default=True, help="Entries after this number.")
@click.option("--limit", default=50, show_default=True, help="At most this many (1000 at most).")
@click.option("--actor", default=None, help="Only this person's (or token:NAME's).")
@click.option("--action", default=None, help='Only this action, or a family ending in "." (review.).')
@click.option("--target", default=None, help="Only entries about this target (user:alice, rules:3, …).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@db_option
def audit_list(after: int, limit: int, actor: str | None, action: str | None, target: str | None, as_json: bool,
               db: str | None) -> None:
    """Entries, oldest first."""
    with _opened(db) as (_, audit, _):
        entries = audit.entries(after=after, limit=limit, actor=actor, action=action, target=target)
    for e in entries:
        if as_json:
            click.echo(json.dumps(e.to_json(), sort_keys=True))
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e.at))
            detail = json.dumps(e.detail, sort_keys=True) if e.detail else ""
            click.echo(f"{e.seq:>6}  {when}  {e.actor:<20} {e.action:<18} {e.target:<24} {detail}")
