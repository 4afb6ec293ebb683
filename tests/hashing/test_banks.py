from __future__ import annotations

import doctest
import importlib

import pytest

from vigil.hashing.banks import (
    BankError,
    NewEntry,
    check_bank_name,
    check_settings,
    parse_tags,
    validate_entries,
)
from vigil.hashing.hashers import SignalType


def test_bank_names() -> None:
    assert check_bank_name("ncmec-2026.v1_x") == "ncmec-2026.v1_x"
    for bad in ("", "-x", "a b", "x" * 65, "é"):
        with pytest.raises(BankError, match="invalid bank name"):
            check_bank_name(bad)


def test_settings() -> None:
    check_settings(SignalType.PDQ, 31, 50)
    check_settings(SignalType.TEXT_SIMHASH, 10, 0)
    with pytest.raises(BankError, match="0..32"):
        check_settings(SignalType.TEXT_SIMHASH, 33, 0)


def test_tags_and_entry_validation() -> None:
    assert parse_tags("") == ()
    assert parse_tags("a;b, c  a") == ("a", "b", "c")
    entries = validate_entries(SignalType.MD5, [NewEntry("A" * 32, "s", ("t",))])
    assert entries == [NewEntry("a" * 32, "s", ("t",))]


@pytest.mark.parametrize(
    "module", ["hashers", "banks", "csvio", "index", "media", "service", "sqlite", "postgres", "open", "nsfw", "cli"]
)
def test_docstring_examples(module: str) -> None:
    # The package's doctests run here so the default `pytest` run keeps them honest.
    result = doctest.testmod(importlib.import_module(f"vigil.hashing.{module}"))
    assert result.failed == 0
