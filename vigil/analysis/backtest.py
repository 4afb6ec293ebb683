"""Backtests: a candidate rules set replayed over stored events, compared with the decisions the record holds.

The candidate runs in a fresh engine with its state in memory (vigil.runtime.build_engine without a
store). Events are replayed in time order; those of the longest counter window before the start warm
its counters and labels first and are not compared, so a window that reaches back before the start
counts what the live engine counted. Only the first stage is replayed: the candidate's rules that need a
policy model or a slow function are listed as not replayed and left out of the comparison, as are the
events whose JSON the record does not hold.

What is compared, per event: the rules that fired (live or shadow, as the record lists them) and the
final verdict. Where ground truth is known for an event (a field of the event, reviewers' decisions in
the record: vigil.analysis.truth), precision and recall of both sides are reported. Labels set before the warm-up are not known to the candidate, and
fields the record redacted reach it redacted, as the log holds them.
"""

from __future__ import annotations

import time as wall
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vigil.analysis.truth import DEFAULT_TRUTH_FIELD, FieldTruth, GroundTruth, ReviewTruth
from vigil.dsl import ast
from vigil.dsl.check import children
from vigil.dsl.loader import RuleSet
from vigil.dsl.runtime import FieldTypeError
from vigil.dsl.unparse import unparse
from vigil.effects import VERDICT_RANK, VERDICTS, Decision
from vigil.engine import Engine
from vigil.events import Event
from vigil.record.base import Query, Record, StoredEvent
from vigil.runtime import build_engine

__all__ = ["DEFAULT_TRUTH_FIELD", "BacktestError", "BacktestReport", "FieldTruth", "GroundTruth", "ReviewTruth",
           "backtest", "longest_window", "rule_fingerprints"]

DAY = 86400.0
EXAMPLES = 5  # events shown for each kind of change
READ_BATCH = 2000
FAST_READ_BATCH = 5000  # stored events one read of the fast path asks for


class BacktestError(Exception):
    """A backtest that cannot run as asked: no stored events in the range, say."""


@dataclass(slots=True)
class Scores:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, predicted: bool, truth: bool) -> None:
        if predicted and truth:
            self.tp += 1
        elif predicted:
            self.fp += 1
        elif truth:
            self.fn += 1
        else:
            self.tn += 1

    def to_json(self) -> dict[str, Any]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else None
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else None
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn, "precision": precision,
                "recall": recall}


@dataclass(slots=True)
class RuleChange:
    rule: str
    current_hits: int = 0
    candidate_hits: int = 0
    gained: int = 0
    lost: int = 0
    gained_examples: list[dict[str, Any]] = field(default_factory=list)
    lost_examples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "current_hits": self.current_hits, "candidate_hits": self.candidate_hits,
                "gained": self.gained, "lost": self.lost,
                "examples": {"gained": self.gained_examples, "lost": self.lost_examples}}


