"""The working-set benchmark: many events from many distinct users, with state in SQLite, measuring peak
memory and events/s of this engine (bounded working set) against a baseline engine in the same run.

    python bench/working_set.py [--events 10000000] [--users 2000000] [--baseline REV | --baseline-tree DIR]
                                [--parallel]

Events are generated while they are decided (never held in memory): user `u` has about events/users
events, in one session, with `--active` users (default 20,000) in session at any time, so every user is
new once and then idle for good, as traffic from new entities is. Event time moves on 1,000 events per
second, so hour windows and labels expire during the run. Three counters per user (an hour window, a
day's distinct ips, today's posts) and a label rule that reads and writes labels.

Each engine runs in its own process, so the peak RSS printed is its own. `--baseline REV` checks REV out
in a throwaway git worktree (removed after) and runs its engine (the code before the bounded working set,
e.g. 6bd7fde) on the same events; `--baseline-tree DIR` uses a tree you checked out; `--unbounded` instead
runs this engine with no limits (everything kept in memory, as before, but with this code's storage).
`--parallel` runs the two engines at the same time (half the wall time on a machine with two free CPUs;
compare the per-CPU-second figures then, as the two share the machine). Prints one line per engine, the
ratio, then one JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z

RULES = """
entity user = event.user

define posts = count of "post" by user in the last 1 hour
define ips = count distinct event.ip for user in the last 1 day
define posts_today = count of "post" by user today

rule "Burst" when event is "post" and posts > 4 then review, label user "bursty" for 1 hour
rule "Many ips" when ips > 3 then flag
rule "Busy day" when event is "post" and posts_today > 6 then review
rule "Known bursty" when event is "post" and user has label "bursty" then block
"""


def generate(n: int, users: int, active: int, seed: int = 5) -> Iterator[dict[str, Any]]:
    """`n` events over `users` distinct users: event i comes from one of the `active` users whose
    sessions are open around position i, so each user's events fall in one stretch of the run."""
    rng = random.Random(seed)
    per_user = n / users
    for i in range(n):
        newest = int(i / per_user)
        user = max(0, min(users - 1, newest - rng.randrange(active)))
        yield {"type": "post" if rng.random() < 0.8 else "login", "id": f"e{i}", "time": T0 + i // 1000,
               "user": f"user-{user}", "ip": f"10.{user % 200}.{rng.randrange(4)}.1"}


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(args: argparse.Namespace) -> dict[str, Any]:
    """Decide the generated events with the `vigil` on PYTHONPATH, state in a fresh SQLite file."""
    import vigil
    from vigil.dsl.loader import load_ruleset
    from vigil.engine import Engine
    from vigil.stores.sqlite import SqliteStore

    rules = load_ruleset("bench.vigil", files={"bench.vigil": RULES})
    limits: dict[str, Any] = {}
    if args.unbounded:
        limits = {"max_counter_keys": None, "max_label_entities": None}
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(rules, SqliteStore(Path(tmp) / "state.sqlite"), **limits)
        verdicts: dict[str, int] = {}
        samples = []
        step = max(1, args.events // 10)
        started, cpu = time.perf_counter(), time.process_time()
        for i, event in enumerate(generate(args.events, args.users, args.active)):
            decision = engine.process(event)
            verdict = getattr(decision, "verdict", "dead letter")
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            if (i + 1) % step == 0:
                samples.append(round(_rss_mb()))
                print(f"    {i + 1:,} events, RSS {samples[-1]:,} MB", file=sys.stderr, flush=True)
        engine.close()
        elapsed, cpu_used = time.perf_counter() - started, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"vigil": str(Path(vigil.__file__).parent.parent), "events": args.events, "users": args.users,
            "seconds": round(elapsed, 1), "events_per_s": round(args.events / elapsed),
            "events_per_cpu_s": round(args.events / cpu_used), "peak_rss_mb": round(peak),
            "rss_mb_by_tenth": samples, "verdicts": verdicts}


def run_child(tree: Path, args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, str(HERE / "working_set.py"), "--child", "--events", str(args.events),
               "--users", str(args.users), "--active", str(args.active), *extra]
    out = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, default=2_000_000)
    parser.add_argument("--active", type=int, default=20_000, help="users in session at once")
    baseline = parser.add_mutually_exclusive_group()
    baseline.add_argument("--baseline", metavar="REV", help="git revision of the engine to compare with")
    baseline.add_argument("--baseline-tree", type=Path, metavar="DIR", help="a checked-out tree to compare with")
    baseline.add_argument("--unbounded", action="store_true", help="compare with this engine without limits")
    parser.add_argument("--parallel", action="store_true", help="run the two engines at the same time")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return 0

    print(f"{args.events:,} events over {args.users:,} users ({args.active:,} in session at once), state in "
          f"SQLite; {os.cpu_count()} CPUs", flush=True)
    throwaway: Path | None = None
    try:
        if args.baseline:
            throwaway = Path(tempfile.mkdtemp(prefix="vigil-baseline-")) / "tree"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(throwaway), args.baseline],
                           check=True, capture_output=True)
        base_tree = throwaway or args.baseline_tree
        runs: dict[str, tuple[Path, tuple[str, ...]]] = {"bounded (this engine, default limits)": (ROOT, ())}
        if args.unbounded:
            runs["unbounded (this engine, no limits)"] = (ROOT, ("--unbounded",))
        elif base_tree is not None:
            runs[f"baseline ({base_tree})"] = (base_tree, ())
        with ThreadPoolExecutor(max_workers=len(runs) if args.parallel else 1) as pool:
            futures = []
            for name, (tree, extra) in runs.items():
                print(f"  {name}{' (started alongside)' if args.parallel else ''}:", flush=True)
                futures.append(pool.submit(run_child, tree, args, *extra))
            results = [future.result() for future in futures]
        bounded, base = results[0], (results[1] if len(results) > 1 else None)
    finally:
        if throwaway is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(throwaway)], check=False)
            shutil.rmtree(throwaway.parent, ignore_errors=True)

    print(f"\n{'run':<12}{'events/s':>10}{'per CPU-s':>11}{'peak RSS MB':>13}  RSS by tenth of the run (MB)")
    for name, figures in (("bounded", bounded), ("baseline", base)):
        if figures is not None:
            print(f"{name:<12}{figures['events_per_s']:>10,}{figures['events_per_cpu_s']:>11,}"
                  f"{figures['peak_rss_mb']:>13,}  {figures['rss_mb_by_tenth']}")
    result: dict[str, Any] = {"bench": "working_set", "parallel": args.parallel, "bounded": bounded,
                              "baseline": base}
    if base is not None:
        result["events_per_s_ratio"] = round(bounded["events_per_s"] / base["events_per_s"], 3)
        result["events_per_cpu_s_ratio"] = round(bounded["events_per_cpu_s"] / base["events_per_cpu_s"], 3)
        result["same_verdicts"] = bounded["verdicts"] == base["verdicts"]
        print(f"\nbounded / baseline: {result['events_per_s_ratio']:.2f}x events/s, "
              f"{result['events_per_cpu_s_ratio']:.2f}x per CPU-second; peak RSS {bounded['peak_rss_mb']:,} MB vs "
              f"{base['peak_rss_mb']:,} MB; verdict counts {'equal' if result['same_verdicts'] else 'DIFFER'}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
