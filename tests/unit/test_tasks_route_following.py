"""Route following: the generated city and routes, ID/OOD renderings, exact grading, the
multi-step verification loop and the memory plan. The V-IRL loader is tested in
``test_tasks_route_following_virl.py``."""

import json
import math
import random
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sweeps.episodes import play
from sweeps.evaluation import summarize
from sweeps.generation.base import Generation, SamplingParams
from sweeps.models.tokenizer import build_tokenizer
from sweeps.tasks.base import Example
from sweeps.tasks.route_following import (
    COMPASS,
    ERROR_CLASSES,
    REWARDS,
    TURNS,
    City,
    Route,
    RouteFollowing,
    follow,
    headings,
    make_city,
    plan_route,
    route_data,
    split_actions,
    step_from,
)

PAPER = RouteFollowing()
TINY = RouteFollowing(prompt_style="tiny")


def hand_city() -> City:
    """3x3 grid, no avenues; Bank at (0,0) on its NE corner, Cafe at (2,0) NW, Park at (2,2) SW."""
    streets = set()
    for x in range(3):
        for y in range(3):
            for nb in ((x + 1, y), (x, y + 1)):
                if nb[0] < 3 and nb[1] < 3:
                    streets |= {((x, y), nb), (nb, (x, y))}
    return City(3, 3, frozenset(streets), {(0, 0): ("Bank", 1), (2, 0): ("Cafe", 7), (2, 2): ("Park", 5)})


# start (0,0) facing north; 2 blocks east to Cafe, then 2 blocks north to Park
HAND = route_data(hand_city(), Route((0, 0), 0, ((2, 2), (0, 2))))


def test_hand_route_data_by_hand():
    assert HAND["instructions"] == [
        {"kind": "turn", "to": "east"},
        {"kind": "move", "landmark": "Cafe", "relation": "back left"},  # NW corner (7) seen heading east (2): 5
        {"kind": "turn", "to": "north"},
        {"kind": "move", "landmark": "Park", "relation": "back left"},  # SW corner (5) seen heading north: 5
        {"kind": "stop"},
    ]
    assert [s["action"] for s in HAND["steps"]] == ["east", "forward", "forward", "north", "forward", "forward", "stop"]
    assert [s["instruction"] for s in HAND["steps"]] == [0, 1, 1, 2, 3, 3, 4]
    assert [s["observation"] for s in HAND["steps"]] == [
        [["Bank", "front right"]],
        [["Bank", "front left"]],
        [],
        [["Cafe", "back left"]],
        [["Cafe", "front left"]],
        [],
        [["Park", "back left"]],
    ]
    assert split_actions(HAND, "ood") == ["right", "forward", "forward", "left", "forward", "forward", "stop"]


def test_hand_route_renderings():
    ood = Example("ood", HAND)
    assert PAPER.instruction_lines(Example("id", HAND)) == [
        "First, turn to face east.",
        "Move forward until you reach the intersection where Cafe is on your back left.",
        "Turn to face north.",
        "Move forward until you reach the intersection where Park is on your back left.",
        "Stop.",
    ]
    assert PAPER.instruction_lines(ood)[0] == "First, turn right." and PAPER.instruction_lines(ood)[2] == "Turn left."
    assert TINY.prompt(PAPER.at_step(ood, 4)) == (
        "1 R 2 F to Cafe back left 3 L 4 F to Park back left 5 stop | Bank front right > R | Bank front left > F"
        " | none > F | Cafe back left > L | Cafe front left >"
    )
    assert TINY.reference_completion(TINY.at_step(ood, 4)) == "F"
    ref = json.loads(PAPER.reference_completion(PAPER.at_step(Example("id", HAND), 3)))
    assert ref == {
        "current observation": "Cafe is on your back left.",
        "current instruction": "Turn to face north.",
        "action": "turn_direction(north)",
    }
    assert "O_4: Cafe is on your back left." in PAPER.prompt(PAPER.at_step(Example("id", HAND), 3))
    assert "A_3: forward()" in PAPER.prompt(PAPER.at_step(Example("id", HAND), 3))