@dataclass(slots=True)
class BacktestReport:
    since: float
    until: float
    warmup_from: float
    candidate_version: str
    current_version: str | None  # the current rules set compared by definition, where known
    rules_added: list[str] = field(default_factory=list)
    rules_removed: list[str] = field(default_factory=list)
    rules_changed: list[str] = field(default_factory=list)
    rules_unchanged: list[str] = field(default_factory=list)
    not_replayed: list[str] = field(default_factory=list)  # the candidate's second-stage rules
    replayed: int = 0
    warmup: int = 0
    without_event: int = 0  # stored without the event's JSON: not replayable
    dead_letters: int = 0  # the candidate could not decide them (a field of the wrong type)
    logged_versions: Counter[str] = field(default_factory=Counter)
    per_rule: dict[str, RuleChange] = field(default_factory=dict)
    matrix: dict[str, Counter[str]] = field(default_factory=lambda: {v: Counter() for v in VERDICTS})
    verdict_examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    truth: str | None = None
    positive_verdict: str = "flag"
    with_truth: int = 0
    current_scores: Scores = field(default_factory=Scores)
    candidate_scores: Scores = field(default_factory=Scores)
    reviews: str | None = None  # reviewers' decisions as ground truth (vigil.analysis.truth.ReviewTruth)
    with_reviews: int = 0
    review_current: Scores = field(default_factory=Scores)
    review_candidate: Scores = field(default_factory=Scores)
    seconds: float = 0.0

    @property
    def verdicts_changed(self) -> int:
        return sum(n for a, row in self.matrix.items() for b, n in row.items() if a != b)

    def rule(self, name: str) -> RuleChange:
        change = self.per_rule.get(name)
        if change is None:
            change = self.per_rule[name] = RuleChange(name)
        return change

    def to_json(self) -> dict[str, Any]:
        rate = self.replayed / self.seconds if self.seconds > 0 else None
        changed = sorted((c for c in self.per_rule.values() if c.gained or c.lost),
                         key=lambda c: (-(c.gained + c.lost), c.rule))
        return {
            "window": {"since": self.since, "until": self.until, "warmup_from": self.warmup_from},
            "candidate": {"version": self.candidate_version},
            "current": {"version": self.current_version, "logged_versions": dict(self.logged_versions)},
            "rules": {"added": self.rules_added, "removed": self.rules_removed, "changed": self.rules_changed,
                      "unchanged": self.rules_unchanged, "not_replayed": self.not_replayed},
            "events": {"replayed": self.replayed, "warmup": self.warmup, "without_event": self.without_event,
                       "dead_letters": self.dead_letters},
            "per_rule": [c.to_json() for c in changed],
            "rule_hits": [c.to_json() | {"examples": None} for c in sorted(self.per_rule.values(),
                                                                          key=lambda c: c.rule)],
            "verdicts": {"matrix": {a: {b: row.get(b, 0) for b in VERDICTS} for a, row in self.matrix.items()},
                         "changed": self.verdicts_changed, "examples": self.verdict_examples},
            "truth": None if self.truth is None else {
                "source": self.truth, "events": self.with_truth, "positive_verdict": self.positive_verdict,
                "current": self.current_scores.to_json(), "candidate": self.candidate_scores.to_json()},
            "reviews": None if self.reviews is None else {
                "source": self.reviews, "events": self.with_reviews, "positive_verdict": self.positive_verdict,
                "current": self.review_current.to_json(), "candidate": self.review_candidate.to_json()},
            "throughput": {"seconds": self.seconds, "events_per_second": rate},
        }


# ---- what changed between two rules sets ----

def rule_fingerprints(ruleset: RuleSet) -> dict[str, str]:
    """Each rule's meaning as text: its condition and actions, with every definition, list and entity it
    uses, so a rule whose definition changed counts as changed although its own text did not."""
    p = ruleset.program
    out: dict[str, str] = {}
    for rule in p.rules:
        parts = [unparse(rule.condition), repr(rule.actions), rule.severity, rule.mode, str(rule.rollout_percent),
                 str(rule.rollout_entity)]
        seen: set[str] = set()
        stack: list[ast.Expr] = [rule.condition]
        stack += [v for a in rule.actions if isinstance(a, ast.OutputAction) for _n, v in a.params]
        while stack:
            e = stack.pop()
            if isinstance(e, ast.NameRef) and e.name in p.defines and e.name not in seen:
                seen.add(e.name)
                parts.append(f"define {e.name} = {unparse(p.defines[e.name].expr)}")
                stack.append(p.defines[e.name].expr)
            if isinstance(e, (ast.In, ast.ContainsAny)) and isinstance(e.collection, ast.ListRef):
                parts.append(f"list {e.collection.name} = {ruleset.list_items.get(e.collection.name)!r}")
            for entity in _entities_of(e):
                if entity in p.entities:
                    parts.append(f"entity {entity} = {[f.dotted for f in p.entities[entity].fields]}")
            stack.extend(children(e))
        out[rule.name] = "\n".join(parts)
    return out


def _entities_of(e: ast.Expr) -> tuple[str, ...]:
    if isinstance(e, (ast.HasLabel, ast.Counter)):
        return (e.entity,)
    return ()


def longest_window(ruleset: RuleSet) -> float:
    """How far back the candidate's counters look: the warm-up before the start (`today`: a day)."""
    return max((spec.window if spec.window is not None else DAY for spec in ruleset.compiled.counters),
               default=0.0)


# ---- the replay ----

Progress = Callable[[float, int], None]  # (share of the range done, 0 to 1; events replayed)


