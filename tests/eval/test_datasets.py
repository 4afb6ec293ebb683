"""Loading labelled datasets under column mappings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigil.eval.datasets import DatasetError, load_dataset


def test_csv_with_positive_mapping(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("msg,verdict,lang\nhello,ok,en\nidiot,abusive,en\nhola,ok,es\n")
    data = load_dataset(path, text_column="msg", label_columns=["verdict"], positive=["abusive"])
    assert data.labels == [False, True, False]
    assert data.examples[2].meta == {"verdict": "ok", "lang": "es"}


def test_jsonl_any_of_several_label_columns(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [
        {"prompt": "a", "S": 0, "H": 1},
        {"prompt": "b", "S": 0},
        {"prompt": "c"},
        {"prompt": "d", "V": True},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = load_dataset(path, text_column="prompt", label_columns=["S", "H", "V"])
    # "b" and "c" say nothing about H or V: unlabelled, left out, never counted as negatives.
    assert [e.text for e in data.examples] == ["a", "d"]
    assert data.labels == [True, True] and data.unlabelled == 2


def test_a_row_is_negative_only_when_every_category_says_so(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [{"prompt": "a", "S": 0, "H": 0}, {"prompt": "b", "S": 0, "H": None}, {"prompt": "c", "S": 1}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = load_dataset(path, text_column="prompt", label_columns=["S", "H"])
    assert [(e.text, e.label) for e in data.examples] == [("a", False), ("c", True)]
    assert data.unlabelled == 1
    assert load_dataset(path, text_column="prompt", label_columns=["S"]).unlabelled == 0


def test_moderation_set_loads(shared_data: Path) -> None:
    data = load_dataset(
        shared_data / "moderation" / "dev.jsonl",
        text_column="prompt",
        label_columns=["S", "H", "V", "HR", "SH", "S3", "H2", "V2"],
    )
    # The shared data README: a missing key means that category is unlabelled for that row.
    assert len(data) + data.unlabelled == 840 and data.unlabelled > 0
    assert 0 < sum(data.labels) < len(data)


@pytest.mark.parametrize(
    ("content", "kwargs", "message"),
    [
        ("text,label\nhi,maybe\n", {}, "not true/false-like"),
        ("body,label\nhi,1\n", {}, "no text column 'text'"),
        ("text,y\nhi,1\n", {}, "no label column"),
        ("text,label\n", {}, "no rows"),
    ],
)
def test_clear_errors(tmp_path: Path, content: str, kwargs: dict[str, str], message: str) -> None:
    path = tmp_path / "d.csv"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset(path, **kwargs)


def test_sample_and_split_are_seeded(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"text": str(i), "label": i % 2}) + "\n" for i in range(20)))
    data = load_dataset(path)
    assert data.sample(5, seed=1).texts == data.sample(5, seed=1).texts
    train, test = data.split(8, seed=3)
    assert len(train) == 8 and len(test) == 12 and not set(train.texts) & set(test.texts)