def test_generation_is_deterministic_per_seed():
    a, b = make_city(random.Random(7), 5, 5, 2, 12), make_city(random.Random(7), 5, 5, 2, 12)
    assert a == b and a.landmarks == b.landmarks
    assert (
        len({json.dumps(sorted(make_city(random.Random(s), 5, 5, 2, 12).landmarks.items())) for s in range(20)}) == 20
    )
    for split in ("id", "ood"):
        assert PAPER.sample(split, random.Random(3)).data == PAPER.sample(split, random.Random(3)).data
    assert PAPER.sample("id", random.Random(3)).data == PAPER.sample("ood", random.Random(3)).data  # same route
    assert PAPER.sample("id", random.Random(3)).data != PAPER.sample("id", random.Random(4)).data
    fixed = RouteFollowing(city_seed=5)
    city = make_city(random.Random(5), 5, 5, 2, 12)
    assert fixed._city == city  # one city ...
    names = {name for name, _ in city.landmarks.values()}
    routes = [fixed.sample("id", random.Random(i)).data for i in range(5)]
    assert len({json.dumps(r) for r in routes}) > 1  # ... different routes through it
    assert all(ins["landmark"] in names for r in routes for ins in r["instructions"] if ins["kind"] == "move")


def test_every_route_is_solvable_by_reading_only():
    """In the city itself, an agent that reads only the instructions and the observations it
    gets reproduces the reference actions, along existing streets, to the destination."""
    diagonal_turns = 0
    for seed in range(300):
        diagonal_turns += check_route(seed)
    assert diagonal_turns > 30  # the avenues put 45-degree turns (slightly left/right) in routes


def check_route(seed: int) -> int:
    rng = random.Random(seed)
    city = make_city(rng, 5, 5, 2, 12)
    route = plan_route(city, rng, 2, 3, 3)
    data = route_data(city, route)
    state = {"node": route.start, "heading": route.start_heading}
    nodes = route.nodes()
    assert len(set(nodes)) == len(nodes) and nodes[0] in city.landmarks and nodes[-1] in city.landmarks

    def observe(k, actions):
        if actions:
            last = actions[-1]
            if last == "forward":
                assert city.has_street(state["node"], state["heading"])
                state["node"] = step_from(state["node"], state["heading"])
            else:
                state["heading"] = COMPASS.index(last)
        seen = city.observe(state["node"], state["heading"])
        assert seen == data["steps"][k]["observation"]  # what the prompt says is what is there
        return seen

    actions = follow(data["instructions"], observe)
    assert actions == [s["action"] for s in data["steps"]]
    assert state["node"] == nodes[-1]
    assert city.landmarks[nodes[-1]][0] == data["instructions"][-2]["landmark"]
    turns = [(COMPASS.index(a) - h) % 8 for a, h in zip(split_actions(data, "id"), headings(data)) if a in COMPASS]
    assert turns and all(t in (1, 2, 6, 7) for t in turns)  # 45 or 90 degrees: the OOD split has the action
    return sum(t in (1, 7) for t in turns)


@pytest.mark.parametrize("seed", range(50))
def test_id_and_ood_correspond_step_by_step(seed):
    ex_id, ex_ood = TINY.sample("id", random.Random(seed)), TINY.sample("ood", random.Random(seed))
    n = TINY.num_steps(ex_id)
    assert n == TINY.num_steps(ex_ood)
    heading = COMPASS.index(ex_id.data["start_heading"])
    for k in range(n):
        a_id, a_ood = TINY.action(TINY.at_step(ex_id, k)), TINY.action(TINY.at_step(ex_ood, k))
        if a_id in COMPASS:
            delta = {v: d for d, v in TURNS.items()}[a_ood]
            assert COMPASS[(heading + delta) % 8] == a_id  # the relative turn lands on the absolute heading
            heading = COMPASS.index(a_id)
        else:
            assert a_id == a_ood
        # the observations shown are the same in both renderings
        p_id, p_ood = (PAPER.prompt(PAPER.at_step(e, k)) for e in (ex_id, ex_ood))
        obs = lambda p: [line for line in p.splitlines() if line.startswith("O_")]  # noqa: E731
        assert obs(p_id) == obs(p_ood) and len(obs(p_id)) == k + 1
        for task in (TINY, PAPER):
            for e in (ex_id, ex_ood):
                view = task.at_step(e, k)
                assert task.grade(view, task.reference_completion(view)).correct


def grade(task, split, step, reply):
    g = task.grade(task.at_step(Example(split, HAND), step), reply)
    return g.reward, g.errors


