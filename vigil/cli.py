"""The `vigil` command. Every subcommand builds the same Engine that production runs."""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from vigil.diagnostics import DiagnosticError
from vigil.dsl.loader import RuleSet, load_ruleset
from vigil.effects import Decision
from vigil.stores.cli import dead_letter_limits, dead_letter_options

DEFAULT_DB = "vigil-data/vigil.sqlite"
DEAD_LETTER_REASONS_SHOWN = 5
DEAD_LETTER_EXIT = 3  # `vigil run --fail-on-dead-letters`: 1 is taken by errors in the rules


def _console() -> Console:
    return Console(stderr=True)


def _functions() -> Any:
    """The functions rules may call: Vigil's and every installed plugin's (loaded here, once a command
    runs, never on import). A plugin that cannot be loaded stops the command, naming it."""
    from vigil.plugins import PluginError, load_functions

    try:
        return load_functions()
    except PluginError as error:
        raise click.ClickException(str(error)) from None


def _load(paths: tuple[str, ...], functions: Any = None) -> RuleSet:
    try:
        ruleset = load_ruleset(list(paths), functions=functions if functions is not None else _functions())
    except DiagnosticError as error:
        # soft_wrap: a diagnostic stays one `file:line:col: ...` line however narrow the terminal
        _console().print(error.render(), markup=False, highlight=False, soft_wrap=True)
        raise SystemExit(1) from None
    for warning in ruleset.warnings:
        _console().print(warning.render(ruleset.sources.get(warning.span.file)), markup=False, highlight=False,
                         soft_wrap=True)
    return ruleset


def _open_store(db: str | None, dead_letters: Any = None) -> Any:
    """None (or "memory") keeps state in memory; a path or sqlite:/// URL persists it, keeping dead
    letters within `dead_letters` (DeadLetterLimits; None: the defaults)."""
    if db is None or db == "memory":
        return None
    from vigil.stores.sqlite import open_store

    return open_store(db, dead_letters=dead_letters)


