"""V-IRL's real routes as route-following examples (text-only observations).

``load_virl_routes(root)`` reads ``route_infos.json`` and ``gps_pano_mapping.json`` from
``root`` into the example data ``sweeps.tasks.route_following`` generates for its own city
(instructions, and per step the observation, the reference action and the instruction it
executes), so the task renders, grades and plays real routes exactly like generated ones, in
both the absolute (ID) and relative (OOD) action vocabularies. Observations are text, from the
route's landmark annotations; panoramas are not used (their ids are kept per step).

ASSUMED FORMAT. The real files could not be fetched here. The format below is reconstructed
from public descriptions of V-IRL and the SFTvsRL data and has NOT been checked against them;
if they differ, ``_route`` is the one function to adapt.

* ``route_infos.json``: a list of routes (or an object whose values are routes), each::

    {"route_id": "...",
     "start_heading": 185.0,                # degrees clockwise from north, or a compass name
     "instructions": ["1. First, turn right to face west.",
                      "2. Move forward until you reach the intersection where <X> is on your right.",
                      ...,
                      "5. Stop."],
     "steps": [{"geocode": [lat, lng],      # one step per action of the reference route
                "action": "turn_direction(west)" | "forward()" | "stop()",
                "landmarks": ["<X> is on your right", ...]},   # seen before that action
               ...]}

  A turn instruction holds "to face <compass direction>", a move instruction "until you reach
  ... where <X> is <relation>" (relation: in front of you, behind you, on your [front |back
  ]left|right), a stop instruction starts with "Stop".
* ``gps_pano_mapping.json``: ``{"<lat>,<lng>": "<panorama id>", ...}``. V-IRL ships this
  mapping as a pickle; convert it to JSON (pickles are never loaded: they can run code).
  Every step's geocode must have a panorama.

Routes that need a turn over 90 degrees are skipped with a warning: the relative action space
(left, right, slightly left, slightly right) has no correct action for them. Anything else that
does not parse is a one-line error naming the file, the route and the field.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from sweeps.tasks.route_city import COMPASS, split_actions
from sweeps.tasks.route_following import PHRASES, parse_paper_action

log = logging.getLogger(__name__)

ROUTE_FILE, PANO_FILE = "route_infos.json", "gps_pano_mapping.json"
_TURN_TEXT = re.compile(r"turn\b.*?\bto face (" + "|".join(sorted(COMPASS, key=len, reverse=True)) + r")\b", re.I)
_MOVE_TEXT = re.compile(
    r"until you reach .*?where (.+?) is (in front of you|behind you|on your "
    r"(?:front left|front right|back left|back right|left|right))",
    re.I,
)
_STOP_TEXT = re.compile(r"^\W*(?:\d+\.\s*)?stop\b", re.I)
_SEEN_TEXT = re.compile(
    r"^(.+?) is (in front of you|behind you|on your (?:front left|front right|back left|"
    r"back right|left|right))\W*$",
    re.I,
)


def _relation_key(phrase: str) -> str:
    phrase = phrase.lower()
    return {v: k for k, v in PHRASES.items()}.get(phrase) or phrase.removeprefix("on your ")


def _parse_instruction(text: str) -> dict[str, Any] | None:
    if m := _TURN_TEXT.search(text):
        return {"kind": "turn", "to": m.group(1).lower()}
    if m := _MOVE_TEXT.search(text):
        return {"kind": "move", "landmark": m.group(1), "relation": _relation_key(m.group(2))}
    return {"kind": "stop"} if _STOP_TEXT.search(text) else None


def _route(raw: dict[str, Any], panos: dict[str, str]) -> dict[str, Any]:
    """One route of route_infos.json as example data; ValueError names what does not parse."""
    rid = raw.get("route_id", "?")
    instructions = []
    for text in raw["instructions"]:
        ins = _parse_instruction(str(text))
        if ins is None:
            raise ValueError(f"route {rid}: instruction {text!r} is not a turn, move or stop")
        instructions.append(ins)
    heading = raw["start_heading"]
    start = COMPASS[round(float(heading) / 45) % 8] if isinstance(heading, (int, float)) else str(heading).lower()
    if start not in COMPASS:
        raise ValueError(f"route {rid}: start_heading {heading!r} is not a compass direction or degrees")
    steps, pointer = [], 0
    for k, s in enumerate(raw["steps"]):
        action = parse_paper_action(str(s["action"]))
        if action not in ("forward", "stop", *COMPASS):
            raise ValueError(
                f"route {rid} step {k}: action {s['action']!r} is not forward(), stop() or an absolute turn"
            )
        kind = "turn" if action in COMPASS else "move" if action == "forward" else "stop"
        while pointer < len(instructions) and instructions[pointer]["kind"] != kind:
            pointer += 1
        if pointer == len(instructions):
            raise ValueError(f"route {rid} step {k}: action {action!r} matches no remaining instruction")
        seen = []
        for text in s.get("landmarks", []):
            m = _SEEN_TEXT.match(str(text).strip())
            if m is None:
                raise ValueError(f"route {rid} step {k}: landmark annotation {text!r} is not '<name> is <relation>'")
            seen.append([m.group(1), _relation_key(m.group(2))])
        key = ",".join(str(c) for c in s["geocode"])
        if key not in panos:
            raise ValueError(f"route {rid} step {k}: geocode {key} has no panorama in {PANO_FILE}")
        steps.append({"observation": seen, "action": action, "instruction": pointer, "pano": panos[key]})
        if kind == "turn":
            pointer += 1
    return {"route_id": str(rid), "start_heading": start, "instructions": instructions, "steps": steps, "step": 0}


def load_virl_routes(root: str | Path) -> list[dict[str, Any]]:
    """V-IRL routes under ``root`` as example data, in the format of the module docstring."""
    root = Path(root)
    for name in (ROUTE_FILE, PANO_FILE):
        if not (root / name).is_file():
            raise ValueError(
                f"task.virl_root: {root / name} not found: put V-IRL's {name} in {root} "
                f"(format: sweeps.tasks.virl_routes)"
            )
    loaded = {}
    for name in (ROUTE_FILE, PANO_FILE):
        try:
            loaded[name] = json.loads((root / name).read_text())
        except (OSError, ValueError) as err:
            raise ValueError(
                f"task.virl_root: {root / name} is not readable JSON ({str(err).splitlines()[0]})"
            ) from None
    raw, panos = loaded[ROUTE_FILE], loaded[PANO_FILE]
    raw = list(raw.values()) if isinstance(raw, dict) else raw
    if not isinstance(raw, list) or not isinstance(panos, dict):
        raise ValueError(f"task.virl_root: {root / ROUTE_FILE} must hold a list of routes and {PANO_FILE} an object")
    routes, skipped = [], 0
    for i, r in enumerate(raw):
        try:
            data = _route(r, panos)
        except (KeyError, TypeError) as err:
            raise ValueError(f"task.virl_root: {ROUTE_FILE} route {i} lacks or mistypes {err}") from None
        except ValueError as err:
            raise ValueError(f"task.virl_root: {ROUTE_FILE}: {err}") from None
        try:
            split_actions(data, "ood")
        except KeyError:
            skipped += 1
            continue
        routes.append(data)
    if skipped:
        log.warning("%d of %d V-IRL routes skipped: a turn over 90 degrees has no relative action", skipped, len(raw))
    if not routes:
        raise ValueError(f"task.virl_root: {root / ROUTE_FILE} has no usable route")
    return routes
