"""A small, safe payoff-expression language: arithmetic on named variables, never Python eval.

Grammar (parsed with Python's `ast` module, then checked node by node against a whitelist):

    expr := number | name | expr (+ - * / **) expr | -expr | +expr | (expr)
          | min(expr, expr, ...) | max(expr, expr, ...) | abs(expr)

Numbers are int or float literals (booleans, strings, complex numbers are rejected). Names must be
declared variables. Anything else (attribute access, subscripts, lambdas, comparisons, keyword
arguments, other calls such as `__import__('os')`) is an `ExprError` naming the offending piece.
Evaluation works on floats and numpy arrays alike (vectorised over any broadcastable shapes), so a
payoff table is one call. Division by zero gives inf/nan (numpy semantics), never an exception.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_LENGTH", "ExprError", "Expression", "compile_expr"]

#: Longest accepted source text and deepest accepted nesting (guards against pathological input).
MAX_LENGTH = 500
MAX_DEPTH = 40

_BINOPS: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: np.true_divide,
    ast.Pow: np.power,
}
_UNARY: dict[type, Callable] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCS: dict[str, Callable] = {
    "min": lambda *a: _reduce(np.minimum, a),
    "max": lambda *a: _reduce(np.maximum, a),
    "abs": np.abs,
}
_ARITY = {"min": (2, None), "max": (2, None), "abs": (1, 1)}


def _reduce(fn: Callable, args: tuple) -> object:
    out = args[0]
    for a in args[1:]:
        out = fn(out, a)
    return out


class ExprError(ValueError):
    """An expression is not in the language or uses an undeclared variable."""


@dataclass(frozen=True)
class Expression:
    """A checked expression: `names` are the variables it reads; call it with their values."""

    source: str
    names: frozenset[str]
    _fn: Callable[[Mapping[str, object]], object]

    def __call__(self, env: Mapping[str, object]) -> np.ndarray | float:
        missing = sorted(self.names - set(env))
        if missing:
            raise ExprError(f"expression {self.source!r}: no value for {missing}")
        try:
            with np.errstate(divide="ignore", invalid="ignore", over="raise"):
                out = self._fn(env)
        except (FloatingPointError, OverflowError):
            raise ExprError(
                f"expression {self.source!r}: the result is too large (it overflows a 64-bit float, about 1.8e308)"
            ) from None
        return np.asarray(out, dtype=np.float64) if isinstance(out, np.ndarray) else float(out)


def _where(node: ast.AST) -> str:
    col = getattr(node, "col_offset", None)
    return "" if col is None else f" at column {col + 1}"


def _build(node: ast.AST, src: str, names: set[str], depth: int) -> Callable:
    if depth > MAX_DEPTH:
        raise ExprError(f"expression {src!r} is nested deeper than {MAX_DEPTH} levels")
    d = depth + 1
    if isinstance(node, ast.Constant):
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ExprError(
                f"expression {src!r}: only numbers are allowed as constants, got {v!r}{_where(node)}"
            )
        val = float(v)
        return lambda env: val
    if isinstance(node, ast.Name):
        name = node.id
        if name in _FUNCS:
            raise ExprError(
                f"expression {src!r}: {name!r} is a function; call it as {name}(...){_where(node)}"
            )
        names.add(name)
        return lambda env: env[name]
    if isinstance(node, ast.BinOp):
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise ExprError(
                f"expression {src!r}: operator {type(node.op).__name__} not allowed{_where(node)}; "
                "allowed: + - * / **"
            )
        left, right = _build(node.left, src, names, d), _build(node.right, src, names, d)
        return lambda env: op(left(env), right(env))
    if isinstance(node, ast.UnaryOp):
        op = _UNARY.get(type(node.op))
        if op is None:
            raise ExprError(f"expression {src!r}: unary {type(node.op).__name__} not allowed{_where(node)}")
        inner = _build(node.operand, src, names, d)
        return lambda env: op(inner(env))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS:
            what = ast.unparse(node.func)
            raise ExprError(
                f"expression {src!r}: call of {what!r} not allowed{_where(node)}; allowed functions: {sorted(_FUNCS)}"
            )
        fname = node.func.id
        if node.keywords:
            raise ExprError(f"expression {src!r}: keyword arguments not allowed in {fname}(){_where(node)}")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise ExprError(f"expression {src!r}: starred arguments not allowed{_where(node)}")
        lo, hi = _ARITY[fname]
        n = len(node.args)
        if n < lo or (hi is not None and n > hi):
            need = f"exactly {lo}" if lo == hi else f"at least {lo}"
            raise ExprError(f"expression {src!r}: {fname}() takes {need} argument(s), got {n}{_where(node)}")
        args = [_build(a, src, names, d) for a in node.args]
        fn = _FUNCS[fname]
        return lambda env: fn(*(a(env) for a in args))
    kind = type(node).__name__
    hint = {
        "Attribute": "attribute access",
        "Subscript": "indexing",
        "Lambda": "lambda",
        "Compare": "comparison",
        "BoolOp": "and/or",
        "IfExp": "if/else",
    }.get(kind, kind)
    raise ExprError(f"expression {src!r}: {hint} is not allowed{_where(node)}; only arithmetic on variables")


def compile_expr(source: str | int | float, allowed: Iterable[str] | None = None) -> Expression:
    """Parse and check `source`; with `allowed`, every variable must be one of those names."""
    if isinstance(source, bool):
        raise ExprError(f"expression {source!r}: a boolean is not a number")
    if isinstance(source, (int, float)):
        try:
            val = float(source)
        except OverflowError:
            raise ExprError(f"number {source!r}: the value is too large for a 64-bit float") from None
        if not np.isfinite(val):
            raise ExprError(f"number {source!r} is not finite")
        return Expression(repr(source), frozenset(), lambda env: val)
    if not isinstance(source, str):
        raise ExprError(f"expression must be a number or a string, got {type(source).__name__}")
    src = source.strip()
    if not src:
        raise ExprError("expression is empty")
    if len(src) > MAX_LENGTH:
        raise ExprError(f"expression is {len(src)} characters long; at most {MAX_LENGTH} allowed")
    try:
        tree = ast.parse(src, mode="eval")
    except SyntaxError as err:
        raise ExprError(
            f"expression {src!r} is not valid arithmetic: {err.msg} at column {err.offset}"
        ) from None
    names: set[str] = set()
    fn = _build(tree.body, src, names, 0)
    if allowed is not None:
        unknown = sorted(names - set(allowed))
        if unknown:
            raise ExprError(
                f"expression {src!r} uses undefined variable(s) {unknown}; defined: {sorted(set(allowed))}"
            )
    return Expression(src, frozenset(names), fn)
