"""The record's cost: `vigil run` events/s with and without the record, in the same run.

    python bench/record_bench.py [--events N]

Both runs decide the same generated events with the 100 reference rules (bench/reference.py) and keep
state in SQLite (`--db`), as in production; one writes every event and decision to the record beside
the store (the default), the other runs with VIGIL_RECORD__ENABLED=false. Each runs as a real `vigil run`
process, twice, interleaved; the better run of each counts, from the rate `vigil run` reports itself
(deciding through closing, which writes what the record still holds). Issue 13 allows the record at
most a quarter of the events/s: the ratio must stay at or above 0.75.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

RATE = re.compile(r"(\d+) events in ([\d.]+)s")


def run_once(rules: Path, events: Path, tmp: Path, record: bool) -> dict[str, float]:
    db = tmp / ("with" if record else "without") / "vigil.sqlite"
    db.parent.mkdir(exist_ok=True)
    for leftover in db.parent.iterdir():
        leftover.unlink()
    env = {**os.environ, "VIGIL_SUMMARY": "1", "VIGIL_RECORD__ENABLED": "true" if record else "false",
           "PYTHONPATH": str(HERE.parent)}
    done = subprocess.run([sys.executable, "-c", "from vigil.cli import main; main()", "run", str(rules),
                           "--events", str(events), "--db", str(db), "--out", os.devnull, "--no-progress"],
                          env=env, capture_output=True, text=True, check=True)
    found = RATE.search(done.stderr.replace(",", ""))
    if found is None:
        raise SystemExit(f"no rate in vigil run's summary:\n{done.stderr}")
    n, seconds = int(found.group(1)), float(found.group(2))
    recorded = (db.parent / "record.sqlite").exists()
    if recorded != record:
        raise SystemExit(f"the record was {'not ' if record else ''}written: {db.parent}")
    return {"events": n, "seconds": seconds, "events_per_s": n / seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    import reference
    from run import events_file

    events = events_file(args.events)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rules = tmp / "reference.vigil"
        rules.write_text(reference.rules_text())
        runs: dict[str, list[dict[str, float]]] = {"without": [], "with": []}
        for _ in range(2):
            for kind in ("without", "with"):
                runs[kind].append(run_once(rules, events, tmp, kind == "with"))
                print(f"  {kind} the record: {runs[kind][-1]['events_per_s']:,.0f} events/s", flush=True)
    best = {kind: max(r["events_per_s"] for r in found) for kind, found in runs.items()}
    ratio = best["with"] / best["without"]
    print(f"vigil run, {args.events:,} events, SQLite state: {best['without']:,.0f} events/s without the record, "
          f"{best['with']:,.0f} with it: ratio {ratio:.2f} (at least 0.75 wanted)")
    print(json.dumps({"events": args.events, "without_per_s": round(best["without"]),
                      "with_per_s": round(best["with"]), "ratio": round(ratio, 3)}))
    return 0 if ratio >= 0.75 else 1


if __name__ == "__main__":
    raise SystemExit(main())
