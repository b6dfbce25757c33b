"""Route following, the paper's second task family (V-IRL, PAPER.md 2.3), as text, offline.

The skill: follow written directions through a street graph, step by step, reading what is
seen at each intersection. The shift: the same routes under another action vocabulary. ID
instructions and actions are absolute ("turn to face northeast", ``turn_direction(northeast)``,
8 compass directions), OOD ones relative ("turn slightly left", ``turn_direction(slightly
left)``; left, right, slightly left, slightly right); ``forward()`` and ``stop()`` are shared.

City and route (``source: generated``): ``sweeps.tasks.route_city`` builds them; its docstring
gives the grid, the landmarks, the route rules and why every route is solvable from the text alone.

Instructions (V-IRL style): "First, turn to face <dir>." (OOD: "First, turn <rel>.") / "Move
forward until you reach the intersection where <X> is <relation>." / "Stop." Steps: a turn step,
then one ``forward()`` step per block, per segment; then a ``stop()`` step at the destination.
The observation of a step lists the landmarks at the agent's intersection relative to its
heading ("Bakery is on your left.", or "No landmarks nearby.").

Episode (the verification loop, ``sweeps.episodes.play``): step k's prompt holds the
instructions, the action space of the split, and the observations and (correct) actions of
steps 1..k; the reply is graded; a correct action opens step k + 1, a wrong one gets the feedback
turn and another try, up to ``max_attempts`` per step; the episode succeeds when ``stop()`` is
given at the destination. ``sft_example`` is one step of an ID route, uniformly.

Grading of one reply at one step (exact, never raises). The action is read from the reply's JSON
"action" (else a quote-tolerant ``"action": "..."`` regex) in the ``paper`` style, or is the whole
stripped reply in the ``tiny`` style (codes: F, stop, N NE E SE S SW W NW, L R SL SR). Then:

* no action recognised: ``format_error``, -1;
* the right action: correct, +1;
* moving where the route turns or stops, or turning or stopping where it moves on (the agent
  misjudged which intersection it is at): ``wrong_intersection``, -1.5;
* a turn outside the split's action space (a compass turn in the OOD split, a relative one in
  ID): ``invalid_action``, -1;
* any other wrong action (another direction; a turn for a stop or back): ``wrong_action``, -1.

The paper gives +1 correct action, -1 wrong action, -1.5 "wrong intersection observation"; V-IRL
asks the model to state its observation too. This text version has no field to grade for it, so
-1.5 goes to the action-level mistake that shows a wrong intersection judgement (above): our
reading, not checked against V-IRL's code.

Real V-IRL routes (``source: virl``, ``virl_root: <dir>``): ``sweeps.tasks.virl_routes`` reads
them into the same example data; its docstring gives the file format it assumes, which was
written from public descriptions of V-IRL and has not been checked against the real files.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

from sweeps.tasks.base import Example, Grade, Task, json_string_field
from sweeps.tasks.route_city import (
    COMPASS,
    CORNERS,
    LANDMARK_NAMES,
    RELATIONS,
    TURNS,
    VECTORS,
    City,
    Node,
    Route,
    follow,
    headings,
    make_city,
    plan_route,
    relation,
    relative_turn,
    route_data,
    split_actions,
    split_instructions,
    step_from,
)

__all__ = [  # the city and route names stay importable from here (re-exported from route_city)
    "ACTION_SPACES",
    "COMPASS",
    "CORNERS",
    "ERROR_CLASSES",
    "FEEDBACK",
    "LANDMARK_NAMES",
    "PHRASES",
    "RELATIONS",
    "REWARDS",
    "TINY_CODES",
    "TURNS",
    "VECTORS",
    "City",
    "Node",
    "Route",
    "RouteFollowing",
    "extract_action",
    "follow",
    "headings",
    "make_city",
    "parse_paper_action",
    "plan_route",
    "relation",
    "relative_turn",
    "route_data",
    "split_actions",
    "split_instructions",
    "step_from",
]

PHRASES = {"ahead": "in front of you", "behind": "behind you"}  # else "on your <relation>"
TINY_CODES = {
    "forward": "F",
    "stop": "stop",
    **dict(zip(COMPASS, ("N", "NE", "E", "SE", "S", "SW", "W", "NW"))),
    "left": "L",
    "right": "R",
    "slightly left": "SL",
    "slightly right": "SR",
}
ACTION_SPACES = {"id": ("forward", "stop", *COMPASS), "ood": ("forward", "stop", *TURNS.values())}

FORMAT_ERROR, WRONG_INTERSECTION = "format_error", "wrong_intersection"
INVALID_ACTION, WRONG_ACTION = "invalid_action", "wrong_action"
ERROR_CLASSES = (FORMAT_ERROR, WRONG_INTERSECTION, INVALID_ACTION, WRONG_ACTION)
REWARDS = {"correct": 1.0, FORMAT_ERROR: -1.0, WRONG_INTERSECTION: -1.5, INVALID_ACTION: -1.0, WRONG_ACTION: -1.0}
FEEDBACK = {
    FORMAT_ERROR: "no valid action",
    WRONG_INTERSECTION: "wrong intersection",
    INVALID_ACTION: "action not in the action space",
    WRONG_ACTION: "wrong action",
}
PROMPT_STYLES = ("paper", "tiny")
SOURCES = ("generated", "virl")
_CALL_RE = re.compile(r"(forward|stop)\s*\(\s*\)|turn_direction\s*\(\s*['\"]?([a-z ]+?)['\"]?\s*\)")
_FROM_CODE = {code: action for action, code in TINY_CODES.items()}


# --- parsing replies -----------------------------------------------------------------------
def parse_paper_action(text: str) -> str | None:
    """``forward()``, ``stop()`` or ``turn_direction(x)`` as a canonical action, else None."""
    m = _CALL_RE.fullmatch(" ".join(text.strip().lower().split()))
    if m is None:
        return None
    return m.group(1) or m.group(2)


def extract_action(completion: str) -> str:
    """The reply's JSON "action", else the quote-tolerant regex, else the whole reply."""
    action = json_string_field(completion, "action")
    return completion if action is None else action


