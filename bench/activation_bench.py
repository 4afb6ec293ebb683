"""Event latency while a large rules version activates, against the same traffic without one.

    python bench/activation_bench.py [--items 200000] [--rate 200] [--seconds 5]

Starts `vigil serve` (state in memory, the shipped example rules in a watched directory) on a free
loopback port and sends `POST /v1/events` open loop at a fixed rate (the client of bench/http_bench.py).
First `--seconds` of plain traffic: the baseline. Then, with the same traffic flowing, it writes a rules
file holding an inline list of `--items` words into the watched directory and keeps sending until the
service reports the new version active (GET /v1/rules). Events due in that window are the "during"
figures. Prints p50/p99/max of both and the ratio of the p99s, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from http_bench import ROOT, Result, Server, _bodies, run_rate


def big_rules(items: int) -> str:
    words = ", ".join(f'"bw{i}q"' for i in range(items))
    return (f'list "bench-big" of words = [{words}]\n'
            'rule "Bench big list"\n  when event is "post" and event.text contains any of list "bench-big"\n'
            '  then flag\n')


def active_version(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/rules", timeout=30) as response:
        version: str = json.loads(response.read())["version"]
        return version


def pct(latencies: list[float], q: float) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else float("nan")


def summary(latencies: list[float]) -> dict[str, float]:
    return {"events": len(latencies), "p50_ms": round(pct(latencies, 0.5), 2),
            "p99_ms": round(pct(latencies, 0.99), 2), "max_ms": round(max(latencies, default=0) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200_000, help="words in the inline list activated")
    parser.add_argument("--rate", type=int, default=200, help="events a second, open loop")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of baseline traffic")
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for the activation")
    args = parser.parse_args()
    bodies = _bodies(5000)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rules = tmp / "rules"
        shutil.copytree(ROOT / "vigil" / "demo" / "rules", rules)
        server = Server(tmp, rules, memory=True)
        try:
            asyncio.run(run_rate(server.port, server.token, bodies, args.rate, 1.0))  # warm up
            baseline = asyncio.run(run_rate(server.port, server.token, bodies, args.rate, args.seconds, server))
            before = active_version(server.port)
            window: dict[str, float] = {}
            text = big_rules(args.items)

            def activate() -> None:
                time.sleep(1.0)  # traffic first, so the window starts in steady state
                window["start"] = time.perf_counter()
                (rules / "bench-big.vigil").write_text(text)
                deadline = time.monotonic() + args.timeout
                while time.monotonic() < deadline:
                    if active_version(server.port) != before:
                        break
                    time.sleep(0.2)
                window["end"] = time.perf_counter()

            thread = threading.Thread(target=activate)
            thread.start()
            during_run = _run_until(server, bodies, args.rate, thread, args.timeout)
            thread.join()
        finally:
            server.stop()
    if "end" not in window:
        raise SystemExit("the large version did not become active")
    first = window["start"] - during_run.started
    last = window["end"] - during_run.started
    during = [latency for due, latency in during_run.finished if first <= due <= last]
    base = summary(baseline.latencies)
    dur = summary(during)
    ratio = dur["p99_ms"] / base["p99_ms"] if base["p99_ms"] else float("nan")
    print(f"activation of a {args.items}-word inline list took {last - first:.1f} s; {args.rate} events/s, "
          f"memory state, errors: baseline {baseline.errors}, during {during_run.errors}")
    print(f"{'':>18} {'events':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>9}")
    for name, row in (("without activation", base), ("during activation", dur)):
        print(f"{name:>18} {row['events']:>7} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['max_ms']:>9.1f}")
    print(f"p99 during / p99 without: {ratio:.2f}x")
    print(json.dumps({"bench": "activation", "items": args.items, "rate": args.rate,
                      "activation_s": round(last - first, 2), "baseline": base, "during": dur,
                      "p99_ratio": round(ratio, 2), "errors": baseline.errors + during_run.errors}))


def _run_until(server: Server, bodies: list[bytes], rate: int, thread: threading.Thread, timeout: float) -> Result:
    """Open-loop traffic for as long as the activation may take; the window is cut out afterwards. The
    run is sized to the timeout and stopped early once the activation thread is done."""
    stop_after: list[float] = []

    async def watch(task: asyncio.Task[Result]) -> None:
        while thread.is_alive():
            await asyncio.sleep(0.1)
        stop_after.append(time.perf_counter())
        await asyncio.sleep(1.0)  # a second of traffic after the switch, then stop
        task.cancel()

    async def both() -> Result:
        result = Result(rate, timeout)
        task = asyncio.get_running_loop().create_task(
            run_rate(server.port, server.token, bodies, rate, timeout + 5, server, result=result))
        watcher = asyncio.get_running_loop().create_task(watch(task))
        try:
            await task
        except asyncio.CancelledError:
            pass
        await watcher
        return result

    return asyncio.run(both())


if __name__ == "__main__":
    main()
