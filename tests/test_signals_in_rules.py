"""Classifiers, policy models and hash banks used from rules, end to end: event in, verdict and
explanation out. Real parts: a trained local classifier, the built-in language model, a PDQ bank in
SQLite, and the policy client talking HTTP to a loopback fake of the chat-completions protocol."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from classifiers.fake_openai import FakeOpenAI, Reply
from classifiers.training_text import HAM, SPAM
from hashing.images import encode, photo

from vigil.classifiers.local import train
from vigil.classifiers.registry import ClassifierRegistry
from vigil.dsl.loader import load_ruleset
from vigil.effects import Decision
from vigil.engine import Engine
from vigil.events import parse_event
from vigil.signals.providers import Signals, build_signals
from vigil.stages import SlowStage


def _rules(text: str):  # type: ignore[no-untyped-def]
    return load_ruleset("r.vigil", files={"r.vigil": text})


def test_a_trained_classifier_scores_events_in_rules() -> None:
    spam = train("spam", SPAM + HAM, ["spam"] * len(SPAM) + ["ham"] * len(HAM), featurizer="tfidf-char",
                 positive_label="spam", cv_folds=3)
    rules = _rules('rule "Spammy" when event is "post" and classifier "spam" on event.text > 0.6 then review')
    engine = Engine(rules, signals=Signals(classifiers=ClassifierRegistry.of([spam])))
    caught = engine.process({"type": "post", "id": "1", "time": 0, "text": "cheap followers, click here"})
    fine = engine.process({"type": "post", "id": "2", "time": 0, "text": "see you at dinner tomorrow"})
    assert isinstance(caught, Decision) and isinstance(fine, Decision)
    assert caught.verdict == "review" and fine.verdict == "allow"
    score = caught.hits[0].features['classifier "spam" on event.text']
    assert 0.6 < score <= 1.0


def test_a_missing_classifier_is_unknown_and_the_event_still_gets_a_decision() -> None:
    rules = _rules('rule "Spammy" when event is "post" and not (classifier "nope" on event.text > 0.5) then flag')
    engine = Engine(rules, signals=Signals(classifiers=ClassifierRegistry.of([])))
    decision = engine.process({"type": "post", "id": "1", "time": 0, "text": "hello"})
    assert isinstance(decision, Decision) and decision.verdict == "allow"


def test_language_identification_is_a_builtin() -> None:
    rules = _rules('rule "German" when event is "post" and language(event.text) == "de" then flag')
    engine = Engine(rules, signals=build_signals(classifiers_dir="/nonexistent"))
    german = engine.process({"type": "post", "id": "1", "time": 0,
                             "text": "Ich habe heute keine Zeit, wir sehen uns morgen im Büro."})
    english = engine.process({"type": "post", "id": "2", "time": 0, "text": "I have no time today, see you tomorrow."})
    assert isinstance(german, Decision) and german.verdict == "flag"
    assert isinstance(english, Decision) and english.verdict == "allow"


@pytest.fixture
def bank_signals(tmp_path: Path) -> Signals:
    from vigil.hashing.banks import NewEntry
    from vigil.hashing.hashers import SignalType, pdq_bytes
    from vigil.hashing.media import MediaPolicy
    from vigil.hashing.service import HashMatcher
    from vigil.hashing.sqlite import SqliteBankStore

    store = SqliteBankStore(tmp_path / "banks.sqlite")
    store.create_bank("known-bad", SignalType.PDQ)
    known = pdq_bytes(encode(photo(1)))
    store.add_entries("known-bad", [NewEntry(known.hash, source="test-list", tags=("ncii",))])
    return Signals(matcher=HashMatcher(store), media_policy=MediaPolicy())


def test_an_image_matching_a_bank_is_blocked_with_the_match_explained(bank_signals: Signals) -> None:
    rules = _rules('rule "Known bad image" when event is "post" and event.image matches bank "known-bad" '
                   "within 31 then block")
    engine = Engine(rules, signals=bank_signals)
    recompressed = encode(photo(1).resize((300, 225)), "JPEG", quality=70)
    hit = engine.process({"type": "post", "id": "1", "time": 0, "image": base64.b64encode(recompressed).decode()})
    other = engine.process({"type": "post", "id": "2", "time": 0,
                            "image": base64.b64encode(encode(photo(2))).decode()})
    assert isinstance(hit, Decision) and isinstance(other, Decision)
    assert hit.verdict == "block" and other.verdict == "allow"
    (match,) = hit.hits[0].features['event.image matches bank "known-bad" within 31']
    assert match["tags"] == ["ncii"] and match["source"] == "test-list" and 0 <= match["distance"] <= 31


def test_undecodable_media_is_unknown_not_a_crash(bank_signals: Signals) -> None:
    rules = _rules('rule "Known bad image" when event is "post" and event.image matches bank "known-bad" then block')
    engine = Engine(rules, signals=bank_signals)
    decision = engine.process({"type": "post", "id": "1", "time": 0, "image": base64.b64encode(b"not an image").decode()})
    assert isinstance(decision, Decision) and decision.verdict == "allow"


POLICY = """# Harassment

## Instructions
Answer 1 if the content violates this policy, else 0.

## Definitions
Harassment: insults aimed at a person.

## Violates
- Insults and threats aimed at a person.

## Safe
- Disagreement without insults.