def test_grading_by_hand():
    # step 0: truth turn to east (ID) / right (OOD); step 1: forward; step 6: stop
    assert grade(PAPER, "id", 0, '{"action": "turn_direction(east)"}') == (1.0, ())
    assert grade(PAPER, "id", 0, '{"current observation": "x", "action": "turn_direction( East )",}') == (1.0, ())
    assert grade(PAPER, "id", 0, '{"action": "turn_direction(west)"}') == (-1.0, ("wrong_action",))
    assert grade(PAPER, "id", 0, '{"action": "forward()"}') == (-1.5, ("wrong_intersection",))
    assert grade(PAPER, "id", 0, '{"action": "stop()"}') == (-1.0, ("wrong_action",))
    assert grade(PAPER, "id", 0, '{"action": "turn_direction(right)"}') == (-1.0, ("invalid_action",))
    assert grade(PAPER, "id", 0, '{"action": "turn east"}') == (-1.0, ("format_error",))
    assert grade(PAPER, "id", 0, "") == (-1.0, ("format_error",))
    assert grade(PAPER, "ood", 0, '{"action": "turn_direction(right)"}') == (1.0, ())
    assert grade(PAPER, "ood", 0, '{"action": "turn_direction(east)"}') == (-1.0, ("invalid_action",))
    assert grade(PAPER, "ood", 0, '{"action": "turn_direction(slightly right)"}') == (-1.0, ("wrong_action",))
    assert grade(PAPER, "ood", 1, '{"action": "turn_direction(east)"}') == (-1.5, ("wrong_intersection",))
    assert grade(PAPER, "id", 1, "forward()") == (1.0, ())  # a bare call also parses
    assert grade(PAPER, "id", 6, '{"action": "forward()"}') == (-1.5, ("wrong_intersection",))
    assert grade(PAPER, "id", 6, '{"action": "turn_direction(north)"}') == (-1.0, ("wrong_action",))
    assert grade(TINY, "id", 0, " E ") == (1.0, ())
    assert grade(TINY, "ood", 0, "R") == (1.0, ())
    assert grade(TINY, "ood", 0, "E") == (-1.0, ("invalid_action",))
    assert grade(TINY, "id", 2, "N") == (-1.5, ("wrong_intersection",))
    assert grade(TINY, "id", 2, "f") == (-1.0, ("format_error",))


