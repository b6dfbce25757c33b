"""GeneralPoints: solver, exact evaluator, sampling, prompts and the reward taxonomy.

Every reward below is worked out by hand from PAPER.md 2.1 in the comment next to it.
"""

import itertools
import json
import random
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sweeps.tasks import Example
from sweeps.tasks.expr import ExprError, _solve_sorted, evaluate, solve, tokenize
from sweeps.tasks.general_points import GeneralPoints, chain_solutions, simplicity, step_class

CONF = Path(__file__).resolve().parents[2] / "conf" / "task"
GP = GeneralPoints()


def hand(*values, target=24, split="id"):
    names = {1: "A", 11: "J", 12: "Q", 13: "K"}
    return Example(split, {"cards": [names.get(v, str(v)) for v in values], "values": list(values), "target": target})


def formula(text):
    return json.dumps({"formula": text})


# --- exact evaluator ---------------------------------------------------------------------------


def test_evaluator_is_exact_and_follows_precedence():
    assert evaluate("8/(3-8/3)") == 24  # 3 - 8/3 = 1/3 exactly; a float gives 23.999...
    assert evaluate("1+2*3-4/2") == 5  # 1 + 6 - 2
    assert evaluate("8-3-2") == 3  # left-associative: (8-3)-2
    assert evaluate("2*(3+4)") == 14
    assert evaluate(" 1 / 3 ") == Fraction(1, 3)
    assert tokenize("(12+ 3)") == ["(", "12", "+", "3", ")"]


@pytest.mark.parametrize("bad", ["", "(8", "8)", "1+", "*2", "1/(2-2)", "3(4)", "2 3", "1.5", "x", "-1+2"])
def test_evaluator_raises_expr_error(bad):
    with pytest.raises(ExprError):
        evaluate(bad)


# --- solver ------------------------------------------------------------------------------------


def all_tree_strings(values):
    """Every 4-leaf binary tree written like the solver, built by recursion over split points."""

    def trees(leaves):
        if len(leaves) == 1:
            yield str(leaves[0])
            return
        for k in range(1, len(leaves)):
            for left in trees(leaves[:k]):
                for right in trees(leaves[k:]):
                    for op in "+-*/":
                        yield (left, op, right)

    def render(node, root=True):
        if isinstance(node, str):
            return node
        text = render(node[0], False) + node[1] + render(node[2], False)
        return text if root else f"({text})"

    for order in set(itertools.permutations(values)):
        yield from (render(t) for t in trees(list(order)))


def brute_force_solutions(values, target):
    found = set()
    for text in all_tree_strings(values):
        try:
            if evaluate(text) == target:
                found.add(text)
        except ExprError:  # division by zero
            pass
    return found


@pytest.mark.parametrize(
    "values,target",
    [((1, 2, 3, 4), 24), ((3, 3, 8, 8), 24), ((1, 5, 5, 5), 24), ((1, 11, 12, 13), 24), ((2, 3, 4, 5), 10)],
)
def test_solver_returns_exactly_the_brute_force_set(values, target):
    sols = solve(values, target)
    assert len(sols) == len(set(sols))
    assert set(sols) == brute_force_solutions(values, target)
    assert all(" " not in s and evaluate(s) == target for s in sols)


def pairwise_solvable(nums, target):
    """Independent check: repeatedly combine any two numbers (exact Fractions)."""
    if len(nums) == 1:
        return nums[0] == target
    for i, j in itertools.permutations(range(len(nums)), 2):
        rest = [n for k, n in enumerate(nums) if k not in (i, j)]
        x, y = nums[i], nums[j]
        results = [x + y, x - y, x * y] + ([x / y] if y else [])
        if any(pairwise_solvable(rest + [r], target) for r in results):
            return True
    return False


def test_solver_solvability_matches_pairwise_search():
    rng = random.Random(7)
    multisets = list(itertools.combinations_with_replacement(range(1, 14), 4))
    for values in rng.sample(multisets, 60):
        assert bool(solve(values, 24)) == pairwise_solvable([Fraction(v) for v in values], 24), values


