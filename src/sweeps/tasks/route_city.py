"""The city and the routes of route following (``sweeps.tasks.route_following``): a street graph
with named corner landmarks, random solvable routes through it, and a route written as an
example's data. Pure geometry and bookkeeping: no prompts, no grading.

Headings are indices into ``COMPASS`` (0 north, clockwise in 45-degree steps); a node is an
intersection ``(x, y)`` with y pointing north.

City (``source: generated``). A ``grid_width`` x ``grid_height`` grid of intersections joined by
every north-south and east-west street, plus ``avenues`` diagonal avenues (whole lines at 45
degrees, never crossing another avenue between intersections), so every one of the 8 headings
occurs. ``landmarks`` intersections, drawn uniformly, each get one landmark with a distinct name
(``LANDMARK_NAMES``) standing on one of the intersection's four corners (NE, SE, SW, NW). Seen
from an intersection with heading h, a landmark on the corner at bearing b is at relation
(b - h) mod 8 in 45-degree steps: ahead, front right, right, back right, behind, back left,
left, front left. Each example draws its own city from its RNG (the model must read, not
remember a map); ``city_seed: <int>`` fixes one city for every example instead, as V-IRL has one.

Route. From a landmark intersection, ``min_segments``..``max_segments`` straight segments of 1 to
``max_blocks`` blocks, each ending at a landmark intersection, never revisiting an intersection;
consecutive segments differ by a 45 or 90 degree turn, and the initial heading differs from the
first segment's by one too, so the relative action space covers every route. A segment choice is
uniform over the (direction, length) pairs that qualify; a dead end redraws the route. Because
names are unique and a landmark is seen only from its own intersection, the first intersection
where the named landmark is on the named side is the segment's end: every route is solvable
from the text alone (``follow`` is an agent that does it, used by the tests).

Route data (``route_data``): the instructions as records (turn to a compass heading, move until a
landmark is at a relation, stop) and, per step, the observation at the agent's intersection, the
reference action (absolute) and the index of the instruction it carries out. ``split_actions`` and
``split_instructions`` give the same route in the OOD split's relative vocabulary.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

COMPASS = ("north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest")
VECTORS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))  # (dx, dy), y north
TURNS = {-2: "left", -1: "slightly left", 1: "slightly right", 2: "right"}  # heading change, 45 deg clockwise
RELATIONS = ("ahead", "front right", "right", "back right", "behind", "back left", "left", "front left")
CORNERS = (1, 3, 5, 7)  # NE, SE, SW, NW
LANDMARK_NAMES = (
    "Bakery",
    "Museum",
    "Library",
    "Hotel",
    "Bank",
    "Cafe",
    "Park",
    "School",
    "Church",
    "Pharmacy",
    "Theater",
    "Market",
    "Station",
    "Gym",
    "Hospital",
    "Bookstore",
    "Cinema",
    "Stadium",
    "Florist",
    "Garage",
    "Bistro",
    "Gallery",
    "Tower",
    "Fountain",
    "Diner",
    "Temple",
    "Arcade",
    "Bridge",
    "Pier",
    "Courthouse",
    "Bar",
    "Salon",
    "Clinic",
    "Tailor",
    "Pizzeria",
    "Zoo",
    "Mall",
    "Laundry",
    "Deli",
    "Chapel",
)
_MAX_DRAWS = 10_000

Node = tuple[int, int]


# --- the city ---------------------------------------------------------------------------------
def step_from(node: Node, heading: int) -> Node:
    dx, dy = VECTORS[heading]
    return node[0] + dx, node[1] + dy


def relation(bearing: int, heading: int) -> str:
    """Where something at compass ``bearing`` is, seen with ``heading`` (indices into COMPASS)."""
    return RELATIONS[(bearing - heading) % 8]


@dataclass(frozen=True)
class City:
    """Intersections on a grid, streets between them, at most one landmark per intersection."""

    width: int
    height: int
    streets: frozenset[tuple[Node, Node]]  # both directions of every street
    landmarks: dict[Node, tuple[str, int]] = field(hash=False)  # node -> (name, corner bearing)

    def has_street(self, node: Node, heading: int) -> bool:
        return (node, step_from(node, heading)) in self.streets

    def observe(self, node: Node, heading: int) -> list[list[str]]:
        """[[name, relation], ...] of the landmarks at ``node`` seen with ``heading``."""
        if node not in self.landmarks:
            return []
        name, corner = self.landmarks[node]
        return [[name, relation(corner, heading)]]


def make_city(rng: random.Random, width: int, height: int, avenues: int, landmarks: int) -> City:
    """A grid city with diagonal avenues and named corner landmarks (see module docstring)."""
    streets: set[tuple[Node, Node]] = set()

    def add(a: Node, b: Node) -> None:
        streets.update({(a, b), (b, a)})

    for x in range(width):
        for y in range(height):
            if x + 1 < width:
                add((x, y), (x + 1, y))
            if y + 1 < height:
                add((x, y), (x, y + 1))
    diagonal: dict[Node, str] = {}  # cell (lower-left corner) -> "/" or "\\"
    cells = [(x, y) for x in range(width - 1) for y in range(height - 1)]
    for _ in range(avenues):
        for _ in range(100):
            kind = rng.choice("/\\")
            c = rng.randint(-(width - 2), height - 2) if kind == "/" else rng.randint(0, width + height - 4)
            line = [(x, y) for x, y in cells if (y - x == c if kind == "/" else x + y == c)]
            if len(line) >= 2 and not any(cell in diagonal for cell in line):
                for x, y in line:
                    diagonal[(x, y)] = kind
                    if kind == "/":
                        add((x, y), (x + 1, y + 1))
                    else:
                        add((x, y + 1), (x + 1, y))
                break
    nodes = [(x, y) for x in range(width) for y in range(height)]
    placed = rng.sample(nodes, landmarks)
    names = rng.sample(LANDMARK_NAMES, landmarks)
    return City(width, height, frozenset(streets), {n: (name, rng.choice(CORNERS)) for n, name in zip(placed, names)})


# --- routes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    start: Node
    start_heading: int
    segments: tuple[tuple[int, int], ...]  # (heading, blocks)

    def nodes(self) -> list[Node]:
        out = [self.start]
        for heading, blocks in self.segments:
            for _ in range(blocks):
                out.append(step_from(out[-1], heading))
        return out


def plan_route(city: City, rng: random.Random, min_segments: int, max_segments: int, max_blocks: int) -> Route:
    """A random solvable route between landmarks (see module docstring)."""
    starts = sorted(city.landmarks)
    for _ in range(_MAX_DRAWS):
        start = node = rng.choice(starts)
        visited, segments, heading = {node}, [], None
        for _ in range(rng.randint(min_segments, max_segments)):
            options = []
            for d in range(8):
                if heading is not None and (d - heading) % 8 not in (1, 2, 6, 7):
                    continue
                cur = node
                for blocks in range(1, max_blocks + 1):
                    if not city.has_street(cur, d) or step_from(cur, d) in visited:
                        break
                    cur = step_from(cur, d)
                    if cur in city.landmarks:
                        options.append((d, blocks))
            if not options:
                break
            heading, blocks = rng.choice(options)
            for _ in range(blocks):
                node = step_from(node, heading)
                visited.add(node)
            segments.append((heading, blocks))
        else:
            start_heading = (segments[0][0] + rng.choice((-2, -1, 1, 2))) % 8
            return Route(start, start_heading, tuple(segments))
    raise ValueError(f"no route found in {_MAX_DRAWS} draws: use a larger grid or more landmarks")


def route_data(city: City, route: Route) -> dict[str, Any]:
    """The route as an example's data: instructions, and per step the observation, the
    reference action (absolute) and the instruction it executes."""
    node, heading = route.start, route.start_heading
    instructions: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    for d, blocks in route.segments:
        instructions.append({"kind": "turn", "to": COMPASS[d]})
        steps.append(
            {"observation": city.observe(node, heading), "action": COMPASS[d], "instruction": len(instructions) - 1}
        )
        heading = d
        end = node
        for _ in range(blocks):
            end = step_from(end, d)
        name, corner = city.landmarks[end]
        instructions.append({"kind": "move", "landmark": name, "relation": relation(corner, d)})
        for _ in range(blocks):
            steps.append(
                {"observation": city.observe(node, heading), "action": "forward", "instruction": len(instructions) - 1}
            )
            node = step_from(node, d)
    instructions.append({"kind": "stop"})
    steps.append({"observation": city.observe(node, heading), "action": "stop", "instruction": len(instructions) - 1})
    return {"start_heading": COMPASS[route.start_heading], "instructions": instructions, "steps": steps, "step": 0}


def headings(data: dict[str, Any]) -> list[int]:
    """The agent's heading (COMPASS index) at each step of the reference route."""
    h, out = COMPASS.index(data["start_heading"]), []
    for s in data["steps"]:
        out.append(h)
        if s["action"] in COMPASS:
            h = COMPASS.index(s["action"])
    return out


