"""The `vigil` command. Every subcommand reads one Settings (vigil.toml < environment < flags) and builds
the runtime production runs with `vigil.runtime.build_runtime`."""

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
from vigil.settings import ConfigError, Settings, load_settings
from vigil.stores.cli import dead_letter_flags, dead_letter_options

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


def _read_lines(path: str) -> Iterator[bytes]:
    stream: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115
    try:
        for line in stream:
            if line.strip():
                yield line
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


# Each option of `signal_options` and the setting it overrides (None when not given: the lower sources apply).
SIGNAL_FLAGS = {"classifiers_dir": "signals.classifiers", "policies_dir": "signals.policies",
                "endpoint": "signals.endpoint", "model": "signals.model", "api_key_env": "signals.api_key_env",
                "banks_db": "signals.banks", "media_roots": "signals.media_roots"}


def config_option(function: Any) -> Any:
    return click.option("--config", "config_path", default=None, type=click.Path(exists=True, dir_okay=False),
                        help="Settings file (default: $VIGIL_CONFIG, or ./vigil.toml if present).")(function)


def signal_options(function: Any) -> Any:
    """Options for the signals rules may call (classifiers, policy models, hash banks), and --config."""
    options = [
        click.option("--classifiers", "classifiers_dir", default=None,
                     help="Directory of trained classifiers (signals.classifiers; default vigil-data/classifiers)."),
        click.option("--policies", "policies_dir", default=None,
                     help="Directory of policy files, *.md (signals.policies)."),
        click.option("--endpoint", default=None,
                     help="OpenAI-compatible base URL serving the policy model, e.g. http://127.0.0.1:8000/v1 "
                          "(signals.endpoint, env VIGIL_MODEL_ENDPOINT)."),
        click.option("--model", default=None, help="Policy model name (signals.model; default gpt-oss-safeguard-20b)."),
        click.option("--api-key-env", default=None,
                     help="Environment variable holding the endpoint's API key (or set VIGIL_SIGNALS__API_KEY)."),
        click.option("--banks", "banks_db", default=None,
                     help="Hash banks: SQLite file or postgresql:// URL (signals.banks, env VIGIL_BANKS; "
                          "default vigil-data/banks.sqlite if present)."),
        click.option("--media-root", "media_roots", multiple=True,
                     help="Directory events may name media files in (repeatable; none: paths refused)."),
    ]
    for option in reversed(options):
        function = option(function)
    return config_option(function)


def settings_from(options: dict[str, Any], flags: dict[str, Any] | None = None) -> Settings:
    """The settings of a command: its --config file, the environment, then its flags (`options` holds
    the `signal_options` values, `flags` dotted keys of its own options; None: not given)."""
    given = {key: options.get(name) or None for name, key in SIGNAL_FLAGS.items()}
    given.update(flags or {})
    try:
        return load_settings(given, config=options.get("config_path"))
    except ConfigError as error:
        raise click.ClickException(str(error)) from None


def _signals(settings: Settings) -> Any:
    """The signals of the settings (vigil.runtime.open_signals), with the installed plugins' functions; a
    plugin that cannot be used stops the command, naming it."""
    from vigil.plugins import PluginError
    from vigil.runtime import open_signals

    try:
        return open_signals(settings)
    except PluginError as error:
        raise click.ClickException(str(error)) from None


def _runtime(settings: Settings, rules: tuple[str, ...]) -> Any:
    """The runtime of a one-shot command over RULES (loaded with the signals' functions); a store URL
    or sinks settings Vigil does not take, or a plugin that cannot be used, is one line."""
    from vigil.plugins import PluginError
    from vigil.runtime import build_runtime

    try:
        return build_runtime(settings, lambda store, signals: _load(rules, signals.functions))
    except (ValueError, PluginError) as error:
        raise click.ClickException(str(error)) from None


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
    "user": SubCommand("vigil.people.cli", "user_group", "serve"),
    "audit": SubCommand("vigil.people.cli", "audit_group", "serve"),
    "rules": SubCommand("vigil.lifecycle.cli", "rules_group", "serve"),
    "worker": SubCommand("vigil.workers.cli", "worker_command", "serve"),
    "dead-letters": SubCommand("vigil.stores.cli", "dead_letters_group", None),
    "entity": SubCommand("vigil.record.cli", "entity_command", None),
    "outbox": SubCommand("vigil.sinks.cli", "outbox_group", None),
    "review": SubCommand("vigil.review.cli", "review_group", "serve"),
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
    from vigil.runtime import close_signals

    signals = _signals(settings_from(signal_opts))
    try:
        results = run_tests(_load(rules, signals.functions), signals, time_limit=time_limit)
    finally:
        close_signals(signals)
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
@click.option("--db", default=None,
              help="State store: a SQLite path, sqlite:/// or postgresql:// URL, or memory: (store.url, env "
                   "VIGIL_STORE). Default: in memory.")
@click.option("--redis", "redis_url", default=None,
              help="Redis URL for shared counters and labels (store.redis, env VIGIL_REDIS).")
