"""Graders under fuzzing: adversarial text against every task's parser and grader.

``test_tasks_property.py`` checks that plain random text never makes a grader raise. This file
aims at the entry points evaluation and RL call (``task.grade`` and ``task.feedback_message``,
from ``sweeps.episodes.play``) and at the safe evaluator ``expr.evaluate`` with hostile input:
huge numbers, thousands-deep parentheses, division by zero, unicode digits, Python payloads
(``__import__``, lambda, attribute access, eval/exec), NUL bytes, 1 MB replies and JSON bombs.
It asserts that (a) no exception escapes, (b) each call is fast (a hand-picked table timed with
``time.perf_counter``; hypothesis ``deadline`` for generated input), (c) nothing is evaluated
outside the safe evaluator (eval/exec/compile, os.system, subprocess.Popen refused, imports of
os/sys/subprocess/... recorded, a planted side effect checked), and that every grade stays in the
task's allowed set while correct answers still grade correct (hand-computed and oracle cases).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import os
import random
import re
import subprocess
import time
import uuid
from datetime import timedelta
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeps.tasks import Example, Grade
from sweeps.tasks.determinant import Determinant, exact_det
from sweeps.tasks.expr import ExprError, evaluate
from sweeps.tasks.general_points import ERROR_CLASSES, GeneralPoints, step_class
from sweeps.tasks.rank import Rank, exact_rank

# A Python-level hang fails instead of blocking the suite. A regex backtracking inside C holds the
# GIL, so no in-process timeout can end it: its regression case below is sized to fail in seconds.
pytestmark = pytest.mark.timeout(120)

CALL_BUDGET_S = 1.0
MB = 1 << 20

# --- tasks and examples -------------------------------------------------------------------
GP_TASKS = {
    "json": GeneralPoints(),
    "json_no_partial": GeneralPoints(partial_credit_for_prefix=False),
    "bare": GeneralPoints(prompt_style="compact", answer_format="bare"),
    "values": GeneralPoints(prompt_style="tiny", answer_format="values"),
}
HAND_3388 = Example("id", {"cards": ["3", "3", "8", "8"], "values": [3, 3, 8, 8], "target": 24})
HAND_1234 = Example("id", {"cards": ["A", "2", "3", "4"], "values": [1, 2, 3, 4], "target": 24})
HAND_K = Example("ood", {"cards": ["K", "Q", "2", "A"], "values": [13, 12, 2, 1], "target": 7})
GP_EXAMPLES = [
    HAND_3388,
    HAND_1234,
    HAND_K,
    GP_TASKS["json"].sample("id", random.Random(5)),
    GP_TASKS["json"].sample("ood", random.Random(6)),
]

DET, RANK = Determinant(), Rank()
DET_2 = Example("id", {"matrix": [[1, 2], [3, 4]]})  # 1*4 - 2*3 = -2
DET_3 = Example("ood", {"matrix": [[2, 0, 1], [1, 3, 2], [1, 1, 2]]})  # 2*(6-2) - 0 + 1*(1-3) = 6
RANK_2 = Example("id", {"matrix": [[1, 2, 3], [2, 4, 6], [1, 0, 1]]})  # row 2 = 2 x row 1
MATRIX_CASES = [
    (DET, DET_2),
    (DET, DET_3),
    (DET, DET.sample("ood", random.Random(3))),
    (RANK, RANK_2),
    (RANK, RANK.sample("id", random.Random(4))),
]

CASES = [(task, ex) for task in GP_TASKS.values() for ex in GP_EXAMPLES] + MATRIX_CASES
TABLE_CASES = [(task, ex) for task in GP_TASKS.values() for ex in (HAND_3388, GP_EXAMPLES[-1])] + MATRIX_CASES
ONE_PER_TASK = [(task, HAND_3388) for task in GP_TASKS.values()] + [(DET, DET_3), (RANK, RANK_2)]


def case_id(case) -> str:
    task, ex = case
    return f"{task.name}-{getattr(task, 'answer_format', 'json')}-{ex.data.get('values', ex.data.get('matrix'))}"


# --- (c): nothing is evaluated or imported outside the safe evaluator -----------------------
WATCHED_MODULES = {"os", "sys", "subprocess", "builtins", "pathlib", "shutil", "importlib", "ctypes", "socket"}


@contextlib.contextmanager
def sandbox():
    """Refuse eval/exec/compile/os.system/os.popen/subprocess.Popen and record watched imports;
    yields the list of calls (the graders swallow exceptions, so the record is what counts)."""
    calls: list[str] = []
    real_import = builtins.__import__

    def watched_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.partition(".")[0] in WATCHED_MODULES:
            calls.append(f"__import__({name!r})")
        return real_import(name, globals, locals, fromlist, level)

    def refuse(label):
        def refused(*args, **kwargs):
            calls.append(label)
            raise AssertionError(f"{label} called while grading")

        return refused

    patches = [(builtins, "__import__", watched_import)]
    patches += [(builtins, name, refuse(name)) for name in ("eval", "exec", "compile")]
    patches += [
        (os, "system", refuse("os.system")),
        (os, "popen", refuse("os.popen")),
        (subprocess, "Popen", refuse("subprocess.Popen")),
    ]
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
    for obj, name, new in patches:
        setattr(obj, name, new)
    try:
        yield calls
    finally:
        for obj, name, old in saved:
            setattr(obj, name, old)


def allowed_reward(task, reward: float) -> bool:
    if isinstance(task, GeneralPoints):
        if reward in (5.0, -1.0) or (reward == 1.0 and task.partial_credit_for_prefix):
            return True
        # k illegal-formula penalties (-3 each) plus j in 0..2 incorrect-number penalties (-2 each)
        r = -reward
        return r == int(r) and any(r - 2 * j >= 0 and (r - 2 * j) % 3 == 0 and r > 0 for j in range(3))
    return reward in (5.0, -1.0)


def graded(task, example, reply: str) -> Grade:
    """Grade ``reply`` through the entry points ``play`` uses, inside the sandbox, and check the
    grade is well formed and from the task's allowed set."""
    with sandbox() as calls:
        grade = task.grade(example, reply)
        feedback = task.feedback_message(grade)
    assert calls == [], (calls, reply[:200])
    assert isinstance(grade, Grade) and isinstance(feedback, str)
    assert isinstance(grade.reward, float) and math.isfinite(grade.reward), grade
    assert allowed_reward(task, grade.reward), (grade, reply[:200])
    assert grade.correct == (grade.reward == 5.0), grade
    assert bool(grade.errors) == (not grade.correct), grade
    assert set(grade.errors) <= set(task.error_classes), grade
    if isinstance(task, GeneralPoints):
        assert step_class(grade) in ("correct", *ERROR_CLASSES)
    return grade


