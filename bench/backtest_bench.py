"""The backtest benchmark: replayed events per second over the record, against the engine alone.

    python bench/backtest_bench.py [--quick] [--events N]

Generated platform traffic is decided by the 100 reference rules (bench/reference.py) with the record on
(its own writer into its SQLite file, as `vigil serve` writes it). Then, in the same run:
- `engine`: a fresh engine deciding the same events from parsed JSON, state in memory: the ceiling;
- `backtest, whole`: `vigil backtest`'s reference path (`fast=False`): every stored event read whole, its
  decisions decoded, as the backtest first did: the baseline;
- `backtest`: the fast path (what `vigil backtest` runs): only the columns the comparison needs, in large
  batches, stored decisions decoded only for the examples.
Each is timed by CPU-seconds of this process (steadier on a shared machine) and by wall time, best of two.
The replay must find no change (same rules, same events) before its time counts. Prints a table, then
one JSON line of the figures. Target: at least 20,000 replayed events/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from reference import rules_text

from vigil.analysis.backtest import backtest
from vigil.demo.generator import generate
from vigil.dsl.loader import load_ruleset
from vigil.events import Event
from vigil.record.settings import RecordSettings
from vigil.record.sqlite import SqliteRecord
from vigil.record.writer import Recorder
from vigil.runtime import build_engine

TARGET = 20_000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="20,000 events")
    args = parser.parse_args()
    n = 20_000 if args.quick else args.events
    rules = load_ruleset("reference.vigil", files={"reference.vigil": rules_text()})
    events = list(generate(n, 11))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "record.sqlite"
        started = time.perf_counter()
        engine = build_engine(rules)
        engine.recorder = Recorder(SqliteRecord(path), RecordSettings(), lambda: rules)
        import orjson

        for ev in events:
            engine.process(orjson.dumps(ev), source="bench")
        engine.close()
        engine.recorder.close()
        print(f"recorded {n:,} events in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        parsed = [Event(e["type"], e["id"], _time(e["time"]), e, "bench") for e in events]
        since, until = parsed[0].time, parsed[-1].time + 1

        def engine_alone() -> tuple[float, float]:
            fresh = build_engine(rules)
            cpu, wall = time.process_time(), time.perf_counter()
            for event in parsed:
                fresh.decide(event)
            spent = time.process_time() - cpu, time.perf_counter() - wall
            fresh.close()
            return n / spent[0], n / spent[1]

        def replay(fast: bool) -> tuple[float, float]:
            record = SqliteRecord(path)
            cpu, wall = time.process_time(), time.perf_counter()
            report = backtest(record, rules, since=since, until=until, current=rules, fast=fast)
            spent = time.process_time() - cpu, time.perf_counter() - wall
            record.close()
            if report.replayed != n or report.verdicts_changed or any(c.gained or c.lost
                                                                      for c in report.per_rule.values()):
                raise SystemExit(f"the replay disagrees with the log: {report.replayed} replayed, "
                                 f"{report.verdicts_changed} verdicts changed")
            return n / spent[0], n / spent[1]

        def best(run: Callable[[], tuple[float, float]]) -> tuple[float, float]:
            first, second = run(), run()
            return max(first[0], second[0]), max(first[1], second[1])

        engine = best(engine_alone)
        whole = best(lambda: replay(False))
        fast = best(lambda: replay(True))
    print(f"{'':<16}{'events/s, CPU':>14}{'wall':>9}")
    for name, (cpu, wall) in (("engine alone", engine), ("backtest, whole", whole), ("backtest", fast)):
        print(f"{name:<16}{cpu:>14,.0f}{wall:>9,.0f}   ({cpu / engine[0]:.2f}x, {wall / engine[1]:.2f}x the engine alone)")
    print(f"the fast path: {fast[0] / whole[0]:.2f}x (CPU), {fast[1] / whole[1]:.2f}x (wall) the reference path "
          f"(every stored event read whole, decisions decoded); target {TARGET:,}/s: "
          f"{'met' if fast[1] >= TARGET else 'NOT met'}")
    print(json.dumps({"events": n, "engine_per_s": [round(x) for x in engine],
                      "whole_read_per_s": [round(x) for x in whole], "replayed_per_s": [round(x) for x in fast],
                      "ratio_to_engine": [round(fast[i] / engine[i], 3) for i in (0, 1)],
                      "ratio_to_whole_read": [round(fast[i] / whole[i], 3) for i in (0, 1)],
                      "figures": "[CPU, wall]", "target_per_s": TARGET}))


def _time(value: str) -> float:
    from vigil.dsl.runtime import parse_time

    parsed = parse_time(value)
    assert parsed is not None
    return parsed


if __name__ == "__main__":
    main()
