"""The task interface every task file implements.

A task is a dataclass whose fields are its configuration (the YAML under ``conf/task/`` names
the class with ``_target_`` and sets the fields). It generates examples for a split from a
caller-supplied RNG, renders them as a user prompt, grades a model completion, and gives the
supervised completion used for SFT. One grader serves both the RL reward and evaluation.

Multi-step tasks (route following) take an episode through several graded steps: ``num_steps``
says how many, and ``at_step`` gives the example as seen at one step (its prompt, grader and
reference answer are that step's). The defaults make every other task a one-step task, so the
verification loop treats both alike (``sweeps.episodes.play``).
"""

from __future__ import annotations

import functools
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

SPLITS = ("id", "ood")


@functools.cache
def _field_re(key: str) -> re.Pattern[str]:
    return re.compile(rf"""["']{re.escape(key)}["']\s*:\s*(["'])(.*?)\1""")


def json_string_field(completion: str, key: str) -> str | None:
    """The string under ``key`` in a reply: from the reply parsed as a JSON object, else from the
    first ``"key": "value"`` in it (either quote, so a trailing comma or single quotes do not
    lose the answer), else None."""
    try:
        obj = json.loads(completion)
        if isinstance(obj, dict) and isinstance(obj.get(key), str):
            return obj[key]
    except Exception:  # noqa: BLE001 - any JSON failure falls through to the regex
        pass
    match = _field_re(key).search(completion)
    return match.group(2) if match else None


@dataclass(frozen=True)
class Example:
    """One problem instance. ``data`` holds task-specific fields (cards, matrix, ...)."""

    split: str
    data: dict[str, Any]

    def __getattr__(self, name: str) -> Any:  # example.cards, example.target, example.matrix
        try:
            return self.__dict__["data"][name]
        except KeyError:
            raise AttributeError(name) from None

    def to_json(self) -> dict[str, Any]:
        return {"split": self.split, "data": self.data}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Example:
        return cls(split=obj["split"], data=obj["data"])


@dataclass(frozen=True)
class Grade:
    """The grader's verdict on one attempt.

    ``errors`` names every triggered error class (empty when correct); ``feedback`` holds the
    messages shown to the model on the next attempt of a multi-attempt episode.
    """

    reward: float
    correct: bool
    errors: tuple[str, ...] = ()
    feedback: tuple[str, ...] = ()


@dataclass
class Task:
    """Base class: subclasses are dataclasses whose fields are the task's config."""

    name: str = "task"
    max_attempts: int = 5  # graded attempts per episode (feedback turns in between)
    max_new_tokens: int = 64  # generation budget per attempt
    eval_items: int = 200  # size of each frozen evaluation split
    error_classes: tuple[str, ...] = field(default=(), init=False)  # every class grade() may emit

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"task.max_attempts must be >= 1, got {self.max_attempts}")
        if self.max_new_tokens < 1:
            raise ValueError(f"task.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.eval_items < 1:
            raise ValueError(f"task.eval_items must be >= 1, got {self.eval_items}")

    # --- what every task implements -------------------------------------------------
    def sample(self, split: str, rng: random.Random) -> Example:
        raise NotImplementedError

    def prompt(self, example: Example) -> str:
        raise NotImplementedError

    def grade(self, example: Example, completion: str) -> Grade:
        raise NotImplementedError

    def reference_completion(self, example: Example) -> str:
        """The supervised target for SFT (a correct answer in the task's output format)."""
        raise NotImplementedError

    # --- multi-step episodes; one-answer tasks keep these defaults ---------------------
    def num_steps(self, example: Example) -> int:
        """Graded steps an episode must clear in order (each with up to ``max_attempts`` tries)."""
        return 1

    def at_step(self, example: Example, step: int) -> Example:
        """The example as seen at ``step`` (0-based): prompt, grade and reference are that step's."""
        return example

    def sft_example(self, rng: random.Random) -> Example:
        """One supervised example of the ID split (a multi-step task picks one of its steps)."""
        return self.sample("id", rng)

    def feedback_message(self, grade: Grade) -> str:
        """The user turn appended after a failed attempt."""
        reasons = ", ".join(grade.feedback) or "wrong answer"
        return f"You failed this trial because {reasons}"

    def check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}: use one of {SPLITS}")
