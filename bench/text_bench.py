"""Cost of the rules' text functions on a hostile 1 MB text, against an ordinary message (issue 11.14).

    python bench/text_bench.py

Each function reads at most MAX_TEXT_CHARS characters, so a 1 MB text costs about what a 100 KB one does.
Prints, for each function, the time per call on a 1 KB message (the baseline), on 1 MB of "a.b a.b …",
and on 1 MB of distinct "a1.com a2.com …" tokens, with the ratio to the baseline; then one JSON line.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vigil.signals.text import extract_domains, extract_hosts, extract_urls, normalize, without_links


def per_call(function: Callable[[str], object], text: str, seconds: float = 0.5) -> float:
    """Best of five timings of as many calls as fit in `seconds`, in milliseconds per call."""
    function(text)  # warm caches, as a long-running engine has them
    best = float("inf")
    for _ in range(5):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 5:
            function(text)
            calls += 1
        best = min(best, elapsed / calls)
    return best * 1000


def main() -> None:
    message = ("Hey, check https://shop.example.com/deal and mail me at a@b.co.uk - only $24.99 for 48 hours! "
               * 11)[:1024]
    repeated = "a.b " * 250_000
    distinct = " ".join(f"a{i}.com" for i in range(120_000))[:1_000_000]
    functions = {"normalized": normalize, "urls": extract_urls, "domains": extract_domains,
                 "hosts": extract_hosts, "without_links": without_links}
    figures: dict[str, dict[str, float]] = {}
    print(f"{'function':<14}{'1 KB ms':>10}{'a.b ×1MB ms':>14}{'ratio':>8}{'distinct 1MB ms':>17}{'ratio':>8}")
    for name, function in functions.items():
        base = per_call(function, message)
        hostile = per_call(function, repeated)
        varied = per_call(function, distinct)
        figures[name] = {"base_ms": round(base, 4), "repeated_ms": round(hostile, 3), "distinct_ms": round(varied, 3),
                         "repeated_ratio": round(hostile / base, 1), "distinct_ratio": round(varied / base, 1)}
        print(f"{name:<14}{base:>10.4f}{hostile:>14.3f}{hostile / base:>8.0f}{varied:>17.3f}{varied / base:>8.0f}")
    print(json.dumps({"bench": "text", **figures}))


if __name__ == "__main__":
    main()
