"""GeneralPoints variants: the tiny base's (terse prompt, bare or values answers, the simplest
reference, pretraining draws under a stated random rule) and the chain answer format (three
moves, graded step by step). The paper's variant is tested in ``test_tasks_general_points.py``.
"""

import random
import time
from collections import Counter

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sweeps.tasks import Example
from sweeps.tasks.expr import solve
from sweeps.tasks.general_points import GeneralPoints, chain_solutions, simplicity
from tests.unit.test_tasks_general_points import CONF, hand

# --- the tiny base's variant: terse prompt, bare or values answers, pretraining draws --------------

TINY = GeneralPoints(prompt_style="tiny", answer_format="bare", reference="simplest")


def test_tiny_prompt_states_the_rule_and_bare_answer_is_graded_whole():
    ex = Example("ood", {"cards": ["A", "10", "Q", "7"], "values": [1, 10, 12, 7], "target": 24})
    assert TINY.prompt(ex) == "J=11 Q=12 K=13 cards A 10 Q 7 target 24"
    # simplest solution: no division first, then fewest parentheses, then shortest
    ref = TINY.reference_completion(ex)
    assert TINY.grade(ex, ref).correct and "/" not in ref
    assert TINY.grade(ex, "(12*(7-1))/(10-1)").errors == ("incorrect_number",)  # 1 used twice, A once
    assert TINY.grade(ex, "12*(10-7-1)").reward == 5.0  # any correct formula, not the reference
    assert TINY.grade(ex, '{"formula": "12*(10-7-1)"}').errors == ("illegal_formula",)  # bare: no JSON
    assert TINY.grade(ex, "12*(10-7)").errors == ("incorrect_number",)  # the A is unused


def test_simplest_reference_prefers_no_division_then_fewer_parentheses():
    assert simplicity("8/(3-(8/3))") > simplicity("((8+8)*3)/2")  # both divide: more parentheses loses
    assert simplicity("(2+10)*(3-1)") < simplicity("(3-1)*12/1")  # no division beats division
    ex = Example("id", {"cards": ["2", "3", "4", "6"], "values": [2, 3, 4, 6], "target": 24})
    ref = TINY.reference_completion(ex)
    assert "/" not in ref and min(simplicity(s) for s in solve([2, 3, 4, 6], 24)) == simplicity(ref)


def test_values_answer_restates_the_values_and_grades_the_formula_after_the_semicolon():
    task = GeneralPoints(prompt_style="tiny", answer_format="values", reference="simplest")
    ex = Example("ood", {"cards": ["J", "2", "1", "1"], "values": [11, 2, 1, 1], "target": 24})
    ref = task.reference_completion(ex)
    assert ref.startswith("11 2 1 1 ; ") and task.grade(ex, ref).reward == 5.0
    assert task.grade(ex, "10 2 1 1 ; (11+1)*2*1").reward == 5.0  # only the formula is graded
    assert task.grade(ex, "(11+1)*2*1").errors == ("illegal_formula",)  # no ";": no formula


def test_pretraining_draws_state_their_own_rule_with_balanced_values():
    rng = random.Random(0)
    counts, rules = Counter(), Counter()
    for _ in range(3000):
        ex = TINY.sample_pretrain(rng, tuple(range(10, 41)))
        rule = ex.data["rule"]
        assert TINY.prompt(ex).startswith(f"J={rule[0]} Q={rule[1]} K={rule[2]} cards ")
        for card, value in zip(ex.cards, ex.values):
            expected = {"J": rule[0], "Q": rule[1], "K": rule[2], "A": 1}.get(card, None)
            assert value == (expected if expected is not None else int(card))
        assert TINY.grade(ex, TINY.reference_completion(ex)).correct
        counts.update(ex.values)
        rules.update(rule)
    # defaults f = 6/13, h = 1/2: every card value 1..13 has probability 1/13 before the
    # solvability filter; 12000 cards -> 923 each, s.d. ~29. The filter skews it a little.
    assert set(counts) == set(range(1, 14))
    assert max(counts.values()) / min(counts.values()) < 1.6, counts  # was 5x for 11..13 vs 1..10
    # half the face values come from 11..13 (each 1/6), half from 1..10 (each 1/20)
    assert abs(sum(rules[v] for v in (11, 12, 13)) / 9000 - 0.5) < 0.03


