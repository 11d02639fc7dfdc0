"""The safe expression evaluator: what it accepts, how it computes, and what it refuses."""

from __future__ import annotations

import operator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsearch.errors import InputError
from archsearch.expressions import MAX_LENGTH, compile_expression


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("d_model % heads == 0", {"d_model": 192, "heads": 8}, True),
        ("d_model % heads == 0", {"d_model": 192, "heads": 5}, False),
        ("attention in ('local', 'lsra')", {"attention": "lsra"}, True),
        ("attention in ('local', 'lsra')", {"attention": "full"}, False),
        ("attention not in ['local', 'lsra']", {"attention": "full"}, True),
        ("memory != 'none'", {"memory": "xl"}, True),
        ("embed_dim == None or embed_dim < d_model", {"embed_dim": None, "d_model": 64}, True),
        ("embed_dim == None or embed_dim < d_model", {"embed_dim": 64, "d_model": 64}, False),
        ("1 < n < 4", {"n": 3}, True),
        ("1 < n < 4", {"n": 4}, False),
        ("not flag and n >= 2", {"flag": False, "n": 2}, True),
        ("-n + 3 * (n - 1) // 2", {"n": 5}, -5 + 3 * (5 - 1) // 2),
        ("n / 4 <= 0.5", {"n": 2}, True),
        ("x in (-1, 2.5, None, True)", {"x": -1}, True),
        ("(n)", {"n": 7}, 7),
        ("'abc'", {}, "abc"),
    ],
)
def test_accepted_expressions_compute_like_python(text, values, expected):
    expression = compile_expression(text)
    assert expression.evaluate(values) == expected
    assert type(expression.evaluate(values)) is type(expected)


def test_names_are_the_free_names():
    expression = compile_expression("d_model % heads == 0 and attention in ('local', 'x')")
    assert expression.names == frozenset({"d_model", "heads", "attention"})
    assert compile_expression("1 + 2").names == frozenset()


def test_boolean_operators_short_circuit():
    # The right-hand side would divide by zero; it must never run.
    assert compile_expression("x == 0 or 10 / x > 1").evaluate({"x": 0}) is True
    assert compile_expression("x != 0 and 10 / x > 1").evaluate({"x": 0}) is False


@pytest.mark.parametrize(
    "text",
    [
        "().__class__",
        "().__class__.__bases__[0].__subclasses__()",
        "__import__('os')",
        "__import__('os').system('true')",
        "x.__class__",
        "open('/etc/passwd')",
        "len(x)",
        "x[0]",
        "lambda: 1",
        "[i for i in x]",
        "{i for i in x}",
        "(i for i in x)",
        "x ** 2",
        "a if b else c",
        "(y := 1)",
        "{1: 2}",
        "{1}",
        "f'{x}'",
        "x is None",
        "x is not None",
        "x & 1",
        "x | 1",
        "~x",
        "x << 1",
        "b'bytes'",
        "1j",
        "...",
        "x in (y, 2)",
        "x in [len]",
    ],
)
def test_forbidden_constructs_are_rejected(text):
    with pytest.raises(InputError, match="not allowed"):
        compile_expression(text)


@pytest.mark.parametrize("text", ["x ==", "x = 1", "import os", "1; 2", "(x", "x y"])
def test_syntax_errors_are_input_errors(text):
    with pytest.raises(InputError, match="invalid expression"):
        compile_expression(text)


@pytest.mark.parametrize("text", ["", "   ", None, 3, ["x"]])
def test_empty_or_non_text_is_rejected(text):
    with pytest.raises(InputError):
        compile_expression(text)


def test_overlong_and_deeply_nested_expressions_give_input_errors():
    with pytest.raises(InputError, match="longer than"):
        compile_expression("x + " * MAX_LENGTH + "x")
    with pytest.raises(InputError):
        compile_expression("(" * 300 + "x" + ")" * 300)
    # Deep but legal nesting either evaluates correctly or is refused cleanly; never a crash.
    text = "-" * (MAX_LENGTH - 1) + "1"
    try:
        value = compile_expression(text).evaluate({})
    except InputError:
        return
    assert value == (-1) ** (MAX_LENGTH - 1)


