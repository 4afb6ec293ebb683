"""The backtest benchmark: replayed events per second over the record, against the engine alone.

    python bench/backtest_bench.py [--quick] [--events N]

Generated platform traffic is decided by the 100 reference rules (bench/reference.py) with the record on
(its own writer into its SQLite file, as `vigil serve` writes it). Then, in the same run:
- `engine`: a fresh engine deciding the same events from parsed JSON, state in memory: the ceiling;
- `backtest`: `vigil backtest`'s core replaying the record's events through the same rules as a candidate
  (read from SQLite in time order, decided by a fresh engine, compared with the logged decisions).
Both are timed by CPU-seconds of this process (steadier than wall time on a shared machine), best of two.
The replay must find no change (same rules, same events) before its time counts. Prints a table, then
one JSON line of the figures. Target: at least 20,000 replayed events/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
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

        def engine_alone() -> float:
            fresh = build_engine(rules)
            cpu = time.process_time()
            for event in parsed:
                fresh.decide(event)
            spent = time.process_time() - cpu
            fresh.close()
            return n / spent

        def replay() -> float:
            record = SqliteRecord(path)
            cpu = time.process_time()
            report = backtest(record, rules, since=since, until=until, current=rules)
            spent = time.process_time() - cpu
            record.close()
            if report.replayed != n or report.verdicts_changed or any(c.gained or c.lost
                                                                      for c in report.per_rule.values()):
                raise SystemExit(f"the replay disagrees with the log: {report.replayed} replayed, "
                                 f"{report.verdicts_changed} verdicts changed")
            return n / spent

        engine_rate = max(engine_alone(), engine_alone())
        replay_rate = max(replay(), replay())
    print(f"{'':<10}{'events/s (CPU)':>16}")
    print(f"{'engine':<10}{engine_rate:>16,.0f}")
    print(f"{'backtest':<10}{replay_rate:>16,.0f}   ({replay_rate / engine_rate:.2f}x the engine alone; "
          f"target {TARGET:,}/s: {'met' if replay_rate >= TARGET else 'NOT met'})")
    print(json.dumps({"events": n, "engine_per_s": round(engine_rate), "replayed_per_s": round(replay_rate),
                      "ratio": round(replay_rate / engine_rate, 3), "target_per_s": TARGET}))


def _time(value: str) -> float:
    from vigil.dsl.runtime import parse_time

    parsed = parse_time(value)
    assert parsed is not None
    return parsed


if __name__ == "__main__":
    main()
