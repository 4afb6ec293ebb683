"""`vigil run --workers N`: one rules set decided by N processes, each running a share of the rules.

Events cannot be split between processes (a user's counters and an IP's counters would end up in
different places), so every process reads every event and runs its own share of the *rules*. Rules are
shared out so that a label is only ever written and read within one process: rules linked through a
label stay together, and each process's counters and labels are complete for its rules. A parent process
merges the partial decisions line by line (strongest verdict, all hits and effects).

Each process keeps its own state: with --db PATH, process i uses PATH.part<i> (counters that several
shares use are kept once per share). A known difference from one process: an event whose field has the
wrong type for one share's rules is dead-lettered, but the other shares may already have counted it.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import orjson

from vigil.dsl import ast
from vigil.dsl.check import children
from vigil.dsl.loader import RuleSet
from vigil.effects import VERDICTS, Decision

_NO_HITS = b"\n"


def _label_keys(rule: ast.Rule, defines: dict[str, ast.Define]) -> set[tuple[str, str]]:
    """The (entity, label) pairs a rule reads or writes."""
    keys = {(a.entity, a.label) for a in rule.actions if isinstance(a, (ast.LabelAction, ast.UnlabelAction))}
    stack: list[ast.Expr] = [rule.condition]
    seen: set[str] = set()
    while stack:
        e = stack.pop()
        if isinstance(e, ast.HasLabel):
            keys.add((e.entity, e.label))
        if isinstance(e, ast.NameRef) and e.name in defines and e.name not in seen:
            seen.add(e.name)
            stack.append(defines[e.name].expr)
        stack.extend(children(e))
    return keys


def partition(ruleset: RuleSet, n: int) -> list[list[int]]:
    """Rule indexes per share: rules linked by a label together, shares balanced by rule count."""
    rules = ruleset.program.rules
    parent = list(range(len(rules)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[tuple[str, str], int] = {}
    for i, rule in enumerate(rules):
        for key in _label_keys(rule, ruleset.program.defines):
            if key in owner:
                parent[find(i)] = find(owner[key])
            else:
                owner[key] = i
    groups: dict[int, list[int]] = {}
    for i in range(len(rules)):
        groups.setdefault(find(i), []).append(i)
    shares: list[list[int]] = [[] for _ in range(n)]
    for group in sorted(groups.values(), key=len, reverse=True):
        min(shares, key=len).extend(group)
    return [sorted(share) for share in shares if share]


@dataclass(frozen=True, slots=True)
class ShareResult:
    events: int
    dead_letters: int
    rule_hits: dict[str, int]
    shadow_hits: dict[str, int]


def _run_share(ruleset: RuleSet, events_path: str, db: str | None, out: Any, first: bool) -> ShareResult:
    """One process: decide every event with this share's rules, one line per event on `out`.

    The first share writes every decision, with its verdict's rank as the first byte; the others write an
    empty line where none of their rules fired."""
    from vigil.engine import Engine
    from vigil.stores.sqlite import open_store

    engine = Engine(ruleset, open_store(db) if db else None)
    rank = {v: str(i).encode() for i, v in enumerate(VERDICTS)}
    write = out.write
    with open(events_path, "rb") as events:
        for line in events:
            if not line.strip():
                continue
            result = engine.process(line, source=events_path)
            if not isinstance(result, Decision):
                write(b"!" + orjson.dumps(result.reason) + b"\n")
            elif first or result.hits:
                write(rank[result.verdict] + orjson.dumps(result.to_json()) + b"\n")
            else:
                write(_NO_HITS)
    out.close()
    engine.close()
    return ShareResult(engine.stats.events, engine.stats.dead_letters, engine.stats.rule_hits,
                       engine.stats.shadow_hits)


def _child(ruleset: RuleSet, indexes: list[int], events_path: str, db: str | None, fd: int, first: bool,
           results: Any) -> None:
    with os.fdopen(fd, "wb", buffering=1 << 20) as out:
        results.put(_run_share(ruleset.subset(indexes), events_path, db, out, first))


def _merge(lines: list[bytes]) -> tuple[int, bytes | None]:
    """The merged decision of one event from each share's line: (verdict rank, JSON) or (-1, None) for a
    dead letter."""
    if any(line.startswith(b"!") for line in lines):
        return -1, None
    base, extra = lines[0], [line for line in lines[1:] if line != _NO_HITS]
    if not extra:
        return int(base[:1]), base[1:]
    merged = orjson.loads(base[1:])
    rank = int(base[:1])
    for line in extra:
        part = orjson.loads(line[1:])
        rank = max(rank, int(line[:1]))
        for key in ("effects", "rules", "shadow_rules", "explanation"):
            merged[key] += part[key]
        merged["pending"] = merged["pending"] or part["pending"]
    merged["verdict"] = VERDICTS[rank]
    return rank, orjson.dumps(merged) + b"\n"


def run_parallel(ruleset: RuleSet, events_path: str, out: IO[bytes], workers: int, db: str | None = None,
                 write_all: bool = True) -> dict[str, Any]:
    """Decide `events_path` with `workers` processes; write merged decisions to `out`; return a summary."""
    if ruleset.compiled.has_slow_rules:
        raise ValueError("rules that use a policy model run in a second stage; use one worker (--workers 1)")
    shares = partition(ruleset, workers)
    context = multiprocessing.get_context("fork")  # the compiled rules are inherited, not pickled
    results = context.Queue()
    readers: list[IO[bytes]] = []
    processes = []
    for i, indexes in enumerate(shares):
        read_fd, write_fd = os.pipe()
        share_db = f"{db}.part{i}" if db else None
        process = context.Process(target=_child, args=(ruleset, indexes, events_path, share_db, write_fd, i == 0,
                                                       results), daemon=True)
        process.start()
        os.close(write_fd)
        readers.append(os.fdopen(read_fd, "rb", buffering=1 << 20))
        processes.append(process)
    verdicts = dict.fromkeys(VERDICTS, 0)
    try:
        for lines in _zip_lines(readers):
            rank, decision = _merge(lines)
            if decision is None:
                continue
            verdicts[VERDICTS[rank]] += 1
            if write_all or b'"explanation":[]' not in decision:
                out.write(decision)
    finally:
        for reader in readers:
            reader.close()
    finished = [results.get() for _ in processes]
    for process in processes:
        process.join()
    rule_hits: dict[str, int] = {}
    shadow_hits: dict[str, int] = {}
    for r in finished:
        rule_hits.update(r.rule_hits)
        shadow_hits.update(r.shadow_hits)
    return {"shares": [len(s) for s in shares], "events": finished[0].events if finished else 0,
            "dead_letters": max((r.dead_letters for r in finished), default=0), "verdicts": verdicts,
            "rule_hits": rule_hits, "shadow_hits": shadow_hits}


def _zip_lines(readers: list[IO[bytes]]) -> Iterator[list[bytes]]:
    while True:
        lines = [reader.readline() for reader in readers]
        if not lines[0]:
            return
        yield lines