def relative_turn(before: int, after: int) -> str:
    """The relative name of the turn from heading ``before`` to ``after``; KeyError outside
    the relative action space (45 and 90 degree turns)."""
    return TURNS[(after - before + 4) % 8 - 4]


def split_actions(data: dict[str, Any], split: str) -> list[str]:
    """The reference action of every step in the split's vocabulary (absolute or relative)."""
    if split == "id":
        return [s["action"] for s in data["steps"]]
    return [
        relative_turn(h, COMPASS.index(s["action"])) if s["action"] in COMPASS else s["action"]
        for s, h in zip(data["steps"], headings(data))
    ]


def split_instructions(data: dict[str, Any], split: str) -> list[dict[str, Any]]:
    """Instructions with each turn's target in the split's vocabulary."""
    turns = iter(a for s, a in zip(data["steps"], split_actions(data, split)) if s["action"] in COMPASS)
    return [{**ins, "to": next(turns)} if ins["kind"] == "turn" else ins for ins in data["instructions"]]


def follow(instructions: list[dict[str, Any]], observe: Any, max_steps: int = 1000) -> list[str]:
    """A text-only agent: executes absolute ``instructions`` using only ``observe(step, actions)``
    (the [[name, relation], ...] seen before each action). Returns its actions, ending at "stop"."""
    actions: list[str] = []
    i = 0
    while len(actions) < max_steps:
        seen = observe(len(actions), actions)  # once per action
        ins = instructions[i]
        if ins["kind"] == "move" and actions[-1:] == ["forward"] and [ins["landmark"], ins["relation"]] in seen:
            i += 1  # arrived: the next instruction acts here
            ins = instructions[i]
        if ins["kind"] == "turn":
            actions.append(ins["to"])
            i += 1
        elif ins["kind"] == "stop":
            actions.append("stop")
            return actions
        else:
            actions.append("forward")
    raise ValueError("follow: no stop within max_steps")
