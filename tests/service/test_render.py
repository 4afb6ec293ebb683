"""JSON out never fails: what orjson refuses is rendered plainly (issue 11.6)."""

from __future__ import annotations

import orjson

from vigil.jsonout import MAX_RENDER_DEPTH, TOO_DEEP, dumps


def test_what_orjson_renders_is_unchanged() -> None:
    content = {"a": [1, 2.5, None, True, "é"], "b": {"c": "d"}}
    assert dumps(content) == orjson.dumps(content)


def test_values_orjson_refuses_are_rendered_plainly() -> None:
    deep: object = 0
    for _ in range(300):
        deep = [deep]

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    out = orjson.loads(dumps({"deep": deep, "big": 2**80, "surrogate": "a\ud800b", "keys": {1: "x"},
                              "set": {3}, "broken": Broken()}))
    level = out["deep"]
    for _ in range(MAX_RENDER_DEPTH - 1):
        level = level[0]
    assert level == TOO_DEEP
    assert out["big"] == str(2**80)
    assert out["surrogate"] == "a\\ud800b"
    assert out["keys"] == {"1": "x"}
    assert out["set"] == "{3}"
    assert out["broken"].startswith("<Broken instance")
