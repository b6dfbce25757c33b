"""Rank of an integer matrix built with a known rank (PAPER.md section 2.2).

Sampling. The target rank r is uniform on 0..min(``max_rank``, rows, cols). For r = 0 the matrix
is all zeros. Otherwise M = A B with A (rows x r) and B (r x cols), each redrawn until it has
full rank r (checked exactly); then rank(M) = r, because A has independent columns and B
independent rows. The entry range of the split applies to the factors A and B, so entries of M
can reach r * max(|low|, |high|)^2 in absolute value. ID: 4x5, factor entries on [-4, 4]; OOD: 5x4
on [-5, 5]. The rank of the product is re-checked with ``exact_rank``. ``Example.data`` =
{"matrix": list of rows of ints}.

Ground truth. ``exact_rank`` is Gaussian elimination over ``fractions.Fraction``: walk the
columns, pick the first row at or below the current pivot row with a non-zero entry, swap it up,
eliminate the entries below it, and count the pivots. No floating point is involved.

Grading is the determinant task's strict integer grader (+5 / -1, "format_error" /
"wrong_answer").
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from fractions import Fraction

from sweeps.tasks.base import Example, Grade, Task
from sweeps.tasks.determinant import MATRIX_ERROR_CLASSES, check_range, grade_int_answer, random_matrix

_MAX_DRAWS = 10_000


def exact_rank(matrix: list[list[int]]) -> int:
    """Rank by Fraction Gaussian elimination (see module docstring)."""
    rows = [[Fraction(x) for x in row] for row in matrix]
    n_cols = len(rows[0]) if rows else 0
    rank = 0
    for col in range(n_cols):
        pivot = next((r for r in range(rank, len(rows)) if rows[r][col] != 0), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        for r in range(rank + 1, len(rows)):
            factor = rows[r][col] / rows[rank][col]
            if factor:
                rows[r] = [x - factor * y for x, y in zip(rows[r], rows[rank])]
        rank += 1
    return rank


def matmul(a: list[list[int]], b: list[list[int]]) -> list[list[int]]:
    return [[sum(x * y for x, y in zip(row, col)) for col in zip(*b)] for row in a]


@dataclass
class Rank(Task):
    """Exact rank of an ID 4x5 / OOD 5x4 integer matrix of rank 0..4."""

    name: str = "rank"
    max_attempts: int = 1
    max_new_tokens: int = 128
    eval_items: int = 200
    max_rank: int = 4
    id_rows: int = 4
    id_cols: int = 5
    id_low: int = -4
    id_high: int = 4
    ood_rows: int = 5
    ood_cols: int = 4
    ood_low: int = -5
    ood_high: int = 5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_rank < 0:
            raise ValueError(f"task.max_rank must be >= 0, got {self.max_rank}")
        for split in ("id", "ood"):
            for dim in ("rows", "cols"):
                value = getattr(self, f"{split}_{dim}")
                if value < 1:
                    raise ValueError(f"task.{split}_{dim} must be >= 1, got {value}")
            check_range(getattr(self, f"{split}_low"), getattr(self, f"{split}_high"), split)
        self.error_classes = MATRIX_ERROR_CLASSES

    def _full_rank(self, rng: random.Random, rows: int, cols: int, low: int, high: int) -> list[list[int]]:
        """A rows x cols matrix of rank min(rows, cols), redrawn until it has it."""
        for _ in range(_MAX_DRAWS):
            m = random_matrix(rng, rows, cols, low, high)
            if exact_rank(m) == min(rows, cols):
                return m
        raise RuntimeError(f"no full-rank {rows}x{cols} factor in {_MAX_DRAWS} draws")  # pragma: no cover

    def sample(self, split: str, rng: random.Random) -> Example:
        self.check_split(split)
        m, n = getattr(self, f"{split}_rows"), getattr(self, f"{split}_cols")
        low, high = getattr(self, f"{split}_low"), getattr(self, f"{split}_high")
        r = rng.randint(0, min(self.max_rank, m, n))
        if r == 0:
            matrix = [[0] * n for _ in range(m)]
        else:
            matrix = matmul(self._full_rank(rng, m, r, low, high), self._full_rank(rng, r, n, low, high))
        if exact_rank(matrix) != r:  # pragma: no cover - guaranteed by construction
            raise AssertionError(f"constructed rank {r} but got {exact_rank(matrix)}")
        return Example(split=split, data={"matrix": matrix})

    def answer(self, example: Example) -> int:
        return exact_rank(example.matrix)

    def prompt(self, example: Example) -> str:
        schema = json.dumps({"answer": "the rank, as an integer"})
        return (
            f"Find the rank of the matrix.\n{json.dumps(example.matrix)}\n\n"
            f"Reply with a valid JSON object in this format:\n{schema}"
        )

    def reference_completion(self, example: Example) -> str:
        return json.dumps({"answer": self.answer(example)})

    def grade(self, example: Example, completion: str) -> Grade:
        return grade_int_answer(completion, self.answer(example))