ACTIONS = ["forward()", "stop()", *(f"turn_direction({d})" for d in (*COMPASS, *TURNS.values()))]
replies = st.one_of(
    st.text(max_size=200),
    st.sampled_from(ACTIONS).map(lambda a: json.dumps({"action": a})),
    st.text(max_size=40).map(lambda s: json.dumps({"action": s})),
    st.text(max_size=40).map(lambda s: '{"action": "' + s + '",}'),
    st.sampled_from(ACTIONS + ["F", "stop", "N", "SL", "R"]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reply=replies, split=st.sampled_from(["id", "ood"]), step=st.integers(0, 6))
def test_grader_never_raises_and_rewards_are_the_papers(reply, split, step):
    for task in (PAPER, TINY):
        g = task.grade(task.at_step(Example(split, HAND), step), reply)
        assert g.reward in (1.0, -1.0, -1.5) and g.correct == (g.reward == 1.0)
        assert all(e in ERROR_CLASSES for e in g.errors) and len(g.errors) == (0 if g.correct else 1)
        assert g.correct or g.reward == REWARDS[g.errors[0]]


MB = 1 << 20
HUGE = [
    "A" * MB,
    " " * MB,
    "turn_direction(" + "a" * MB,
    "turn_direction(" + "a " * (MB // 2) + "x",
    "forward()" * (MB // 9),
    json.dumps({"action": "turn_direction(" + " " * MB}),
    '"action": "' * (MB // 11),
    "'action': \"" + "'action': 'x" * (MB // 12),
    "[" * MB,
    '{"action":' * (MB // 10) + '"stop()"' + "}" * (MB // 10),
]


@pytest.mark.parametrize("index", range(len(HUGE)))
def test_megabyte_replies_grade_fast(index):
    """About 1 MB of adversarial text grades in under a second (best of two, for a busy machine)."""
    for task in (PAPER, TINY):
        best = math.inf
        for _ in range(2):
            start = time.perf_counter()
            g = task.grade(task.at_step(Example("id", HAND), 0), HUGE[index])
            best = min(best, time.perf_counter() - start)
        assert best < 1.0 and not g.correct, (task.prompt_style, HUGE[index][:40], best)


class Scripted:
    """Answers the i-th request of an episode with script[item][i]; the routes are told apart
    by their first instruction ("1 E" is the ID hand route, "1 R" the OOD one)."""

    def __init__(self, tok, script):
        self.tok, self.script, self.seen = tok, {k: list(v) for k, v in script.items()}, {0: [], 1: []}

    def __call__(self, prompts, params, seeds):
        out = []
        for p in prompts:
            text = self.tok.decode(p)
            item = 0 if "<|user|>1 E " in text else 1
            self.seen[item].append(text)
            out.append(self.tok(self.script[item].pop(0), add_special_tokens=False)["input_ids"])
        return Generation(out, [[0.0] * len(o) for o in out], [True] * len(out))


def test_multi_step_episodes_by_hand():
    """Two routes through the loop, 2 attempts per step: the rewards sum as computed by hand."""
    tok = build_tokenizer()
    task = RouteFollowing(prompt_style="tiny", max_attempts=2)
    other = route_data(hand_city(), Route((2, 2), 2, ((4, 2), (6, 2))))  # facing east: south to Cafe, west to Bank
    assert split_actions(other, "ood") == ["right", "forward", "forward", "right", "forward", "forward", "stop"]
    examples = [Example("id", HAND), Example("ood", other)]
    script = {
        # wrong turn (-1), right (+1), F F (+2), F at Cafe where the route turns (-1.5), N (+1), F F stop (+3)
        0: ["NE", "E", "F", "F", "F", "N", "F", "F", "stop"],
        # OOD: a compass turn twice (-1, -1): the step's budget is spent, the episode ends
        1: ["S", "S", "never asked"],
    }
    fake = Scripted(tok, script)
    eps = play(fake, tok, task, examples, SamplingParams(max_new_tokens=6), (0,), batch_size=4)
    assert eps[0].rewards == [-1.0, 1.0, 1.0, 1.0, -1.5, 1.0, 1.0, 1.0, 1.0] and eps[0].ret == 4.5
    assert eps[0].success and eps[0].errors[0] == ["wrong_action"] and eps[0].errors[4] == ["wrong_intersection"]
    assert eps[1].rewards == [-1.0, -1.0] and not eps[1].success and eps[1].errors == [["invalid_action"]] * 2
    assert len(fake.seen[1]) == 2 and fake.script[1] == ["never asked"]
    # after a failure the feedback turn follows in the same conversation; a correct step opens a fresh one
    seen = fake.seen[0]
    assert seen[1].endswith("NE<|end|><|user|>You failed this trial because wrong action<|end|><|assistant|>")
    assert "You failed this trial because wrong intersection" in seen[5]
    assert seen[2].count("<|user|>") == 1 and seen[2].endswith("> E | Bank front left ><|end|><|assistant|>")
    assert seen[5].count("<|user|>") == 2 and seen[6].count("<|user|>") == 1
    assert tok.decode(eps[0].turns[2].prompt_ids) == seen[2]
    m = summarize(task, eps)
    assert m["success"] == 0.5 and m["first_attempt_success"] == 0.0 and m["attempts_mean"] == 5.5
    assert m["err/wrong_intersection"] == pytest.approx(1 / 11) and m["err/invalid_action"] == pytest.approx(2 / 11)
    assert m["reward_mean"] == pytest.approx((4.5 - 2) / 11)


def test_sft_examples_are_steps_of_id_routes():
    rng = random.Random(0)
    steps = set()
    for _ in range(200):
        ex = TINY.sft_example(rng)
        assert ex.split == "id"
        steps.add(ex.data["step"])
        assert TINY.grade(ex, TINY.reference_completion(ex)).correct
    assert 0 in steps and max(steps) >= 8


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="task.prompt_style"):
        RouteFollowing(prompt_style="long")
    with pytest.raises(ValueError, match="task.landmarks"):
        RouteFollowing(landmarks=1)
    with pytest.raises(ValueError, match="task.virl_root"):
        RouteFollowing(source="virl")


def test_memory_plan_measures_a_routes_longest_step():
    from sweeps.modules.data import tokenize_pair
    from sweeps.parallel import memory
    from sweeps.schema import build_task
    from tests.conftest import compose

    cfg = compose(["model=tiny", "task=route_following_tiny", "algo=sft"])
    task, tok = build_task(cfg.task), build_tokenizer()
    routes = [task.sample("id", random.Random(i)) for i in range(64)]
    length = lambda ex: len(tokenize_pair(tok, task.prompt(ex), task.reference_completion(ex))[0])  # noqa: E731
    last = max(length(task.at_step(ex, task.num_steps(ex) - 1)) for ex in routes)
    assert memory.seq_lengths(cfg, task, tok)[0] == last > max(length(ex) for ex in routes) + 50