def test_pretraining_draws_are_a_pure_function_of_the_rng():
    a = [TINY.sample_pretrain(random.Random(i), (10, 20)) for i in range(20)]
    b = [TINY.sample_pretrain(random.Random(i), (10, 20)) for i in range(20)]
    assert a == b and {e.target for e in a} == {10, 20}
    never_high = [TINY.sample_pretrain(random.Random(i), (24,), face_high_prob=0.0) for i in range(50)]
    assert all(max(e.data["rule"]) <= 10 for e in never_high)


def test_splits_are_unchanged_by_the_rule_field():
    # ID/OOD examples carry no "rule": the prompt uses the split's rule, as before
    ex = TINY.sample("ood", random.Random(1))
    assert "rule" not in ex.data and TINY.prompt(ex).startswith("J=11 Q=12 K=13 ")


# --- the chain answer format (Step 10): three moves, graded step by step --------------------------

CHAIN = GeneralPoints(prompt_style="tiny", answer_format="chain", reference="simplest", partial_credit_for_prefix=False)


def test_chain_solutions_are_the_hand_enumerated_set():
    # {1,1,1,1} -> 4: first move 1+1=2 (1*1, 1-1, 1/1 leave at most 3); from {1,1,2}:
    # 1+1=2 then 2+2 or 2*2; or 2+1=3 then 3+1. Nothing else reaches 4 with whole steps.
    assert set(chain_solutions([1, 1, 1, 1], 4)) == {"1+1=2;1+1=2;2+2=4", "1+1=2;1+1=2;2*2=4", "1+1=2;2+1=3;3+1=4"}
    # 5*(5-1/5) = 24 needs the fraction 1/5: no whole-number chain, although the formula solver finds it
    assert chain_solutions([5, 5, 5, 1], 24) == () and solve([5, 5, 5, 1], 24)
    chains = chain_solutions([3, 8, 5, 9], 28)
    assert "8*3=24;24-5=19;19+9=28" in chains and all(
        CHAIN.grade(hand(3, 8, 5, 9, target=28), c).correct for c in chains
    )


def test_chain_reference_is_the_simplest_whole_number_chain():
    ex = hand(3, 8, 5, 9, target=28)
    # the shortest chains (20 characters) are 8*3=24;9-5=4;24+4=28 and 9-5=4;8*3=24;24+4=28: first alphabetically
    assert CHAIN.reference_completion(ex) == "8*3=24;9-5=4;24+4=28"
    assert CHAIN.solutions(ex) == chain_solutions([3, 8, 5, 9], 28)


