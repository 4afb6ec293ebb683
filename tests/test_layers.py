"""The core never imports a front door: events, dsl, engine, signals, effects, stores, record, review and
analysis are used by service, workers, console, eval and cli, never the other way round (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

VIGIL = Path(__file__).resolve().parents[1] / "vigil"
CORE = ("events.py", "effects.py", "engine.py", "jsonout.py", "dsl", "signals", "stores", "record", "review",
        "analysis")
FRONT_DOORS = ("vigil.service", "vigil.workers", "vigil.console", "vigil.eval", "vigil.cli")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text("utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):  # function-level imports too: a lazy import is still a dependency
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_the_core_imports_no_front_door() -> None:
    files = [p for name in CORE for p in ((VIGIL / name).rglob("*.py") if (VIGIL / name).is_dir() else [VIGIL / name])]
    wrong = [f"{path.relative_to(VIGIL.parent)}:{line}: imports {module}"
             for path in files for line, module in _imports(path)
             if module.startswith(FRONT_DOORS) and path.name != "cli.py"]
    assert not wrong, "\n".join(wrong)