@click.option("--all/--hits-only", "write_all", default=True, show_default=True,
              help="Write a decision for every event, or only for events where a rule fired.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
@click.option("--fail-on-dead-letters", is_flag=True,
              help="Exit 3 when any event was dead-lettered (the count and first reasons are always on stderr).")
@dead_letter_options
@signal_options
def run(rules: tuple[str, ...], events_path: str, out_path: str, db: str | None, redis_url: str | None,
        write_all: bool, progress: bool | None, fail_on_dead_letters: bool, **signal_opts: Any) -> None:
    """Decide every event in a JSONL file with RULES; decisions out as JSONL, a summary at the end.

    Rules that need a policy model run in a second stage: their decisions follow the first ones in the
    output with "stage": 2 and the same event id. Events that cannot be decided are dead letters: their
    count and first reasons go to stderr, and into the --db store (see `vigil dead-letters`)."""
    import threading

    from vigil.events import parse_event

    letters = dead_letter_flags(signal_opts)  # before the signal options are read: they share **kwargs
    settings = settings_from(signal_opts, {"store.url": db, "store.redis": redis_url, **letters})
    runtime = _runtime(settings, rules)
    engine = runtime.engine
    out = sys.stdout.buffer if out_path == "-" else open(out_path, "wb")  # noqa: SIM115
    write_lock = threading.Lock()

    def write(decision: Decision) -> None:
        with write_lock:
            out.write(orjson.dumps(decision.to_json()) + b"\n")

    runtime.subscribe(write)
    slow = runtime.second_stage
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
        runtime.close()  # the second stage's last decisions are written before the output closes
        if out is not sys.stdout.buffer:
            out.close()
        else:
            out.flush()
    elapsed = time.perf_counter() - started
    if sys.stderr.isatty() or os.environ.get("VIGIL_SUMMARY"):
        _summary(engine.stats, elapsed)
    stats = engine.stats
    _report_dead_letters(stats.events + stats.dead_letters, stats.dead_letters, first_reasons,
                         settings.store_url("memory:"))
    if fail_on_dead_letters and engine.stats.dead_letters:
        raise SystemExit(DEAD_LETTER_EXIT)


def _report_dead_letters(events: int, dead: int, reasons: list[str], db: str | None) -> None:
    """One line on stderr, whatever stdout is: dead letters must never pass unnoticed in a pipeline."""
    if not dead:
        click.echo(f"vigil run: {events} events, no dead letters", err=True)
        return
    kept = ("kept in the store: `vigil dead-letters list --db ...`" if db not in (None, "memory", "memory:")
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
@click.argument("rules", nargs=-1, required=False, type=click.Path(exists=True))
@click.option("--event", "event_json", default=None, help="The event as JSON, or @FILE to read it.")
@click.option("--event-id", default=None,
              help="Explain a recorded event as it was decided, from the record (no RULES needed).")
@click.option("--source", default=None, help="With --event-id: the source that sent it (ids are per source).")
@click.option("--record", "record_url", default=None,
              help="With --event-id: the record, if not beside the --db store (record.url).")
@click.option("--json", "as_json", is_flag=True, help="With --event-id: the stored event and decisions as JSON.")
@click.option("--db", default=None,
              help="Read counters and labels from this store (store.url, env VIGIL_STORE; default in memory).")
@click.option("--redis", "redis_url", default=None, help="Redis URL for shared counters and labels (store.redis).")
@signal_options
def explain(rules: tuple[str, ...], event_json: str | None, event_id: str | None, source: str | None,
            record_url: str | None, as_json: bool, db: str | None, redis_url: str | None,
            **signal_opts: Any) -> None:
    """Decide one event with RULES and explain the decision: every rule that fired, and the features it
    used (including the second stage, when rules need a policy model). With --event-id, show instead
    the decision a recorded event got when it was decided, read from the record."""
    if event_id is not None:
        from vigil.record.cli import explain_recorded

        explain_recorded(event_id, source, db, record_url, as_json)
        return
    if event_json is None or not rules:
        raise click.UsageError("give RULES and --event JSON to decide an event, or --event-id ID to explain "
                               "a recorded one")
    from vigil.events import parse_event

    raw = Path(event_json[1:]).read_bytes() if event_json.startswith("@") else event_json.encode()
    settings = settings_from(signal_opts, {"store.url": db, "store.redis": redis_url})
    followups: list[Decision] = []
    with _runtime(settings, rules) as runtime:
        result = runtime.engine.process(raw)
        if isinstance(result, Decision) and result.pending:
            followups.append(runtime.decide_slow_now(parse_event(raw), result))
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
@signal_options
def demo(n_events: int, seed: int, rules_dir: str | None, **signal_opts: Any) -> None:
    """Generate realistic platform traffic with attacks mixed in, run the example rules over it, and
    show what they caught against the ground truth (state in vigil-data/demo/state.sqlite)."""
    from vigil.demo.run import run_demo

    run_demo(n_events, seed, rules_dir, settings=settings_from(signal_opts))


def eval_command() -> click.Command:
    """`vigil eval`, which also knows rules sets as candidates (rules:PATH)."""
    from vigil.eval.cli import make_eval_command
    from vigil.eval.rules_candidate import rules_candidate

    def rules_kind(spec: str, ctx: Any) -> Any:
        # The rules decide with the signals of the settings (vigil.toml, environment; plugins' functions
        # included), the eval's own --dir and endpoint options on top, as every other front door does.
        from vigil.classifiers.registry import DEFAULT_DIR

        endpoint = ctx.endpoint
        given_dir = ctx.classifiers_dir if Path(ctx.classifiers_dir) != Path(DEFAULT_DIR) else None
        flags: dict[str, Any] = {"signals.classifiers": str(given_dir) if given_dir is not None else None}
        if endpoint is not None:
            flags.update({"signals.endpoint": endpoint.base_url, "signals.model": endpoint.model,
                          "signals.api_key": endpoint.api_key, "signals.timeout": endpoint.timeout_s})
        try:
            return rules_candidate(spec, ctx, signals=_signals(load_settings(flags)))
        except (ValueError, DiagnosticError) as error:  # ConfigError included
            raise click.UsageError(f"rules candidate {spec!r}: {error}") from None

    return make_eval_command({"rules": rules_kind})
