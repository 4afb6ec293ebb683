"""The policy-as-prompt client against a loopback fake of the chat-completions API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from vigil.classifiers.budget import TokenBudget
from vigil.classifiers.llm import Endpoint, PolicyClassifier, _retry_after, content_hash
from vigil.classifiers.policy import Policy
from vigil.classifiers.retry_queue import RetryQueue

from .fake_openai import FakeOpenAI, Reply

POLICY = Policy(
    "harassment", "# Harassment\n## Instructions\nAnswer 1 if the text harasses someone, else 0.\n"
)


def make(fake: FakeOpenAI, tmp_path: Path | None = None, **endpoint: Any) -> PolicyClassifier:
    queue = RetryQueue(tmp_path / "queue.sqlite") if tmp_path is not None else None
    options: dict[str, Any] = {"timeout_s": 5.0, **endpoint}
    budget = options.pop("budget", None)
    return PolicyClassifier(
        POLICY, Endpoint(fake.base_url, "safeguard", **options), budget=budget, retry_queue=queue
    )


def test_json_answer_is_parsed_and_request_is_well_formed(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = lambda body: Reply(
        content='{"violation": 1, "policy_category": "HR2", "rationale": "insults a person"}', tokens=77
    )
    classifier = make(fake_openai, api_key=SecretStr("sk-test"))
    [answer] = classifier.classify(["you are worthless"])
    assert (answer.status, answer.label, answer.flagged, answer.score) == ("ok", "violating", True, 1.0)
    assert (answer.category, answer.rationale, answer.tokens) == ("HR2", "insults a person", 77)
    assert answer.version == f"safeguard@{POLICY.version}"
    [request] = fake_openai.requests
    assert request["model"] == "safeguard"
    assert request["messages"] == [
        {"role": "system", "content": POLICY.text},
        {"role": "user", "content": "you are worthless"},
    ]
    assert fake_openai.headers[0]["authorization"] == "Bearer sk-test"


@pytest.mark.parametrize("answer_format", ["json_schema", "json_object"])
def test_a_constrained_answer_format_sends_the_answer_schema(fake_openai: FakeOpenAI, answer_format: str) -> None:
    fake_openai.script = lambda body: Reply(content='{"violation": 0, "policy_category": "", "rationale": "ok"}')
    [answer] = make(fake_openai, answer_format=answer_format).classify(["hello"])
    assert answer.label == "safe"
    sent = fake_openai.requests[0]["response_format"]
    schema = sent["json_schema"]["schema"] if answer_format == "json_schema" else sent["schema"]
    assert sent["type"] == answer_format and schema["required"] == ["violation", "policy_category", "rationale"]
    make(fake_openai).classify(["again"])  # the default asks for nothing
    assert "response_format" not in fake_openai.requests[-1]


def test_an_unknown_answer_format_is_refused() -> None:
    from vigil.classifiers.base import ClassifierError

    with pytest.raises(ClassifierError, match="answer_format must be one of free, json_schema, json_object"):
        Endpoint("http://127.0.0.1:1/v1", "m", answer_format="grammar")


def test_bare_zero_and_reasoning_rationale(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = lambda body: Reply(content="0", reasoning="Friendly greeting; no target.")
    [answer] = make(fake_openai).classify(["hello there"])
    assert (answer.label, answer.flagged, answer.score) == ("safe", False, 0.0)
    assert answer.rationale == "Friendly greeting; no target."


def test_streamed_sse_answer(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = lambda body: Reply(
        content='{"violation": true, "rationale": "threat"}', stream=True, tokens=9
    )
    [answer] = make(fake_openai, stream=True).classify(["I will find you"])
    assert (answer.flagged, answer.rationale, answer.tokens) == (True, "threat", 9)
    assert fake_openai.requests[0]["stream"] is True


def test_cache_hit_avoids_a_second_request(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = lambda body: Reply(content="1")
    classifier = make(fake_openai)
    first = classifier.classify(["same text"])
    second = classifier.classify(["same text"])
    assert len(fake_openai.requests) == 1
    assert first[0].flagged and second[0].flagged and second[0].cached and not first[0].cached


def test_identical_texts_in_a_batch_cost_one_request(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = lambda body: Reply(content="1")
    answers = make(fake_openai).classify(["spam!", "other", "spam!"])
    assert [a.flagged for a in answers] == [True, True, True]
    assert len(fake_openai.requests) == 2


def test_cache_is_keyed_by_policy_version(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = lambda body: Reply(content="1")
    endpoint = Endpoint(fake_openai.base_url, "safeguard")
    one = PolicyClassifier(POLICY, endpoint)
    edited = PolicyClassifier(Policy("harassment", POLICY.text + "\nBe strict.\n"), endpoint, cache=one.cache)
    one.classify(["text"])
    edited.classify(["text"])
    assert len(fake_openai.requests) == 2


def test_server_error_gives_unknown_then_retry_pass_answers(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script = lambda body: Reply(status=500)
    now = [1000.0]
    queue = RetryQueue(tmp_path / "queue.sqlite", clock=lambda: now[0])
    classifier = PolicyClassifier(
        POLICY, Endpoint(fake_openai.base_url, "safeguard", max_retries=0), retry_queue=queue
    )
    [answer] = classifier.classify(["maybe bad"])
    assert (answer.status, answer.flagged, answer.label, answer.score) == ("unknown", None, None, None)
    assert "HTTP 500" in answer.rationale
    assert classifier.retry_queue is not None and len(classifier.retry_queue) == 1
    # The endpoint recovers; the retry pass answers the queued text and empties the queue.
    fake_openai.script = lambda body: Reply(content="1")
    now[0] += 60
    [(digest, late)] = asyncio.run(classifier.retry_pending())
    assert digest == content_hash("maybe bad") and late.flagged is True
    assert len(classifier.retry_queue) == 0
    assert classifier.classify(["maybe bad"])[0].cached


def test_429_with_short_retry_after_is_retried(fake_openai: FakeOpenAI) -> None:
    replies = iter([Reply(status=429, headers={"Retry-After": "0"}), Reply(content="1")])
    fake_openai.script = lambda body: next(replies)
    [answer] = make(fake_openai).classify(["x"])
    assert answer.flagged is True and len(fake_openai.requests) == 2


def test_429_with_long_retry_after_queues_for_later(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script = lambda body: Reply(status=429, headers={"Retry-After": "120"})
    classifier = make(fake_openai, tmp_path)
    [answer] = asyncio.run(classifier.aclassify(["x"], deadline_s=2.0))
    assert answer.status == "unknown" and "429" in answer.rationale
    assert classifier.retry_queue is not None and len(classifier.retry_queue) == 1
    # Not due yet: the server asked for two minutes.
    assert classifier.retry_queue.due("harassment") == []


def test_timeout_gives_unknown_and_queues(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script = lambda body: Reply(content="1", delay_s=1.0)
    classifier = make(fake_openai, tmp_path, timeout_s=0.1)
    [answer] = classifier.classify(["slow"])
    # Under load the deadline may pass before the request is even sent: either way it bounds the call.
    assert answer.status == "unknown"
    assert "no answer within" in answer.rationale or "deadline passed" in answer.rationale
    assert classifier.retry_queue is not None and len(classifier.retry_queue) == 1


def test_short_deadline_answers_unknown_for_slow_items(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    # The slow reply comes long after the deadline and the fast one at once, with a deadline wide enough
    # for the fast one on a loaded machine: which item misses it must not depend on the load.
    fake_openai.script = lambda body: Reply(content="1", delay_s=4.0 if "slow" in str(body) else 0.0)
    classifier = make(fake_openai, tmp_path)
    fast, slow = asyncio.run(classifier.aclassify(["fast", "slow"], deadline_s=1.5))
    assert fast.status == "ok" and slow.status == "unknown"
    assert classifier.retry_queue is not None and len(classifier.retry_queue) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(content="I think this is probably fine"),
        Reply(content='{"rating": "bad"}'),
        Reply(body=b"<html>gateway</html>"),
        Reply(body=b'{"choices": []}'),
    ],
)
def test_malformed_answers_are_errors_not_guesses(
    fake_openai: FakeOpenAI, tmp_path: Path, reply: Reply
) -> None:
    fake_openai.script = lambda body: reply
    classifier = make(fake_openai, tmp_path)
    [answer] = classifier.classify(["text"])
    assert answer.status == "error" and answer.flagged is None and answer.score is None
    assert classifier.retry_queue is not None and len(classifier.retry_queue) == 1
    assert len(classifier.cache) == 0


def test_budget_exhaustion_yields_unknown_and_queues_without_a_request(
    fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.script = lambda body: Reply(content="0", tokens=600)
    classifier = make(fake_openai, tmp_path, budget=TokenBudget(1000), max_output_tokens=500)
    first, second = classifier.classify(["first text", "second text"])
    # Each request reserves ~530 tokens, so only one fits in a 1,000-token minute.
    assert sorted([first.status, second.status]) == ["ok", "unknown"]
    assert len(fake_openai.requests) == 1
    assert classifier.retry_queue is not None and len(classifier.retry_queue) == 1


def test_unreachable_endpoint_gives_unknown(tmp_path: Path) -> None:
    fake = FakeOpenAI()  # bound but never serving; closing it frees a port nobody listens on
    url = fake.base_url
    fake.server.server_close()
    classifier = PolicyClassifier(
        POLICY, Endpoint(url, "m", timeout_s=2.0), retry_queue=RetryQueue(tmp_path / "q.db")
    )
    [answer] = classifier.classify(["x"])
    assert answer.status == "unknown" and "unreachable" in answer.rationale


def test_concurrency_limit_is_respected(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = lambda body: Reply(content="0", delay_s=0.1)
    answers = make(fake_openai, max_concurrency=2).classify([f"text {i}" for i in range(6)])
    assert all(a.status == "ok" for a in answers)
    assert fake_openai.max_in_flight <= 2


def test_shared_client_and_blocking_call_from_inside_a_loop(fake_openai: FakeOpenAI) -> None:
    fake_openai.script = lambda body: Reply(content="1")

    async def main() -> None:
        async with httpx.AsyncClient() as client:
            classifier = PolicyClassifier(POLICY, Endpoint(fake_openai.base_url, "m"), client=client)
            [answer] = await classifier.aclassify(["x"])
            assert answer.flagged is True
            # Sync rules code called from an async handler: works, on a private loop and client.
            [blocking] = classifier.classify(["y"])
            assert blocking.flagged is True

    asyncio.run(main())
    assert len(fake_openai.requests) == 2


def test_endpoint_deadline_bounds_the_blocking_call(fake_openai: FakeOpenAI, tmp_path: Path) -> None:
    fake_openai.script = lambda body: Reply(content="1", delay_s=1.0)
    classifier = make(fake_openai, tmp_path, deadline_s=0.2)
    [answer] = classifier.classify(["slow"])
    # Under load the deadline may pass before the request is even sent: either way it bounds the call.
    assert answer.status == "unknown"
    assert "no answer within" in answer.rationale or "deadline passed" in answer.rationale
    assert classifier.retry_queue is not None and len(classifier.retry_queue) == 1


def test_retry_after_forms() -> None:
    assert _retry_after("7") == 7.0
    assert _retry_after(None) == 1.0
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    assert _retry_after("soon") == 1.0


def test_secret_never_shows() -> None:
    endpoint = Endpoint("http://127.0.0.1:1/v1", "m", api_key=SecretStr("sk-very-secret"))
    assert "sk-very-secret" not in repr(endpoint) and "sk-very-secret" not in str(endpoint.api_key)
    assert endpoint.api_key is not None and endpoint.api_key.get_secret_value() == "sk-very-secret"
