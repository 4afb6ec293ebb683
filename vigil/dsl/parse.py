"""Rules text → syntax tree, with syntax errors turned into Diagnostics a person can act on."""

from __future__ import annotations

import functools
from importlib import resources

from lark import Lark, Token, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.exceptions import VisitError

from vigil.diagnostics import Diagnostic, Span
from vigil.dsl import ast
from vigil.dsl.transform import ToAst

# What to call a terminal in a message; anonymous keywords are shown quoted.
_TERMINAL_NAMES = {
    "STRING": 'a string in double quotes ("...")',
    "NUMBER": "a number",
    "NAME": "a name",
    "TIME_UNIT": "a time unit (seconds, minutes, hours, days, weeks)",
    "VERDICT": "a verdict (allow, flag, review, block)",
    "MODE": "a mode (live, shadow, rollout N% by ENTITY)",
    "COMPARE": "a comparison (>, >=, <, <=, ==, !=)",
    "REGEX": "a regular expression between slashes (/.../i)",
    "LIST_KIND": "a list kind (phrases, words, domains)",
    "$END": "the end of the file",
}

# Plain advice for mistakes people make, keyed by (what was found, what would have been accepted).
_HINTS: list[tuple[str, str, str]] = [
    ("EQUAL", "COMPARE", "use == to compare; a single = only appears in define, entity and with"),
    ("NAME", "THEN", "a rule's condition ends with `then` and its actions, e.g. `then review`"),
    ("$END", "THEN", "a rule needs `then` and at least one action, e.g. `then review`"),
    ("$END", "WHEN", "a rule needs `when CONDITION then ACTIONS`"),
    ("STRING", "WHEN", "rule metadata is `severity high`, `owner \"team\"`, `description \"...\"` or `mode shadow`"),
]


@functools.cache
def _parser() -> Lark:
    grammar = resources.files("vigil.dsl").joinpath("grammar.lark").read_text("utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _describe(terminal: str) -> str:
    if terminal in _TERMINAL_NAMES:
        return _TERMINAL_NAMES[terminal]
    try:
        pattern = _parser().get_terminal(terminal).pattern
    except KeyError:
        return terminal.lower()
    return f"`{pattern.value}`" if pattern.type == "str" else terminal.lower()


def _syntax_diagnostic(error: UnexpectedInput, path: str, text: str) -> Diagnostic:
    line, column = max(error.line, 1), max(error.column, 1)
    expected: set[str] = set()
    found = "end of the file"
    found_type = "$END"
    if isinstance(error, UnexpectedToken):
        expected = set(error.accepts or error.expected)
        token: Token = error.token
        found_type = token.type
        if token.type != "$END":
            found = f"`{token.value}`"
        else:
            line, column = _end_position(text)
    elif isinstance(error, UnexpectedCharacters):
        expected = set(error.allowed or ())
        position = error.pos_in_stream if error.pos_in_stream is not None else len(text)
        found = f"`{text[position]}`" if position < len(text) else found
        found_type = "CHAR"
    elif isinstance(error, UnexpectedEOF):
        expected = set(error.expected)
        line, column = _end_position(text)
    names = sorted({_describe(t) for t in expected if not t.startswith("__")})
    if len(names) > 8:
        names = names[:8] + ["…"]
    message = f"unexpected {found}"
    if names:
        message += "; expected " + (", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0])
    hint = next((h for f, e, h in _HINTS if f == found_type and e in expected), None)
    return Diagnostic(message, Span(path, line, column, line, column + 1), hint=hint, code="syntax")


def _end_position(text: str) -> tuple[int, int]:
    lines = text.rstrip().splitlines() or [""]
    return len(lines), len(lines[-1]) + 1


def parse(text: str, path: str = "<rules>") -> tuple[ast.Module | None, list[Diagnostic]]:
    """Parse one rules file. Returns the module, or None and the syntax error as a Diagnostic."""
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as error:
        return None, [_syntax_diagnostic(error, path, text)]
    try:
        module = ToAst(path).transform(tree)
    except VisitError as error:  # a literal the grammar admits but the transformer cannot decode
        meta = getattr(error.obj, "meta", None)
        line, column = getattr(meta, "line", 1), getattr(meta, "column", 1)
        return None, [Diagnostic(f"invalid literal: {error.orig_exc}", Span(path, line, column), code="syntax")]
    return module, []