def timed_grade(task, example, reply: str) -> Grade:
    """``graded`` under the per-call budget (the best of two tries, so a busy machine does not
    fail a fast grader; super-linear time still fails)."""
    best = math.inf
    for _ in range(2):
        start = time.perf_counter()
        grade = graded(task, example, reply)
        best = min(best, time.perf_counter() - start)
        if best < CALL_BUDGET_S:
            return grade
    pytest.fail(f"{task.name} took {best:.2f}s on {reply[:80]!r}... ({len(reply)} chars)")


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


def wrappers(payload: str, example: Example) -> list[str]:
    """The payload as a bare reply and inside every answer format a grader reads."""
    values = " ".join(map(str, example.data.get("values", [])))
    return [
        payload,
        json.dumps({"formula": payload}),
        json.dumps({"answer": payload}),
        '{"formula": "' + payload + '"}',
        "{'formula': '" + payload + "'}",
        '{"answer": ' + payload + "}",
        'The answer is "answer": ' + payload + " and that is all.",
        f"{values} ; {payload}",
        "```json\n" + json.dumps({"cards": [], "number": [], "formula": payload}) + "\n```",
    ]


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


@settings(max_examples=60, deadline=timedelta(seconds=CALL_BUDGET_S))
@given(depth=st.integers(1, 20_000), kind=st.sampled_from(["[", '{"formula":', '{"answer":', '{"a":[']))
def test_generated_json_bombs(depth, kind):
    closing = {"[": "]", '{"formula":': "}", '{"answer":': "}", '{"a":[': "]}"}[kind]
    reply = kind * depth + '"8/(3-8/3)"' + closing * depth
    for task, example in ONE_PER_TASK:
        graded(task, example, reply)
