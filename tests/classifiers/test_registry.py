"""Looking classifiers up by name."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vigil.classifiers import local
from vigil.classifiers.base import ClassifierError
from vigil.classifiers.features import TFIDF
from vigil.classifiers.llm import Endpoint, PolicyClassifier
from vigil.classifiers.registry import ClassifierRegistry
from vigil.classifiers.retry_queue import RetryQueue

from .fake_openai import FakeOpenAI, Reply


def _spam(root: Path) -> None:
    texts = [
        "buy cheap pills",
        "cheap pills now",
        "win money fast",
        "hello friend",
        "see you at lunch",
        "nice photo",
    ]
    local.train("spam", texts, ["spam"] * 3 + ["ham"] * 3, featurizer=TFIDF).save(root)


def test_directory_with_artifacts_policies_and_builtins(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    _spam(tmp_path / "classifiers")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "harassment.md").write_text("# Harassment\nAnswer 1 or 0.\n")
    fake_openai.script = lambda body: Reply(content="1")
    registry = ClassifierRegistry.from_directory(
        tmp_path / "classifiers",
        policies_dir=policies,
        endpoint=Endpoint(fake_openai.base_url, "m"),
        retry_queue=RetryQueue(tmp_path / "q.sqlite"),
    )
    assert registry.names() == ["harassment", "language", "profanity", "spam"]
    assert "spam" in registry and "nope" not in registry
    assert registry.classify("spam", ["cheap pills"])[0].flagged is True
    assert isinstance(registry.get("harassment"), PolicyClassifier)
    assert registry.get("spam") is registry.get("spam")  # loaded once
    [answer] = asyncio.run(registry.aclassify("harassment", ["you idiot"], deadline_s=5))
    assert answer.flagged is True


def test_retry_pass_over_all_policies(tmp_path: Path, fake_openai: FakeOpenAI) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "spam.md").write_text("# Spam\nAnswer 1 or 0.\n")
    now = [0.0]
    queue = RetryQueue(tmp_path / "q.sqlite", clock=lambda: now[0])
    registry = ClassifierRegistry.from_directory(
        tmp_path / "none", policies_dir=policies, endpoint=Endpoint(fake_openai.base_url, "m", max_retries=0),
        retry_queue=queue,
    )  # fmt: skip
    fake_openai.script = lambda body: Reply(status=503)
    assert registry.classify("spam", ["buy now"])[0].status == "unknown"
    fake_openai.script = lambda body: Reply(content="1")
    now[0] = 100.0
    done = asyncio.run(registry.retry_pending())
    assert list(done) == ["spam"] and done["spam"][0][1].flagged is True
    assert len(queue) == 0


def test_unknown_name_lists_known_ones(tmp_path: Path) -> None:
    registry = ClassifierRegistry.from_directory(tmp_path, builtins=False)
    with pytest.raises(ClassifierError, match="no classifier named 'spam'; known: none"):
        registry.get("spam")


def test_policies_need_an_endpoint(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("# P\n")
    with pytest.raises(ClassifierError, match="need a model endpoint"):
        ClassifierRegistry.from_directory(tmp_path / "none", policies_dir=tmp_path)


def test_of_ready_made_classifiers(tmp_path: Path) -> None:
    _spam(tmp_path)
    registry = ClassifierRegistry.of([local.load(tmp_path, "spam")])
    assert registry.names() == ["spam"]
