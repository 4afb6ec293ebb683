"""Worker throughput over Redis Streams with the Redis backend (shared counters and labels), 1 and 2
workers, as a ratio to the in-process `vigil run` of the same events on the same machine.

    python bench/workers.py [--quick] [--events N]

Starts its own redis-server on a free loopback port (no persistence). Events: the demo generator;
rules: vigil/demo/rules. Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "vigil" / "demo" / "rules"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _baseline(lines: list[bytes]) -> float:
    """What `vigil run RULES --events FILE` does per event, in process, state in memory."""
    from vigil.dsl.loader import load_ruleset
    from vigil.effects import Decision
    from vigil.engine import Engine

    engine = Engine(load_ruleset([str(RULES)]))
    sink = bytearray()
    started = time.perf_counter()
    for line in lines:
        result = engine.process(line)
        if isinstance(result, Decision):
            sink += orjson.dumps(result.to_json()) + b"\n"
    elapsed = time.perf_counter() - started
    engine.close()
    return len(lines) / elapsed


def _workers(client: object, url: str, lines: list[bytes], n_workers: int, tmp: Path) -> float:
    client.flushdb()  # type: ignore[attr-defined]
    for start in range(0, len(lines), 5000):
        pipe = client.pipeline(transaction=False)  # type: ignore[attr-defined]
        for line in lines[start:start + 5000]:
            pipe.xadd("events", {"event": line})
        pipe.execute()
    client.xgroup_create("events", "bench", id="0")  # type: ignore[attr-defined]
    env = {**os.environ, "VIGIL_STORE": "memory:", "VIGIL_REDIS": url, "VIGIL_BATCH": "200"}
    log = open(tmp / "workers.log", "ab")  # noqa: SIM115
    procs = [subprocess.Popen([sys.executable, "-c", "from vigil.cli import main; main()", "worker", "--stream",
                               f"{url}/events", "--group", "bench", "--consumer", f"w{i}", "--rules", str(RULES),
                               "--idle-exit", "2", "--log-level", "warning"], env=env, stdout=log, stderr=log)
             for i in range(n_workers)]
    first = None
    deadline = time.monotonic() + 1200
    try:
        while time.monotonic() < deadline:
            done = client.hlen("vigil:decisions:redis:events")  # type: ignore[attr-defined]
            if first is None and done > 0:
                first = (time.perf_counter(), done)
            if done >= len(lines):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("workers did not finish in time")
        end = time.perf_counter()
    finally:
        for p in procs:
            p.wait(60)
        log.close()
    assert first is not None
    return (len(lines) - first[1]) / (end - first[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 events instead of 50,000")
    parser.add_argument("--events", type=int, default=None)
    args = parser.parse_args()
    n = args.events or (10_000 if args.quick else 50_000)
    import redis

    from vigil.demo.generator import write_jsonl

    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (bash scripts/services.sh)")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        write_jsonl(tmp / "events.jsonl", n, seed=7)
        lines = [line for line in (tmp / "events.jsonl").read_bytes().splitlines() if line.strip()]
        port = _free_port()
        server = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", tmpdir], stdout=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            client = redis.Redis.from_url(url)
            for _ in range(100):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            base = _baseline(lines)
            one = _workers(client, url, lines, 1, tmp)
            two = _workers(client, url, lines, 2, tmp)
            client.close()
        finally:
            server.terminate()
            server.wait(10)
    cpus = os.cpu_count() or 1
    print(f"{n:,} demo events, vigil/demo/rules, {cpus} CPUs (workers, redis-server and the poller share them)")
    print(f"{'run':<44} {'events/s':>10} {'ratio':>7}")
    print(f"{'in-process vigil run (memory state)':<44} {base:>10,.0f} {1.0:>7.3f}")
    print(f"{'1 worker, Redis Streams + Redis backend':<44} {one:>10,.0f} {one / base:>7.3f}")
    print(f"{'2 workers, Redis Streams + Redis backend':<44} {two:>10,.0f} {two / base:>7.3f}")
    print(json.dumps({"events": n, "cpus": cpus, "baseline_eps": round(base), "one_worker_eps": round(one),
                      "two_workers_eps": round(two), "one_worker_ratio": round(one / base, 4),
                      "two_workers_ratio": round(two / base, 4), "scaling_2_over_1": round(two / one, 3)}))


if __name__ == "__main__":
    main()
