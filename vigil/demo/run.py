"""`vigil demo`: seeded platform traffic through the example rules, with what was caught."""

from __future__ import annotations

import time
from collections import Counter
from importlib import resources
from pathlib import Path

import orjson
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from vigil.cli import explain_text
from vigil.dsl.loader import load_ruleset
from vigil.effects import Decision
from vigil.runtime import build_runtime
from vigil.settings import Settings, StoreSettings

DEMO_DIR = Path("vigil-data/demo")


def shipped_rules() -> str:
    return str(resources.files("vigil.demo").joinpath("rules"))


def run_demo(
    n_events: int,
    seed: int,
    rules_dir: str | None = None,
    out_dir: Path = DEMO_DIR,
    console: Console | None = None,
    settings: Settings | None = None,
) -> dict[str, dict[str, int]]:
    """Run the demo; returns per attack kind (and "normal") how many events were flagged or not. State
    lives in `out_dir`/state.sqlite and the record in `out_dir`/record.sqlite, whatever the settings say
    (the demo never writes elsewhere)."""
    from vigil.demo.generator import write_jsonl

    console = console or Console()
    out_dir.mkdir(parents=True, exist_ok=True)
    events_path, decisions_path, db_path = (
        out_dir / "events.jsonl",
        out_dir / "decisions.jsonl",
        out_dir / "state.sqlite",
    )
    record_path = out_dir / "record.sqlite"
    for stale in (db_path, record_path):
        for suffix in ("", "-wal", "-shm"):
            stale.with_name(stale.name + suffix).unlink(missing_ok=True)
    write_jsonl(events_path, n_events, seed)
    rules = rules_dir or shipped_rules()
    settings = (settings or Settings()).model_copy(update={"store": StoreSettings(url=SecretStr(str(db_path))),
                                                           "record": {**(settings or Settings()).record,
                                                                      "url": str(record_path)}})
    runtime = build_runtime(settings, lambda store, signals: load_ruleset([rules], functions=signals.functions))
    engine = runtime.engine
    ruleset = engine.ruleset
    console.print(
        f"[bold]Vigil demo[/]: {n_events:,} generated events (seed {seed}) through "
        f"{len(ruleset.program.rules)} rules from {rules} (version {ruleset.version})"
    )
    outcome: dict[str, Counter[str]] = {}
    examples: dict[str, Decision] = {}
    started = time.perf_counter()
    with open(events_path, "rb") as events, open(decisions_path, "wb") as out:
        for line in events:
            result = engine.process(line, source=str(events_path))
            if not isinstance(result, Decision):
                continue
            out.write(orjson.dumps(result.to_json()) + b"\n")
            truth = orjson.loads(line).get("truth", {}).get("attack") or "normal"
            caught = result.verdict != "allow"
            outcome.setdefault(truth, Counter())["caught" if caught else "missed"] += 1
            if caught and truth not in examples:
                examples[truth] = result
    elapsed = time.perf_counter() - started
    runtime.close()

    console.print(
        "\n[bold]A decision for each kind of attack caught[/] (verdict, rules, the values they used):"
    )
    for kind, decision in sorted(examples.items()):
        console.print(f"[dim]{kind}[/]", highlight=False)
        console.print(explain_text(decision), markup=False, highlight=False)

    table = Table(title="What the rules caught, against the generator's ground truth")
    for column in ("traffic", "events", "flagged or worse", "share"):
        table.add_column(column, justify="right" if column != "traffic" else "left")
    for kind in sorted(outcome, key=lambda k: (k == "normal", k)):
        counts = outcome[kind]
        total = counts["caught"] + counts["missed"]
        table.add_row(kind, f"{total:,}", f"{counts['caught']:,}", f"{counts['caught'] / total:.1%}")
    console.print(table)

    hits = Table(title="Rule hits")
    hits.add_column("rule")
    hits.add_column("mode")
    hits.add_column("hits", justify="right")
    for name, count in sorted(engine.stats.rule_hits.items(), key=lambda kv: -kv[1]):
        hits.add_row(name, "live", f"{count:,}")
    for name, count in sorted(engine.stats.shadow_hits.items(), key=lambda kv: -kv[1]):
        hits.add_row(name, "shadow", f"{count:,}")
    console.print(hits)
    verdicts = ", ".join(f"{v} {n:,}" for v, n in engine.stats.verdicts.items())
    console.print(
        f"{engine.stats.events:,} events in {elapsed:.1f}s ({engine.stats.events / elapsed:,.0f}/s); "
        f"verdicts: {verdicts}; dead letters: {engine.stats.dead_letters}"
    )
    console.print(f"Events: {events_path}  decisions: {decisions_path}  state: {db_path}")
    return {kind: dict(c) for kind, c in outcome.items()}
