"""Property tests: no grader raises on any text, and every reward comes from the allowed set."""

import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeps.tasks import Example
from sweeps.tasks.determinant import Determinant
from sweeps.tasks.expr import ExprError, evaluate, solve
from sweeps.tasks.general_points import ERROR_CLASSES, GeneralPoints
from sweeps.tasks.rank import Rank

GP = GeneralPoints()
NO_PARTIAL = GeneralPoints(partial_credit_for_prefix=False)
HANDS = [GP.sample(split, random.Random(seed)) for seed in range(3) for split in ("id", "ood")]
HANDS.append(Example("id", {"cards": ["3", "3", "8", "8"], "values": [3, 3, 8, 8], "target": 24}))
MATRIX_TASKS = [
    (task, task.sample(split, random.Random(1))) for task in (Determinant(), Rank()) for split in ("id", "ood")
]

FORMULA_CHARS = "0123456789+-*/() =" + "8383" * 3  # bias towards the 3,3,8,8 hand
formula_text = st.text(alphabet=FORMULA_CHARS, max_size=24)
any_text = st.text(max_size=200)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
gp_replies = st.one_of(
    any_text,
    formula_text.map(lambda s: json.dumps({"formula": s})),
    any_text.map(lambda s: json.dumps({"formula": s})),
    any_text.map(lambda s: '{"formula": "' + s + '",}'),  # raw, possibly broken quoting
    formula_text.map(lambda s: "{'formula': '" + s + "'}"),
    json_values.map(lambda v: json.dumps({"formula": v})),
)
matrix_replies = st.one_of(
    any_text,
    json_values.map(lambda v: json.dumps({"answer": v})),
    st.integers().map(lambda n: f'"answer": {n}'),
    any_text.map(lambda s: '{"answer": ' + s + "}"),
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def allowed_gp_reward(reward):
    """+5, +1, -1, or a sum of k x -3 (k >= 0) and j x -2 (j in 0..2) with k + j >= 1."""
    if reward in (5.0, 1.0, -1.0):
        return True
    return any(-3 * k - 2 * j == reward for j in range(3) for k in range(0, 100) if k + j >= 1)


@SETTINGS
@given(reply=gp_replies, index=st.integers(0, len(HANDS) - 1))
def test_general_points_grade_never_raises(reply, index):
    example = HANDS[index]
    for task in (GP, NO_PARTIAL):
        grade = task.grade(example, reply)
        assert allowed_gp_reward(grade.reward), (reply, grade)
        assert grade.correct == (grade.reward == 5.0)
        assert set(grade.errors) <= set(ERROR_CLASSES)
        assert bool(grade.errors) == (not grade.correct)
        assert task is GP or grade.reward != 1.0


@SETTINGS
@given(
    reply=st.one_of(any_text, json_values.map(json.dumps), matrix_replies), index=st.integers(0, len(MATRIX_TASKS) - 1)
)
def test_matrix_grades_never_raise(reply, index):
    task, example = MATRIX_TASKS[index]
    grade = task.grade(example, reply)
    assert (grade.reward, grade.correct) in ((5.0, True), (-1.0, False))
    assert set(grade.errors) <= {"format_error", "wrong_answer"}


@SETTINGS
@given(text=st.text(max_size=60) | formula_text)
def test_evaluator_raises_only_expr_error(text):
    try:
        evaluate(text)
    except ExprError:
        pass


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.integers(1, 13), min_size=4, max_size=4), target=st.integers(-5, 40))
def test_every_solution_evaluates_exactly_to_the_target(values, target):
    sols = solve(values, target)
    assert all(evaluate(s) == target for s in sols)
    example = Example("ood", {"cards": ["?"] * 4, "values": values, "target": target})
    assert all(GP.grade(example, json.dumps({"formula": s})).reward == 5.0 for s in sols[:20])
