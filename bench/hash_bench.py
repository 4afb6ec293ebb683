"""Benchmark for hash matching: exact Hamming search over PDQ banks, and PDQ image hashing throughput.

For each bank size (100k, 1M and 10M random 256-bit hashes; `--quick`: 100k and 1M) it reports the
build time, memory per hash, query latency (p50/p99) of the multi-index-hashing index at radius 31,
recall on planted near-duplicates at every distance 0-31 (must be 100%), the same queries against a
brute-force numpy scan (with a check that both return identical results) and the speedup, and the cost
of incremental adds. Then it times PDQ hashing of JPEG images. It prints a table and, last, one JSON line.

    .venv/bin/python bench/hash_bench.py --quick     # < 2 minutes
    .venv/bin/python bench/hash_bench.py             # adds 10M (a few minutes, ~2 GB RAM)
    .venv/bin/python bench/hash_bench.py --faiss     # also faiss IndexBinaryMultiHash (<= 1M)
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vigil.hashing.hashers import pdq_bytes
from vigil.hashing.index import MultiIndexHashIndex

RADIUS = 31


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 1e6


def _flip(rng: np.random.Generator, row: NDArray[np.uint8], distance: int) -> NDArray[np.uint8]:
    bits = np.unpackbits(row)
    bits[rng.choice(256, distance, replace=False)] ^= 1
    return np.packbits(bits)


def _brute(words: NDArray[np.uint64], query: NDArray[np.uint8], radius: int) -> NDArray[np.intp]:
    """Plain numpy brute force: XOR + popcount over the whole bank (chunked to bound temporaries)."""
    q = query.view(np.uint64)
    hits = []
    chunk = 1 << 18
    for start in range(0, words.shape[0], chunk):
        d = np.bitwise_count(words[start : start + chunk] ^ q).sum(axis=1)
        hits.append(np.flatnonzero(d <= radius) + start)
    return np.concatenate(hits)


def _pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.array(samples) * 1e3, q))


def _clustered(rng: np.random.Generator, n: int) -> NDArray[np.uint8]:
    """Hashes around n/1000 centres with 15% of bits flipped: real PDQ banks cluster (near-identical
    media, shared templates), which fills some buckets far above average."""
    centres = rng.integers(0, 256, (max(1, n // 1000), 32), dtype=np.uint8)
    out = np.empty((n, 32), dtype=np.uint8)
    for start in range(0, n, 1 << 20):
        stop = min(n, start + (1 << 20))
        noise = np.packbits(rng.random((stop - start, 256), dtype=np.float32) < 0.15, axis=1)
        out[start:stop] = centres[rng.integers(0, centres.shape[0], stop - start)] ^ noise
    return out


def bench_size(
    n: int, *, per_distance: int, random_queries: int, brute_queries: int, seed: int, clustered: bool
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    hashes = _clustered(rng, n) if clustered else rng.integers(0, 256, (n, 32), dtype=np.uint8)
    labels = np.arange(n, dtype=np.int64)

    rss_before = _rss_mb()
    start = time.perf_counter()
    index = MultiIndexHashIndex(32)
    index.add(labels, hashes)
    build_s = time.perf_counter() - start
    rss_growth = _rss_mb() - rss_before
    index_bytes = index.nbytes
    index.search(hashes[0], RADIUS)  # warm-up: builds the probe masks once

    # Planted near-duplicates at every distance 0..31, plus random (almost always unmatched) queries.
    planted = [(int(row), d) for d in range(RADIUS + 1) for row in rng.integers(0, n, per_distance)]
    queries = [(_flip(rng, hashes[row], d), row) for row, d in planted]
    queries += [(rng.integers(0, 256, 32, dtype=np.uint8), -1) for _ in range(random_queries)]
    order = rng.permutation(len(queries))
    latencies: list[float] = []
    found = 0
    for i in order:
        query, row = queries[i]
        t = time.perf_counter()
        result = index.search(query, RADIUS)
        latencies.append(time.perf_counter() - t)
        if row >= 0 and row in result.labels:
            found += 1
    recall = found / len(planted)

    # Brute force on a sample of the same queries; results must be identical.
    words = hashes.view(np.uint64)
    brute_times: list[float] = []
    mih_times: list[float] = []
    sample = rng.choice(len(queries), brute_queries, replace=False)
    for i in sample:
        query, _ = queries[i]
        t = time.perf_counter()
        expected = _brute(words, query, RADIUS)
        brute_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        got = index.search(query, RADIUS)
        mih_times.append(time.perf_counter() - t)
        if sorted(got.labels.tolist()) != sorted(expected.tolist()):
            raise SystemExit(f"MISMATCH at n={n}: index and brute force disagree")

    # Incremental adds: one hash at a time, each searchable immediately.
    new = rng.integers(0, 256, (5000, 32), dtype=np.uint8)
    add_times: list[float] = []
    for i in range(new.shape[0]):
        t = time.perf_counter()
        index.add(np.array([n + i]), new[i : i + 1])
        add_times.append(time.perf_counter() - t)
    if not all(n + i in index.search(new[i], 0).labels for i in (0, 999, 4999)):
        raise SystemExit("an incrementally added hash was not found")

    return {
        "n": n,
        "build_s": round(build_s, 2),
        "index_bytes_per_hash": round(index_bytes / n, 1),
        "index_mb": round(index_bytes / 1e6, 1),
        "rss_growth_mb": round(rss_growth, 1),
        "key_bits": index.key_bits,
        "substrings": index.substrings,
        "queries": len(latencies),
        "p50_ms": round(_pct(latencies, 50), 3),
        "p99_ms": round(_pct(latencies, 99), 3),
        "max_ms": round(_pct(latencies, 100), 3),
        "recall_planted": recall,
        "planted": len(planted),
        "brute_queries": len(brute_times),
        "brute_p50_ms": round(_pct(brute_times, 50), 2),
        "speedup_p50": round(_pct(brute_times, 50) / _pct(mih_times, 50), 1),
        "add_p50_ms": round(_pct(add_times, 50), 3),
        "add_p99_ms": round(_pct(add_times, 99), 3),
        "add_max_ms": round(_pct(add_times, 100), 1),
    }


def bench_faiss(n: int, seed: int) -> dict[str, Any]:
    """faiss IndexBinaryMultiHash configured to be exact at radius 31 (16 tables x 16 bits, 1 flip)."""
    import faiss

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 256, (n, 32), dtype=np.uint8)
    rss_before = _rss_mb()
    start = time.perf_counter()
    index = faiss.IndexBinaryMultiHash(256, 16, 16)
    index.nflip = 1
    index.add(hashes)
    build_s = time.perf_counter() - start
    rss_growth = _rss_mb() - rss_before
    latencies = []
    for d in range(RADIUS + 1):
        for row in rng.integers(0, n, 10):
            query = _flip(rng, hashes[row], d)[None]
            t = time.perf_counter()
            _, _, ids = index.range_search(query, RADIUS + 1)  # faiss' radius is exclusive
            latencies.append(time.perf_counter() - t)
            if row not in ids:
                raise SystemExit("faiss missed a planted near-duplicate")
    return {
        "n": n,
        "build_s": round(build_s, 2),
        "rss_growth_mb": round(rss_growth, 1),
        "p50_ms": round(_pct(latencies, 50), 3),
        "p99_ms": round(_pct(latencies, 99), 3),
    }


def _photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    canvas = np.zeros((h, w, 3))
    for octave, weight in ((4, 1.0), (8, 0.6), (16, 0.35), (48, 0.15)):
        small = (rng.random((octave * h // w + 1, octave, 3)) * 255).astype(np.uint8)
        canvas += weight * np.asarray(
            Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), dtype=float
        )
    image = Image.fromarray((canvas / canvas.max() * 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x, y = int(rng.integers(0, w - 60)), int(rng.integers(0, h - 60))
        draw.ellipse((x, y, x + 60, y + 40), fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
    return image.filter(ImageFilter.GaussianBlur(1.0))


def bench_images(count: int, size: tuple[int, int], seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    blobs = []
    for _ in range(count):
        buffer = io.BytesIO()
        _photo(rng, *size).save(buffer, format="JPEG", quality=85)
        blobs.append(buffer.getvalue())
    start = time.perf_counter()
    for blob in blobs:
        pdq_bytes(blob)
    elapsed = time.perf_counter() - start
    return {"size": f"{size[0]}x{size[1]}", "images": count, "images_per_s": round(count / elapsed, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100k and 1M only (< 2 minutes)")
    parser.add_argument("--sizes", type=int, nargs="*", help="bank sizes (overrides --quick)")
    parser.add_argument("--per-distance", type=int, default=20, help="planted queries per distance 0-31")
    parser.add_argument("--random-queries", type=int, default=360, help="unplanted random queries")
    parser.add_argument(
        "--faiss", action="store_true", help="also measure faiss IndexBinaryMultiHash (<= 1M)"
    )
    parser.add_argument("--clustered", action="store_true", help="clustered hashes instead of uniform")
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args()
    sizes = args.sizes or ([100_000, 1_000_000] if args.quick else [100_000, 1_000_000, 10_000_000])

    rows = []
    for n in sizes:
        brute_queries = 200 if n <= 100_000 else 50 if n <= 1_000_000 else 20
        row = bench_size(
            n,
            per_distance=args.per_distance,
            random_queries=args.random_queries,
            brute_queries=brute_queries,
            seed=args.seed + n,
            clustered=args.clustered,
        )
        rows.append(row)
        print(f"  done n={n:,}", file=sys.stderr, flush=True)
    faiss_rows = [bench_faiss(n, args.seed) for n in sizes if args.faiss and n <= 1_000_000]
    images = [bench_images(40, (640, 480), args.seed), bench_images(20, (1920, 1080), args.seed)]

    data = "clustered" if args.clustered else "uniform random"
    print(f"\nExact Hamming search, radius {RADIUS}, {data} 256-bit hashes, {platform.machine()}, 1 thread")
    header = (
        f"{'bank':>11} {'build s':>8} {'index MB':>9} {'B/hash':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
        f"{'recall':>7} {'brute p50':>10} {'speedup':>8} {'add p50':>8} {'add p99':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['n']:>11,} {r['build_s']:>8} {r['index_mb']:>9} {r['index_bytes_per_hash']:>7} {r['p50_ms']:>7} {r['p99_ms']:>7} "
            f"{r['max_ms']:>7} {r['recall_planted']:>7.0%} {r['brute_p50_ms']:>8} ms {r['speedup_p50']:>7}x "
            f"{r['add_p50_ms']:>8} {r['add_p99_ms']:>8}"
        )
    for f in faiss_rows:
        print(
            f"faiss IndexBinaryMultiHash n={f['n']:,}: build {f['build_s']} s, "
            f"+{f['rss_growth_mb']} MB RSS, p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms"
        )
    for im in images:
        print(f"PDQ hashing (JPEG decode + hash), {im['size']}: {im['images_per_s']} images/s")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MB (includes the benchmark's own copies of the data)")
    print(
        json.dumps(
            {
                "data": data,
                "matching": rows,
                "faiss": faiss_rows,
                "pdq_hashing": images,
                "peak_rss_mb": round(peak),
            }
        )
    )


if __name__ == "__main__":
    main()
