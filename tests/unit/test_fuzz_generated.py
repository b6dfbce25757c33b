"""Graders under fuzzing, generated input: hypothesis builds hostile text (fragments of numbers,
operators, unicode digits, Python payloads, quotes and JSON, long runs of one of them) and deep
JSON bombs, and every task's grader and the safe evaluator must take it without raising, within
the per-call deadline, and without evaluating anything outside the safe evaluator. The purpose
and the hand-picked cases are in ``test_fuzz_graders.py``; the harness in ``grader_fuzzing.py``.
"""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeps.tasks.expr import ExprError, evaluate
from tests.unit.grader_fuzzing import (
    CALL_BUDGET_S,
    CASES,
    ONE_PER_TASK,
    graded,
    sandbox,
    wrappers,
)

# A Python-level hang fails instead of blocking the suite.
pytestmark = pytest.mark.timeout(120)

# --- hypothesis: generated adversarial text -----------------------------------------------------
FRAGMENTS = st.sampled_from(
    [
        "0",
        "1",
        "3",
        "8",
        "9",
        "00",
        "24",
        "+",
        "-",
        "*",
        "/",
        "**",
        "(",
        ")",
        "=",
        " ",
        "\n",
        "\t",
        "\u3000",
        "\x00",
        "\ufeff",
        "٣",
        "３",
        "²",
        "½",
        "𝟠",
        "⁸",
        "−",
        "÷",
        ".",
        "e",
        "e308",
        "E-9",
        "_",
        "inf",
        "nan",
        "__import__",
        "('os')",
        ".system('x')",
        "lambda",
        ":",
        "eval",
        "exec",
        "compile",
        "open",
        "().__class__",
        '"',
        "'",
        "{",
        "}",
        "[",
        "]",
        ",",
        ";",
        "\\",
        '"formula"',
        '"answer"',
        "'formula'",
        "```",
        "null",
        "true",
        "8/(3-8/3)",
        "3 3 8 8 ;",
    ]
)
RUNS = st.builds(
    lambda s, n: s * n, st.sampled_from(["1", "9", "(", ")", "[", '{"a":', " ", "+", "1+", "٣"]), st.integers(1, 3000)
)
adversarial_text = st.lists(FRAGMENTS | RUNS | st.text(max_size=6), max_size=30).map("".join)
FUZZ = settings(
    max_examples=250,
    deadline=timedelta(seconds=CALL_BUDGET_S),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(text=adversarial_text, wrap=st.integers(0, 8), index=st.integers(0, len(CASES) - 1))
def test_generated_adversarial_replies(text, wrap, index):
    task, example = CASES[index]
    graded(task, example, wrappers(text, example)[wrap])


@FUZZ
@given(text=adversarial_text)
def test_evaluator_on_generated_text_raises_only_expr_error(text):
    with sandbox() as calls:
        try:
            value = evaluate(text)
        except ExprError:
            value = None
    assert calls == []
    assert value is None or isinstance(value, Fraction)


@settings(max_examples=60, deadline=timedelta(seconds=CALL_BUDGET_S))
@given(depth=st.integers(1, 20_000), kind=st.sampled_from(["[", '{"formula":', '{"answer":', '{"a":[']))
def test_generated_json_bombs(depth, kind):
    closing = {"[": "]", '{"formula":': "}", '{"answer":': "}", '{"a":[': "]}"}[kind]
    reply = kind * depth + '"8/(3-8/3)"' + closing * depth
    for task, example in ONE_PER_TASK:
        graded(task, example, reply)