def test_solver_known_hands_and_counts():
    assert solve([8, 3, 8, 3], 24) == ("8/(3-(8/3))",)  # the only way, via 1/3
    assert solve([1, 1, 1, 1], 24) == ()
    assert solve([3, 8, 3, 8], 24) is solve([8, 8, 3, 3], 24)  # cached per sorted multiset
    # Well-known count: 1362 of the 1820 multisets of 1..13 make 24.
    solvable = sum(bool(solve(v, 24)) for v in itertools.combinations_with_replacement(range(1, 14), 4))
    assert solvable == 1362


# --- sampling ----------------------------------------------------------------------------------


def test_id_hands_cap_values_at_ten_and_are_solvable():
    rng = random.Random(0)
    for _ in range(300):
        ex = GP.sample("id", rng)
        assert len(ex.cards) == 4 and ex.target == 24
        assert all(1 <= v <= 10 for v in ex.values)
        for card, value in zip(ex.cards, ex.values):
            assert value == ({"A": 1, "J": 10, "Q": 10, "K": 10}.get(card) or int(card))
        assert solve(ex.values, 24)


def test_ood_hands_hold_a_face_card_valued_11_to_13():
    rng = random.Random(1)
    for _ in range(300):
        ex = GP.sample("ood", rng)
        assert any(c in ("J", "Q", "K") for c in ex.cards)
        for card, value in zip(ex.cards, ex.values):
            assert value == ({"A": 1, "J": 11, "Q": 12, "K": 13}.get(card) or int(card))
        assert solve(ex.values, 24)


def test_sampling_is_reproducible_and_serialisable():
    a = [GP.sample(s, random.Random(42)) for s in ("id", "ood")]
    b = [GP.sample(s, random.Random(42)) for s in ("id", "ood")]
    assert a == b
    assert Example.from_json(json.loads(json.dumps(a[1].to_json()))) == a[1]
    with pytest.raises(ValueError, match="split"):
        GP.sample("test", random.Random(0))


def test_make_t_targets_are_drawn_from_the_list():
    task = GeneralPoints(targets=[10, 11])
    targets = {task.sample("id", random.Random(i)).target for i in range(40)}
    assert targets == {10, 11}


def test_sampling_reuses_the_solver_cache():
    # timing belongs in bench/; here the mechanism: one solve per distinct (multiset, target)
    _solve_sorted.cache_clear()
    rng = random.Random(3)
    for _ in range(1000):
        GP.sample("id", rng)
    info = _solve_sorted.cache_info()
    assert info.misses <= 715 and info.hits > info.misses  # 715 multisets of 4 values in 1..10


# --- prompts and reference completions ---------------------------------------------------------


def test_compact_prompt_and_reference():
    task = GeneralPoints(prompt_style="compact")
    ex = Example("ood", {"cards": ["A", "10", "Q", "7"], "values": [1, 10, 12, 7], "target": 24})
    assert task.prompt(ex) == (
        "Rule: J=11 Q=12 K=13. Cards: A 10 Q 7. Target: 24. "
        "Use each card exactly once. Answer as JSON with key formula."
    )
    ref = json.loads(task.reference_completion(ex))
    assert list(ref) == ["formula"] and ref["formula"] == solve([1, 10, 12, 7], 24)[0]


def test_paper_prompt_states_rule_cards_and_a_valid_json_schema():
    ex = Example("id", {"cards": ["A", "10", "Q", "7"], "values": [1, 10, 10, 7], "target": 24})
    text = GP.prompt(ex)
    assert "expert 24 points card game player" in text
    assert "'J', 'Q', and 'K' count as '10', and each card must be used exactly once" in text
    assert "Cards: ['A', '10', 'Q', '7']" in text
    schema = json.loads(text[text.index("{") :])  # the schema is valid JSON
    assert set(schema) == {"cards", "number", "formula"}
    ood = GP.prompt(Example("ood", {**ex.data, "values": [1, 10, 12, 7]}))
    assert "count as '11', '12', and '13' respectively" in ood


