"""Loading rules from disk: the version of a rules set is its content, not the paths typed."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.dsl.loader import load_ruleset

RULES = {
    "spam.vigil": 'use "shared/common.vigil"\nrule "r" when event.n > limit then block\n',
    "shared/common.vigil": "define limit = 3\n",
}


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    root = tmp_path / "project" / "rules"
    for name, text in RULES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, "utf-8")
    return root


def test_version_does_not_depend_on_the_path_typed(rules_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = load_ruleset([str(rules_dir)]).version
    monkeypatch.chdir(rules_dir.parent.parent)
    from_above = load_ruleset(["project/rules"]).version
    monkeypatch.chdir(rules_dir.parent)
    from_parent = load_ruleset(["rules"]).version
    dotted = load_ruleset(["./rules/../rules"]).version
    monkeypatch.chdir(rules_dir)
    from_inside = load_ruleset(["."]).version
    assert absolute == from_above == from_parent == dotted == from_inside


def test_a_directory_has_the_version_of_the_same_files_uploaded(rules_dir: Path) -> None:
    uploaded = load_ruleset(["spam.vigil"], files=dict(RULES))
    assert load_ruleset([str(rules_dir)]).version == uploaded.version


def test_version_follows_a_file_moved_inside_the_set(rules_dir: Path, tmp_path: Path) -> None:
    before = load_ruleset([str(rules_dir)]).version
    (rules_dir / "spam.vigil").rename(rules_dir / "moved.vigil")
    assert load_ruleset([str(rules_dir)]).version != before


def test_a_rules_set_pickles_with_its_bytecode() -> None:
    import pickle

    rules = load_ruleset("r.vigil", files={"r.vigil": 'rule "r" when event.n > 1 then flag'})
    copy = pickle.loads(pickle.dumps(rules))
    assert copy.code is not None and copy.code.co_filename == rules.code.co_filename  # type: ignore[union-attr]
    assert copy.compiled.source == rules.compiled.source
