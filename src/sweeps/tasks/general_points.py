"""GeneralPoints, the text-only "24 game" of the paper (PAPER.md section 2.1).

Hands. Four ranks 1..13 (A=1, J=11, Q=12, K=13). The ID split draws them i.i.d. uniform and
counts J, Q, K as ``id_face_values`` (10, 10, 10); the OOD split draws ``4 - ood_min_face_cards``
ranks uniform on 1..13 plus ``ood_min_face_cards`` uniform on {J, Q, K}, shuffles them, and counts
J, Q, K as ``ood_face_values`` (11, 12, 13). The target is drawn from ``targets`` (default: just
``target``). A hand is redrawn until the exact solver finds at least one solution. Suits play no
role in text mode and are not drawn. ``Example.data`` = {"cards": rank strings, "values": ints
under the split's rule, "target": int}.

Grading (one grader for RL reward and evaluation). The formula is read from the reply parsed as
JSON ("formula" key), else from a regex for ``"formula": "..."`` that accepts double or single
quotes (so a trailing comma or a fenced block still parses), else it is the string "None". It
is cut at the first "=" and stripped of all whitespace. Checks then run in order and sum:

* ILLEGAL_FORMULA, -3: the string is not a concatenation of integer literals and ``+-*/()``
  (empty counts as illegal): -3 and stop. Otherwise a state machine over the token types
  (number, operator, "(", ")") adds -3 for each bad transition: an operator not after a number or
  ")", a number or "(" not at the start or after an operator or "(", a ")" not after a number or
  ")", or a ")" with no open "(". An unclosed "(" is not a violation (evaluation catches it).
* INCORRECT_NUMBER, -2: a literal that is not a card value or is used more often than the hand
  holds it; another -2 if some card value is left unused (so at most -4).
* Only when the total is still 0 is the value computed, exactly (``expr.evaluate``):
  CORRECT +5 if it equals the target; PARTIAL +1 if evaluation raises (unclosed "(", division by
  zero, trailing operator) and the string is a prefix of a solver solution (only with
  ``partial_credit_for_prefix``); WRONG RESULT -1 otherwise.

``Grade.errors`` names each triggered class once ("illegal_formula", "incorrect_number",
"wrong_result", "partial_solution"); a partial is not correct. "aggregated_error" is added when
the total is not one of the single-class values (+5, +1, -1, -2, -3), e.g. -4, -5 or -6, which
is how the paper's logger classed such steps; ``step_class`` gives that one-class-per-step view.
The grader never raises on any completion: an internal failure is scored as an illegal formula.

The chain answer format (``answer_format: chain``) writes the game as its three moves, each
combining two numbers still on the table into one: ``"3*8=24;24-5=19;19+9=28"`` (whitespace is
ignored). Every intermediate result is a non-negative integer, so the OOD answer is a sequence of
the same kind of steps as the ID answer and only the values differ. It is graded exactly, with
the same classes and rewards: ILLEGAL_FORMULA (-3, stop) unless the reply is exactly three steps
``p o q = r`` (non-negative integer literals of at most 6 digits for p and q and 12 for r,
``o`` in ``+-*/``) separated by ";";
INCORRECT_NUMBER (-2, stop) if a step uses a number that is not on the table (the card values,
plus each earlier step's stated result, each usable once); WRONG_RESULT (-1) if a step's stated
result is not ``p o q`` computed exactly (a division must come out whole, division by zero is
wrong) or the last result is not the target; CORRECT (+5) otherwise. No partial credit (a chain
has no unclosed prefix), so ``partial_credit_for_prefix`` must be false. A hand of this format
is drawn until an integer chain exists (``expr.chain_solutions``), and the reference is the simplest
such chain (no division first, then shortest, then alphabetical).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sweeps.tasks.base import Example, Grade, Task, json_string_field
from sweeps.tasks.expr import ExprError, chain_solutions, chain_step, evaluate, is_solvable, solve

ILLEGAL_FORMULA, INCORRECT_NUMBER = "illegal_formula", "incorrect_number"
WRONG_RESULT, PARTIAL_SOLUTION = "wrong_result", "partial_solution"
AGGREGATED_ERROR = "aggregated_error"
ERROR_CLASSES = (ILLEGAL_FORMULA, INCORRECT_NUMBER, WRONG_RESULT, PARTIAL_SOLUTION, AGGREGATED_ERROR)
REWARDS = {"correct": 5.0, PARTIAL_SOLUTION: 1.0, WRONG_RESULT: -1.0, INCORRECT_NUMBER: -2.0, ILLEGAL_FORMULA: -3.0}
FEEDBACK = {
    ILLEGAL_FORMULA: "illegal formula",
    INCORRECT_NUMBER: "incorrect number",
    WRONG_RESULT: "wrong result",
    PARTIAL_SOLUTION: "partial solution",
}

RANK_NAMES = {1: "A", 11: "J", 12: "Q", 13: "K"}
FACE_RANKS = (11, 12, 13)
PROMPT_STYLES = ("paper", "compact", "tiny")
ANSWER_FORMATS = ("json", "bare", "values", "chain")
REFERENCES = ("first", "simplest")
_MAX_DRAWS = 10_000

# Non-empty and only digits, operators and parentheses: the same language as
# (?:[0-9]+|[+\-*/()])+, whose nested quantifier backtracked exponentially on "1" * 40 + "x".
_LEGAL = re.compile(r"[0-9+\-*/()]+")
_CHAIN_STEP = re.compile(r"([0-9]{1,6})([+\-*/])([0-9]{1,6})=([0-9]{1,12})")
CHAIN_STEPS = 3


def rank_name(rank: int) -> str:
    return RANK_NAMES.get(rank, str(rank))


def extract_formula(completion: str, answer_format: str = "json") -> str:
    """The reply's formula. ``json``: the JSON "formula", else the quote-tolerant regex, else
    "None". ``bare``: the whole reply. ``values``: what follows the last ";" (the reply restates
    the card values first: ``"3 11 5 13 ; (11-5)*(13-9)"``), else "None"."""
    if answer_format == "bare":
        return completion
    if answer_format == "values":
        return completion.rsplit(";", 1)[1] if ";" in completion else "None"
    formula = json_string_field(completion, "formula")
    return "None" if formula is None else formula


def normalize_formula(formula: str) -> str:
    """Cut from the first "=" on and remove every whitespace character."""
    return "".join(formula.split("=", 1)[0].split())


def simplicity(formula: str) -> tuple[int, int, int, str]:
    """Sort key of the "simplest" reference: no division first, then fewer parentheses, then
    shorter, then alphabetical (a total order, so the choice is deterministic)."""
    return ("/" in formula, formula.count("("), len(formula), formula)


def count_violations(tokens: list[str]) -> int:
    """Bad transitions of the number/operator/parenthesis state machine (see module docstring)."""
    violations, depth, prev = 0, 0, None  # prev: None, "num", "op", "(" or ")"
    for token in tokens:
        kind = "num" if token.isdigit() else "op" if token in "+-*/" else token
        if kind in ("num", "("):
            ok = prev in (None, "op", "(")
            if ok and kind == "(":
                depth += 1
        elif kind == "op":
            ok = prev in ("num", ")")
        else:  # ")"
            ok = prev in ("num", ")") and depth > 0
            if ok:
                depth -= 1
        if not ok:
            violations += 1
        prev = kind
    return violations


def step_class(grade: Grade) -> str:
    """The paper's single class of a graded step: "correct" or one error class."""
    if grade.correct:
        return "correct"
    if AGGREGATED_ERROR in grade.errors or not grade.errors:
        return AGGREGATED_ERROR
    return grade.errors[0]