def _batches(record: Record, since: float, until: float, sources: tuple[str, ...] | None, *, replay_only: bool,
             size: int) -> Iterator[list[StoredEvent]]:
    cursor: str | None = None
    while True:
        batch = list(record.scan(Query(since=since, until=until, sources=sources, newest_first=False,
                                       limit=size, after=cursor, replay_only=replay_only)))
        yield batch
        if len(batch) < size:
            return
        cursor = batch[-1].cursor


def _ordered(record: Record, since: float, until: float, sources: tuple[str, ...] | None,
             fast: bool) -> Iterator[StoredEvent]:
    """The stored events of the range in time order. `fast`: only what the replay compares (no stored
    decisions, no entity keys), in large batches. (A reader thread one batch ahead was measured and
    dropped: decoding holds the GIL, so it cost as much CPU as it saved and no wall time.)"""
    size = FAST_READ_BATCH if fast else READ_BATCH
    for batch in _batches(record, since, until, sources, replay_only=fast, size=size):
        yield from batch


def _example(stored: StoredEvent, current: str, candidate: Decision, features: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    out: dict[str, Any] = {"source": stored.source, "event_id": stored.event_id, "time": stored.time,
                           "type": stored.type, "current": current, "candidate": candidate.verdict}
    if features is not None:
        out["features"] = features
    return out


def _logged_examples(record: Record, report: BacktestReport) -> None:
    """The feature values the logged decision shows for each lost hit shown as an example: one read of the
    few stored events concerned, decisions decoded."""
    shown = [(change.rule, example) for change in report.per_rule.values() for example in change.lost_examples]
    wanted = sorted({example["_cursor"] for _rule, example in shown})
    whole = {stored.cursor: stored for stored in record.at(wanted)} if wanted else {}
    for rule, example in shown:
        stored = whole.get(example.pop("_cursor"))
        example["features"] = _logged_features(stored, rule) if stored is not None else {}


def _logged_features(stored: StoredEvent, rule: str) -> dict[str, Any]:
    for decision in stored.decisions:
        for hit in decision.get("explanation", ()) if isinstance(decision, dict) else ():
            if isinstance(hit, dict) and hit.get("rule") == rule:
                features = hit.get("features")
                return features if isinstance(features, dict) else {}
    return {}


def backtest(record: Record, candidate: RuleSet, *, since: float, until: float,
             current: RuleSet | None = None, truth: GroundTruth | None = None, positive_verdict: str = "flag",
             sources: tuple[str, ...] | None = None, examples: int = EXAMPLES,
             engine: Callable[[RuleSet], Engine] = build_engine, progress: Progress | None = None,
             max_events: int | None = None, fast: bool = True, reviews: bool = True) -> BacktestReport:
    """Replay the stored events of [since, until) through `candidate` and compare with the record.
    `current`: the rules set the record's decisions came from, to name rules added, changed and removed
    (without it, the rules the record saw fire stand for it). `max_events`: the most events (warm-up
    included) it may replay before it stops. `reviews`: score both sides against reviewers'
    decisions too, where the record holds any (vigil.analysis.truth.ReviewTruth). `fast=False` reads every
    stored event whole (decisions decoded): the reference the fast path's report must equal (tests compare
    them).
    Raises BacktestError on an empty range or past max_events."""
    if positive_verdict not in VERDICT_RANK:
        raise BacktestError(f"unknown verdict {positive_verdict!r}: use one of {', '.join(VERDICTS)}")
    if until <= since:
        raise BacktestError("the range is empty: --until must come after --since")
    warmup_from = since - longest_window(candidate)
    report = BacktestReport(since, until, warmup_from, candidate.version, current.version if current else None,
                            truth=truth.description if truth is not None else None,
                            positive_verdict=positive_verdict)
    stage2 = {info.name for info in candidate.compiled.rules if info.stage == 2}
    report.not_replayed = sorted(stage2)
    candidate_names = {r.name for r in candidate.program.rules}
    threshold = VERDICT_RANK[positive_verdict]
    reviewed = ReviewTruth.from_record(record, since, until, sources) if reviews else None
    if reviewed is not None and reviewed.subjects:
        report.reviews = reviewed.description
    else:
        reviewed = None
    replay = engine(candidate)
    started = wall.perf_counter()
    seen_rules: set[str] = set()
    try:
        for read, stored in enumerate(_ordered(record, warmup_from, until, sources, fast), 1):
            if max_events is not None and read > max_events:
                raise BacktestError(f"the range holds more than {max_events:,} stored events (warm-up included): "
                                    "backtest a shorter range, or with `vigil backtest`, which has no such limit")
            if stored.event is None:
                report.without_event += stored.time >= since
                continue
            event = Event(stored.type, stored.event_id, stored.time, stored.event, stored.source)
            try:
                decision = replay.decide(event)
            except FieldTypeError:
                report.dead_letters += stored.time >= since
                continue
            if stored.time < since:
                report.warmup += 1
                continue
            report.replayed += 1
            report.logged_versions[stored.ruleset] += 1
            _compare(report, stored, decision, stage2, examples, seen_rules)
            if truth is not None:
                known = truth(stored)
                if known is not None:
                    report.with_truth += 1
                    report.current_scores.add(VERDICT_RANK.get(stored.verdict, 0) >= threshold, known)
                    report.candidate_scores.add(VERDICT_RANK[decision.verdict] >= threshold, known)
            if reviewed is not None:
                known = reviewed(stored)
                if known is not None:
                    report.with_reviews += 1
                    report.review_current.add(VERDICT_RANK.get(stored.verdict, 0) >= threshold, known)
                    report.review_candidate.add(VERDICT_RANK[decision.verdict] >= threshold, known)
            if progress is not None and report.replayed % 5000 == 0:
                progress(min(1.0, (stored.time - since) / (until - since)), report.replayed)
    finally:
        replay.close()
    _logged_examples(record, report)
    report.seconds = wall.perf_counter() - started
    if report.replayed == 0 and report.without_event == 0 and report.dead_letters == 0:
        raise BacktestError(f"the record holds no events between {_iso(since)} and {_iso(until)}: nothing to "
                            "replay; widen --since/--until, or check that the record is on (docs/record.md)")
    _rules_diff(report, candidate, current, candidate_names, seen_rules)
    if progress is not None:
        progress(1.0, report.replayed)
    return report


def _compare(report: BacktestReport, stored: StoredEvent, decision: Decision, stage2: set[str], examples: int,
             seen_rules: set[str]) -> None:
    if not stored.rules and not decision.hits and stored.verdict == decision.verdict:
        report.matrix[decision.verdict][decision.verdict] += 1  # most events: no rule fired on either side
        return
    before = set(stored.rules) - stage2
    seen_rules.update(stored.rules)
    fired = {hit.rule: hit for hit in decision.hits}
    after = set(fired)
    for name in before | after:
        change = report.rule(name)
        if name in before:
            change.current_hits += 1
        if name in after:
            change.candidate_hits += 1
        if name in after and name not in before:
            change.gained += 1
            if len(change.gained_examples) < examples:
                change.gained_examples.append(_example(stored, stored.verdict, decision, fired[name].features))
        elif name in before and name not in after:
            change.lost += 1
            if len(change.lost_examples) < examples:
                # The logged features are filled in at the end (_logged_examples) from the stored decision,
                # which the fast path does not read for every event.
                change.lost_examples.append(_example(stored, stored.verdict, decision, {}) | {"_cursor": stored.cursor})
    current = stored.verdict if stored.verdict in report.matrix else "allow"
    report.matrix[current][decision.verdict] += 1
    if current != decision.verdict:
        shown = report.verdict_examples.setdefault(f"{current}→{decision.verdict}", [])
        if len(shown) < examples:
            shown.append(_example(stored, current, decision) | {"rules": sorted(after), "logged_rules": sorted(before)})


def _rules_diff(report: BacktestReport, candidate: RuleSet, current: RuleSet | None, candidate_names: set[str],
                seen_rules: set[str]) -> None:
    if current is not None:
        now, then = rule_fingerprints(candidate), rule_fingerprints(current)
        report.rules_added = sorted(set(now) - set(then))
        report.rules_removed = sorted(set(then) - set(now))
        both = set(now) & set(then)
        report.rules_changed = sorted(n for n in both if now[n] != then[n])
        report.rules_unchanged = sorted(n for n in both if now[n] == then[n])
        return
    # Without the current rules set, the rules the record saw fire stand for it: a rule that never fired
    # cannot be told from one that does not exist, and a change of definition cannot be seen.
    report.rules_added = sorted(candidate_names - seen_rules)
    report.rules_removed = sorted(seen_rules - candidate_names)


def _iso(seconds: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
