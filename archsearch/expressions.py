"""Small, safe expressions for search-space conditions and constraints.

Users write conditions such as ``attention in ('local', 'lsra')`` and constraints such as
``d_model % heads == 0`` in YAML. The text is parsed with :mod:`ast` and only a whitelist of node
types is accepted; the accepted tree is turned into plain Python closures, so nothing is ever
compiled to bytecode or handed to ``eval``. No calls, attributes, subscripts or comprehensions
means no way to reach objects beyond the values the caller passes in.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from archsearch.errors import InputError

MAX_LENGTH = 1000  # characters; conditions are one-liners, and this bounds parser work

Evaluator = Callable[[Mapping[str, Any]], Any]

_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ARITHMETIC: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", operator.add),
    ast.Sub: ("-", operator.sub),
    ast.Mult: ("*", operator.mul),
    ast.Div: ("/", operator.truediv),
    ast.FloorDiv: ("//", operator.floordiv),
    ast.Mod: ("%", operator.mod),
}
_LITERAL_TYPES = (bool, int, float, str, type(None))

# Friendly names for constructs people might try; anything else is reported by its AST name.
_FORBIDDEN_NAMES: dict[type, str] = {
    ast.Call: "function calls",
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.IfExp: "conditional expressions (x if c else y)",
    ast.NamedExpr: "assignment expressions",
    ast.Dict: "dictionaries",
    ast.Set: "sets",
    ast.Starred: "starred expressions",
    ast.JoinedStr: "f-strings",
    ast.Pow: "the ** operator",
    ast.Is: "'is' (use ==)",
    ast.IsNot: "'is not' (use !=)",
    ast.BitAnd: "bitwise operators (use and)",
    ast.BitOr: "bitwise operators (use or)",
    ast.BitXor: "bitwise operators",
    ast.LShift: "bitwise operators",
    ast.RShift: "bitwise operators",
    ast.Invert: "bitwise operators (use not)",
    ast.MatMult: "the @ operator",
}


class Expression:
    """A checked expression: its source text, the names it reads, and how to evaluate it."""

    __slots__ = ("_run", "names", "text")

    def __init__(self, text: str, names: frozenset[str], run: Evaluator):
        self.text = text
        self.names = names
        self._run = run

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        """Value of the expression with ``values`` bound to its names.

        Raises ``InputError`` when a name is missing or an operation fails (say ``'a' < 1``).
        """
        return self._run(values)

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def __str__(self) -> str:
        return self.text


def compile_expression(text: str) -> Expression:
    """Parse and check ``text``; raises ``InputError`` on bad syntax or a forbidden construct."""
    if not isinstance(text, str):
        raise InputError(f"an expression must be a string, got {text!r}")
    if not text.strip():
        raise InputError("an expression must not be empty")
    if len(text) > MAX_LENGTH:
        raise InputError(f"expression is longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        where = f" at column {exc.offset}" if exc.offset else ""
        raise InputError(f"invalid expression {text!r}: {exc.msg}{where}") from None
    except (RecursionError, MemoryError, ValueError):
        raise InputError(f"expression is nested too deeply or malformed: {text!r}") from None
    names: set[str] = set()
    try:
        run = _Builder(text, names).build(tree.body)
    except RecursionError:
        raise InputError(f"expression is nested too deeply: {text!r}") from None
    return Expression(text, frozenset(names), run)


class _Builder:
    """Turns an accepted AST into a closure; rejects every node it does not know."""

    def __init__(self, text: str, names: set[str]):
        self.text = text
        self.names = names

    def build(self, node: ast.AST) -> Evaluator:
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, (ast.Tuple, ast.List)):
            value = self.literal(node)
            return lambda env: value
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.BoolOp):
            return self._boolop(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        self.reject(node)

    def reject(self, node: ast.AST, what: str | None = None) -> NoReturn:
        kind = what or _FORBIDDEN_NAMES.get(type(node), f"'{type(node).__name__}'")
        column = getattr(node, "col_offset", None)
        where = f" (column {column + 1})" if column is not None else ""
        raise InputError(f"{kind} not allowed in expression {self.text!r}{where}")

    def literal(self, node: ast.AST) -> Any:
        """The value of a literal: constants, negative numbers, tuples/lists of literals."""
        if isinstance(node, ast.Constant):
            self._check_constant(node)
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = node.operand
            if isinstance(operand, ast.Constant) and _is_number(operand.value):
                return -operand.value if isinstance(node.op, ast.USub) else operand.value
        if isinstance(node, (ast.Tuple, ast.List)):
            return tuple(self.literal(element) for element in node.elts)
        self.reject(node, "names or operations inside a tuple or list (literals only)")

    def _check_constant(self, node: ast.Constant) -> None:
        if not isinstance(node.value, _LITERAL_TYPES):
            self.reject(node, f"the literal {node.value!r}")

    def _constant(self, node: ast.Constant) -> Evaluator:
        self._check_constant(node)
        value = node.value
        return lambda env: value

    def _name(self, name: str) -> Evaluator:
        self.names.add(name)
        text = self.text

        def lookup(env: Mapping[str, Any]) -> Any:
            try:
                return env[name]
            except KeyError:
                raise InputError(f"unknown name '{name}' in expression {text!r}") from None

        return lookup

    def _compare(self, node: ast.Compare) -> Evaluator:
        for op in node.ops:
            if type(op) not in _COMPARE:
                self.reject(node, _operator_name(op))
        operands = [self.build(node.left)] + [self.build(c) for c in node.comparators]
        ops = [_COMPARE[type(op)] for op in node.ops]
        text = self.text

        def compare(env: Mapping[str, Any]) -> bool:
            left = operands[0](env)
            for op, right_of in zip(ops, operands[1:], strict=True):
                right = right_of(env)
                try:
                    if not op(left, right):
                        return False
                except TypeError:
                    raise InputError(
                        f"cannot compare {left!r} with {right!r} in expression {text!r}"
                    ) from None
                left = right
            return True

        return compare

    def _boolop(self, node: ast.BoolOp) -> Evaluator:
        parts = [self.build(value) for value in node.values]
        if isinstance(node.op, ast.And):

            def conjunction(env: Mapping[str, Any]) -> Any:
                result: Any = True
                for part in parts:
                    result = part(env)
                    if not result:
                        return result
                return result

            return conjunction

        def disjunction(env: Mapping[str, Any]) -> Any:
            result: Any = False
            for part in parts:
                result = part(env)
                if result:
                    return result
            return result

        return disjunction

    def _unary(self, node: ast.UnaryOp) -> Evaluator:
        operand = self.build(node.operand)
        if isinstance(node.op, ast.Not):
            return lambda env: not operand(env)
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            sign = -1 if isinstance(node.op, ast.USub) else 1
            symbol = "-" if sign < 0 else "+"
            text = self.text

            def signed(env: Mapping[str, Any]) -> Any:
                value = operand(env)
                if not _is_number(value):
                    raise InputError(f"unary {symbol} needs a number, got {value!r} in {text!r}")
                return sign * value

            return signed
        self.reject(node, _operator_name(node.op))

    def _binop(self, node: ast.BinOp) -> Evaluator:
        if type(node.op) not in _ARITHMETIC:
            self.reject(node, _operator_name(node.op))
        symbol, op = _ARITHMETIC[type(node.op)]
        left_of, right_of = self.build(node.left), self.build(node.right)
        text = self.text

        def arithmetic(env: Mapping[str, Any]) -> Any:
            left, right = left_of(env), right_of(env)
            # Numbers only: keeps 'a' * 10**9 style memory bombs out and errors clear.
            if not (_is_number(left) and _is_number(right)):
                raise InputError(
                    f"'{symbol}' needs numbers, got {left!r} and {right!r} in expression {text!r}"
                )
            try:
                return op(left, right)
            except ZeroDivisionError:
                raise InputError(f"division by zero in expression {text!r}") from None
            except OverflowError:  # e.g. 192 / 10**400: the quotient does not fit a float
                raise InputError(
                    f"a number too large for '{symbol}' in expression {text!r}"
                ) from None

        return arithmetic


def _operator_name(op: ast.AST) -> str:
    return _FORBIDDEN_NAMES.get(type(op), f"the operator '{type(op).__name__}'")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
