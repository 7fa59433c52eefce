"""The payoff expression language: arithmetic on declared names only, never Python eval."""

from __future__ import annotations

import numpy as np
import pytest

from scenarios.expr import ExprError, compile_expr


def test_arithmetic_and_functions() -> None:
    e = compile_expr("endowment - c + m * total / n", {"endowment", "c", "m", "total", "n"})
    assert e.names == {"endowment", "c", "m", "total", "n"}
    assert e({"endowment": 20, "c": 5, "m": 1.6, "total": 40, "n": 4}) == pytest.approx(31.0)
    f = compile_expr("max(a, 0) - min(a, b, 2) + abs(-a) ** 2 + -b")
    assert f({"a": 3, "b": 1}) == pytest.approx(3 - 1 + 9 - 1)


def test_vectorised() -> None:
    e = compile_expr("x * y + 1")
    out = e({"x": np.arange(3.0)[:, None], "y": np.arange(2.0)[None, :]})
    np.testing.assert_allclose(out, [[1, 1], [1, 2], [1, 3]])


def test_numbers_pass_through() -> None:
    assert compile_expr(5)({}) == 5.0
    with pytest.raises(ExprError, match="boolean"):
        compile_expr(True)


@pytest.mark.parametrize(
    ("src", "message"),
    [
        ("__import__('os')", "call of '__import__' not allowed"),
        ("os.system('ls')", "not allowed"),
        ("x.__class__", "attribute access"),
        ("(lambda: 1)()", "not allowed"),
        ("lambda x: x", "lambda"),
        ("x[0]", "indexing"),
        ("x < 3", "comparison"),
        ("x and y", "and/or"),
        ("1 if x else 2", "if/else"),
        ("'text'", "only numbers"),
        ("x // 2", "FloorDiv"),
        ("x % 2", "Mod"),
        ("min(x)", "at least 2"),
        ("abs(x, y)", "exactly 1"),
        ("max(*x)", "starred"),
        ("max(x, key=y)", "keyword"),
        ("exec('1')", "not allowed"),
        ("[x for x in y]", "ListComp"),
        ("x = 1", "not valid arithmetic"),
        ("", "empty"),
        ("min", "is a function"),
    ],
)
def test_rejected(src: str, message: str) -> None:
    with pytest.raises(ExprError, match=message):
        compile_expr(src)


def test_undefined_variable_named() -> None:
    with pytest.raises(ExprError, match=r"undefined variable\(s\) \['Q'\]"):
        compile_expr("R + Q", {"R", "S"})


def test_length_and_depth_limits() -> None:
    with pytest.raises(ExprError, match="characters"):
        compile_expr("+".join(["x"] * 400))
    with pytest.raises(ExprError, match="nested deeper"):
        compile_expr("-" * 60 + "x")


def test_huge_power_is_refused_as_too_large_not_hang() -> None:
    for src in ("10 ** 10 ** 10", "9**9**9**9"):
        with pytest.raises(ExprError, match="the result is too large"):
            compile_expr(src)({})
    with pytest.raises(ExprError, match="not finite"):
        compile_expr(float("inf"))
    assert np.isinf(compile_expr("1 / x")({"x": 0.0}))  # a division by zero is named by the payoff check