# --- the task --------------------------------------------------------------------------------
@dataclass
class RouteFollowing(Task):
    """Route following with absolute (ID) or relative (OOD) actions; see the module docstring."""

    name: str = "route_following"
    max_attempts: int = 2  # V-IRL's evaluation: 2 attempts (here per step)
    max_new_tokens: int = 128
    eval_items: int = 48  # V-IRL's evaluation: 48 routes
    prompt_style: str = "paper"  # paper (V-IRL prompt, JSON reply) | tiny (codes, for the tiny model)
    source: str = "generated"  # generated | virl (real routes from virl_root)
    virl_root: str | None = None
    city_seed: int | None = None  # null: a new city per example; an int: one city for all
    grid_width: int = 5
    grid_height: int = 5
    avenues: int = 2
    landmarks: int = 12
    min_segments: int = 2
    max_segments: int = 3
    max_blocks: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.prompt_style not in PROMPT_STYLES:
            raise ValueError(f"task.prompt_style must be one of {PROMPT_STYLES}, got {self.prompt_style!r}")
        if self.source not in SOURCES:
            raise ValueError(f"task.source must be one of {SOURCES}, got {self.source!r}")
        if self.grid_width < 2 or self.grid_height < 2:
            raise ValueError(
                f"task.grid_width and task.grid_height must be >= 2, got {self.grid_width}, {self.grid_height}"
            )
        if not 2 <= self.landmarks <= min(len(LANDMARK_NAMES), self.grid_width * self.grid_height):
            raise ValueError(
                f"task.landmarks must be in 2..{min(len(LANDMARK_NAMES), self.grid_width * self.grid_height)}, "
                f"got {self.landmarks}"
            )
        if not 1 <= self.min_segments <= self.max_segments:
            raise ValueError(
                f"task.min_segments must be in 1..task.max_segments, got {self.min_segments}, {self.max_segments}"
            )
        if self.max_blocks < 1 or self.avenues < 0:
            raise ValueError(
                f"task.max_blocks must be >= 1 and task.avenues >= 0, got {self.max_blocks}, {self.avenues}"
            )
        self.error_classes = ERROR_CLASSES
        self._routes = None
        if self.source == "virl":
            if not self.virl_root:
                raise ValueError("task.virl_root: source=virl needs the directory holding route_infos.json")
            from sweeps.tasks.virl_routes import load_virl_routes

            self._routes = load_virl_routes(self.virl_root)
        self._city = None if self.city_seed is None else self.city(random.Random(self.city_seed))

    def city(self, rng: random.Random) -> City:
        return make_city(rng, self.grid_width, self.grid_height, self.avenues, self.landmarks)

    # --- sampling -------------------------------------------------------------------------
    def sample(self, split: str, rng: random.Random) -> Example:
        """A route at its first step; the same RNG gives the same route in both splits."""
        self.check_split(split)
        if self._routes is not None:
            return Example(split=split, data=json.loads(json.dumps(rng.choice(self._routes))))
        city = self._city or self.city(rng)
        route = plan_route(city, rng, self.min_segments, self.max_segments, self.max_blocks)
        return Example(split=split, data=route_data(city, route))

    def num_steps(self, example: Example) -> int:
        return len(example.data["steps"])

    def at_step(self, example: Example, step: int) -> Example:
        if not 0 <= step < self.num_steps(example):
            raise ValueError(f"step {step} outside the route's {self.num_steps(example)} steps")
        return Example(split=example.split, data={**example.data, "step": step})

    def sft_example(self, rng: random.Random) -> Example:
        ex = self.sample("id", rng)
        return self.at_step(ex, rng.randrange(self.num_steps(ex)))

    def action(self, example: Example) -> str:
        """The reference action at the example's step, in its split's vocabulary."""
        return split_actions(example.data, example.split)[example.data.get("step", 0)]

    # --- rendering ------------------------------------------------------------------------
    def render_action(self, action: str) -> str:
        if self.prompt_style == "tiny":
            return TINY_CODES[action]
        return f"{action}()" if action in ("forward", "stop") else f"turn_direction({action})"

    def render_observation(self, seen: list[list[str]]) -> str:
        if self.prompt_style == "tiny":
            return ", ".join(f"{name} {rel}" for name, rel in seen) or "none"
        if not seen:
            return "No landmarks nearby."
        return " ".join(f"{name} is {PHRASES.get(rel, 'on your ' + rel)}." for name, rel in seen)

    def render_instruction(self, ins: dict[str, Any], first: bool, split: str) -> str:
        if self.prompt_style == "tiny":
            if ins["kind"] == "turn":
                return TINY_CODES[ins["to"]]
            return f"F to {ins['landmark']} {ins['relation']}" if ins["kind"] == "move" else "stop"
        if ins["kind"] == "turn":
            turn = f"turn to face {ins['to']}" if split == "id" else f"turn {ins['to']}"
            return f"First, {turn}." if first else f"{turn[0].upper()}{turn[1:]}."
        if ins["kind"] == "move":
            rel = PHRASES.get(ins["relation"], "on your " + ins["relation"])
            return f"Move forward until you reach the intersection where {ins['landmark']} is {rel}."
        return "Stop."

    def instruction_lines(self, example: Example) -> list[str]:
        ins = split_instructions(example.data, example.split)
        return [self.render_instruction(x, i == 0, example.split) for i, x in enumerate(ins)]

    def prompt(self, example: Example) -> str:
        data, split, k = example.data, example.split, example.data.get("step", 0)
        actions = split_actions(data, split)
        lines = self.instruction_lines(example)
        seen = [self.render_observation(s["observation"]) for s in data["steps"][: k + 1]]
        if self.prompt_style == "tiny":
            history = "".join(f" | {o} > {self.render_action(a)}" for o, a in zip(seen, actions[:k]))
            return " ".join(f"{i + 1} {line}" for i, line in enumerate(lines)) + f"{history} | {seen[k]} >"
        if split == "id":
            turn = f'"turn_direction(x)": turn to face direction x, one of {json.dumps(list(COMPASS))}'
        else:
            turn = f'"turn_direction(x)": turn x, one of {json.dumps(list(TURNS.values()))}'
        history = []
        for i in range(k + 1):
            history.append(f"O_{i + 1}: {seen[i]}")
            if i < k:
                history.append(f"A_{i + 1}: {self.render_action(actions[i])}")
        schema = json.dumps(
            {
                "current observation": "the latest observation",
                "current instruction": "the instruction to carry out now",
                "action": "the action to take, from the action space",
            },
            indent=2,
        )
        return (
            "[Task Description]\nYou are an expert in navigation. You will receive a sequence of instructions "
            "to follow while observing your surroundings at street intersections. You are also given the "
            "observations and actions so far. Your goal is to take the action that carries out the current "
            "instruction, based on the current observation.\n\n"
            "[Instructions]\n" + "\n".join(f"{i + 1}. {line}" for i, line in enumerate(lines)) + "\n\n"
            "[Action space]\n"
            '- "forward()": move forward to the next intersection\n'
            f"- {turn}\n"
            '- "stop()": the navigation is finished\n\n'
            "[Observations and actions]\n" + "\n".join(history) + "\n\n"
            f"[Output]\nReply with a valid JSON object in this format:\n{schema}"
        )

    def reference_completion(self, example: Example) -> str:
        k = example.data.get("step", 0)
        action = self.render_action(self.action(example))
        if self.prompt_style == "tiny":
            return action
        step = example.data["steps"][k]
        return json.dumps(
            {
                "current observation": self.render_observation(step["observation"]),
                "current instruction": self.instruction_lines(example)[step["instruction"]],
                "action": action,
            }
        )

    # --- grading --------------------------------------------------------------------------
    def parse_action(self, completion: str) -> str | None:
        if self.prompt_style == "tiny":
            return _FROM_CODE.get(completion.strip())
        return parse_paper_action(extract_action(completion))

    def grade(self, example: Example, completion: str) -> Grade:
        truth = self.action(example)
        try:
            answer = self.parse_action(str(completion))
        except Exception:  # noqa: BLE001 - a pathological string is a format error
            answer = None
        if answer == truth:
            return Grade(REWARDS["correct"], True)
        if answer is None:
            error = FORMAT_ERROR
        elif (answer == "forward") != (truth == "forward"):
            error = WRONG_INTERSECTION
        elif answer not in ACTION_SPACES[example.split]:
            error = INVALID_ACTION
        else:
            error = WRONG_ACTION
        return Grade(REWARDS[error], False, (error,), (FEEDBACK[error],))
