"""Ground truth for backtests: reviewers' decisions in the record (review.decision events) label the events
of the subjects they decided, and a backtest scores current and candidate side by side against them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.stored import record_traffic
from vigil.analysis.backtest import backtest
from vigil.analysis.report import render_html, text_summary
from vigil.analysis.truth import ReviewTruth, verdict_of
from vigil.dsl.loader import load_ruleset

COMMON = "entity user = event.actor.id\n"
CURRENT = COMMON + 'rule "Shouting" when event is "post" and event.text contains "!!!" then flag\n'
CANDIDATE = COMMON + 'rule "Selling" when event is "post" and event.text contains "buy" then flag\n'


def post(n: int, user: str, text: str) -> dict[str, Any]:
    return {"type": "post", "id": f"p{n}", "time": float(n), "actor": {"id": user}, "text": text}


def decided(n: int, user: str, effects: list[str]) -> dict[str, Any]:
    """A review decision as vigil.review.core.ReviewService.decision_event makes it."""
    return {"type": "review.decision", "id": f"dec{n}", "time": float(n), "decision": f"dec{n}", "item": "i",
            "queue": "spam", "action": "x", "reviewer": "ann", "subject": {"entity": "user", "key": user},
            "actor": {"id": user, "type": "user"}, "user": user, "effects": effects}


def test_reviewers_decisions_score_both_sides(tmp_path: Path) -> None:
    current = load_ruleset("r.vigil", files={"r.vigil": CURRENT})
    candidate = load_ruleset("r.vigil", files={"r.vigil": CANDIDATE})
    traffic = [post(1, "u1", "buy now!!!"), post(2, "u1", "buy now"), post(3, "u2", "hello!!!"), post(4, "u2", "hi"),
               post(5, "u3", "what!!!"), post(6, "u4", "buy!!!"),
               decided(10, "u1", ["label"]), decided(11, "u2", []), decided(12, "u3", ["escalate"]),
               decided(13, "u4", ["label"]), decided(14, "u4", ["unlabel"]),  # the latest decision stands
               post(20, "u1", "later!!!")]  # after the decision: not before the reviewer
    record = record_traffic(current, traffic, tmp_path / "record.sqlite")
    try:
        truth = ReviewTruth.from_record(record, 0.0, 30.0)
        assert (truth.decisions, truth.subjects) == (5, 3)
        by_id = {s.event_id: truth(s) for s in record.scan(_everything())}
        assert by_id == {"p1": True, "p2": True, "p3": False, "p4": False, "p5": None, "p6": False, "p20": None,
                         "dec10": None, "dec11": None, "dec12": None, "dec13": None, "dec14": None}
        report = backtest(record, candidate, since=0.0, until=30.0, current=current)
        doc = report.to_json()
        reviews = doc["reviews"]
        assert reviews["events"] == 5 and "reviewers' decisions" in reviews["source"]
        # current: p1 tp, p2 fn, p3 fp, p4 tn, p6 fp; candidate: p1 tp, p2 tp, p3 tn, p4 tn, p6 fp
        assert (reviews["current"]["tp"], reviews["current"]["fp"], reviews["current"]["fn"]) == (1, 2, 1)
        assert (reviews["candidate"]["tp"], reviews["candidate"]["fp"], reviews["candidate"]["fn"]) == (2, 1, 0)
        assert reviews["current"]["recall"] == 0.5 and reviews["candidate"]["recall"] == 1.0
        assert "reviewers' decisions" in text_summary(doc) and "precision 33.3% → 66.7%" in text_summary(doc)
        assert "reviewers&#x27; decisions" in render_html(doc)
        assert backtest(record, candidate, since=0.0, until=30.0, reviews=False).to_json()["reviews"] is None
    finally:
        record.close()


def test_what_each_kind_of_decision_says() -> None:
    assert verdict_of({"effects": ["label"]}) is True and verdict_of({"effects": ["output"]}) is True
    assert verdict_of({"effects": ["unlabel"]}) is False and verdict_of({"effects": []}) is False
    assert verdict_of({"effects": ["escalate"]}) is None


def _everything() -> Any:
    from vigil.record.base import Query

    return Query(limit=100)
