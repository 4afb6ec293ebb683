"""Labelled datasets for evaluation and training: JSONL or CSV, columns mapped by options."""

from __future__ import annotations

import csv
import difflib
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
    # Every column of the file (text and labels included), to check slice and group columns against.
    columns: tuple[str, ...] = ()
    # SHA-256 of the file's bytes, so a result names exactly the data it was measured on.
    sha256: str = ""

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
        return replace(self, examples=tuple(self.examples[i] for i in keep))

    def split(self, n_train: int, seed: int = 0) -> tuple[Dataset, Dataset]:
        """A seeded random split into ``n_train`` examples and the rest."""
        order = list(range(len(self.examples)))
        random.Random(seed).shuffle(order)
        train = tuple(self.examples[i] for i in sorted(order[:n_train]))
        test = tuple(self.examples[i] for i in sorted(order[n_train:]))
        return replace(self, examples=train), replace(self, examples=test)

    def require_columns(self, wanted: Sequence[str], *, role: str) -> None:
        """A clear error for each of ``wanted`` that is not a column of the file."""
        require_columns(self.path, wanted, self.columns, role=role)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a ``.jsonl`` (one object a line) or ``.csv`` (header row) file.

    Files are read as UTF-8 with an optional byte-order mark (spreadsheets write one); left in, it
    would become part of the first column's name, and that column could not be named.
    """
    if not path.is_file():
        raise DatasetError(f"no such file: {path}")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        rows = []
        with path.open(encoding="utf-8-sig") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise DatasetError(f"{path}:{number}: not JSON: {error.msg}") from error
                    if not isinstance(row, dict):
                        raise DatasetError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
                    rows.append(row)
        return rows
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as handle:
            return list(csv.DictReader(handle))
    raise DatasetError(f"{path}: expected a .jsonl or .csv file")


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Every column some row has, in first-seen order (JSONL rows may each lack some keys)."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(str(key), None)
    return list(seen)


def require_columns(path: Path | str, wanted: Sequence[str], columns: Sequence[str], *, role: str) -> None:
    """A clear error naming each ``wanted`` column that no row has, with the closest spellings.

    A misspelt label column used to be read as "unlabelled" in every row, silently dropping the
    positives it held; a misspelt slice column gave one empty slice.
    """
    for name in wanted:
        if name in columns:
            continue
        close = [c for c in columns if c.lower() == name.lower()]
        close += [c for c in difflib.get_close_matches(name, columns, n=3, cutoff=0.6) if c not in close]
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise DatasetError(
            f"{path}: no {role} column {name!r}{hint} (columns: {', '.join(columns)}); "
            f"column names are case-sensitive"
        )


def load_dataset(
    path: Path,
    *,
    text_column: str = "text",
    label_columns: Sequence[str] = ("label",),
    positive: Sequence[str] = (),
    missing: str = "unlabelled",
    all_positive: bool = False,
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

    Every label column must exist in some row. Data in which every row comes out one class is an
    error (a wrong ``positive`` mapping looks exactly like that), unless ``all_positive`` says every
    row is positive by construction (a set of jailbreak prompts); then no label column is read.
    """
    if missing not in ("unlabelled", "negative"):
        raise DatasetError(f"missing={missing!r}: use 'unlabelled' or 'negative'")
    rows = read_rows(path)
    if not rows:
        raise DatasetError(f"{path} has no rows")
    columns = columns_of(rows)
    require_columns(path, [text_column], columns, role="text")
    if all_positive:
        return _all_positive(path, rows, text_column)
    require_columns(path, label_columns, columns, role="label")
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
        examples.append(
            Example(text=_row_text(path, number, row, text_column), label=label, raw_label="|".join(raw),
                    meta=_meta(row, text_column))
        )
    if not examples:
        raise DatasetError(f"{path}: every row lacks a label in {list(label_columns)}")
    _require_both_classes(path, examples, wanted)
    return Dataset(str(path), tuple(examples), text_column, tuple(label_columns), unlabelled, tuple(columns),
                   file_sha256(path))


