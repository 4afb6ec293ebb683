"""`vigil worker` with a broker that does not answer: one line saying what to do, and a failing exit."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

RULES = str(Path(__file__).resolve().parents[2] / "examples" / "rules")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens on it once closed


def _worker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from vigil.cli import main; main()", "worker", "--rules", RULES,
                           "--idle-exit", "1", *args], capture_output=True, text=True, timeout=120, check=False)


def test_redis_down_is_one_line_and_exit_1() -> None:
    # it was a 66-line traceback
    port = _closed_port()
    done = _worker("--stream", f"redis://127.0.0.1:{port}/0/events")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"Error: cannot reach Redis (Error 111 connecting to 127.0.0.1:{port}.")
    assert line.endswith("start it, or give --stream (or --redis) the right redis://HOST:PORT URL")


def test_kafka_down_is_one_line_and_exit_1() -> None:
    # librdkafka flooded stderr and the worker exited 0 with "0 decided"
    pytest.importorskip("confluent_kafka")
    port = _closed_port()
    done = _worker("--kafka", f"127.0.0.1:{port}", "--topic", "events")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        (f"Error: cannot reach the Kafka broker at 127.0.0.1:{port} (Failed to get metadata: Local: Broker "
         "transport failure): start it, or give --kafka the right HOST:PORT")]