def test_reference_completion_is_deterministic_and_correct():
    ex = hand(3, 3, 8, 8)
    ref = json.loads(GP.reference_completion(ex))
    assert ref == {"cards": ["3", "3", "8", "8"], "number": [3, 3, 8, 8], "formula": "8/(3-(8/3))"}
    rng = random.Random(5)
    for task in (GP, GeneralPoints(prompt_style="compact")):
        for split in ("id", "ood"):
            ex = task.sample(split, rng)
            assert task.grade(ex, task.reference_completion(ex)).reward == 5.0


# --- reward taxonomy ---------------------------------------------------------------------------


def test_correct_exact_fraction_solution():
    g = GP.grade(hand(3, 3, 8, 8), formula("8/(3-8/3)"))  # exactly 24: +5
    assert (g.reward, g.correct, g.errors) == (5.0, True, ())


def test_formula_is_cut_at_equals_and_spaces_are_accepted():
    three = hand(1, 2, 8)  # a 3-card hand, so (1+2)*8 uses every card
    assert GP.grade(three, '{"formula": "(1+2)*8=24"}').reward == 5.0
    assert GP.grade(three, '{"formula": "( 1 + 2 ) * 8 = 24"}').reward == 5.0
    four = hand(1, 2, 8, 1)
    assert GP.grade(four, '{"formula": "(1+2)*8*1=24"}').reward == 5.0
    g = GP.grade(four, '{"formula": "(1+2)*8=24"}')  # the second 1 is unused: -2
    assert (g.reward, g.errors, g.feedback) == (-2.0, ("incorrect_number",), ("incorrect number",))


def test_regex_fallback_single_quotes_and_trailing_comma():
    ex = hand(3, 3, 8, 8)
    assert GP.grade(ex, '{"formula": "8/(3-8/3)",}').reward == 5.0  # invalid JSON, regex path
    assert GP.grade(ex, "{'formula': '8/(3-8/3)'}").reward == 5.0
    assert GP.grade(ex, 'Sure!\n```json\n{"cards": ["3"], "formula": "8/(3-8/3)=24"}\n```').reward == 5.0


def test_missing_or_empty_formula_is_illegal():
    ex = hand(3, 3, 8, 8)
    for reply in ("I cannot solve this.", '{"answer": "8/(3-8/3)"}', '{"formula": 24}', formula("  ")):
        g = GP.grade(ex, reply)
        assert (g.reward, g.errors, g.feedback) == (-3.0, ("illegal_formula",), ("illegal formula",))


def test_illegal_characters_stop_at_minus_three():
    # '8x3' has a letter: -3 and no further checks (the unused cards would add -2 otherwise).
    assert GP.grade(hand(3, 3, 8, 8), formula("8x3")).reward == -3.0
    assert GP.grade(hand(3, 3, 8, 8), formula("8/(3-8/3.0)")).reward == -3.0


def test_each_state_machine_violation_costs_three():
    ex = hand(1, 2, 3, 8)
    g = GP.grade(ex, formula("1++2*3*8"))  # '+' after '+': one violation, numbers fine: -3
    assert (g.reward, g.errors) == (-3.0, ("illegal_formula",))
    g = GP.grade(ex, formula("1++2**3*8"))  # '+' after '+', '*' after '*': -3 -3 = -6
    assert (g.reward, g.errors) == (-6.0, ("illegal_formula", "aggregated_error"))
    assert step_class(g) == "aggregated_error"
    assert GP.grade(ex, formula("(1+2))*3*8")).reward == -3.0  # unmatched ')'
    # "(" after a number (-3) is not opened, so its ")" is unmatched too (-3)
    assert GP.grade(ex, formula("1+2(3)*8")).reward == -6.0
    # A violation and an unused card stack: '*' first (-3), 8 unused (-2) = -5.
    assert GP.grade(ex, formula("*1+2+3")).reward == -5.0


