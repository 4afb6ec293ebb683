"""Syntax tree → rules text, for explanations and messages ("recent_posts > 20")."""

from __future__ import annotations

import json

from vigil.dsl import ast


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _coll(c: ast.Collection) -> str:
    return f"list {json.dumps(c.name)}" if isinstance(c, ast.ListRef) else unparse(c)


def unparse(e: ast.Expr) -> str:
    if isinstance(e, ast.Number):
        return _num(e.value)
    if isinstance(e, ast.String):
        return json.dumps(e.value, ensure_ascii=False)
    if isinstance(e, ast.Duration):
        return e.text
    if isinstance(e, ast.Bool):
        return "true" if e.value else "false"
    if isinstance(e, ast.ListLit):
        return "[" + ", ".join(unparse(i) for i in e.items) + "]"
    if isinstance(e, ast.Field):
        return f"event.{e.dotted}"
    if isinstance(e, ast.NameRef):
        return e.name
    if isinstance(e, ast.Call):
        return f"{e.name}(" + ", ".join(unparse(a) for a in e.args) + ")"
    if isinstance(e, (ast.Arith, ast.Compare)):
        return f"{unparse(e.left)} {e.op} {unparse(e.right)}"
    if isinstance(e, ast.Crosses):
        return f"{unparse(e.counter)} crosses {unparse(e.threshold)}"
    if isinstance(e, ast.TextOp):
        return f"{unparse(e.left)} {e.op.replace('_', ' ')} {unparse(e.right)}"
    if isinstance(e, ast.ContainsAny):
        return f"{unparse(e.left)} contains any of {_coll(e.collection)}"
    if isinstance(e, ast.Matches):
        return f"{unparse(e.left)} matches /{e.pattern}/{e.flags}"
    if isinstance(e, ast.In):
        return f"{unparse(e.left)} {'not in' if e.negated else 'in'} {_coll(e.collection)}"
    if isinstance(e, ast.Missing):
        return f"{unparse(e.operand)} {'exists' if e.negated else 'is missing'}"
    if isinstance(e, ast.EventIs):
        if len(e.types) == 1:
            return f"event is {json.dumps(e.types[0])}"
        return "event is any of [" + ", ".join(json.dumps(t) for t in e.types) + "]"
    if isinstance(e, ast.ClassifierCall):
        label = " label" if e.want == "label" else ""
        return f"classifier {json.dumps(e.name)}{label} on {unparse(e.arg)}"
    if isinstance(e, ast.PolicyFinds):
        return f"policy {json.dumps(e.name)} finds {unparse(e.arg)} violating"
    if isinstance(e, ast.BankMatch):
        within = f" within {e.within}" if e.within is not None else ""
        return f"{unparse(e.arg)} matches bank {json.dumps(e.bank)}{within}"
    if isinstance(e, ast.HasLabel):
        return f"{e.entity} has {'manual ' if e.manual else ''}label {json.dumps(e.label)}"
    if isinstance(e, ast.RuleFired):
        return f"rule {json.dumps(e.rule, ensure_ascii=False)} fired"
    if isinstance(e, ast.VerdictIs):
        return f"verdict is {e.verdict}"
    if isinstance(e, ast.And):
        return " and ".join(_paren(i, ast.Or) for i in e.items)
    if isinstance(e, ast.Or):
        return " or ".join(unparse(i) for i in e.items)
    if isinstance(e, ast.Not):
        return "not " + _paren(e.item, (ast.And, ast.Or))
    if isinstance(e, ast.Counter):
        where = f" where ({unparse(e.where)})" if e.where is not None else ""
        if e.kind == "count":
            if not e.types:
                what = "events"
            elif len(e.types) == 1:
                what = json.dumps(e.types[0])
            else:
                what = "[" + ", ".join(json.dumps(t) for t in e.types) + "]"
            return f"count of {what} by {e.entity}{where} {e.window_text}"
        assert e.value is not None
        head = "count distinct" if e.kind == "distinct" else "sum of"
        return f"{head} {unparse(e.value)} for {e.entity}{where} {e.window_text}"
    raise TypeError(f"cannot unparse {e!r}")  # pragma: no cover


def _paren(e: ast.Expr, kinds: type | tuple[type, ...]) -> str:
    text = unparse(e)
    return f"({text})" if isinstance(e, kinds) else text
