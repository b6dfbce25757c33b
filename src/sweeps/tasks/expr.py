"""Exact arithmetic for the card game: a safe expression evaluator, the make-T solver and the
chain solver.

Evaluator. A formula is a string of non-negative integer literals, the binary operators
``+ - * /`` and parentheses. ``tokenize`` splits it into tokens (ASCII digits only, whitespace
skipped) and ``evaluate`` computes its value as a ``fractions.Fraction`` with the usual
precedence (``*`` and ``/`` bind tighter than ``+`` and ``-``, all left-associative). Evaluation
is Dijkstra's shunting-yard algorithm run iteratively: an operand stack, an operator stack, and a
flag saying whether an operand or an operator comes next, so no nesting depth can overflow the
Python stack. There is no unary minus. Every failure (unknown character, empty input, an operator
where an operand belongs, unbalanced parentheses, division by zero, an absurdly long literal, an
intermediate value whose numerator or denominator exceeds ``_MAX_VALUE_BITS`` bits) raises
``ExprError``; the value cap keeps the time linear in the text's length (a chain of long products
or quotients was quadratic). Python's ``eval`` is never used.

Solver. ``solve(values, target)`` returns every way to write ``target`` from four card values:
each distinct ordering of the values x each operator triple from ``+-*/`` x each of the five
bracketings (binary trees) of four operands, in that loop order, so the list (and its first
entry, the SFT reference) is deterministic. Solutions are written without spaces, with
parentheses around every inner node, e.g. ``8/(3-(8/3))``. Arithmetic is exact: each value is a
(numerator, denominator) pair of Python ints that is never normalised (only equality with the
target is needed: ``p/q == t`` iff ``p == t*q``); a zero divisor drops the candidate. Shared
sub-expressions are computed once per ordering, and results are cached per (sorted value
multiset, target) with ``functools.lru_cache``, so sampling hands is fast after the first visit
of each multiset.

Chain solver. ``chain_solutions(values, target)`` returns every answer of the chain format
(``sweeps.tasks.general_points``, ``answer_format: chain``): moves that each take two numbers
still on the table, write ``p o q = r`` and put r back, until the target alone is left (three
moves for four cards), every r a non-negative integer (``chain_step``: a subtraction must not go negative, a division must
come out whole). The search recurses over ordered pairs (unordered for ``+`` and ``*``, and each
``p o q`` once per table) in a fixed loop order, so the list is deterministic; results are cached
per (sorted values, target).
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable, Sequence
from fractions import Fraction

OPERATORS = "+-*/"
_TOKEN = re.compile(r"[0-9]+|[+\-*/()]")
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_MAX_LITERAL_DIGITS = 1000  # longer literals are rejected instead of parsed
_MAX_VALUE_BITS = 16_384  # larger values are rejected (four maximal literals multiply to ~13,300 bits)


class ExprError(ValueError):
    """Raised for a formula that cannot be evaluated: bad syntax or division by zero."""


def tokenize(text: str) -> list[str]:
    """Split ``text`` into integer literals, operators and parentheses (whitespace is skipped)."""
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExprError(f"unexpected character {text[pos]!r} at position {pos}")
        tokens.append(match.group())
        pos = match.end()
    return tokens


def _apply(operator: str, left: Fraction, right: Fraction) -> Fraction:
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    if operator == "*":
        return left * right
    if right == 0:
        raise ExprError("division by zero")
    return left / right


def evaluate(text: str) -> Fraction:
    """The exact value of ``text`` (see the module docstring); raises ``ExprError``."""
    values: list[Fraction] = []
    pending: list[str] = []  # operators and "(" not yet applied

    def reduce_top() -> None:
        right, left = values.pop(), values.pop()
        value = _apply(pending.pop(), left, right)
        if max(value.numerator.bit_length(), value.denominator.bit_length()) > _MAX_VALUE_BITS:
            raise ExprError("intermediate value too large")  # else a product chain grows quadratically
        values.append(value)

    expect_operand = True
    for token in tokenize(text):
        if token.isdigit():
            if not expect_operand:
                raise ExprError(f"number {token} follows an operand")
            if len(token) > _MAX_LITERAL_DIGITS:
                raise ExprError("integer literal too long")
            values.append(Fraction(int(token)))
            expect_operand = False
        elif token == "(":
            if not expect_operand:
                raise ExprError("'(' follows an operand")
            pending.append(token)
        elif token == ")":
            if expect_operand:
                raise ExprError("')' where an operand is expected")
            while pending and pending[-1] != "(":
                reduce_top()
            if not pending:
                raise ExprError("unmatched ')'")
            pending.pop()
        else:
            if expect_operand:
                raise ExprError(f"operator {token!r} where an operand is expected")
            while pending and pending[-1] != "(" and _PRECEDENCE[pending[-1]] >= _PRECEDENCE[token]:
                reduce_top()
            pending.append(token)
            expect_operand = True
    if expect_operand:
        raise ExprError("empty formula or trailing operator")
    while pending:
        if pending[-1] == "(":
            raise ExprError("unclosed '('")
        reduce_top()
    return values[0]


# --------------------------------------------------------------------------------------------
# Solver
# --------------------------------------------------------------------------------------------

# The five binary trees over a o1 b o2 c o3 d, as format templates (operators keep their
# left-to-right positions o1, o2, o3 in every tree).
BRACKETINGS = (
    "(({a}{o1}{b}){o2}{c}){o3}{d}",
    "({a}{o1}({b}{o2}{c})){o3}{d}",
    "({a}{o1}{b}){o2}({c}{o3}{d})",
    "{a}{o1}(({b}{o2}{c}){o3}{d})",
    "{a}{o1}({b}{o2}({c}{o3}{d}))",
)

Rational = tuple[int, int]  # (numerator, denominator), denominator != 0, not normalised


def _combine(op: str, x: Rational | None, y: Rational | None) -> Rational | None:
    """``x op y`` on unnormalised pairs; ``None`` marks a division by zero (propagated)."""
    if x is None or y is None:
        return None
    (p, q), (r, s) = x, y
    if op == "+":
        return (p * s + r * q, q * s)
    if op == "-":
        return (p * s - r * q, q * s)
    if op == "*":
        return (p * r, q * s)
    return (p * s, q * r) if r != 0 else None


def _solve_ordering(order: tuple[int, ...], target: int) -> list[str]:
    """All solutions for one card ordering, in (operator triple, bracketing) order."""
    a, b, c, d = ((v, 1) for v in order)
    # Sub-expressions that depend on one or two operators, computed once per ordering.
    ab = {o1: _combine(o1, a, b) for o1 in OPERATORS}
    bc = {o2: _combine(o2, b, c) for o2 in OPERATORS}
    cd = {o3: _combine(o3, c, d) for o3 in OPERATORS}
    found: list[str] = []
    for o1, o2 in itertools.product(OPERATORS, repeat=2):
        ab_c = _combine(o2, ab[o1], c)
        a_bc = _combine(o1, a, bc[o2])
        for o3 in OPERATORS:
            trees = (
                _combine(o3, ab_c, d),
                _combine(o3, a_bc, d),
                _combine(o2, ab[o1], cd[o3]),
                _combine(o1, a, _combine(o3, bc[o2], d)),
                _combine(o1, a, _combine(o2, b, cd[o3])),
            )
            for template, value in zip(BRACKETINGS, trees):
                if value is not None and value[0] == target * value[1]:
                    found.append(template.format(a=order[0], b=order[1], c=order[2], d=order[3], o1=o1, o2=o2, o3=o3))
    return found


@functools.lru_cache(maxsize=16384)
def _solve_sorted(values: tuple[int, ...], target: int) -> tuple[str, ...]:
    solutions: list[str] = []
    for order in sorted(set(itertools.permutations(values))):
        solutions.extend(_solve_ordering(order, target))
    return tuple(solutions)


def solve(values: Sequence[int], target: int) -> tuple[str, ...]:
    """Every solution string for four card ``values`` and ``target`` (empty if unsolvable)."""
    if len(values) != 4:
        raise ValueError(f"the solver takes exactly 4 card values, got {len(values)}")
    return _solve_sorted(tuple(sorted(int(v) for v in values)), int(target))


def is_solvable(values: Sequence[int], target: int) -> bool:
    return bool(solve(values, target))


# --------------------------------------------------------------------------------------------
# Chain solver
# --------------------------------------------------------------------------------------------


def chain_step(op: str, p: int, q: int) -> int | None:
    """``p op q`` if it is a non-negative integer (exact), else None."""
    if op == "+":
        return p + q
    if op == "*":
        return p * q
    if op == "-":
        return p - q if p >= q else None
    return p // q if q and p % q == 0 else None


def _chains(pool: tuple[int, ...], target: int) -> list[str]:
    """Every chain of moves that reduces ``pool`` to ``target`` with non-negative integer steps.

    A move takes two numbers (an ordered pair for - and /, unordered for + and *), writes
    ``p o q = r`` and puts r back; the recursion ends with one number, which must be the target."""
    if len(pool) == 1:
        return [""] if pool[0] == target else []
    found: list[str] = []
    seen: set[tuple[int, str, int]] = set()
    for i, j in itertools.permutations(range(len(pool)), 2):
        p, q = pool[i], pool[j]
        rest = tuple(v for k, v in enumerate(pool) if k not in (i, j))
        for op in OPERATORS:
            if (op in "+*" and p < q) or (p, op, q) in seen:
                continue
            seen.add((p, op, q))
            r = chain_step(op, p, q)
            if r is None:
                continue
            head = f"{p}{op}{q}={r}"
            found += [head + (";" + tail if tail else "") for tail in _chains(tuple(sorted(rest + (r,))), target)]
    return found


@functools.lru_cache(maxsize=65536)  # the pretraining mixture has ~56k (multiset, target) pairs
def _chain_solutions_sorted(values: tuple[int, ...], target: int) -> tuple[str, ...]:
    return tuple(_chains(values, target))


def chain_solutions(values: Iterable[int], target: int) -> tuple[str, ...]:
    """Every chain answer (``"a+b=x;x*c=y;y-d=T"``) for the card values, in a fixed order;
    cached per (sorted values, target)."""
    return _chain_solutions_sorted(tuple(sorted(int(v) for v in values)), int(target))