def test_incorrect_numbers_stack_to_minus_four():
    ex = hand(1, 2, 3, 8)
    g = GP.grade(ex, formula("1+2+3+9"))  # 9 is not a card (-2) and 8 is unused (-2) = -4
    assert (g.reward, g.errors) == (-4.0, ("incorrect_number", "aggregated_error"))
    assert GP.grade(ex, formula("1*2*3*8*8")).reward == -2.0  # 8 used twice, nothing unused
    assert GP.grade(ex, formula("(1+2)*8")).reward == -2.0  # 3 unused
    assert step_class(GP.grade(ex, formula("(1+2)*8"))) == "incorrect_number"


def test_wrong_result_minus_one():
    ex = hand(1, 2, 3, 8)
    g = GP.grade(ex, formula("1+2+3+8"))  # 14 != 24
    assert (g.reward, g.correct, g.errors, g.feedback) == (-1.0, False, ("wrong_result",), ("wrong result",))
    assert GP.grade(ex, formula("1/(3-3)*2*8")).reward == -2.0  # 3 twice, 3 once in hand
    assert GP.grade(hand(1, 2, 3, 3), formula("1/(3-3)*2")).reward == -1.0  # raises, not a prefix


def test_partial_solution_plus_one_for_a_prefix_with_an_unclosed_paren():
    ex = hand(1, 2, 3, 8)
    assert "(8*3)*(2-1)" in solve([1, 2, 3, 8], 24)
    g = GP.grade(ex, formula("(8*3)*(2-1"))  # all cards used, eval raises, prefix: +1
    assert (g.reward, g.correct, g.errors, g.feedback) == (1.0, False, ("partial_solution",), ("partial solution",))
    assert step_class(g) == "partial_solution"
    assert GP.grade(ex, formula("(8*3)*(1-2")).reward == -1.0  # raises but no solution starts so
    assert GP.grade(hand(3, 3, 8, 8), formula("8/(3-(8/3")).reward == 1.0
    # '(8' alone leaves cards unused, so it is an incorrect number, not a partial.
    assert GP.grade(ex, formula("(8")).reward == -2.0
    no_credit = GeneralPoints(partial_credit_for_prefix=False)
    assert no_credit.grade(ex, formula("(8*3)*(2-1")).reward == -1.0


def test_error_classes_and_feedback_message():
    assert GP.error_classes == (
        "illegal_formula",
        "incorrect_number",
        "wrong_result",
        "partial_solution",
        "aggregated_error",
    )
    g = GP.grade(hand(1, 2, 3, 8), formula("1++2+3+9"))  # -3 (violation) -2 (9) -2 (8 unused)
    assert g.reward == -7.0 and g.errors == ("illegal_formula", "incorrect_number", "aggregated_error")
    assert GP.feedback_message(g) == "You failed this trial because illegal formula, incorrect number"


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad,field",
    [
        ({"prompt_style": "long"}, "prompt_style"),
        ({"id_face_values": [10, 10]}, "id_face_values"),
        ({"ood_min_face_cards": 5}, "ood_min_face_cards"),
        ({"targets": []}, "targets"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"answer_format": "xml"}, "answer_format"),
        ({"reference": "best"}, "reference"),
        ({"answer_format": "bare"}, "answer_format"),
    ],
)  # the paper prompt asks for JSON
def test_invalid_fields_name_the_field(bad, field):
    with pytest.raises(ValueError, match=f"task.{field}"):
        GeneralPoints(**bad)


@pytest.mark.parametrize(
    "stem,style", [("general_points", "paper"), ("general_points_compact", "compact"), ("general_points_tiny", "tiny")]
)
def test_yaml_configs_instantiate_with_every_field(stem, style):
    cfg = OmegaConf.load(CONF / f"{stem}.yaml")
    task = instantiate(cfg)
    assert isinstance(task, GeneralPoints) and task.name == stem and task.prompt_style == style
    init_fields = {f for f in GeneralPoints.__dataclass_fields__ if f != "error_classes"}
    assert set(cfg) - {"_target_"} == init_fields
    if stem == "general_points":
        assert task == GeneralPoints()


def test_reference_completion_of_an_unsolvable_hand_is_a_clear_error():
    with pytest.raises(ValueError, match="no solution"):
        GP.reference_completion(hand(1, 1, 1, 1))


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