def _int_tuple(value: Any, name: str) -> tuple[int, ...]:
    """A YAML list (or any iterable) of ints as a tuple; anything else is a config error."""
    items = None if isinstance(value, str) or not hasattr(value, "__iter__") else list(value)
    if items is None or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ValueError(f"task.{name} must be a list of integers, got {value!r}")
    return tuple(items)


@dataclass
class GeneralPoints(Task):
    """The 24 game; every field is config (see ``conf/task/general_points.yaml``)."""

    name: str = "general_points"
    max_attempts: int = 5
    max_new_tokens: int = 256
    eval_items: int = 234
    target: int = 24
    targets: tuple[int, ...] | None = None  # make-T: draw the target from this list
    id_face_values: tuple[int, ...] = (10, 10, 10)  # values of J, Q, K under the ID rule
    ood_face_values: tuple[int, ...] = (11, 12, 13)  # ... and under the OOD rule
    ood_min_face_cards: int = 1
    prompt_style: str = "paper"
    answer_format: str = (
        "json"  # json {"formula": ...} | bare formula | values "v1 v2 v3 v4 ; formula" | chain "a+b=x;x*c=y;y-d=T"
    )
    reference: str = "first"  # SFT target among the solver's solutions: first | simplest
    partial_credit_for_prefix: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.target, bool) or not isinstance(self.target, int):
            raise ValueError(f"task.target must be an integer, got {self.target!r}")
        if self.targets is not None:
            self.targets = _int_tuple(self.targets, "targets")
            if not self.targets:
                raise ValueError("task.targets must be non-empty (or null for [target])")
        for name in ("id_face_values", "ood_face_values"):
            values = _int_tuple(getattr(self, name), name)
            if len(values) != 3 or min(values) < 1:
                raise ValueError(f"task.{name} must be 3 positive integers (J, Q, K), got {values}")
            setattr(self, name, values)
        if not 0 <= self.ood_min_face_cards <= 4:
            raise ValueError(f"task.ood_min_face_cards must be in 0..4, got {self.ood_min_face_cards}")
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f"task.prompt_style must be one of {PROMPT_STYLES}, got {self.prompt_style!r}")
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"task.answer_format must be one of {ANSWER_FORMATS}, got {self.answer_format!r}")
        if self.answer_format != "json" and self.prompt_style == "paper":
            raise ValueError(
                "task.answer_format: the paper prompt asks for JSON; use answer_format=json "
                "or prompt_style=compact|tiny"
            )
        if self.answer_format == "chain" and self.partial_credit_for_prefix:
            raise ValueError(
                "task.partial_credit_for_prefix must be false with answer_format=chain "
                "(a chain has no partial-solution class)"
            )
        if self.reference not in REFERENCES:
            raise ValueError(f"task.reference must be one of {REFERENCES}, got {self.reference!r}")
        if not isinstance(self.partial_credit_for_prefix, bool):
            raise ValueError(f"task.partial_credit_for_prefix must be a bool, got {self.partial_credit_for_prefix!r}")
        self.error_classes = ERROR_CLASSES

    # --- sampling -------------------------------------------------------------------------
    def face_values(self, split: str) -> tuple[int, ...]:
        self.check_split(split)
        return self.id_face_values if split == "id" else self.ood_face_values

    def card_value(self, rank: int, split: str) -> int:
        return self.face_values(split)[rank - 11] if rank in FACE_RANKS else rank

    def solvable(self, values: list[int], target: int) -> bool:
        """A hand is kept if it has an answer in this format (an integer chain for ``chain``)."""
        return bool(chain_solutions(values, target)) if self.answer_format == "chain" else is_solvable(values, target)

    def sample(self, split: str, rng: random.Random) -> Example:
        """Draw (target, ranks) until the hand is solvable under the split's rule."""
        self.check_split(split)
        n_face = self.ood_min_face_cards if split == "ood" else 0
        return self._draw(split, self.face_values(split), self.targets or (self.target,), n_face, rng, "task.targets")

    def sample_pretrain(
        self, rng: random.Random, targets: tuple[int, ...], face_card_prob: float = 6 / 13, face_high_prob: float = 0.5
    ) -> Example:
        """One pretraining example under a random rule stated in the prompt.

        Each card is a face card (J, Q or K, uniform) with probability ``face_card_prob``, else a
        number card A..10 (uniform). Each of J, Q, K gets its own value: uniform on 11..13 with
        probability ``face_high_prob``, else uniform on 1..10. So the ID rule (10, 10, 10), the
        OOD rule (11, 12, 13) and every mixture are all pretraining rules, and with the defaults
        every card value 1..13 is equally likely: P(v <= 10) = (1 - f)/10 + f(1 - h)/10 and
        P(v >= 11) = f h / 3, equal at f = 6/13, h = 1/2. (With face values uniform on 1..13 and
        ranks uniform, 11..13 would be 5x rarer than the others, which makes a base better at ID
        hands than at OOD hands before any fine-tuning.) The target is drawn from ``targets``; a
        draw is repeated until the hand is solvable. Split "id" only labels the example: its
        rule travels in ``data["rule"]``."""
        for _ in range(_MAX_DRAWS):
            rule = tuple(
                rng.randint(11, 13) if rng.random() < face_high_prob else rng.randint(1, 10) for _ in FACE_RANKS
            )
            target = rng.choice(targets)
            ranks = [rng.choice(FACE_RANKS) if rng.random() < face_card_prob else rng.randint(1, 10) for _ in range(4)]
            values = [rule[r - 11] if r in FACE_RANKS else r for r in ranks]
            if self.solvable(values, target):
                data = {"cards": [rank_name(r) for r in ranks], "values": values, "target": target, "rule": list(rule)}
                return Example(split="id", data=data)
        raise ValueError(f"algo.targets: no solvable hand found in {_MAX_DRAWS} draws")

    def _draw(
        self, split: str, rule: tuple[int, ...], targets: tuple[int, ...], n_face: int, rng: random.Random, field: str
    ) -> Example:
        for _ in range(_MAX_DRAWS):
            target = rng.choice(targets)
            ranks = [rng.randint(1, 13) for _ in range(4 - n_face)]
            ranks += [rng.choice(FACE_RANKS) for _ in range(n_face)]
            if n_face:
                rng.shuffle(ranks)
            values = [rule[r - 11] if r in FACE_RANKS else r for r in ranks]
            if self.solvable(values, target):
                data = {"cards": [rank_name(r) for r in ranks], "values": values, "target": target}
                return Example(split=split, data=data)
        raise ValueError(f"{field}: no solvable hand found in {_MAX_DRAWS} draws")

    # --- prompt and reference -------------------------------------------------------------
    def prompt(self, example: Example) -> str:
        jqk = example.data.get("rule") or self.face_values(example.split)
        target, cards = example.target, example.cards
        if self.prompt_style == "tiny":
            return f"J={jqk[0]} Q={jqk[1]} K={jqk[2]} cards {' '.join(cards)} target {target}"
        if self.prompt_style == "compact":
            return (
                f"Rule: J={jqk[0]} Q={jqk[1]} K={jqk[2]}. Cards: {' '.join(cards)}. "
                f"Target: {target}. Use each card exactly once. Answer as JSON with key formula."
            )
        if len(set(jqk)) == 1:
            rule = f"'J', 'Q', and 'K' count as '{jqk[0]}'"
        else:
            rule = f"'J', 'Q', and 'K' count as '{jqk[0]}', '{jqk[1]}', and '{jqk[2]}' respectively"
        schema = json.dumps(
            {
                "cards": "the cards you see, as a list of strings",
                "number": "the value of each card, as a list of integers",
                "formula": f"a string with an equation that equals {target}",
            },
            indent=2,
        )
        return (
            f"You are an expert {target} points card game player. You will receive a set of 4 cards.\n"
            f"Note that {rule}, and each card must be used exactly once.\n"
            f"Your goal is to output a formula that evaluates to {target} using only the numbers "
            "on the cards and the symbols '+', '-', '*', '/', '(', ')' and '='.\n\n"
            f"Cards: {list(cards)}\n\n"
            f"Reply with a valid JSON object in this format:\n{schema}"
        )

    def solutions(self, example: Example) -> tuple[str, ...]:
        """Every solver solution for the example's hand (empty unless it has 4 cards): formulas,
        or chains for ``answer_format: chain``."""
        values = example.values
        if len(values) != 4:
            return ()
        return (
            chain_solutions(values, example.target) if self.answer_format == "chain" else solve(values, example.target)
        )

    def reference_completion(self, example: Example) -> str:
        solutions = self.solutions(example)
        if not solutions:
            raise ValueError(f"no solution for values {example.values} and target {example.target}")
        formula = solutions[0] if self.reference == "first" else min(solutions, key=simplicity)
        if self.answer_format in ("bare", "chain"):
            return formula
        if self.answer_format == "values":
            return f"{' '.join(map(str, example.values))} ; {formula}"
        if self.prompt_style == "compact":
            return json.dumps({"formula": formula})
        return json.dumps({"cards": list(example.cards), "number": list(example.values), "formula": formula})

    # --- grading --------------------------------------------------------------------------
    def grade(self, example: Example, completion: str) -> Grade:
        values = [int(v) for v in example.values]
        target = int(example.target)
        penalties = self._chain_penalties if self.answer_format == "chain" else self._penalties
        try:
            triggered = penalties(values, target, str(completion))
        except Exception:  # noqa: BLE001 - a pathological string is an illegal formula
            triggered = [ILLEGAL_FORMULA]
        return self._to_grade(triggered)

    def _penalties(self, values: list[int], target: int, completion: str) -> list[str]:
        """The triggered classes in check order (one entry per penalty, so they sum)."""
        formula = normalize_formula(extract_formula(completion, self.answer_format))
        if not _LEGAL.fullmatch(formula):
            return [ILLEGAL_FORMULA]
        tokens = re.findall(r"[0-9]+|[+\-*/()]", formula)
        triggered = [ILLEGAL_FORMULA] * count_violations(tokens)

        used = Counter(int(t) if len(t) <= 20 else t for t in tokens if t.isdigit())  # huge: no card
        cards = Counter(values)
        if any(n > cards[v] for v, n in used.items()):
            triggered.append(INCORRECT_NUMBER)
        if any(n > used[v] for v, n in cards.items()):
            triggered.append(INCORRECT_NUMBER)
        if triggered:
            return triggered

        try:
            value = evaluate(formula)
        except ExprError:
            prefix = (
                self.partial_credit_for_prefix
                and len(values) == 4
                and any(s.startswith(formula) for s in solve(values, target))
            )
            return [PARTIAL_SOLUTION] if prefix else [WRONG_RESULT]
        return [] if value == target else [WRONG_RESULT]

    @staticmethod
    def _chain_penalties(values: list[int], target: int, completion: str) -> list[str]:
        """The chain format's triggered classes (see module docstring): parse, then the numbers
        on the table, then the arithmetic and the target."""
        parts = "".join(completion.split()).split(";")
        steps = [_CHAIN_STEP.fullmatch(part) for part in parts]
        if len(parts) != CHAIN_STEPS or not all(steps):
            return [ILLEGAL_FORMULA]
        table = Counter(values)
        for m in steps:
            p, q, r = int(m.group(1)), int(m.group(3)), int(m.group(4))
            table[p] -= 1
            table[q] -= 1
            if table[p] < 0 or table[q] < 0:
                return [INCORRECT_NUMBER]
            table[r] += 1
        exact = all(chain_step(m.group(2), int(m.group(1)), int(m.group(3))) == int(m.group(4)) for m in steps)
        return [] if exact and int(steps[-1].group(4)) == target else [WRONG_RESULT]

    @staticmethod
    def _to_grade(triggered: list[str]) -> Grade:
        if not triggered:
            return Grade(reward=REWARDS["correct"], correct=True)
        reward = sum(REWARDS[c] for c in triggered)
        errors = tuple(dict.fromkeys(triggered))
        if reward not in REWARDS.values():
            errors += (AGGREGATED_ERROR,)
        feedback = tuple(FEEDBACK[c] for c in dict.fromkeys(triggered))
        return Grade(reward=reward, correct=False, errors=errors, feedback=feedback)
