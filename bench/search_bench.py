"""The search benchmark: filtered queries over 1M stored events in the record's SQLite store.

    python bench/search_bench.py [--quick] [--events N]

Writes N synthetic stored events (logins, posts and messages over 30 days, 5,000 users and 2,000 IPs,
a rule fired on about 2% of them) straight into the record with its own `write`, in batches, then times
each query of `QUERIES` (the first page of 50, newest first, or a `top`) and, as the baseline in the same
run, the record's own indexed read of the same filters (what the query pushes down) without evaluating
anything. Best of three, wall time. Prints a table, then one JSON line. Target: a filtered query over 1M
stored events in under 1 s.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from vigil.analysis.query import compile_query
from vigil.analysis.search import Window, search, top
from vigil.dsl.loader import load_ruleset
from vigil.record.base import Query, RecordEntry
from vigil.record.sqlite import SqliteRecord

START = 1_790_000_000.0
DAYS = 30
RULES = """
entity user = event.actor.id
entity ip = event.ip
rule "Credential stuffing" when event is "login" and event.success == false then block
rule "Spam phrases" when event is "post" and event.text contains "free money" then flag
"""
QUERIES = [
    ("rule and entity", 'rule "Credential stuffing" fired and event.ip == "10.0.0.7" and event.success == false'),
    ("type, verdict and field", 'event is "post" and verdict is flag and event.text contains "money"'),
    ("rule, last week", 'rule "Spam phrases" fired and event.channel == "c3"'),
    ("top where rule", 'top event.ip where rule "Credential stuffing" fired'),
]
TARGET_S = 1.0


def fill(record: SqliteRecord, n: int) -> None:
    rng = random.Random(5)
    step = DAYS * 86400 / n
    batch: list[RecordEntry] = []
    for i in range(n):
        t = START + i * step
        kind = ("login", "post", "message")[i % 3]
        user, ip = f"u{rng.randrange(5000)}", f"10.0.{rng.randrange(8)}.{rng.randrange(250)}"
        event: dict[str, object] = {"type": kind, "id": f"e{i}", "time": t, "actor": {"id": user}, "ip": ip}
        rules: tuple[tuple[str, str], ...] = ()
        verdict = "allow"
        if kind == "login":
            event["success"] = rng.random() > 0.06
            if not event["success"]:
                rules, verdict = (("Credential stuffing", "live"),), "block"
        else:
            spam = rng.random() < 0.03
            event["text"] = "free money now" if spam else "hello there"
            event["channel"] = f"c{rng.randrange(10)}"
            if spam and kind == "post":
                rules, verdict = (("Spam phrases", "live"),), "flag"
        decision = {"event_id": f"e{i}", "type": kind, "time": t, "verdict": verdict,
                    "rules": [r for r, _m in rules], "explanation": []}
        batch.append(RecordEntry("bench", f"e{i}", t, kind, 1, verdict, "v1", orjson.dumps(decision), t,
                                 orjson.dumps(event), rules, (("user", user), ("ip", ip))))
        if len(batch) == 20_000:
            record.write(batch)
            batch = []
    if batch:
        record.write(batch)


def best(function: object, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 events")
    args = parser.parse_args()
    n = 100_000 if args.quick else args.events
    context = load_ruleset("bench.vigil", files={"bench.vigil": RULES})
    with tempfile.TemporaryDirectory() as tmp:
        record = SqliteRecord(Path(tmp) / "record.sqlite")
        started = time.perf_counter()
        fill(record, n)
        print(f"wrote {n:,} stored events in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        rows = []
        for name, text in QUERIES:
            query = compile_query(text, context=context)
            window = Window(since=START + (DAYS - 7) * 86400 if "last week" in name else None)
            p = query.pushdown
            indexed = Query(since=window.since, types=p.types, verdicts=p.verdicts, rules=p.rules,
                            entities=p.entities, limit=50 if not query.has_top else 10**9)
            if query.has_top:
                def run(q=query, w=window) -> object:  # type: ignore[no-untyped-def]
                    return top(record, q, w, n=10)
            else:
                def run(q=query, w=window) -> object:  # type: ignore[no-untyped-def]
                    return search(record, q, w, limit=50)
            found = run()
            seconds = best(run)
            baseline = best(lambda q=indexed: list(record.scan(q)))
            matched = found.matched if query.has_top else len(found.events)  # type: ignore[attr-defined]
            rows.append({"query": name, "seconds": round(seconds, 4), "indexed_read_s": round(baseline, 4),
                         "ratio": round(seconds / baseline, 2) if baseline else None, "matched": matched,
                         "scanned": found.scanned})  # type: ignore[attr-defined]
        record.close()
    print(f"{'query':<26}{'seconds':>9}{'indexed read':>14}{'ratio':>7}{'read':>9}  target < {TARGET_S:g} s")
    for r in rows:
        ok = "met" if r["seconds"] < TARGET_S else "NOT met"
        print(f"{r['query']:<26}{r['seconds']:>9.3f}{r['indexed_read_s']:>14.3f}{r['ratio']:>7}{r['scanned']:>9,}  {ok}")
    print(json.dumps({"events": n, "queries": rows, "target_s": TARGET_S}))


if __name__ == "__main__":
    main()
