"""Rules files → a checked, compiled rules set. Resolves `use`, reads lists, and refuses anything
with an error: a rules set that fails the checker is never returned, so never activated."""

from __future__ import annotations

import hashlib
import marshal
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import CodeType
from typing import Any

from vigil.diagnostics import Diagnostic, DiagnosticError, Severity, Span
from vigil.dsl import ast
from vigil.dsl.builtins import Functions
from vigil.dsl.check import Program, check
from vigil.dsl.compile import CompiledRules, compile_program
from vigil.dsl.parse import parse

MAX_RULES_FILE_BYTES = 2 << 20
MAX_LIST_FILE_BYTES = 64 << 20


@dataclass(slots=True)
class RuleSet:
    """A rules set ready to run: what the checker found, the compiled plan and a content version."""

    program: Program
    compiled: CompiledRules
    version: str
    sources: dict[str, str]
    warnings: list[Diagnostic] = field(default_factory=list)
    list_items: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The compiled source as Python bytecode: compiled here, with the checks, so that activating a
    # rules set cannot fail half-way (Engine.activate only runs it).
    code: CodeType | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its bytecode marshalled (code objects do not pickle): a large rules set is
        compiled in a worker process of the same interpreter (vigil/service/compiler.py)."""
        code = marshal.dumps(self.code) if self.code is not None else None
        return (_unpickle_ruleset, (self.program, self.compiled, self.version, self.sources, self.warnings,
                                    self.list_items, code))


def _unpickle_ruleset(program: Program, compiled: CompiledRules, version: str, sources: dict[str, str],
                      warnings: list[Diagnostic], list_items: dict[str, tuple[str, ...]],
                      code: bytes | None) -> RuleSet:
    return RuleSet(program, compiled, version, sources, warnings, list_items,
                   marshal.loads(code) if code is not None else None)  # our own worker's bytes


class _Reader:
    """Reads rules files either from disk or from an in-memory mapping (uploads through the API)."""

    def __init__(self, files: dict[str, str] | None) -> None:
        self.files = files

    def read(self, path: str) -> str:
        if self.files is not None:
            if path not in self.files:
                raise FileNotFoundError(path)
            return self.files[path]
        data = Path(path).read_bytes()
        if len(data) > MAX_RULES_FILE_BYTES:
            raise ValueError(f"file is larger than {MAX_RULES_FILE_BYTES} bytes")
        return data.decode("utf-8")

    def join(self, base: str, relative: str) -> str:
        if self.files is not None:
            return posixpath.normpath(str(PurePosixPath(base).parent / relative))
        return str(Path(base).parent / relative)


def _entry_points(paths: list[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        path = Path(p)
        out += [str(f) for f in sorted(path.rglob("*.vigil"))] if path.is_dir() else [p]
    return out


def load_ruleset(paths: list[str] | str, files: dict[str, str] | None = None,
                 functions: Functions | None = None) -> RuleSet:
    """Load rules from files or directories (every `*.vigil` below them), or from `files`, a mapping
    of path → text with `paths` naming the entry files. Raises DiagnosticError with every problem.
    `functions`: what the rules may call (vigil.plugins.load_functions; Vigil's built-ins when None); the
    engine runs the rules set with the same ones."""
    reader = _Reader(files)
    entries = [paths] if isinstance(paths, str) else list(paths)
    roots = [] if files is not None else [str(Path(e).resolve() if Path(e).is_dir() else Path(e).resolve().parent)
                                          for e in entries]
    entries = entries if files is not None else _entry_points(entries)
    modules: list[ast.Module] = []
    diagnostics: list[Diagnostic] = []
    sources: dict[str, str] = {}
    loaded: set[str] = set()

    def visit(path: str, stack: list[str], span: Span | None) -> None:
        key = str(Path(path).resolve()) if files is None else path
        if key in stack:
            cycle = " → ".join([*stack[stack.index(key):], key])
            diagnostics.append(Diagnostic(f"files use each other in a cycle: {cycle}",
                                          span or Span(path, 1, 1), hint="move shared definitions to a third file",
                                          code="cycle"))
            return
        if key in loaded:
            return
        loaded.add(key)
        try:
            text = reader.read(path)
        except (OSError, ValueError, UnicodeDecodeError) as error:
            diagnostics.append(Diagnostic(f"cannot read rules file {path}: {error}", span or Span(path, 0, 0),
                                          code="file"))
            return
        sources[path] = text
        module, errors = parse(text, path)  # with syntax errors, the items that parsed are still checked
        diagnostics.extend(errors)
        for item in module.items:
            if isinstance(item, ast.Use):
                visit(reader.join(path, item.path), [*stack, key], item.span)
        modules.append(module)

    for entry in entries:
        visit(entry, [], None)
    program, found = check(modules, functions)
    diagnostics.extend(found)
    list_items = _read_lists(program, reader, diagnostics, sources)
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    if errors:
        raise DiagnosticError(diagnostics, sources)
    compiled = compile_program(program, list_items)
    names = {p: p for p in sources} if files is not None else _relative_names(sources, roots)
    version = content_version({names[path]: text for path, text in sources.items()}, list_items)
    code = python_code(compiled, version, program, diagnostics, sources)
    return RuleSet(program, compiled, version, sources, diagnostics, list_items, code)


def python_code(compiled: CompiledRules, version: str, program: Program, diagnostics: list[Diagnostic],
                sources: dict[str, str]) -> CodeType:
    """Python's own compiler over the generated source. The checker's nesting limit keeps every rules
    set it passes within Python's limits; should one still be refused, it is a diagnostic like any other
    (vigil check, dry runs, uploads, reloads and workers all refuse it), never an error at activation."""
    try:
        return compile(compiled.source, f"<rules {version}>", "exec")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as error:
        where = program.rules[0].span if program.rules else Span(next(iter(sources), "<rules>"), 1, 1)
        message = getattr(error, "msg", None) or str(error) or type(error).__name__
        diagnostics.append(Diagnostic(f"the rules compile to Python that Python cannot compile ({message})",
                                      where, hint="nest expressions less deeply", code="nesting"))
        raise DiagnosticError(diagnostics, sources) from None


def _relative_names(sources: dict[str, str], roots: list[str]) -> dict[str, str]:
    """Each file read from disk by its path relative to the folders given (a directory, or a file's
    folder), so the version does not depend on how the paths were typed (relative, absolute, from
    another directory), and a directory gets the version its upload through the API gets."""
    root = os.path.commonpath(roots) if roots else os.getcwd()
    return {path: Path(os.path.relpath(Path(path).resolve(), root)).as_posix() for path in sources}


def content_version(files: dict[str, str], list_items: dict[str, tuple[str, ...]]) -> str:
    """The version of a rules set: a hash of its files' text by relative path, and of its lists' items."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    for name in sorted(list_items):
        digest.update(name.encode() + b"\0" + "\n".join(list_items[name]).encode() + b"\0")
    return digest.hexdigest()[:12]


def _read_lists(program: Program, reader: _Reader, diagnostics: list[Diagnostic],
                sources: dict[str, str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for name, decl in program.lists.items():
        if decl.file is None:
            out[name] = decl.items
            continue
        path = reader.join(decl.span.file, decl.file)
        try:
            if reader.files is None and Path(path).stat().st_size > MAX_LIST_FILE_BYTES:
                raise ValueError(f"larger than {MAX_LIST_FILE_BYTES} bytes")
            text = reader.read(path)
        except (OSError, ValueError, UnicodeDecodeError) as error:
            diagnostics.append(Diagnostic(f'cannot read list "{name}" from {path}: {error}', decl.span,
                                          hint="the path is relative to the rules file", code="file"))
            continue
        out[name] = tuple(line.strip() for line in text.splitlines()
                          if line.strip() and not line.lstrip().startswith("#"))
    return out
