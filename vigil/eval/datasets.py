"""Labelled datasets for evaluation and training: JSONL or CSV, columns mapped by options."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Spellings of a true label when no --positive mapping is given.
_TRUE = frozenset({"1", "true", "yes", "y", "t", "1.0"})
_FALSE = frozenset({"0", "false", "no", "n", "f", "0.0", ""})


class DatasetError(ValueError):
    """The file cannot be read as a labelled dataset with the given column mapping."""


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text; ``raw_label`` is the label as written, ``meta`` the other columns."""

    text: str
    label: bool
    raw_label: str
    meta: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Dataset:
    """Examples loaded from ``path`` under a column mapping."""

    path: str
    examples: tuple[Example, ...]
    text_column: str
    label_columns: tuple[str, ...]
    # Rows left out because a label column they needed was missing (unlabelled, not negative).
    unlabelled: int = 0

    @property
    def texts(self) -> list[str]:
        """The texts, in order."""
        return [e.text for e in self.examples]

    @property
    def labels(self) -> list[bool]:
        """The boolean labels, in order."""
        return [e.label for e in self.examples]

    def __len__(self) -> int:
        return len(self.examples)

    def sample(self, n: int, seed: int = 0) -> Dataset:
        """A seeded random subset of at most ``n`` examples, keeping file order."""
        if n >= len(self.examples):
            return self
        keep = sorted(random.Random(seed).sample(range(len(self.examples)), n))
        return Dataset(self.path, tuple(self.examples[i] for i in keep), self.text_column, self.label_columns,
                       self.unlabelled)

    def split(self, n_train: int, seed: int = 0) -> tuple[Dataset, Dataset]:
        """A seeded random split into ``n_train`` examples and the rest."""
        order = list(range(len(self.examples)))
        random.Random(seed).shuffle(order)
        train = tuple(self.examples[i] for i in sorted(order[:n_train]))
        test = tuple(self.examples[i] for i in sorted(order[n_train:]))
        return (
            Dataset(self.path, train, self.text_column, self.label_columns, self.unlabelled),
            Dataset(self.path, test, self.text_column, self.label_columns, self.unlabelled),
        )


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl`` (one object a line) or ``.csv`` (header row) file."""
    if not path.is_file():
        raise DatasetError(f"no such file: {path}")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as error:
                        raise DatasetError(f"{path}:{number}: not JSON: {error.msg}") from error
        return rows
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", newline="") as handle:
            return list(csv.DictReader(handle))
    raise DatasetError(f"{path}: expected a .jsonl or .csv file")


def load_dataset(
    path: Path,
    *,
    text_column: str = "text",
    label_columns: Sequence[str] = ("label",),
    positive: Sequence[str] = (),
    missing: str = "unlabelled",
) -> Dataset:
    """Load a labelled dataset.

    A row is positive when any of ``label_columns`` holds a value in ``positive`` (or, with no
    ``positive`` given, a true-like value: 1, true, yes). Several label columns mean "any of
    these categories", as in the OpenAI moderation set. A missing (or null) column means that
    category is unlabelled for the row: the row is still positive when another column is, but
    it is left out, and counted in ``unlabelled``, when it would otherwise be negative, since
    nobody said it was. ``missing="negative"`` instead reads a missing category as "not this
    category" (the judgement of whoever prepared data that way). Every other column is kept in
    ``meta`` for per-slice breakdowns.
    """
    if missing not in ("unlabelled", "negative"):
        raise DatasetError(f"missing={missing!r}: use 'unlabelled' or 'negative'")
    rows = read_rows(path)
    if not rows:
        raise DatasetError(f"{path} has no rows")
    if text_column not in rows[0]:
        raise DatasetError(f"{path}: no text column {text_column!r}; columns: {', '.join(map(str, rows[0]))}")
    if not any(c in row for row in rows for c in label_columns):
        raise DatasetError(
            f"{path}: no label column among {list(label_columns)}; columns: {', '.join(map(str, rows[0]))}"
        )
    wanted = frozenset(positive)
    examples = []
    unlabelled = 0
    for number, row in enumerate(rows, 1):
        raw = [_text(row[c]) for c in label_columns if c in row and row[c] is not None]
        complete = len(raw) == len(label_columns) or (missing == "negative" and bool(raw))
        if wanted:
            label = any(value in wanted for value in raw)
        else:
            unknown = [v for v in raw if v.lower() not in _TRUE | _FALSE]
            if unknown:
                raise DatasetError(
                    f"{path}: row {number}: label {unknown[0]!r} is not true/false-like; "
                    f"say which values are positive (--positive)"
                )
            label = any(v.lower() in _TRUE for v in raw)
        if not label and not complete:
            unlabelled += 1
            continue
        meta = {str(k): _text(v) for k, v in row.items() if k != text_column and v is not None}
        examples.append(
            Example(text=_text(row[text_column]), label=label, raw_label="|".join(raw), meta=meta)
        )
    if not examples:
        raise DatasetError(f"{path}: every row lacks a label in {list(label_columns)}")
    return Dataset(str(path), tuple(examples), text_column, tuple(label_columns), unlabelled)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip() if not isinstance(value, str) else value