## Examples
- "you idiot" → 1
"""

SLOW_RULES = """
entity user = event.actor.id
rule "Harassing message"
  when event is "message" and policy "harassment" finds event.text violating
  then block, label user "harasser" for 1 day
rule "Any message" when event is "message" then flag
"""


def _policy_engine(tmp_path: Path, fake: FakeOpenAI | None) -> Engine:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "harassment.md").write_text(POLICY)
    endpoint = fake.base_url if fake is not None else "http://127.0.0.1:9/v1"  # nothing listens on port 9
    signals = build_signals(classifiers_dir=str(tmp_path / "none"), policies_dir=str(tmp_path / "policies"),
                            endpoint=endpoint, timeout_s=2.0, retry_queue=str(tmp_path / "retry.sqlite"))
    return Engine(_rules(SLOW_RULES), signals=signals)


def test_slow_rules_run_in_a_second_stage_that_upgrades_the_verdict(tmp_path: Path) -> None:
    fake = FakeOpenAI().start()
    try:
        fake.script = lambda body: Reply(content="1" if "idiot" in str(body["messages"][-1]) else "0")
        engine = _policy_engine(tmp_path, fake)
        later: list[Decision] = []
        stage = SlowStage(engine, later.append)
        events = [{"type": "message", "id": "m1", "time": 0, "actor": {"id": "u1"}, "text": "you idiot"},
                  {"type": "message", "id": "m2", "time": 0, "actor": {"id": "u2"}, "text": "see you soon"}]
        for raw in events:
            first = engine.process(raw)
            assert isinstance(first, Decision)
            assert first.verdict == "flag" and first.pending  # the fast decision comes at once
            stage.submit(parse_event(raw), first)
        stage.drain()
    finally:
        fake.stop()
    by_id = {d.event_id: d for d in later}
    assert by_id["m1"].stage == 2 and by_id["m1"].verdict == "block"
    assert [h.rule for h in by_id["m1"].hits] == ["Harassing message"]
    assert by_id["m2"].verdict == "flag" and not by_id["m2"].hits
    assert engine.labels.has("user", "u1", "harasser", 1.0)
    assert len(fake.requests) == 2  # one request per distinct text


def test_an_endpoint_that_is_down_leaves_the_first_decision_and_queues_the_item(tmp_path: Path) -> None:
    engine = _policy_engine(tmp_path, None)
    later: list[Decision] = []
    raw = {"type": "message", "id": "m1", "time": 0, "actor": {"id": "u1"}, "text": "you idiot"}
    first = engine.process(raw)
    assert isinstance(first, Decision)
    SlowStage(engine, later.append).run_batch([(parse_event(raw), first)])
    assert later[0].verdict == "flag" and not later[0].hits
    from vigil.classifiers.retry_queue import RetryQueue

    assert len(RetryQueue(tmp_path / "retry.sqlite")) >= 1


def test_an_nsfw_score_is_a_builtin_signal() -> None:
    rules = _rules('rule "Racy image" when event is "post" and nsfw(event.image) > 0.8 then review\n'
                   'rule "Scored" when event is "post" and nsfw(event.image) >= 0 then flag')
    engine = Engine(rules, signals=Signals())
    scored = engine.process({"type": "post", "id": "1", "time": 0, "image": base64.b64encode(encode(photo(3))).decode()})
    broken = engine.process({"type": "post", "id": "2", "time": 0, "image": base64.b64encode(b"not an image").decode()})
    assert isinstance(scored, Decision) and isinstance(broken, Decision)
    score = scored.hits[0].features["nsfw(event.image)"]
    assert 0.0 <= score < 0.8 and scored.verdict == "flag"  # a synthetic texture is not NSFW
    assert broken.verdict == "allow"  # undecodable: unknown, no rule fires


def test_media_bombs_in_rules_are_unknown_and_decoded_in_processes_under_a_budget(tmp_path: Path) -> None:
    """`matches bank` and `nsfw()` decode in the decoder's processes: a 144 Mpx PNG is refused from its
    header, a video over the time budget is stopped, and either is unknown (no rule fires), not a crash."""
    from hashing.bombs import png_bomb, video

    from vigil.hashing.banks import NewEntry
    from vigil.hashing.decoder import MediaDecoder
    from vigil.hashing.hashers import SignalType
    from vigil.hashing.limits import MediaLimits
    from vigil.hashing.media import MediaPolicy
    from vigil.hashing.service import HashMatcher
    from vigil.hashing.sqlite import SqliteBankStore

    store = SqliteBankStore(tmp_path / "banks.sqlite")
    store.create_bank("known-bad", SignalType.PDQ)
    store.add_entries("known-bad", [NewEntry("0" * 64)])
    rules = _rules('rule "Known" when event is "post" and event.image matches bank "known-bad" within 256 then block\n'
                   'rule "Scored" when event is "post" and nsfw(event.image) >= 0 then flag')
    with MediaDecoder(MediaLimits(decoders=1, decode_seconds=0.05)) as decoder:
        signals = Signals(matcher=HashMatcher(store, decoder=decoder), media_policy=MediaPolicy(), decoder=decoder)
        engine = Engine(rules, signals=signals)
        for index, media in enumerate([png_bomb(12000, 12000), video((640, 480), 300, fps=25)]):
            decision = engine.process({"type": "post", "id": str(index), "time": 0,
                                       "image": base64.b64encode(media).decode()})
            assert isinstance(decision, Decision) and decision.verdict == "allow" and not decision.hits
    store.close()
