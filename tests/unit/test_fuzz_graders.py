"""Graders under fuzzing: adversarial text against every task's parser and grader.

``test_tasks_property.py`` checks that plain random text never makes a grader raise. The fuzz
tests aim at the entry points evaluation and RL call (``task.grade`` and ``task.feedback_message``,
from ``sweeps.episodes.play``) and at the safe evaluator ``expr.evaluate`` with hostile input:
huge numbers, thousands-deep parentheses, division by zero, unicode digits, Python payloads
(``__import__``, lambda, attribute access, eval/exec), NUL bytes, 1 MB replies and JSON bombs.
They assert that (a) no exception escapes, (b) each call is fast (a hand-picked table timed with
``time.perf_counter``; hypothesis ``deadline`` for generated input), (c) nothing is evaluated
outside the safe evaluator (eval/exec/compile, os.system, subprocess.Popen refused, imports of
os/sys/subprocess/... recorded, a planted side effect checked), and that every grade stays in the
task's allowed set while correct answers still grade correct (hand-computed and oracle cases).

This file holds the hand-picked cases: the adversarial table, megabyte replies, the regression
cases fuzzing found and the planted side effects. Generated hostile text is in
``test_fuzz_generated.py``, correct answers and the independent oracles in ``test_fuzz_oracles.py``,
the shared sandbox and grading harness in ``grader_fuzzing.py``.
"""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest

from sweeps.tasks import Example
from sweeps.tasks.expr import ExprError, evaluate
from sweeps.tasks.general_points import GeneralPoints
from tests.unit.grader_fuzzing import (
    CALL_BUDGET_S,
    CASES,
    DET,
    DET_3,
    GP_TASKS,
    HAND_3388,
    MB,
    ONE_PER_TASK,
    RANK,
    RANK_2,
    TABLE_CASES,
    case_id,
    graded,
    sandbox,
    timed_grade,
    wrappers,
)

# A Python-level hang fails instead of blocking the suite. A regex backtracking inside C holds the
# GIL, so no in-process timeout can end it: its regression case below is sized to fail in seconds.
pytestmark = pytest.mark.timeout(120)

# --- the hand-picked adversarial table ------------------------------------------------------
PAYLOADS = [
    # huge numbers
    "9**9**9",
    "10**100000",
    "1" * 5000,
    "9" * 4301,
    "0" * 5000 + "8",
    "1e308",
    "-1e308",
    "1e309",
    "1e-400",
    "inf",
    "-inf",
    "nan",
    "NaN",
    "Infinity",
    "-0",
    "0x18",
    "0o30",
    "0b11000",
    "1_000",
    "24.0",
    "24e0",
    "-24",
    # deep nesting and division by zero
    "(" * 5000 + "1" + ")" * 5000,
    "(" * 5000,
    ")" * 5000,
    "()" * 2000,
    "1/0",
    "8/(3-3)*8",
    "(8-8)/0/3*3",
    "8/(3-8/3)/0",
    "8/(8-8)/(3-3)",
    "3/(8-8)+3+8",
    # unicode digits, whitespace and operators
    "٣",
    "３",
    "²",
    "½",
    "𝟠",
    "٣*٣*٨*٨",
    "８/(３-８/３)",
    "𝟠/(3-𝟠/3)",
    "8/(3-8/3)²",
    "8÷(3−8÷3)",
    "8/(3‐8/3)",
    "8\u3000/(3-8/3)",
    "\ufeff8/(3-8/3)",
    "8/(3-8/3)\u200b",
    "⁸/(³-⁸/³)",
    # Python payloads
    "__import__('os').system('x')",
    "__import__('os').system('echo pwned')",
    "lambda: 24",
    "(lambda: 24)()",
    "().__class__.__bases__[0].__subclasses__()",
    "(8).__class__",
    "eval('8/(3-8/3)')",
    "exec('x=24')",
    "compile('24','','eval')",
    "open('/etc/passwd').read()",
    "globals()['__builtins__']",
    "24 if 1 else 0",
    "8/(3-8/3); import os",
    "[x for x in (24,)]",
    "{}.__class__",
    "24 #",
    "f'{24}'",
    "sum([3,3,8,8])",
    # NUL bytes and control characters
    "\x00",
    "8/(3-8/3)\x00",
    "\x00" * 1000,
    "8\x00/(3-8/3)",
    "\r\n\t\x0b\x0c\x1c\x1d\x1e\x1f\x85",
    "\ud800",
    "\\u0000",
    "\x1b[2J",
    # formats that are almost right
    "",
    " ",
    "None",
    "null",
    "true",
    "[24]",
    "{}",
    "=",
    "==24",
    "=8/(3-8/3)",
    "8/(3-8/3)=",
    "8/(3-8/3)==24",
    "8/(3-8/3)=25",
    "24",
    "3*8",
    "8*3*(8-3)/5",
]
HUGE_NUMBERS = ["9" * 4300, "9" * 4301, "1" * 5000, "1" * 100_000, "-" + "1" * 5000, "1" * 5000 + ".5"]


