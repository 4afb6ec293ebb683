"""The HTTP benchmark: `vigil serve` under fixed request rates, open loop.

    python bench/http_bench.py [--quick] [--rates 1000,2000] [--seconds 6]

Starts `vigil serve` (one uvicorn worker process, SQLite state, the 100 reference rules of bench/run.py
when present, else the shipped example rules) on a free loopback port, then sends generated platform
events as `POST /v1/events`, one event a request, at fixed rates. The client is open loop: request i is
due at start + i/rate whatever happened before, and its latency is counted from when it was due, so a
stalled server shows up in the figures instead of slowing the client down (no coordinated omission).
The client is raw asyncio over keep-alive connections, light enough to share the machine: on a 2-core
machine client and server share the cores, so the figures are a floor for a server with cores of its own.

Reports p50/p99 at 1k and 2k req/s, then steps the rate up until p99 reaches 10 ms (or errors appear,
or the client cannot keep the rate), and reports the highest rate held with p99 < 10 ms. A table, then
one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

P99_TARGET_MS = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _rules_dir(tmp: Path) -> tuple[Path, str]:
    out = tmp / "rules"
    out.mkdir()
    try:
        import reference  # bench/reference.py: the 100 rules of the engine benchmark

        (out / "reference.vigil").write_text(reference.rules_text())
        return out, "bench/reference.py (100 rules)"
    except ImportError:
        import shutil

        shutil.copytree(ROOT / "vigil" / "demo" / "rules", out, dirs_exist_ok=True)
        return out, "vigil/demo/rules"


def _bodies(n: int) -> list[bytes]:
    """Generated platform traffic with fresh times (so label expiry and windows behave as live)."""
    import orjson

    from vigil.demo.generator import generate

    now = time.time()
    bodies = []
    for i, event in enumerate(generate(n, seed=5)):
        event.pop("truth", None)
        event["time"] = now + i * 0.001
        bodies.append(orjson.dumps(event))
    return bodies


class Server:
    def __init__(self, tmp: Path, rules: Path, memory: bool = False) -> None:
        self.port = _free_port()
        db = tmp / "vigil.sqlite"
        vigil = [sys.executable, "-c", os.environ.get("VIGIL_BENCH_PRE", "") + "from vigil.cli import main; main()"]
        if memory:
            self.token, store = "-", ["--db", "memory", "--no-auth"]
        else:
            out = subprocess.run([*vigil, "token", "create", "bench", "--scopes", "ingest", "--db", str(db)],
                                 check=True, capture_output=True, text=True, cwd=ROOT)
            self.token, store = out.stdout.strip().splitlines()[-1], ["--db", str(db)]
        self.proc = subprocess.Popen([*vigil, "serve", "--rules", str(rules), *store, "--port",
                                     str(self.port), "--log-level", "warning"], cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"vigil serve exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    if b" 200 " in s.recv(1024):
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise SystemExit("vigil serve did not become ready in 60 s")

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@dataclass
class Result:
    rate: int
    seconds: float
    sent: int = 0
    ok: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    finished: list[tuple[float, float]] = field(default_factory=list)  # (due, latency) for diagnosis
    late: list[float] = field(default_factory=list)  # launch - due: the client's own timer lateness
    achieved: float = 0.0
    server_cpu: float = 0.0
    started: float = 0.0  # perf_counter at the first due time: `finished` counts from here

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("inf")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000

    @property
    def held(self) -> bool:
        return (self.errors == 0 and self.ok == self.sent and self.achieved >= 0.95 * self.rate
                and self.pct(0.99) < P99_TARGET_MS)

    def row(self) -> dict[str, Any]:
        return {"rate": self.rate, "achieved": round(self.achieved), "requests": self.sent, "errors": self.errors,
                "p50_ms": round(self.pct(0.5), 3), "p99_ms": round(self.pct(0.99), 3),
                "max_ms": round(max(self.latencies, default=0) * 1000, 3),
                "client_late_p99_ms": round(sorted(self.late)[int(len(self.late) * 0.99)] * 1000, 3) if self.late else 0,
                "server_cpu": round(self.server_cpu, 2), "held": self.held}


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, head: bytes, body: bytes) -> int:
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        header = await self.reader.readuntil(b"\r\n\r\n")
        status = int(header[9:12])
        length = 0
        for line in header.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await self.reader.readexactly(length)
        return status


async def _connect(port: int) -> Connection:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return Connection(reader, writer)


async def run_rate(port: int, token: str, bodies: list[bytes], rate: int, seconds: float,
                   server: Server | None = None, connections: int = 64, result: Result | None = None) -> Result:
    """Send `rate` requests a second for `seconds`, open loop, over a pool of keep-alive connections
    opened beforehand. A request's latency runs from when it was launched (its due time, give or take
    the event loop's millisecond timer) to its response, waiting for a free connection included. A
    `result` given is filled in as requests finish (read it after cancelling a run)."""
    loop = asyncio.get_running_loop()
    result = result if result is not None else Result(rate, seconds)
    head = (b"POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: ")
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for conn in await asyncio.gather(*(_connect(port) for _ in range(connections))):
        pool.put_nowait(conn)
    n = int(rate * seconds)

    async def one(i: int, due: float) -> None:
        launched = time.perf_counter()
        result.late.append(launched - due)
        conn = await pool.get()
        try:
            status = await conn.request(head, bodies[i % len(bodies)])
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
            conn.writer.close()
            pool.put_nowait(await _connect(port))
            return
        latency = time.perf_counter() - launched
        result.latencies.append(latency)
        result.finished.append((due - start, latency))
        if status == 200:
            result.ok += 1
        else:
            result.errors += 1
        pool.put_nowait(conn)

    tasks: set[asyncio.Task[None]] = set()
    cpu0 = server.cpu_seconds() if server else 0.0
    # perf_counter, not loop.time(): uvloop's clock ticks in whole milliseconds.
    start = time.perf_counter() + 0.02
    result.started = start
    i = 0
    while i < n:
        now = time.perf_counter()
        while i < n and start + i / rate <= now:  # launch everything due by now
            task = loop.create_task(one(i, start + i / rate))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if i < n:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
    deadline = time.perf_counter() + 30
    while tasks and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    for task in list(tasks):
        task.cancel()
    result.errors += len(tasks)
    result.sent = n
    result.achieved = result.ok / elapsed if elapsed > 0 else 0.0
    if server:
        result.server_cpu = (server.cpu_seconds() - cpu0) / elapsed
    while not pool.empty():
        pool.get_nowait().writer.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 s a rate, coarse steps: a smoke run")
    parser.add_argument("--rates", default="1000,2000", help="fixed rates to report (req/s)")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds at each rate")
    parser.add_argument("--memory", action="store_true", help="state in memory instead of SQLite (no tokens)")
    parser.add_argument("--max-rate", type=int, default=20000, help="stop stepping up here")
    args = parser.parse_args()
    seconds = 2.0 if args.quick else args.seconds
    fixed = [int(r) for r in args.rates.split(",") if r]
    try:
        import uvloop

        uvloop.install()
        client_loop = "uvloop"
    except ImportError:
        client_loop = "asyncio"
    bodies = _bodies(20000)
    import gc

    gc.collect()
    gc.freeze()
    gc.disable()  # the client's own pauses would be counted as the server's latency
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rules, rules_name = _rules_dir(tmp)
        server = Server(tmp, rules, memory=args.memory)
        try:
            asyncio.run(run_rate(server.port, server.token, bodies, 500, 1.0))  # warm up
            results = [asyncio.run(run_rate(server.port, server.token, bodies, r, seconds, server)) for r in fixed]
            best: Result | None = None
            for r in results:
                if r.held and (best is None or r.rate > best.rate):
                    best = r
            failed = {r.rate for r in results if not r.held}
            step_results: list[Result] = []
            if best is not None:
                rate = best.rate + (1000 if args.quick else 500)
                while rate <= args.max_rate and rate not in failed:
                    r = asyncio.run(run_rate(server.port, server.token, bodies, rate, seconds, server))
                    step_results.append(r)
                    if not r.held:
                        break
                    best = r
                    rate += 1000 if args.quick or rate >= 4000 else 500
        finally:
            server.stop()
    print(f"HTTP: POST /v1/events, one event a request, rules: {rules_name}, state: "
          f"{'memory' if args.memory else 'SQLite'}; open loop, {seconds:g} s a rate; "
          f"client {client_loop} on the same {os.cpu_count()}-core machine")
    print(f"{'rate/s':>8} {'achieved':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7} {'srv cpu':>8}  held")
    for r in results + step_results:
        row = r.row()
        print(f"{row['rate']:>8} {row['achieved']:>9} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
              f"{row['max_ms']:>8.1f} {row['errors']:>7} {row['server_cpu']:>8.2f}  {'yes' if r.held else 'no'}")
    held = best.rate if best is not None else 0
    print(f"highest rate held with p99 < {P99_TARGET_MS:g} ms: {held} req/s")
    if os.environ.get("VIGIL_BENCH_TRACE"):
        for r in results + step_results:
            slow = sorted(r.finished, key=lambda x: -x[1])[:15]
            print(r.rate, "slowest (due s, latency ms):", [(round(d, 3), round(l * 1000, 1)) for d, l in slow])
    print(json.dumps({"bench": "http", "rules": rules_name, "state": "memory" if args.memory else "sqlite", "seconds_per_rate": seconds, "cpus": os.cpu_count(),
                      "fixed": [r.row() for r in results], "steps": [r.row() for r in step_results],
                      "max_rate_p99_under_10ms": held}))


if __name__ == "__main__":
    main()
