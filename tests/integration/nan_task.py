"""A task whose grader returns NaN, for the bad-input test of the RL stage."""

from dataclasses import dataclass

from sweeps.tasks.base import Grade
from sweeps.tasks.determinant import Determinant


@dataclass
class NanDeterminant(Determinant):
    def grade(self, example, completion):
        return Grade(reward=float("nan"), correct=False, errors=("wrong_answer",))