def huge_replies(example: Example) -> list[str]:
    """Replies of about 1 MB each, plus JSON bombs."""
    half = MB // 2
    return [
        "A" * MB,
        "1" * MB,
        "1+" * half,
        "(" * MB,
        ")" * MB,
        "\x00" * MB,
        " " * MB,
        "٣３²½𝟠" * (MB // 6),
        json.dumps({"formula": "1" * MB}),
        '{"formula": "' + "1" * MB + 'x"}',
        json.dumps({"formula": "(" * MB}),
        json.dumps({"formula": "8/(3-8/3)" + "+" * MB}),
        json.dumps({"answer": "9" * MB}),
        '{"answer": ' + "9" * MB + "}",
        '"answer": ' + "9" * MB + ".5",
        '"answer":' + " " * MB,
        '"answer": 1' + " " * MB + "+",
        ('"answer": 1' + " " * 1000 + "/") * 1000,
        ('"formula": \'' + "x" * 1000) * 1000,
        "\n".join(['"formula": "' + "x" * 1000] * 1000),
        '"formula": "' * (MB // 12),
        "'formula': '" * (MB // 12),
        '"formula":' * (MB // 10),
        '{"formula": "' + "8/(3-8/3)" * (MB // 9) + '"}',
        "8/(3-8/3)" * (MB // 9),
        f"{' '.join(['3'] * half)} ; 8/(3-8/3)",
        # JSON bombs: deep nesting the json module refuses, and wide nesting it parses
        "[" * MB,
        "[" * half + "]" * half,
        '{"a":' * (MB // 5) + "1" + "}" * (MB // 5),
        '{"formula":' * (MB // 11) + '"8/(3-8/3)"' + "}" * (MB // 11),
        '{"answer":' * (MB // 10) + "1" + "}" * (MB // 10),
        json.dumps({"formula": [[[[]]]] * 10_000, "answer": [{}] * 100_000}),
        json.dumps({f"k{i}": i for i in range(50_000)}),
    ]


def may_be_correct(task, example, payload: str) -> bool:
    """Whether a payload of the table is a right answer (else it must never grade correct)."""
    if isinstance(task, GeneralPoints):  # the documented normalisation: cut at "=", drop whitespace
        return example is HAND_3388 and "".join(payload.split("=", 1)[0].split()) == "8/(3-8/3)"
    return (
        len(payload) < 100
        and re.fullmatch(r"\s*-?[0-9]+\s*", payload) is not None
        and (int(payload) == task.answer(example))
    )


@pytest.mark.parametrize("case", TABLE_CASES, ids=case_id)
def test_adversarial_table_never_raises_stays_fast_and_evaluates_nothing(case):
    task, example = case
    for payload in PAYLOADS + HUGE_NUMBERS:
        for reply in wrappers(payload, example):
            grade = timed_grade(task, example, reply)
            assert not grade.correct or may_be_correct(task, example, payload), (reply[:200], grade)


@pytest.mark.parametrize("case", ONE_PER_TASK, ids=case_id)
def test_megabyte_replies_and_json_bombs_stay_fast(case):
    task, example = case
    for reply in huge_replies(example):
        timed_grade(task, example, reply)


# --- regression cases of bugs fuzzing found ---------------------------------------------------
@pytest.mark.parametrize("digits", [26, 5000])
def test_regression_long_digit_run_before_an_illegal_character_is_linear(digits):
    """general_points._LEGAL was (?:[0-9]+|[+\\-*/()])+: nested quantifiers backtrack over every
    split of a digit run: "1" * 26 + "x" took seconds, each digit doubling it, "1" * 40 + "x" hung."""
    for task in GP_TASKS.values():
        for reply in (
            "1" * digits + "x",
            json.dumps({"formula": "1" * digits + "x"}),
            f"3 3 8 8 ; {'8' * digits}²",
            json.dumps({"formula": "(" + "3" * digits + " .5"}),
        ):
            grade = timed_grade(task, HAND_3388, reply)
            assert grade.reward == -3.0 and grade.errors == ("illegal_formula",), (reply[:60], grade)


def test_regression_product_chain_of_long_literals_is_rejected_not_quadratic():
    """expr.evaluate multiplied 1000-digit literals without bound: 1000 of them (1 MB of text) took
    ~5 s (quadratic); the same quotient of two such products ran gcds on million-bit integers."""
    literal = "9" * 999 + "7"
    for text in (
        literal + ("*" + literal) * 1000,
        "(" + "*".join([literal] * 200) + ")/(" + "*".join(["9" * 999 + "1"] * 200) + ")",
        "*".join([literal] * 4) + "".join(f"+1/{'9' * 998}{i:02d}" for i in range(1000)),
    ):
        start = time.perf_counter()
        with pytest.raises(ExprError, match="too large"):
            evaluate(text)
        assert time.perf_counter() - start < CALL_BUDGET_S
    assert evaluate("*".join([literal] * 4)) == int(literal) ** 4  # four maximal literals still fit


@pytest.mark.parametrize(
    "tail", ["_000", "x18", "o7", "b1", "j", "/2", " / 2", "**3", "^3", "*4", "+1", " - 1", "٣", "abc"]
)
def test_regression_answer_regex_needs_a_whole_integer(tail):
    """The fallback regex only refused a following digit, "." or exponent, so '"answer": 1_000'
    (a thousand), '"answer": 0x18' or '"answer": 1/2' graded as the integer 1 or 0."""
    zero_rank = Example("id", {"matrix": [[0, 0], [0, 0]]})
    for task, example, lead in ((RANK, RANK_2, "2"), (RANK, zero_rank, "0"), (DET, DET_3, "6")):
        assert task.grade(example, f'{{"answer": {lead}}}').correct  # control
        grade = graded(task, example, f'{{"answer": {lead}{tail}}}')
        assert not grade.correct and grade.errors == ("format_error",), (tail, grade)
    for ok in ('"answer": 2}', '"answer": 2, "why": 1', '"answer": 2 because', '"answer": 2\n', '"answer": 2'):
        assert RANK.grade(RANK_2, ok).correct, ok


# --- (c): planted side effects ----------------------------------------------------------------
def side_effect_payloads(marker) -> list[str]:
    path = str(marker)
    return [
        f"__import__('pathlib').Path({path!r}).touch()",
        f"__import__('os').system('touch {path}')",
        f"8/(3-8/3) or __import__('pathlib').Path({path!r}).touch()",
        f"(lambda: __import__('pathlib').Path({path!r}).touch())()",
        f"exec(\"open({path!r}, 'w').close()\")",
        f"eval(compile(\"open({path!r}, 'w').close()\", '<x>', 'exec'))",
        f"[c for c in ().__class__.__base__.__subclasses__() if c.__name__ == 'Popen'][0](['touch', {path!r}])",
        f"__builtins__.__dict__['__import__']('subprocess').run(['touch', {path!r}])",
        f"getattr(__import__('builtins'), 'open')({path!r}, 'w')",
    ]


def test_the_side_effect_payloads_work_when_evaluated(tmp_path):
    """The planted payloads are live (so their absence below means something), and the sandbox
    records what it refuses."""
    marker = tmp_path / f"pwned_{uuid.uuid4().hex}"
    eval(side_effect_payloads(marker)[0])  # noqa: S307 - deliberately, outside any grader
    assert marker.exists()
    with sandbox() as calls:
        with pytest.raises(AssertionError):
            eval("24")  # noqa: S307
        __import__("os")
        import subprocess  # noqa: F401
    assert {"eval", "__import__('os')", "__import__('subprocess')"} <= set(calls)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_planted_side_effects_never_happen(case, tmp_path):
    task, example = case
    marker = tmp_path / f"pwned_{uuid.uuid4().hex}"
    for payload in side_effect_payloads(marker):
        for reply in wrappers(payload, example):
            grade = graded(task, example, reply)
            assert not grade.correct, (reply, grade)
            assert not marker.exists(), reply