@pytest.mark.parametrize(
    "reply,reward,errors",
    [
        ("8*3=24;24-5=19;19+9=28", 5.0, ()),  # 24, 19, 28: all true, ends on 28
        (" 3 * 8 = 24 ; 24 - 5 = 19 ; 19 + 9 = 28 ", 5.0, ()),  # whitespace ignored, operand order free
        ("9-5=4;8*3=24;4+24=28", 5.0, ()),  # two branches joined at the end
        ("8*3=25;25-5=20;20+9=29", -1.0, ("wrong_result",)),  # 8*3 is 24, and 29 is not 28
        ("8*3=24;24+5=29;29+9=38", -1.0, ("wrong_result",)),  # true steps, wrong target
        ("8+3=11;11*5=55;55-9=28", -1.0, ("wrong_result",)),  # states 28 but 55-9 is 46
        ("8/3=2;5*9=45;45-2=43", -1.0, ("wrong_result",)),  # 8/3 is not whole
        ("3-8=5;5*9=45;45-5=40", -1.0, ("wrong_result",)),  # numbers fine (the card 5 and the made 5), 3-8 < 0
        ("8*3=24;24-5=19;19+10=29", -2.0, ("incorrect_number",)),  # no 10 on the table
        ("8*8=64;64-5=59;59-9=50", -2.0, ("incorrect_number",)),  # one 8 in the hand
        ("8*3=24;19-5=14;14+9=23", -2.0, ("incorrect_number",)),  # 19 was never made
        ("8*3=24;24+4=28", -3.0, ("illegal_formula",)),  # two steps
        ("8*3=24;24-5=19;19+9=28;", -3.0, ("illegal_formula",)),  # an empty fourth step
        ("8*3=24;24-5=19;(19+9)=28", -3.0, ("illegal_formula",)),  # no parentheses in a step
        ("(8*3-5)+9", -3.0, ("illegal_formula",)),  # a formula is not a chain
        ("", -3.0, ("illegal_formula",)),
    ],
)
def test_chain_grades_by_hand(reply, reward, errors):
    grade = CHAIN.grade(hand(3, 8, 5, 9, target=28), reply)
    assert (grade.reward, grade.errors, grade.correct) == (reward, errors, reward == 5.0)


def test_chain_negative_step_and_division():
    ex = hand(6, 2, 4, 1, target=12)
    assert CHAIN.grade(ex, "6/2=3;3*4=12;12*1=12").correct  # 6/2 is whole
    assert CHAIN.grade(ex, "2*6=12;4-1=3;12/3=4").errors == ("wrong_result",)  # true steps, 4 is not 12
    assert CHAIN.grade(ex, "2-6=4;4*4=16;16-1=15").errors == ("wrong_result",)  # the card 4 and the made 4; 2-6 < 0
    assert CHAIN.grade(ex, "6/4=1;2*1=2;2+1=3").errors == ("wrong_result",)  # 6/4 is not whole
    assert CHAIN.grade(ex, "6/0=0;4*1=4;4-4=0").errors == ("incorrect_number",)  # no 0 on the table


def test_chain_hands_have_whole_chains_and_references_grade_correct():
    task = GeneralPoints(
        prompt_style="tiny",
        answer_format="chain",
        reference="simplest",
        partial_credit_for_prefix=False,
        targets=(20, 24, 28),
    )
    rng = random.Random(3)
    for split in ("id", "ood"):
        for _ in range(30):
            ex = task.sample(split, rng)
            assert chain_solutions(ex.values, ex.target)
            assert task.grade(ex, task.reference_completion(ex)).correct
    ex = task.sample_pretrain(rng, (10, 40))
    assert chain_solutions(ex.values, ex.target) and task.grade(ex, task.reference_completion(ex)).correct


def test_chain_refuses_partial_credit_and_the_yaml_instantiates():
    with pytest.raises(ValueError, match="task.partial_credit_for_prefix"):
        GeneralPoints(prompt_style="tiny", answer_format="chain")
    cfg = OmegaConf.load(CONF / "general_points_chain.yaml")
    task = instantiate(cfg)
    assert task.answer_format == "chain" and task.name == "general_points_chain"
    assert set(cfg) - {"_target_"} == {f for f in GeneralPoints.__dataclass_fields__ if f != "error_classes"}


def test_chain_grader_never_raises_on_junk():
    rng = random.Random(0)
    alphabet = "0123456789+-*/=; ()x"
    ex = hand(3, 8, 5, 9, target=28)
    for _ in range(2000):
        reply = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert CHAIN.grade(ex, reply).reward in (5.0, -1.0, -2.0, -3.0)
    assert CHAIN.grade(ex, "9" * 5000 + "*1=9;9-5=4;4+4=8").errors == ("illegal_formula",)  # literal > 6 digits
    start = time.perf_counter()
    for junk in ("1" * 10**6, "1+1=2;" * 10**5, " ;" * 10**6):  # megabyte replies stay linear
        assert CHAIN.grade(ex, junk).errors == ("illegal_formula",)
    assert time.perf_counter() - start < 5.0
