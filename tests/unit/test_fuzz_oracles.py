"""Graders under fuzzing, the other side: correct answers still grade correct and wrong ones do
not. Hand-computed formulas and matrix answers (deep parentheses, spaces, megabyte padding around
a right answer; unicode digits, floats and near misses around a wrong one), then hypothesis
against independent oracles: an expression-tree evaluator in ``fractions.Fraction`` for
``expr.evaluate`` and the GeneralPoints grader, and the exact answer for the matrix tasks. The
purpose and the hostile-input cases are in ``test_fuzz_graders.py``; the harness in
``grader_fuzzing.py``.
"""

from __future__ import annotations

import json
from datetime import timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sweeps.tasks import Example, Grade
from sweeps.tasks.determinant import exact_det
from sweeps.tasks.expr import ExprError, evaluate
from sweeps.tasks.rank import exact_rank
from tests.unit.grader_fuzzing import (
    CALL_BUDGET_S,
    DET,
    DET_2,
    DET_3,
    GP_EXAMPLES,
    GP_TASKS,
    HAND_1234,
    HAND_3388,
    HAND_K,
    MATRIX_CASES,
    MB,
    RANK,
    RANK_2,
    graded,
    timed_grade,
)

# A Python-level hang fails instead of blocking the suite.
pytestmark = pytest.mark.timeout(120)

# --- correct answers still grade correct (hand-computed) ----------------------------------------
DEEP = 5000


@pytest.mark.parametrize(
    ("example", "formula"),
    [
        (HAND_3388, "8/(3-8/3)"),  # 3 - 8/3 = 1/3, 8 / (1/3) = 24
        (HAND_3388, " 8 / ( 3 - 8 / 3 ) = 24"),  # spaces and the "= result" tail are ignored
        (HAND_3388, "(" * DEEP + "8/(3-8/3)" + ")" * DEEP),
        (HAND_3388, "8/(" + "(" * DEEP + "3-8/3" + ")" * DEEP + ")"),
        (HAND_1234, "1*2*3*4"),
        (HAND_1234, "(1+2+3)*4"),
        (HAND_1234, "4*(3+2+1)"),
        (HAND_1234, "(1+3)*(4+2)"),
        (HAND_K, "13-12/2*1"),
        (HAND_K, "(13-12/2)/1"),
        (HAND_K, "1*13-12/2"),  # 13 - 6 = 7
    ],
)
def test_correct_formulas_grade_correct_in_every_answer_format(example, formula):
    for task in GP_TASKS.values():
        values = " ".join(map(str, example.values))
        reply = {"bare": formula, "values": f"{values} ; {formula}"}.get(
            task.answer_format, json.dumps({"formula": formula})
        )
        grade = timed_grade(task, example, reply)
        assert grade == Grade(5.0, True), (task.answer_format, formula[:40], grade)


@pytest.mark.parametrize(
    ("example", "formula", "error"),
    [
        (HAND_3388, "8/(3-8/3)", None),  # control: correct
        (Example("id", {**HAND_3388.data, "target": 25}), "8/(3-8/3)", "wrong_result"),
        (HAND_3388, "8*3", "incorrect_number"),
        (HAND_3388, "24", "incorrect_number"),
        (HAND_3388, "8/(3-8/3)*1", "incorrect_number"),
        (HAND_3388, "8/(3-8/3)+8-8", "incorrect_number"),
        (HAND_3388, "8/(3-8/3)+0", "incorrect_number"),
        (HAND_3388, "8/(3-3)*8", "wrong_result"),
        (HAND_3388, "8.0/(3-8/3)", "illegal_formula"),
        (HAND_3388, "٨/(٣-٨/٣)", "illegal_formula"),
        (HAND_3388, "８/(３-８/３)", "illegal_formula"),
        (HAND_3388, "8/(3-8/3)²", "illegal_formula"),
        (HAND_3388, "eval('8/(3-8/3)')", "illegal_formula"),
        (HAND_3388, "-8/(8/3-3)", "illegal_formula"),
        (HAND_3388, "8/(3-(8/3", "partial_solution"),  # unclosed, a prefix of the solver's 8/(3-(8/3))
        (HAND_3388, "8/(3-8/3", "wrong_result"),  # unclosed, but no solver solution starts so
        (HAND_3388, "8/(3-(8/3))/(", "wrong_result"),
        (HAND_1234, "1+2+3+4", "wrong_result"),
        (HAND_1234, "1*2*3*4*1", "incorrect_number"),
    ],
)
def test_wrong_formulas_do_not_grade_correct(example, formula, error):
    grade = timed_grade(GP_TASKS["json"], example, json.dumps({"formula": formula}))
    if error is None:
        assert grade.correct
    else:
        assert not grade.correct and error in grade.errors, (formula, grade)