def test_builtins_are_not_reachable_through_names():
    for name in ("len", "__builtins__", "__import__", "True_"):
        with pytest.raises(InputError, match=f"unknown name '{name}'"):
            compile_expression(name).evaluate({})


@pytest.mark.parametrize(
    ("text", "values", "fragment"),
    [
        ("d_model % heads == 0", {"d_model": 64}, "unknown name 'heads'"),
        ("x < 1", {"x": "a"}, "cannot compare"),
        ("x in 5", {"x": 1}, "cannot compare"),
        ("1 / x", {"x": 0}, "division by zero"),
        ("x % 0", {"x": 3}, "division by zero"),
        ("x * 3", {"x": "ab"}, "needs numbers"),
        ("x + 1", {"x": True}, "needs numbers"),
        ("-x", {"x": "a"}, "needs a number"),
    ],
)
def test_evaluation_errors_are_input_errors(text, values, fragment):
    with pytest.raises(InputError, match=fragment):
        compile_expression(text).evaluate(values)


# ---- property: random expression trees against Python's own operators ---------------------

_BINARY = [
    ("+", operator.add),
    ("-", operator.sub),
    ("*", operator.mul),
    ("//", operator.floordiv),
    ("%", operator.mod),
    ("/", operator.truediv),
]
_COMPARE = [
    ("<", operator.lt),
    ("<=", operator.le),
    (">", operator.gt),
    (">=", operator.ge),
    ("==", operator.eq),
    ("!=", operator.ne),
]
ENV = {"a": 7, "b": -3, "c": 2}


def _leaf():
    names = st.sampled_from(sorted(ENV)).map(lambda n: (n, ENV[n]))
    numbers = st.integers(-20, 20).map(lambda k: (str(k) if k >= 0 else f"({k})", k))
    return names | numbers


def _extend(children):
    def binary(parts):
        (symbol, op), (lt, lv), (rt, rv) = parts
        if symbol in ("//", "%", "/") and rv == 0:
            return (f"({lt} {symbol} 1)", op(lv, 1))
        return (f"({lt} {symbol} {rt})", op(lv, rv))

    def negate(part):
        text, value = part
        return (f"(-{text})", -value)

    return st.tuples(st.sampled_from(_BINARY), children, children).map(binary) | children.map(
        negate
    )


arithmetic = st.recursive(_leaf(), _extend, max_leaves=8)


@settings(max_examples=100, deadline=None)
@given(arithmetic)
def test_random_arithmetic_matches_python_operators(case):
    text, expected = case
    assert compile_expression(text).evaluate(ENV) == expected


@settings(max_examples=100, deadline=None)
@given(
    arithmetic, st.sampled_from(_COMPARE), arithmetic, st.sampled_from(["and", "or"]), st.booleans()
)
def test_random_comparisons_and_logic_match_python(left, comparison, right, joiner, flag):
    (lt, lv), (symbol, op), (rt, rv) = left, comparison, right
    text = f"{lt} {symbol} {rt} {joiner} not flag"
    compared = op(lv, rv)
    expected = (compared and not flag) if joiner == "and" else (compared or not flag)
    assert compile_expression(text).evaluate({**ENV, "flag": flag}) == expected


def test_precedence_follows_python():
    # Multiplication binds tighter than addition, comparison looser than arithmetic,
    # `not` looser than comparison, `and` tighter than `or`.
    values = {"x": 2, "y": 3}
    assert compile_expression("x + y * 2").evaluate(values) == 2 + 3 * 2
    assert compile_expression("x - y - 1").evaluate(values) == (2 - 3) - 1
    assert compile_expression("not x == 3").evaluate(values) is True
    assert compile_expression("x == 3 or x == 2 and y == 4").evaluate(values) is False
