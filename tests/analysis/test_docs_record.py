"""The search examples of docs/record.md compile against the example rules."""

from __future__ import annotations

import re
from pathlib import Path

from vigil.analysis.query import compile_query
from vigil.dsl.loader import RuleSet
from vigil.signals.labels import Labels
from vigil.stores.memory import MemoryStore

DOC = Path(__file__).parents[2] / "docs" / "record.md"


def test_every_search_example_checks_against_the_example_rules(example_rules: RuleSet) -> None:
    examples = re.findall(r"```search\n(.*?)```", DOC.read_text("utf-8"), re.DOTALL)
    assert len(examples) >= 5
    for text in examples:
        compile_query(text.strip(), context=example_rules, labels=Labels(MemoryStore()))


def test_the_commands_shown_are_the_commands_there_are() -> None:
    from click.testing import CliRunner

    from vigil.cli import main

    text = DOC.read_text("utf-8")
    for command in ("search", "backtest"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0
        for option in sorted(set(re.findall(rf"vigil {command} [^\n]*", text))):
            for flag in re.findall(r"--[a-z-]+", option):
                assert flag in result.stdout, f"{flag} of `vigil {command}` is not an option"
