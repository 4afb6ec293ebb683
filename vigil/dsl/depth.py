"""How deeply expressions nest, measured without recursion, before anything recursive sees them.

The checker and the compiler walk expressions recursively, and the compiled Python nests as the rules
do (a definition is computed where it is first used, inside the expression that uses it), so a rule
nested a thousand levels deep would raise RecursionError in the checker or a SyntaxError in Python's
own compiler. This module measures nesting with explicit stacks, following definitions, so the
checker can refuse what is too deep with a diagnostic. Flat chains (`a and b and c …`, `or`) are one
level however long, which is what generated rules look like.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from vigil.dsl import ast

# Generated Python nests a few parentheses per level and Python's parser allows 200 in one expression:
# 32 levels (definitions included) keeps every construct compilable. Rules written by people rarely
# pass 10; raising it would let a rules set through that Python then refuses.
MAX_NESTING = 32


def expression_depth(expr: ast.Expr, define_depth: Callable[[str], int],
                     children: Callable[[ast.Expr], tuple[ast.Expr, ...]]) -> int:
    """Levels of `expr`: 1 for a leaf, 1 + the deepest child otherwise; a reference to a definition
    counts as 1 + the definition's depth (its code is inlined where it is used)."""
    depths: dict[int, int] = {}  # by id(): hashing a deep frozen dataclass would itself recurse
    stack: list[tuple[ast.Expr, bool]] = [(expr, False)]
    while stack:
        node, children_done = stack.pop()
        kids = children(node)
        if not children_done:
            stack.append((node, True))
            stack.extend((kid, False) for kid in kids)
            continue
        if isinstance(node, ast.NameRef):
            depths[id(node)] = 1 + define_depth(node.name)
        else:
            depths[id(node)] = 1 + max((depths[id(kid)] for kid in kids), default=0)
    return depths[id(expr)]


def references(expr: ast.Expr, children: Callable[[ast.Expr], tuple[ast.Expr, ...]]) -> list[str]:
    """Names `expr` refers to, in order of appearance (iteratively)."""
    out: list[str] = []
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.NameRef):
            out.append(node.name)
        stack.extend(reversed(children(node)))
    return out


def definition_order(defines: Mapping[str, ast.Define],
                     children: Callable[[ast.Expr], tuple[ast.Expr, ...]]) -> tuple[list[str], list[list[str]]]:
    """Definitions in dependency order (each after those it uses), and the cycles found: each cycle as
    the names along it, first name repeated at the end. Iterative depth-first search."""
    refs = {name: [r for r in references(d.expr, children) if r in defines] for name, d in defines.items()}
    order: list[str] = []
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in defines:
        if root in state:
            continue
        path: list[str] = [root]
        pending: list[list[str]] = [list(reversed(refs[root]))]
        state[root] = 1
        while path:
            if pending[-1]:
                name = pending[-1].pop()
                if state.get(name) == 1:
                    cycles.append(path[path.index(name):] + [name])
                elif name not in state:
                    state[name] = 1
                    path.append(name)
                    pending.append(list(reversed(refs[name])))
                continue
            done = path.pop()
            pending.pop()
            state[done] = 2
            order.append(done)
    return order, cycles
