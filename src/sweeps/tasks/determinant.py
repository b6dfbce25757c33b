"""Determinant of a small integer matrix (PAPER.md section 2.2), plus the strict integer grader
shared with the rank task.

Sampling. ID: a ``id_size`` x ``id_size`` matrix (2x2) with entries uniform on
[``id_low``, ``id_high``] = [-4, 4]; OOD: ``ood_size`` (3x3) on [-5, 5]. Entries are drawn row by
row; then one ``rng.random()`` decides, with probability ``symmetrize_prob`` (1/2), to replace M
by round((M + M^T) / 2). Rounding convention: half away from zero (1.5 -> 2, -1.5 -> -2), done
in integer arithmetic, unlike Python's ``round`` and NumPy, which round half to even. The
averaged entries stay inside the entry range. The whole draw repeats until the determinant is
non-zero. ``Example.data`` = {"matrix": list of rows of ints}.

Ground truth. ``exact_det`` runs the Bareiss fraction-free elimination: at step k every entry
below and right of the pivot becomes (a_ij * a_kk - a_ik * a_kj) / p, where p is the previous
pivot (1 at the start); by Sylvester's identity the division is exact, so all arithmetic stays in
Python ints. A zero pivot is replaced by swapping in a lower row with a non-zero entry in that
column (flipping the sign); if none exists the determinant is 0. The last pivot is det(M).

Grading (strict). The answer is the "answer" key of the reply parsed as a JSON object (an
integer, or a string holding one integer), else the first match of the regex
``"answer"\\s*:\\s*(-?\\d+)`` not continued into something else: not followed by a decimal point, a
letter, digit or underscore (``2.5``, ``1e5``, ``0x18``, ``1_000``), nor, after optional spaces, by
an arithmetic operator (``1/2``, ``2**3``, ``2 - 1``). Nothing else counts (never the first integer
anywhere, which could be echoed from the matrix). Reward +5 if it equals the truth, else -1, with
error "wrong_answer", or "format_error" when no answer parses.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

from sweeps.tasks.base import Example, Grade, Task

FORMAT_ERROR, WRONG_ANSWER = "format_error", "wrong_answer"
MATRIX_ERROR_CLASSES = (FORMAT_ERROR, WRONG_ANSWER)
CORRECT_REWARD, WRONG_REWARD = 5.0, -1.0
_MAX_DRAWS = 10_000

_ANSWER_RE = re.compile(r'"answer"\s*:\s*(-?[0-9]+)(?![\w.]|\s*[-+*/^])')
_INT_STRING = re.compile(r"\s*-?[0-9]+\s*")


def exact_det(matrix: list[list[int]]) -> int:
    """Determinant of a square integer matrix by Bareiss elimination (see module docstring)."""
    a = [[int(x) for x in row] for row in matrix]
    n = len(a)
    if any(len(row) != n for row in a):
        raise ValueError("exact_det needs a square matrix")
    sign, prev = 1, 1
    for k in range(n - 1):
        if a[k][k] == 0:
            swap = next((i for i in range(k + 1, n) if a[i][k] != 0), None)
            if swap is None:
                return 0
            a[k], a[swap] = a[swap], a[k]
            sign = -sign
        for i in range(k + 1, n):
            for j in range(k + 1, n):
                a[i][j] = (a[i][j] * a[k][k] - a[i][k] * a[k][j]) // prev
        prev = a[k][k]
    return sign * a[n - 1][n - 1] if n else 1


def round_half_away(numerator: int, denominator: int = 2) -> int:
    """numerator / denominator (denominator > 0) rounded to the nearest int, ties away from 0."""
    q, r = divmod(abs(numerator), denominator)
    if 2 * r >= denominator:
        q += 1
    return q if numerator >= 0 else -q


def random_matrix(rng: random.Random, rows: int, cols: int, low: int, high: int) -> list[list[int]]:
    return [[rng.randint(low, high) for _ in range(cols)] for _ in range(rows)]


def parse_int_answer(completion: str) -> int | None:
    """The strict answer: JSON "answer" (int or integer string), else the strict regex."""
    try:
        obj = json.loads(completion)
        if isinstance(obj, dict) and "answer" in obj:
            value = obj["answer"]
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str) and _INT_STRING.fullmatch(value):
                return int(value)
    except Exception:  # noqa: BLE001 - any JSON failure falls through to the regex
        pass
    match = _ANSWER_RE.search(completion)
    return int(match.group(1)) if match else None


def grade_int_answer(completion: Any, truth: int) -> Grade:
    """+5 for the right integer, -1 otherwise; never raises on any completion."""
    try:
        answer = parse_int_answer(str(completion))
    except Exception:  # noqa: BLE001 - e.g. an integer literal too long to convert
        answer = None
    if answer is None:
        return Grade(WRONG_REWARD, False, (FORMAT_ERROR,), ("format error",))
    if answer != truth:
        return Grade(WRONG_REWARD, False, (WRONG_ANSWER,), ("wrong answer",))
    return Grade(CORRECT_REWARD, True)


def check_range(low: int, high: int, split: str) -> None:
    if not low < high:
        raise ValueError(f"task.{split}_low must be < task.{split}_high, got {low} and {high}")


@dataclass
class Determinant(Task):
    """Exact integer determinant of an ID 2x2 / OOD 3x3 matrix."""

    name: str = "determinant"
    max_attempts: int = 5
    max_new_tokens: int = 64
    eval_items: int = 200
    id_size: int = 2
    id_low: int = -4
    id_high: int = 4
    ood_size: int = 3
    ood_low: int = -5
    ood_high: int = 5
    symmetrize_prob: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        for split in ("id", "ood"):
            size = getattr(self, f"{split}_size")
            if size < 1:
                raise ValueError(f"task.{split}_size must be >= 1, got {size}")
            check_range(getattr(self, f"{split}_low"), getattr(self, f"{split}_high"), split)
        if not 0.0 <= self.symmetrize_prob <= 1.0:
            raise ValueError(f"task.symmetrize_prob must be in [0, 1], got {self.symmetrize_prob}")
        self.error_classes = MATRIX_ERROR_CLASSES

    def sample(self, split: str, rng: random.Random) -> Example:
        self.check_split(split)
        n = getattr(self, f"{split}_size")
        low, high = getattr(self, f"{split}_low"), getattr(self, f"{split}_high")
        for _ in range(_MAX_DRAWS):
            m = random_matrix(rng, n, n, low, high)
            if rng.random() < self.symmetrize_prob:
                m = [[round_half_away(m[i][j] + m[j][i]) for j in range(n)] for i in range(n)]
            if exact_det(m) != 0:
                return Example(split=split, data={"matrix": m})
        raise RuntimeError(f"no non-singular matrix in {_MAX_DRAWS} draws")  # pragma: no cover

    def answer(self, example: Example) -> int:
        return exact_det(example.matrix)

    def prompt(self, example: Example) -> str:
        schema = json.dumps({"answer": "the determinant, as an integer"})
        return (
            f"Calculate the determinant of the matrix:\n{json.dumps(example.matrix)}\n\n"
            f"Reply with a valid JSON object in this format:\n{schema}"
        )

    def reference_completion(self, example: Example) -> str:
        return json.dumps({"answer": self.answer(example)})

    def grade(self, example: Example, completion: str) -> Grade:
        return grade_int_answer(completion, self.answer(example))