def _read_lines(path: str) -> Iterator[bytes]:
    stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        for line in stream:
            if line.strip():
                yield line
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def signal_options(function: Any) -> Any:
    """Options for the signals rules may call: classifiers, policy models, hash banks."""
    options = [
        click.option("--classifiers", "classifiers_dir", default=None,
                     help="Directory of trained classifiers (default: vigil-data/classifiers)."),
        click.option("--policies", "policies_dir", default=None, help="Directory of policy files (*.md)."),
        click.option("--endpoint", default=None, envvar="VIGIL_MODEL_ENDPOINT",
                     help="OpenAI-compatible base URL serving the policy model, e.g. http://127.0.0.1:8000/v1."),
        click.option("--model", default="gpt-oss-safeguard-20b", show_default=True, help="Policy model name."),
        click.option("--api-key-env", default=None, help="Environment variable holding the endpoint's API key."),
        click.option("--banks", "banks_db", default=None, envvar="VIGIL_BANKS",
                     help="SQLite file of hash banks (see `vigil bank`; default vigil-data/banks.sqlite if present)."),
        click.option("--media-root", "media_roots", multiple=True,
                     help="Directory events may name media files in (repeatable; none: paths refused)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _signals(options: dict[str, Any], functions: Any) -> Any:
    """The signals from the options, with the functions the rules were loaded with (plugins loaded once)."""
    from vigil.signals.providers import build_signals

    return build_signals(**options, functions=functions)


@dataclass(frozen=True, slots=True)
class SubCommand:
    """A command defined in another package, imported only when it is run (or listed by --help), so a
    missing optional extra costs only that command, and `vigil check` does not import torch."""

    module: str
    attribute: str  # a click command, or a function of no arguments that builds one
    extra: str | None  # the pip extra whose packages the module imports

    def load(self, name: str) -> click.Command:
        try:
            target = getattr(importlib.import_module(self.module), self.attribute)
            command = target if isinstance(target, click.Command) else target()
        except ModuleNotFoundError as error:
            missing = (error.name or "").split(".")[0]
            if self.extra is None or missing in ("", "vigil"):
                raise  # a bug in Vigil, not a missing extra: never hide it
            return _needs_extra(name, self.extra, str(error))
        if not isinstance(command, click.Command):
            raise TypeError(f"{self.module}.{self.attribute} is not a click command")
        return command


def _needs_extra(name: str, extra: str, why: str) -> click.Command:
    """A stand-in for a command whose extra is not installed: listed, and failing with what to do."""
    message = f"`vigil {name}` needs the {extra} extra ({why}): pip install 'vigil[{extra}]'"

    def fail(args: tuple[str, ...]) -> None:
        raise click.ClickException(message)

    return click.Command(name, callback=fail, help=f"(not installed: pip install 'vigil[{extra}]')",
                         params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
                         context_settings={"ignore_unknown_options": True, "allow_extra_args": True})


# Every command that lives outside this module, in one place. Nothing registers itself on import.
SUBCOMMANDS: dict[str, SubCommand] = {
    "hash": SubCommand("vigil.hashing.cli", "hash_command", "hashing"),
    "bank": SubCommand("vigil.hashing.cli", "bank_group", "hashing"),
    "match": SubCommand("vigil.hashing.cli", "match_command", "hashing"),
    "train": SubCommand("vigil.classifiers.cli", "train_command", "ml"),
    "classify": SubCommand("vigil.classifiers.cli", "classify_command", "ml"),
    "eval": SubCommand("vigil.cli", "eval_command", "ml"),
    "generate": SubCommand("vigil.demo.generator", "generate_command", None),
    "serve": SubCommand("vigil.service.cli", "serve_command", "serve"),
    "token": SubCommand("vigil.service.cli", "token_group", "serve"),
    "worker": SubCommand("vigil.workers.cli", "worker_command", "serve"),
    "dead-letters": SubCommand("vigil.stores.cli", "dead_letters_group", None),
    "outbox": SubCommand("vigil.sinks.cli", "outbox_group", None),
    "store": SubCommand("vigil.stores.cli", "store_group", None),
    "search": SubCommand("vigil.analysis.cli", "search_command", None),
    "backtest": SubCommand("vigil.analysis.cli", "backtest_command", None),
}


class VigilGroup(click.Group):
    """The commands of this module, and SUBCOMMANDS loaded on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *SUBCOMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        spec = SUBCOMMANDS.get(cmd_name)
        return spec.load(cmd_name) if spec is not None else None

    def invoke(self, ctx: click.Context) -> Any:
        from vigil.stores.base import StoreUnavailable

        try:
            return super().invoke(ctx)
        except StoreUnavailable as error:  # says what is wrong and what to do: no traceback
            raise click.ClickException(str(error)) from None


@click.group(cls=VigilGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vigil")
def main() -> None:
    """Vigil: a self-hosted trust & safety engine. Rules over event streams, counters, labels,
    verdicts and explanations."""


@main.command("functions")
def functions_command() -> None:
    """List the functions rules can call, Vigil's and the installed plugins': signature, source, doc."""
    for function in _functions().values():
        where = function.source + (", slow: second stage" if function.slow else "")
        click.echo(f"{function.signature}  [{where}]  {function.doc}")


@main.command()
@click.argument("rules", nargs=-1, required=True, type=click.Path(exists=True))
def check(rules: tuple[str, ...]) -> None:
    """Check RULES (files or directories of *.vigil) and report every problem as file:line:col."""
    ruleset = _load(rules)
    p = ruleset.program
    click.echo(f"ok: {len(p.rules)} rules, {len(p.defines)} definitions, {len(p.entities)} entities, "
               f"{len(p.lists)} lists, {len(p.tests)} tests (version {ruleset.version})")


@main.command()
@click.argument("rules", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--time-limit", default=60.0, show_default=True,
              help="Seconds all the tests may run; a test still running then fails, as do those after it.")
@signal_options
def test(rules: tuple[str, ...], time_limit: float, **signal_opts: Any) -> None:
    """Run the tests written beside RULES; exit 1 if any fails."""
    from vigil.dsl.testing import run_tests

    functions = _functions()
    results = run_tests(_load(rules, functions), _signals(signal_opts, functions), time_limit=time_limit)
    failed = [r for r in results if not r.passed]
    for r in results:
        mark = click.style("PASS", fg="green") if r.passed else click.style("FAIL", fg="red")
        click.echo(f"{mark} {r.name}  ({r.location})")
        for failure in r.failures:
            click.echo(f"     {failure}")
    click.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    if failed:
        raise SystemExit(1)


@main.command("compile")
@click.argument("rules", nargs=-1, required=True, type=click.Path(exists=True))
def compile_command(rules: tuple[str, ...]) -> None:
    """Print the Python that RULES compile to (deterministic: the same rules give the same code)."""
    click.echo(_load(rules).compiled.source, nl=False)


@main.command()
@click.argument("rules", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--events", "events_path", required=True, help="JSONL file of events, or - for stdin.")
@click.option("--out", "out_path", default="-", show_default=True, help="Where decisions go (JSONL); - is stdout.")
@click.option("--db", default=None, envvar="VIGIL_STORE",
              help="State store: a SQLite path or sqlite:/// URL (env VIGIL_STORE). Default: in memory.")
@click.option("--all/--hits-only", "write_all", default=True, show_default=True,
              help="Write a decision for every event, or only for events where a rule fired.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--fail-on-dead-letters", is_flag=True,
              help="Exit 3 when any event was dead-lettered (the count and first reasons are always on stderr).")
@dead_letter_options
@signal_options
def run(rules: tuple[str, ...], events_path: str, out_path: str, db: str | None, write_all: bool,
        progress: bool | None, fail_on_dead_letters: bool, **signal_opts: Any) -> None:
    """Decide every event in a JSONL file with RULES; decisions out as JSONL, a summary at the end.

    Rules that need a policy model run in a second stage: their decisions follow the first ones in the
    output with "stage": 2 and the same event id. Events that cannot be decided are dead letters: their
    count and first reasons go to stderr, and into the --db store (see `vigil dead-letters`)."""
    import threading

    from vigil.engine import Engine
    from vigil.events import parse_event
    from vigil.stages import SlowStage

    functions = _functions()
    letters = dead_letter_limits(signal_opts)  # before the signal options are read: they share **kwargs
    engine = Engine(_load(rules, functions), _open_store(db, letters), signals=_signals(signal_opts, functions))
    out = sys.stdout.buffer if out_path == "-" else open(out_path, "wb")  # noqa: SIM115
    write_lock = threading.Lock()

    def write(decision: Decision) -> None:
        with write_lock:
            out.write(orjson.dumps(decision.to_json()) + b"\n")

    slow = SlowStage(engine, write)
    slow.start()
    show_progress = progress if progress is not None else sys.stderr.isatty()
    started = time.perf_counter()
    first_reasons: list[str] = []
    try:
        lines: Any = _read_lines(events_path)
        if show_progress:
            from rich.progress import track

            size = None if events_path == "-" else sum(1 for _ in _read_lines(events_path))
            lines = track(lines, total=size, description="deciding", console=_console(), transient=True)
        for number, line in enumerate(lines, 1):
            result = engine.process(line, source=events_path)
            if isinstance(result, Decision):
                if write_all or result.hits or result.pending:
                    write(result)
                if result.pending:
                    slow.submit(parse_event(line), result)
            elif len(first_reasons) < DEAD_LETTER_REASONS_SHOWN:
                first_reasons.append(f"event {number} of the input: {result.reason}")
        slow.close()
    finally:
        if out is not sys.stdout.buffer:
            out.close()
        else:
            out.flush()
        engine.close()
    elapsed = time.perf_counter() - started
    if sys.stderr.isatty() or os.environ.get("VIGIL_SUMMARY"):
        _summary(engine.stats, elapsed)
    stats = engine.stats
    _report_dead_letters(stats.events + stats.dead_letters, stats.dead_letters, first_reasons, db)
    if fail_on_dead_letters and engine.stats.dead_letters:
        raise SystemExit(DEAD_LETTER_EXIT)


def _report_dead_letters(events: int, dead: int, reasons: list[str], db: str | None) -> None:
    """One line on stderr, whatever stdout is: dead letters must never pass unnoticed in a pipeline."""
    if not dead:
        click.echo(f"vigil run: {events} events, no dead letters", err=True)
        return
    kept = ("kept in the store: `vigil dead-letters list --db ...`" if db not in (None, "memory")
            else "not kept (state in memory): add --db FILE to keep them")
    click.echo(f"vigil run: {dead} of {events} events dead-lettered, {kept}", err=True)
    for reason in reasons:
        click.echo(f"  {reason}", err=True)
    if dead > len(reasons):
        click.echo(f"  … and {dead - len(reasons)} more", err=True)


def _summary(stats: Any, elapsed: float) -> None:
    console = _console()
    table = Table(title="Rule hits")
    table.add_column("rule")
    table.add_column("mode")
    table.add_column("hits", justify="right")
    for name, count in sorted(stats.rule_hits.items(), key=lambda kv: -kv[1]):
        table.add_row(name, "live", str(count))
    for name, count in sorted(stats.shadow_hits.items(), key=lambda kv: -kv[1]):
        table.add_row(name, "shadow", str(count))
    console.print(table)
    verdicts = ", ".join(f"{v}: {n}" for v, n in stats.verdicts.items())
    rate = stats.events / elapsed if elapsed > 0 else 0.0
    console.print(f"{stats.events} events in {elapsed:.2f}s ({rate:,.0f}/s); {verdicts}; "
                  f"dead letters: {stats.dead_letters}", soft_wrap=True)


@main.command()
@click.argument("rules", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--event", "event_json", required=True, help="The event as JSON, or @FILE to read it.")
@click.option("--db", default=None, envvar="VIGIL_STORE", help="Read counters and labels from this store.")
@signal_options
def explain(rules: tuple[str, ...], event_json: str, db: str | None, **signal_opts: Any) -> None:
    """Decide one event and explain the decision: every rule that fired, and the features it used
    (including the second stage, when rules need a policy model)."""
    from vigil.engine import Engine
    from vigil.events import parse_event
    from vigil.stages import SlowStage

    raw = Path(event_json[1:]).read_bytes() if event_json.startswith("@") else event_json.encode()
    functions = _functions()
    engine = Engine(_load(rules, functions), _open_store(db), signals=_signals(signal_opts, functions))
    followups: list[Decision] = []
    try:
        result = engine.process(raw)
        if isinstance(result, Decision) and result.pending:
            SlowStage(engine, followups.append).run_batch([(parse_event(raw), result)])
    finally:
        engine.close()
    if not isinstance(result, Decision):
        click.echo(f"dead letter: {result.reason}", err=True)
        raise SystemExit(1)
    click.echo(explain_text(result))
    for decision in followups:
        click.echo(explain_text(decision))


def explain_text(decision: Decision) -> str:
    stage = " (second stage)" if decision.stage == 2 else " (slow rules pending)" if decision.pending else ""
    lines = [f"event {decision.event_id} ({decision.event_type}): {decision.verdict.upper()}{stage}"]
    if not decision.hits:
        lines.append("  no rule fired")
    for hit in decision.hits:
        mode = "" if hit.mode == "live" else f" [{hit.mode}: not applied]"
        lines.append(f"  rule \"{hit.rule}\" ({hit.severity}){mode} → {hit.verdict or 'no verdict'}")
        for name, value in hit.features.items():
            lines.append(f"      {name} = {value!r}")
        for effect in hit.effects:
            lines.append(f"      effect: {orjson.dumps(effect.to_json()).decode()}")
    return "\n".join(lines)


@main.command()
@click.option("--events", "n_events", default=20000, show_default=True, help="How many events to generate.")
@click.option("--seed", default=7, show_default=True)
@click.option("--rules", "rules_dir", default=None, help="Rules to run (default: the shipped examples).")
def demo(n_events: int, seed: int, rules_dir: str | None) -> None:
    """Generate realistic platform traffic with attacks mixed in, run the example rules over it, and
    show what they caught against the ground truth."""
    from vigil.demo.run import run_demo

    run_demo(n_events, seed, rules_dir)


def eval_command() -> click.Command:
    """`vigil eval`, which also knows rules sets as candidates (rules:PATH)."""
    from vigil.eval.cli import make_eval_command
    from vigil.eval.rules_candidate import rules_candidate

    def rules_kind(spec: str, ctx: Any) -> Any:
        try:
            return rules_candidate(spec, ctx, functions=_functions())
        except (ValueError, DiagnosticError) as error:
            raise click.UsageError(f"rules candidate {spec!r}: {error}") from None

    return make_eval_command({"rules": rules_kind})
