"""Policy files and their versions."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.classifiers.base import ClassifierError
from vigil.classifiers.policy import load_policies, load_policy


def test_version_follows_content(tmp_path: Path) -> None:
    (tmp_path / "spam.md").write_text("# Spam\n## Instructions\nAnswer 0 or 1.\n## Examples\n")
    (tmp_path / "notes.txt").write_text("not a policy")
    policies = load_policies(tmp_path)
    assert list(policies) == ["spam"]
    before = policies["spam"].version
    (tmp_path / "spam.md").write_text("# Spam\n## Instructions\nAnswer 0 or 1, strictly.\n")
    assert load_policy(tmp_path / "spam.md").version != before
    assert len(before) == 12


def test_missing_sections_are_hints(tmp_path: Path) -> None:
    path = tmp_path / "p.md"
    path.write_text("# P\n## Instructions\n## Definitions\n## What violates\n## What is safe\n## Examples\n")
    assert load_policy(path).missing_sections() == []
    path.write_text("# P\n## Instructions\n")
    assert load_policy(path).missing_sections() == ["definitions", "violat", "safe", "examples"]


def test_empty_or_missing_policy_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.md").write_text("  \n")
    with pytest.raises(ClassifierError, match="empty"):
        load_policy(tmp_path / "empty.md")
    with pytest.raises(ClassifierError, match="cannot read"):
        load_policy(tmp_path / "absent.md")


def test_example_policy_has_every_recommended_section() -> None:
    policy = load_policy(Path(__file__).parent / "policies" / "harassment.md")
    assert policy.name == "harassment" and policy.missing_sections() == []