def _all_positive(path: Path, rows: list[dict[str, Any]], text_column: str) -> Dataset:
    examples = tuple(
        Example(text=_row_text(path, number, row, text_column), label=True, raw_label="", meta=_meta(row, text_column))
        for number, row in enumerate(rows, 1)
    )
    return Dataset(str(path), examples, text_column, (), 0, tuple(columns_of(rows)), file_sha256(path))


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _require_both_classes(path: Path, examples: Sequence[Example], wanted: frozenset[str]) -> None:
    positives = sum(e.label for e in examples)
    if 0 < positives < len(examples):
        return
    values = sorted({v for e in examples for v in e.raw_label.split("|")})[:10]
    if positives:
        raise DatasetError(
            f"{path}: every one of {len(examples)} rows is positive (label values: {values}); if the set is "
            f"positive by construction (jailbreak prompts), pass --all-positive, else check --positive"
        )
    mapping = f"--positive {sorted(wanted)}" if wanted else "the true-like values (1, true, yes)"
    raise DatasetError(
        f"{path}: no row is positive: none of the label values {values} is among {mapping}; "
        f"check --label-column and --positive (values are case-sensitive)"
    )


def _row_text(path: Path, number: int, row: dict[str, Any], text_column: str) -> str:
    value = row.get(text_column)
    if value is None:
        raise DatasetError(f"{path}: row {number} has no {text_column!r} (the text column)")
    return _text(value)


def _meta(row: dict[str, Any], text_column: str) -> dict[str, str]:
    return {str(k): _text(v) for k, v in row.items() if k != text_column and v is not None}


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip() if not isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class TrainingData:
    """Texts and labels for ``vigil train``, with the group of each text when a group column is named."""

    texts: list[str]
    labels: list[str]
    positive: str | None
    groups: list[str] | None
    unlabelled: int


def load_training_data(
    path: Path,
    *,
    text_column: str = "text",
    label_columns: Sequence[str] = ("label",),
    positive: Sequence[str] = (),
    missing: str = "unlabelled",
    group_column: str | None = None,
) -> TrainingData:
    """Read training examples under the same column mapping ``vigil eval`` takes.

    With one label column and at most one ``positive`` value, the labels are the column's values (so
    more than two classes can be trained) and ``positive`` names the one whose probability is the
    score. With several label columns (the moderation set's categories) or several positive values,
    a row is ``positive`` or ``negative`` as :func:`load_dataset` reads it. Rows whose label is
    missing are left out and counted, never read as negatives.
    """
    if len(label_columns) > 1 or len(positive) > 1:
        data = load_dataset(path, text_column=text_column, label_columns=label_columns, positive=positive,
                            missing=missing)
        if group_column is not None:
            data.require_columns([group_column], role="group")
        groups = None if group_column is None else [_group(e.meta, group_column, i) for i, e in
                                                    enumerate(data.examples, 1)]
        labels = ["positive" if y else "negative" for y in data.labels]
        return TrainingData(data.texts, labels, "positive", groups, data.unlabelled)
    rows = read_rows(path)
    if not rows:
        raise DatasetError(f"{path} has no rows")
    columns = columns_of(rows)
    (label_column,) = label_columns
    require_columns(path, [text_column], columns, role="text")
    require_columns(path, [label_column], columns, role="label")
    if group_column is not None:
        require_columns(path, [group_column], columns, role="group")
    texts, labels, groups = [], [], []
    unlabelled = 0
    for number, row in enumerate(rows, 1):
        value = row.get(label_column)
        if value is None or _text(value) == "":
            unlabelled += 1
            continue
        texts.append(_row_text(path, number, row, text_column))
        labels.append(_text(value))
        if group_column is not None:
            groups.append(_group(row, group_column, number))
    if not texts:
        raise DatasetError(f"{path}: no row has a label in {label_column!r}")
    return TrainingData(texts, labels, positive[0] if positive else None,
                        groups if group_column is not None else None, unlabelled)


def _group(row: dict[str, Any], column: str, number: int) -> str:
    value = row.get(column)
    # A row without a group value is a group of its own: it shares folds with nothing.
    return f"\0row {number}" if value is None or _text(value) == "" else _text(value)
