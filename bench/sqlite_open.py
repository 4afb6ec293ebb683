"""Time to open a large SQLite store, against an empty one (issue 11: `PRAGMA quick_check` on every open).

    python bench/sqlite_open.py [--mb 200] [--dir DIR]

Builds (once, in DIR) a store of about `--mb` megabytes: label history rows with their index and
counter chunks, as a long-running service leaves them. Then opens it and an empty store five times each
(the file in the page cache, as after a restart on the same machine) and prints the best open time of
each and the ratio large / empty; then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vigil.stores.sqlite import SqliteStore


def build(path: Path, megabytes: int) -> None:
    """A store of about `megabytes` MB: half label history, half counter chunks."""
    store = SqliteStore(path)
    conn = store._conn  # building fast: one big transaction per table, outside the store's API
    rng = random.Random(1)
    conn.execute("BEGIN")
    while path.stat().st_size < megabytes * (1 << 20) // 2:
        rows = [("user", f"u{rng.randrange(10**7)}", rng.choice(["spam", "busy", "new"]), 1, "rule", None,
                 1.7e9 + rng.random() * 1e7, "Busy poster", "rule fired") for _ in range(50_000)]
        conn.executemany("INSERT INTO label_history (entity_type, key, label, present, source, expires_at,"
                         " updated_at, actor, reason) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        conn.execute("COMMIT")
        conn.execute("BEGIN")
    while path.stat().st_size < megabytes * (1 << 20):
        chunks = [(f"c{rng.randrange(50)}", 0, 1, os.urandom(4000)) for _ in range(5_000)]
        conn.executemany("INSERT INTO counter_chunks (cid, sec_min, sec_max, rows) VALUES (?, ?, ?, ?)", chunks)
        conn.execute("COMMIT")
        conn.execute("BEGIN")
    conn.execute("COMMIT")
    store.close()


def best_open(path: Path, times: int = 5) -> float:
    best = float("inf")
    for _ in range(times):
        start = time.perf_counter()
        SqliteStore(path).close()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "vigil-bench-sqlite-open"))
    args = parser.parse_args()
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    large = directory / f"large-{args.mb}mb.sqlite"
    if not large.exists():
        build(large, args.mb)
    empty = directory / "empty.sqlite"
    if not empty.exists():
        SqliteStore(empty).close()
    size = large.stat().st_size / (1 << 20)
    empty_ms, large_ms = best_open(empty), best_open(large)
    print(f"open an empty store      {empty_ms:9.2f} ms")
    print(f"open a {size:.0f} MB store     {large_ms:9.2f} ms   {large_ms / empty_ms:8.1f}x the empty one")
    print(json.dumps({"bench": "sqlite_open", "mb": round(size), "empty_ms": round(empty_ms, 3),
                      "large_ms": round(large_ms, 3), "ratio": round(large_ms / empty_ms, 2)}))


if __name__ == "__main__":
    main()
