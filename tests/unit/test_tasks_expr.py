"""The card game's exact arithmetic (``sweeps.tasks.expr``): the evaluator against hand-worked
values and bad input, the make-T solver against a brute force over every tree and an independent
pairwise search."""

import itertools
import random
from fractions import Fraction

import pytest

from sweeps.tasks.expr import ExprError, evaluate, solve, tokenize

# --- exact evaluator ---------------------------------------------------------------------------


def test_evaluator_is_exact_and_follows_precedence():
    assert evaluate("8/(3-8/3)") == 24  # 3 - 8/3 = 1/3 exactly; a float gives 23.999...
    assert evaluate("1+2*3-4/2") == 5  # 1 + 6 - 2
    assert evaluate("8-3-2") == 3  # left-associative: (8-3)-2
    assert evaluate("2*(3+4)") == 14
    assert evaluate(" 1 / 3 ") == Fraction(1, 3)
    assert tokenize("(12+ 3)") == ["(", "12", "+", "3", ")"]


@pytest.mark.parametrize("bad", ["", "(8", "8)", "1+", "*2", "1/(2-2)", "3(4)", "2 3", "1.5", "x", "-1+2"])
def test_evaluator_raises_expr_error(bad):
    with pytest.raises(ExprError):
        evaluate(bad)


# --- solver ------------------------------------------------------------------------------------


def all_tree_strings(values):
    """Every 4-leaf binary tree written like the solver, built by recursion over split points."""

    def trees(leaves):
        if len(leaves) == 1:
            yield str(leaves[0])
            return
        for k in range(1, len(leaves)):
            for left in trees(leaves[:k]):
                for right in trees(leaves[k:]):
                    for op in "+-*/":
                        yield (left, op, right)

    def render(node, root=True):
        if isinstance(node, str):
            return node
        text = render(node[0], False) + node[1] + render(node[2], False)
        return text if root else f"({text})"

    for order in set(itertools.permutations(values)):
        yield from (render(t) for t in trees(list(order)))


def brute_force_solutions(values, target):
    found = set()
    for text in all_tree_strings(values):
        try:
            if evaluate(text) == target:
                found.add(text)
        except ExprError:  # division by zero
            pass
    return found


@pytest.mark.parametrize(
    "values,target",
    [((1, 2, 3, 4), 24), ((3, 3, 8, 8), 24), ((1, 5, 5, 5), 24), ((1, 11, 12, 13), 24), ((2, 3, 4, 5), 10)],
)
def test_solver_returns_exactly_the_brute_force_set(values, target):
    sols = solve(values, target)
    assert len(sols) == len(set(sols))
    assert set(sols) == brute_force_solutions(values, target)
    assert all(" " not in s and evaluate(s) == target for s in sols)


def pairwise_solvable(nums, target):
    """Independent check: repeatedly combine any two numbers (exact Fractions)."""
    if len(nums) == 1:
        return nums[0] == target
    for i, j in itertools.permutations(range(len(nums)), 2):
        rest = [n for k, n in enumerate(nums) if k not in (i, j)]
        x, y = nums[i], nums[j]
        results = [x + y, x - y, x * y] + ([x / y] if y else [])
        if any(pairwise_solvable(rest + [r], target) for r in results):
            return True
    return False


def test_solver_solvability_matches_pairwise_search():
    rng = random.Random(7)
    multisets = list(itertools.combinations_with_replacement(range(1, 14), 4))
    for values in rng.sample(multisets, 60):
        assert bool(solve(values, 24)) == pairwise_solvable([Fraction(v) for v in values], 24), values


def test_solver_known_hands_and_counts():
    assert solve([8, 3, 8, 3], 24) == ("8/(3-(8/3))",)  # the only way, via 1/3
    assert solve([1, 1, 1, 1], 24) == ()
    assert solve([3, 8, 3, 8], 24) is solve([8, 8, 3, 3], 24)  # cached per sorted multiset
    # Well-known count: 1362 of the 1820 multisets of 1..13 make 24.
    solvable = sum(bool(solve(v, 24)) for v in itertools.combinations_with_replacement(range(1, 14), 4))
    assert solvable == 1362
