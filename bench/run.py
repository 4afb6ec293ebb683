"""The engine benchmark: 100 reference rules over generated platform traffic.

    python bench/run.py [--quick] [--events N]

Measures, in one run on this machine:
- `hand`: a hand-written plain-Python version of the same 100 rules (bench/reference.py), the ceiling;
- `engine`: the Vigil engine deciding the same events (JSON line in, decision out, state in memory);
- `e2e`: end to end as `vigil run` does it: JSONL in, decisions out as JSONL, counters and labels live
  in SQLite (WAL) with the counter flusher on its own thread.
Each runs in its own process (so peak memory is its own), `hand` and `engine` twice, interleaved, and
the better run of each counts, by events per CPU-second of the process (steadier than wall time when
other work shares the machine): the machines here are noisy, so the figures to compare are the ratios.
Before timing anything the two implementations must agree on every event's verdict and fired rules.
Prints a table, then one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

CACHE = HERE / ".cache"


def events_file(n: int, seed: int = 11) -> Path:
    from vigil.demo.generator import write_jsonl

    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"events-{n}-{seed}.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        write_jsonl(tmp, n, seed)
        tmp.rename(path)
    return path


def _ruleset() -> Any:
    import reference

    from vigil.dsl.loader import load_ruleset

    return load_ruleset("reference.vigil", files={"reference.vigil": reference.rules_text()})


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _latency_figures(name: str, elapsed: float, cpu: float, latencies: list[int], n: int) -> dict[str, Any]:
    latencies.sort()
    return {
        "name": name,
        "events": n,
        "seconds": round(elapsed, 3),
        "events_per_s": round(n / elapsed),
        # Per CPU-second of this process: steadier than wall time when other work shares the machine.
        "events_per_cpu_s": round(n / cpu),
        "p50_us": round(latencies[len(latencies) // 2] / 1000, 1),
        "p99_us": round(latencies[int(len(latencies) * 0.99)] / 1000, 1),
        "peak_mb": round(_peak_mb(), 1),
    }


def child_hand(path: Path) -> dict[str, Any]:
    import orjson
    import reference

    lines = path.read_bytes().splitlines()
    rules = reference.HandWritten()
    loads, clock = orjson.loads, time.perf_counter_ns
    latencies = []
    started, cpu = time.perf_counter(), time.process_time()
    for line in lines:
        t0 = clock()
        rules.decide(loads(line))
        latencies.append(clock() - t0)
    return _latency_figures("hand", time.perf_counter() - started, time.process_time() - cpu, latencies, len(lines))


def child_engine(path: Path) -> dict[str, Any]:
    from vigil.engine import Engine

    lines = path.read_bytes().splitlines()
    engine = Engine(_ruleset())
    process, clock = engine.process, time.perf_counter_ns
    latencies = []
    started, cpu = time.perf_counter(), time.process_time()
    for line in lines:
        t0 = clock()
        process(line)
        latencies.append(clock() - t0)
    return _latency_figures("engine", time.perf_counter() - started, time.process_time() - cpu, latencies,
                            len(lines))


def child_e2e(path: Path) -> dict[str, Any]:
    import orjson

    from vigil.effects import Decision
    from vigil.engine import Engine
    from vigil.stores.sqlite import SqliteStore

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        engine = Engine(_ruleset(), SqliteStore(Path(tmp) / "state.sqlite"))
        dumps = orjson.dumps
        n = 0
        with open(path, "rb") as events, open(Path(tmp) / "decisions.jsonl", "wb") as out:
            for line in events:
                result = engine.process(line)
                if isinstance(result, Decision):
                    out.write(dumps(result.to_json()) + b"\n")
                n += 1
        engine.close()
        elapsed = time.perf_counter() - started
        cpu = resource.getrusage(resource.RUSAGE_SELF)
    return {"name": "e2e", "events": n, "seconds": round(elapsed, 3), "events_per_s": round(n / elapsed),
            "cpu_seconds": round(cpu.ru_utime + cpu.ru_stime, 2), "peak_mb": round(_peak_mb(), 1)}


def child_agree(path: Path, limit: int) -> dict[str, Any]:
    import itertools

    import orjson
    import reference

    from vigil.effects import Decision
    from vigil.engine import Engine

    engine, hand = Engine(_ruleset()), reference.HandWritten()
    mismatches, hits, n = [], 0, 0
    with open(path, "rb") as events:
        for line in itertools.islice(events, limit):
            decision = engine.process(line)
            verdict, fired = hand.decide(orjson.loads(line))
            n += 1
            assert isinstance(decision, Decision)
            hits += bool(fired)
            if decision.verdict != verdict or sorted(h.rule for h in decision.hits) != sorted(fired):
                mismatches.append(decision.event_id)
    return {"name": "agree", "events": n, "events_with_hits": hits, "mismatches": len(mismatches),
            "first_mismatches": mismatches[:5]}


def run_child(kind: str, path: Path, *extra: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(path), *extra],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100k events instead of 1M")
    parser.add_argument("--events", type=int, default=None, help="number of generated events")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, path = args.child[0], Path(args.child[1])
        if kind == "agree":
            print(json.dumps(child_agree(path, int(args.child[2]))))
        else:
            children = {"hand": child_hand, "engine": child_engine, "e2e": child_e2e}
            print(json.dumps(children[kind](path)))
        return 0

    n = args.events or (100_000 if args.quick else 1_000_000)
    began = time.perf_counter()
    path = events_file(n)
    print(f"{n:,} generated events in {path} ({path.stat().st_size / 1e6:.0f} MB); 100 reference rules; "
          f"{os.cpu_count()} CPUs", flush=True)
    agree = run_child("agree", path, str(min(n, 200_000)))
    print(f"agreement: {agree['events']:,} events, {agree['events_with_hits']:,} with hits, "
          f"{agree['mismatches']} mismatches", flush=True)
    if agree["mismatches"]:
        print(f"the engine and the hand-written rules disagree on {agree['first_mismatches']}", file=sys.stderr)
        return 1
    runs: dict[str, list[dict[str, Any]]] = {"hand": [], "engine": []}
    for _ in range(2):
        for kind in ("hand", "engine"):
            runs[kind].append(run_child(kind, path))
            print(f"  {kind}: {runs[kind][-1]['events_per_s']:,} events/s "
                  f"({runs[kind][-1]['events_per_cpu_s']:,} per CPU-second)", flush=True)
    e2e = run_child("e2e", path)
    best = {kind: max(r, key=lambda f: f["events_per_cpu_s"]) for kind, r in runs.items()}
    ratio = best["engine"]["events_per_cpu_s"] / best["hand"]["events_per_cpu_s"]
    ratios = [e["events_per_cpu_s"] / h["events_per_cpu_s"] for h, e in zip(runs["hand"], runs["engine"])]

    print()
    print(f"{'run':<34}{'events/s':>12}{'per CPU-s':>12}{'p50 µs':>10}{'p99 µs':>10}{'peak MB':>10}")
    for label, f in (("hand-written Python (ceiling)", best["hand"]), ("Vigil engine, one core", best["engine"])):
        print(f"{label:<34}{f['events_per_s']:>12,}{f['events_per_cpu_s']:>12,}{f['p50_us']:>10}{f['p99_us']:>10}"
              f"{f['peak_mb']:>10}")
    print(f"{'Vigil end to end (JSONL+SQLite)':<34}{e2e['events_per_s']:>12,}{'':>12}{'':>10}{'':>10}"
          f"{e2e['peak_mb']:>10}")
    print(f"\nengine / hand-written: {ratio:.2f}x (best runs; paired runs {', '.join(f'{r:.2f}' for r in ratios)}); "
          f"end to end / engine: {e2e['events_per_s'] / best['engine']['events_per_s']:.2f}x; "
          f"end to end used {e2e['cpu_seconds']} CPU-s in {e2e['seconds']} s "
          f"({e2e['cpu_seconds'] / e2e['seconds']:.2f} cores)")
    figures = {
        "bench": "engine", "events": n, "rules": 100, "agree_mismatches": agree["mismatches"],
        "hand_events_per_s": best["hand"]["events_per_s"], "engine_events_per_s": best["engine"]["events_per_s"],
        "hand_events_per_cpu_s": best["hand"]["events_per_cpu_s"],
        "engine_events_per_cpu_s": best["engine"]["events_per_cpu_s"],
        "e2e_events_per_s": e2e["events_per_s"], "engine_vs_hand": round(ratio, 3),
        "engine_vs_hand_paired_median": round(statistics.median(ratios), 3),
        "engine_p50_us": best["engine"]["p50_us"], "engine_p99_us": best["engine"]["p99_us"],
        "hand_p50_us": best["hand"]["p50_us"], "hand_p99_us": best["hand"]["p99_us"],
        "engine_peak_mb": best["engine"]["peak_mb"], "hand_peak_mb": best["hand"]["peak_mb"],
        "e2e_peak_mb": e2e["peak_mb"], "e2e_cores_used": round(e2e["cpu_seconds"] / e2e["seconds"], 2),
        "wall_s": round(time.perf_counter() - began, 1),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