@pytest.mark.parametrize(("task", "example", "truth"), [(DET, DET_2, -2), (DET, DET_3, 6), (RANK, RANK_2, 2)])
def test_matrix_answers_hand_computed(task, example, truth):
    assert (exact_det if task is DET else exact_rank)(example.matrix) == truth
    right = [
        json.dumps({"answer": truth}),
        json.dumps({"answer": f" {truth} "}),
        f'"answer": {truth}',
        " " * MB + json.dumps({"answer": truth}),
        "x" * MB + f' "answer": {truth}',
        '{"answer": ' + str(truth) + "}" + "]" * 10_000,
    ]
    for reply in right:
        assert timed_grade(task, example, reply) == Grade(5.0, True), reply[:80]

    def digits(table: str) -> str:
        return str(truth).translate(str.maketrans("0123456789", table))

    wrong = [
        json.dumps({"answer": truth + 1}),
        json.dumps({"answer": float(truth)}),
        f'"answer": {truth}.0',
        f'"answer": {truth}e0',
        json.dumps({"answer": [truth]}),
        json.dumps({"answer": str(truth) * 2}),
        json.dumps({"answer": True}),
        f"{truth}",
        f"The answer is {truth}",
        json.dumps({"result": truth}),
        json.dumps({"answer": digits("٠١٢٣٤٥٦٧٨٩")}),
        json.dumps({"answer": digits("０１２３４５６７８９")}),
        '"answer": ' + digits("𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗"),
        '{"answer": "' + digits("٠١٢٣٤٥٦٧٨٩") + '"}',
        json.dumps({"answer": f"{truth}+0"}),
        json.dumps({"answer": "9" * 5000}),
        '"answer": ' + "0" * 5000 + str(truth),
    ]
    for reply in wrong:
        assert not timed_grade(task, example, reply).correct, reply[:80]


# --- hypothesis: an independent oracle for the evaluator and the GeneralPoints grader --------------
PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def trees(leaves):
    """Expression trees (leaf int or (op, left, right)) over ``leaves`` in the given order."""
    if len(leaves) == 1:
        return st.just(leaves[0])
    return st.integers(1, len(leaves) - 1).flatmap(
        lambda k: st.tuples(st.sampled_from("+-*/"), trees(leaves[:k]), trees(leaves[k:]))
    )


def value_of(tree) -> Fraction:
    if not isinstance(tree, tuple):
        return Fraction(tree)
    op, left, right = tree[0], value_of(tree[1]), value_of(tree[2])
    if op == "/":
        if right == 0:
            raise ZeroDivisionError
        return left / right
    return {"+": left + right, "-": left - right, "*": left * right}[op]


def render(tree, draw, parent=None, right_side=False) -> str:
    """Minimal parentheses (a child binding looser than its parent, or as tight on the right side
    of it), plus random redundant ones and random spaces."""
    if not isinstance(tree, tuple):
        text = str(tree)
    else:
        op = tree[0]
        text = render(tree[1], draw, op) + draw(st.sampled_from(["", " "])) + op + render(tree[2], draw, op, True)
        if parent is not None and (
            PRECEDENCE[op] < PRECEDENCE[parent] or (right_side and PRECEDENCE[op] == PRECEDENCE[parent])
        ):
            text = "(" + text + ")"
    extra = draw(st.integers(0, 2))
    return "(" * extra + text + ")" * extra


@settings(max_examples=300, deadline=timedelta(seconds=CALL_BUDGET_S))
@given(data=st.data())
def test_evaluator_matches_an_independent_fraction_oracle(data):
    leaves = data.draw(st.lists(st.integers(0, 10**6) | st.integers(0, 12), min_size=1, max_size=7))
    tree = data.draw(trees(leaves))
    text = render(tree, data.draw)
    try:
        expected = value_of(tree)
    except ZeroDivisionError:
        with pytest.raises(ExprError):
            evaluate(text)
        return
    assert evaluate(text) == expected, text


@settings(max_examples=300, deadline=timedelta(seconds=CALL_BUDGET_S))
@given(data=st.data(), index=st.integers(0, len(GP_EXAMPLES) - 1), fmt=st.sampled_from(sorted(GP_TASKS)))
def test_general_points_grade_matches_the_oracle(data, index, fmt):
    """A formula using exactly the hand's values is +5 iff its exact value is the target; one
    value swapped for a non-card number is never correct (an incorrect number)."""
    task, example = GP_TASKS[fmt], GP_EXAMPLES[index]
    leaves = data.draw(st.permutations(example.values))
    swap = data.draw(st.booleans())
    if swap:
        not_a_card = st.integers(0, 30).filter(lambda v: v not in example.values)
        leaves[data.draw(st.integers(0, 3))] = data.draw(not_a_card)
    tree = data.draw(trees(leaves))
    formula = render(tree, data.draw)
    reply = {"bare": formula, "values": f"{' '.join(map(str, example.values))} ; {formula}"}.get(
        fmt, json.dumps({"formula": formula})
    )
    grade = graded(task, example, reply)
    if swap:
        assert "incorrect_number" in grade.errors, (formula, grade)
        return
    try:
        expected = value_of(tree)
    except ZeroDivisionError:
        assert not grade.correct and grade.reward in (1.0, -1.0), (formula, grade)
        return
    assert grade.reward == (5.0 if expected == example.target else -1.0), (formula, expected, grade)


@settings(max_examples=200, deadline=timedelta(seconds=CALL_BUDGET_S))
@given(
    index=st.integers(0, len(MATRIX_CASES) - 1),
    delta=st.integers(-3, 3) | st.integers(),
    form=st.sampled_from(
        [
            '{{"answer": {n}}}',
            '{{"answer": "{n}"}}',
            'prose "answer": {n} prose',
            '{{"answer": {n},}}',
            '```json\n{{"answer": {n}}}\n```',
        ]
    ),
)
def test_matrix_grade_matches_the_truth(index, delta, form):
    task, example = MATRIX_CASES[index]
    truth = task.answer(example)
    grade = graded(task, example, form.format(n=truth + delta))
    assert grade.correct == (delta == 0), (form, delta, grade)
