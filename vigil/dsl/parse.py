"""Rules text → syntax tree, with syntax errors turned into Diagnostics a person can act on."""

from __future__ import annotations

import dataclasses
import functools
import re
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
    "PARAM_NAME": "a parameter's name",
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
    ("COMPARE", "IS", ("`verdict` is a word of searches over the record (`verdict is review`): give a definition "
                      "another name")),
]


@functools.cache
def _parser() -> Lark:
    grammar = resources.files("vigil.dsl").joinpath("grammar.lark").read_text("utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True, start=["start", "query"])


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
    offset = len(text)
    if isinstance(error, UnexpectedToken):
        expected = set(error.accepts or error.expected)
        token: Token = error.token
        found_type = token.type
        if token.type != "$END":
            found = f"`{token.value}`"
            offset = int(token.start_pos) if token.start_pos is not None else offset
        else:
            line, column = _end_position(text)
    elif isinstance(error, UnexpectedCharacters):
        expected = set(error.allowed or ())
        offset = error.pos_in_stream if error.pos_in_stream is not None else len(text)
        found = f"`{text[offset]}`" if offset < len(text) else found
        found_type = "CHAR"
    elif isinstance(error, UnexpectedEOF):
        expected = set(error.expected)
        line, column = _end_position(text)
    span = Span(path, line, column, line, column + 1)
    plain = _plain_mistake(text, offset, found_type, expected)
    if plain is not None:
        return Diagnostic(plain[0], span, hint=plain[1], code="syntax")
    names = sorted({_describe(t) for t in expected if not t.startswith("__")})
    if len(names) > 8:
        names = names[:8] + ["…"]
    message = f"unexpected {found}"
    if names:
        message += "; expected " + (", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0])
    hint = next((h for f, e, h in _HINTS if f == found_type and e in expected), None)
    if hint is None and "VERDICT" in expected and re.search(r",\s*$", text[:offset]):
        hint = "a `,` after a rule's last action asks for another one: remove it"
    return Diagnostic(message, span, hint=hint, code="syntax")


# The text before a syntax error, for mistakes that the expected tokens alone do not explain.
_COMMA_BEFORE_ITEM = re.compile(r",[ \t]*(?:#[^\n]*)?\n\s*(rule|test|define|entity|list|schema|use)\s*$")
_AFTER_WHERE = re.compile(r"\bwhere\s+([A-Za-z_]\w*)\s*$")
_AFTER_ENTITY = re.compile(r"\bentity\s+([A-Za-z_]\w*)\s*=\s*(\(\s*(event(\.\w+)+\s*,\s*)*)?$")
_AFTER_VALUE = re.compile(r"(event(\.\w+)+|\))\s*$")
_AFTER_DURATION_WORD = re.compile(r"\b(for|within|after|last)\s*$")
_WINDOW = re.compile(r"\s(in\s+the\s+last\b|today\b)")
_FIELD = re.compile(r"\bevent(\.\w+)+")
_AFTER_OUTPUT_NAME = re.compile(r'\boutput\s+"(?:\\.|[^"\\\n])*"\s+with\b[^\n]*?([A-Za-z_]\w*)\s*$')


def _plain_mistake(text: str, offset: int, found_type: str, expected: set[str]) -> tuple[str, str] | None:
    """A plain message and hint for a mistake newcomers make, from the text around the error."""
    before = text[:offset]
    rest_of_line = text[offset:].split("\n", 1)[0]
    # The word after the comma is the unexpected token itself, or was read as an output's argument.
    next_word = re.match(r"\w*", rest_of_line)
    comma = _COMMA_BEFORE_ITEM.search(before) or _COMMA_BEFORE_ITEM.search(before + (next_word.group(0)
                                                                                       if next_word else ""))
    if comma is not None:
        line = before.count("\n", 0, comma.start()) + 1
        message = f"the `,` at the end of line {line} asks for another action, so this `{comma.group(1)}` is read as one"
        return message, "remove the `,` after a rule's last action"
    output_name = _AFTER_OUTPUT_NAME.search(before)
    if output_name is not None and "EQUAL" in expected and found_type != "EQUAL":
        name = output_name.group(1)
        return (f"`{name}` alone is no output argument: an output takes `subject ENTITY` and `name = value`",
                (f"write `subject {name}` to say whom it is about, or `{name} = …` to send a value, e.g. "
                 '`output "redact" with subject user, reason = "scam", id = event.id`'))
    where = _AFTER_WHERE.search(before)
    if where is not None and found_type not in expected:
        start = where.start(1)
        condition = text[start:].split("\n", 1)[0]
        window = _WINDOW.search(condition)
        example = condition[: window.start()].strip() if window else 'event is "like"'
        return ("a counter's `where` takes a definition's name or a condition in parentheses",
                f"write `where ({example})`, or `define NAME = {example}` and `where NAME`")
    entity = _AFTER_ENTITY.search(before)
    if entity is not None and found_type not in ("EVENT", "LPAR"):
        field = _FIELD.search(rest_of_line)
        suggestion = f"`entity {entity.group(1)} = {field.group(0) if field else 'event.actor.id'}`"
        if entity.group(2):  # inside a composite key
            suggestion = f"`entity {entity.group(1)} = (event.actor.id, event.target.id)`"
        call = re.match(r"([A-Za-z_]\w*)\s*\(", rest_of_line)
        what = f"a function such as `{call.group(1)}(...)`" if call else "an expression"
        message = (f"an entity's key is a field path (`event.actor.id`), or several in parentheses; "
                   f"{what} cannot be a key")
        hint = (f"key on the field itself, {suggestion}, and send the value in the form to count by "
                "(lower-cased, say) in the event; rules can still compare `lower(...)` of it")
        return message, hint
    value = _AFTER_VALUE.search(before) if found_type == "LSQB" else None
    if value is not None:
        hint = ("a field is a path of names (`event.links`); test a list whole with `contains`, "
                "`contains any of`, `in list`, `length(...)`, or send the item you need as a field of its own "
                "(`event.first_link.url`)")
        if value.group(1) == ")":
            return "a function's result cannot be indexed with `[...]`", hint
        return f"`{value.group(1)}[...]`: fields cannot be indexed", hint
    if found_type in ("NAME", "STRING") and "NUMBER" in expected and _AFTER_DURATION_WORD.search(before):
        word = rest_of_line.split()[0] if rest_of_line.split() else ""
        return (f"a duration is a number and a unit, such as `30 seconds` or `7 days`; `{word}` is not a number",
                "write the number itself: a definition or a field cannot be a duration")
    return None


def _end_position(text: str) -> tuple[int, int]:
    lines = text.rstrip().splitlines() or [""]
    return len(lines), len(lines[-1]) + 1


# A line that starts a top-level item: where parsing starts again after a syntax error.
_ITEM_START = re.compile(r"^[ \t]*(rule|test|define|entity|list|schema|use)\b", re.MULTILINE)
_DECLARES = re.compile(r'\s*(entity|define)\s+([A-Za-z_]\w*)|\s*(list|rule|test|use)\s+"((?:\\.|[^"\\\n])*)"'
                       r"|\s*(schema)\b")


def parse(text: str, path: str = "<rules>") -> tuple[ast.Module, list[Diagnostic]]:
    """Parse one rules file. Returns the module and no diagnostics; or, for a file with syntax errors,
    every error (one per top-level item that has one) and a module of the items that did parse, with an
    `Unparsed` item in place of each that did not."""
    module, _ = _parse_part(text, path)
    if module is not None:
        return module, []
    return _parse_items(text, path)


def _parse_part(text: str, path: str) -> tuple[ast.Module | None, UnexpectedInput | Diagnostic | None]:
    try:
        tree = _parser().parse(text, start="start")
    except UnexpectedInput as error:
        return None, error
    try:
        return ToAst(path).transform(tree), None
    except VisitError as error:  # a literal the grammar admits but the transformer cannot decode
        meta = getattr(error.obj, "meta", None)
        line, column = getattr(meta, "line", 1), getattr(meta, "column", 1)
        return None, Diagnostic(f"invalid literal: {error.orig_exc}", Span(path, line, column), code="syntax")


def _parse_items(text: str, path: str) -> tuple[ast.Module, list[Diagnostic]]:
    """Parse a file with a syntax error item by item, so one error does not hide the others. A part runs
    from one line that starts an item to the next; a part that ends too early (an item continued on a
    line starting with `rule` or `list`) takes in the next one. Parts are parsed at their own lines."""
    starts = [m.start(1) for m in _ITEM_START.finditer(text)]
    bounds = sorted({0, *(text.rindex("\n", 0, s) + 1 if "\n" in text[:s] else 0 for s in starts)})
    keyword_at = {text.rindex("\n", 0, s) + 1 if "\n" in text[:s] else 0: s for s in starts}
    bounds.append(len(text))
    items: list[ast.Item] = []
    diagnostics: list[Diagnostic] = []
    i = 0
    while i < len(bounds) - 1:
        start = bounds[i]
        padding = "\n" * text.count("\n", 0, start)  # so that lines and columns are the file's
        j = i + 1
        while True:
            part = padding + text[start:bounds[j]]
            module, error = _parse_part(part, path)
            if error is None:
                assert module is not None
                items.extend(module.items)
                i = j
                break
            at_end = isinstance(error, UnexpectedEOF) or (
                isinstance(error, UnexpectedToken) and error.token.type == "$END")
            if at_end and j < len(bounds) - 1:
                j += 1
                continue
            diagnostic = error if isinstance(error, Diagnostic) else _syntax_diagnostic(error, path, part)
            diagnostics.append(diagnostic)
            items.append(_unparsed(text, start, keyword_at.get(start), path))
            # Go on at the item that starts on the error's line or before it (past this part's own start),
            # else at the first one after it.
            error_offset = _error_offset(error, part) - len(padding) + start
            before = [k for k in range(i + 1, j + 1) if bounds[k] <= error_offset and k < len(bounds) - 1]
            i = before[-1] if before else next((k for k in range(i + 1, j + 1) if bounds[k] > error_offset), j)
            break
    return ast.Module(path, tuple(items)), diagnostics


def _error_offset(error: UnexpectedInput | Diagnostic, text: str) -> int:
    if isinstance(error, UnexpectedToken) and error.token.type != "$END" and error.token.start_pos is not None:
        return int(error.token.start_pos)
    if isinstance(error, UnexpectedCharacters) and error.pos_in_stream is not None:
        return int(error.pos_in_stream)
    return len(text)


def _unparsed(text: str, start: int, keyword: int | None, path: str) -> ast.Unparsed:
    line = text.count("\n", 0, start) + 1
    declares = _DECLARES.match(text, keyword if keyword is not None else start)
    kind, name = "", ""
    if declares is not None:
        kind = declares.group(1) or declares.group(3) or declares.group(5) or ""
        name = declares.group(2) or declares.group(4) or ""
    return ast.Unparsed(kind, name, Span(path, line, 1))


QUERY_PATH = "query"  # the file a search's diagnostics name: `query:1:12` is its line and column


def parse_query(text: str) -> tuple[ast.Query | None, list[Diagnostic]]:
    """Parse a search over the record (`CONDITION`, or `top EXPR where CONDITION`): the query, or its
    syntax error with the line and column in the query's own text."""
    try:
        tree = _parser().parse(text, start="query")
    except UnexpectedInput as error:
        found = _syntax_diagnostic(error, QUERY_PATH, text)
        message = found.message.replace("end of the file", "end of the query")
        return None, [dataclasses.replace(found, message=message)]
    try:
        query = ToAst(QUERY_PATH).transform(tree)
    except VisitError as error:
        meta = getattr(error.obj, "meta", None)
        line, column = getattr(meta, "line", 1), getattr(meta, "column", 1)
        return None, [Diagnostic(f"invalid literal: {error.orig_exc}", Span(QUERY_PATH, line, column), code="syntax")]
    assert isinstance(query, ast.Query)  # the query start symbol's two forms both build one
    return query, []
