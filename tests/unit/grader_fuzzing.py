"""The shared harness of the grader fuzz tests (``test_fuzz_graders.py``, ``test_fuzz_generated.py``,
``test_fuzz_oracles.py``); not a test module itself.

It holds the tasks and hand-computed examples every fuzz test grades against, the sandbox that
refuses eval/exec/compile, os.system, os.popen and subprocess.Popen and records imports of
os/sys/subprocess/... while a grader runs, ``graded`` (one grade through the entry points
``sweeps.episodes.play`` calls, checked to be well formed and in the task's allowed set),
``timed_grade`` (the same under the per-call time budget) and ``wrappers`` (a payload inside
every answer format a grader reads).
"""

from __future__ import annotations

import builtins
import contextlib
import json
import math
import os
import random
import subprocess
import time

import pytest

from sweeps.tasks import Example, Grade
from sweeps.tasks.determinant import Determinant
from sweeps.tasks.general_points import ERROR_CLASSES, GeneralPoints, step_class
from sweeps.tasks.rank import Rank

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
