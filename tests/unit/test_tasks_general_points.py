"""GeneralPoints: sampling, prompts, reference completions, the reward taxonomy and the config.

Every reward below is worked out by hand from PAPER.md 2.1 in the comment next to it. The exact
evaluator and the solver are tested in ``test_tasks_expr.py``; the tiny base's variant (terse
prompt, bare or values answers, pretraining draws) and the chain answer format in
``test_tasks_general_points_variants.py``.
"""

import json
import random
from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sweeps.tasks import Example
from sweeps.tasks.expr import _solve_sorted, solve
from sweeps.tasks.general_points import GeneralPoints, step_class

CONF = Path(__file__).resolve().parents[2] / "conf" / "task"
GP = GeneralPoints()


def hand(*values, target=24, split="id"):
    names = {1: "A", 11: "J", 12: "Q", 13: "K"}
    return Example(split, {"cards": [names.get(v, str(v)) for v in values], "values": list(values), "target": target})


def formula(text):
    return json.dumps({"formula": text})


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
