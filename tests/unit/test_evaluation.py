import json

import pytest

from sweeps.evaluation import frozen_evalset, run_episodes, summarize, wilson
from sweeps.generation.base import Generation, SamplingParams
from sweeps.models.tokenizer import build_tokenizer
from sweeps.tasks.general_points import GeneralPoints


def test_wilson_by_hand():
    # p=0.5, n=10, z=1.959964: centre (0.5 + z^2/20)/(1 + z^2/10) = 0.5,
    # half-width z*sqrt(0.025 + z^2/400)/(1 + z^2/10) = 1.959964*0.186020/1.384146 = 0.263409
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.236593, abs=1e-5) and hi == pytest.approx(0.763407, abs=1e-5)
    # k=0: lower bound 0, upper z^2/(n+z^2) = 3.841459/13.841459 = 0.277532
    lo, hi = wilson(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.277532, abs=1e-5)


class ScriptedModel:
    """A fake generator: episode i answers script[i][attempt] (text encoded with the tokenizer)."""

    def __init__(self, tok, script):
        self.tok, self.script, self.calls = tok, script, []

    def __call__(self, prompts, params, seeds):
        texts = []
        for p in prompts:
            convo = self.tok.decode(p)
            item = int(convo.split("ITEM")[1].split(".")[0]) if "ITEM" in convo else 0
            attempt = convo.count("<|assistant|>") - 1
            texts.append(self.script[item][attempt])
        self.calls.append(len(prompts))
        return Generation(
            [self.tok(t, add_special_tokens=False)["input_ids"] for t in texts], [[]] * len(texts), [True] * len(texts)
        )


class TaggedTask(GeneralPoints):
    def prompt(self, example):
        return f"ITEM{example.data['item']}. " + super().prompt(example)


def _examples():
    from sweeps.tasks.base import Example

    hands = [(["3", "3", "8", "8"], [3, 3, 8, 8]), (["A", "2", "8", "A"], [1, 2, 8, 1])]
    return [Example("id", {"cards": c, "values": v, "target": 24, "item": i}) for i, (c, v) in enumerate(hands)]


def test_episodes_follow_the_verification_loop():
    tok = build_tokenizer()
    task = TaggedTask(max_attempts=3, prompt_style="compact")
    script = {
        0: ['{"formula": "3+3"}', '{"formula": "8/(3-8/3)"}', "never asked"],  # wrong, then correct
        1: ['{"formula": "1+2"}', '{"formula": "x"}', '{"formula": "9"}'],  # fails 3 times
    }
    fake = ScriptedModel(tok, script)
    eps = run_episodes(fake, tok, task, _examples(), SamplingParams(max_new_tokens=8), (0, 0, "id"), batch_size=8)
    assert eps[0].success and len(eps[0].rewards) == 2 and eps[0].rewards[1] == 5.0
    assert not eps[1].success and len(eps[1].rewards) == 3  # budget of 3 graded attempts, no 4th turn
    assert fake.calls == [2, 2, 1]  # solved episodes leave the batch
    m = summarize(task, eps)
    assert m["success"] == 0.5 and m["first_attempt_success"] == 0.0
    assert m["attempts_mean"] == 2.5
    # 5 attempts: "3+3" (-2 -2: incorrect_number x1 class), "1+2" (-2 -2), "x" (-3), "9" (-2 -2)
    assert m["err/illegal_formula"] == pytest.approx(1 / 5)
    assert m["err/incorrect_number"] == pytest.approx(3 / 5)


def test_feedback_turn_is_in_the_next_prompt():
    tok = build_tokenizer()
    task = TaggedTask(max_attempts=2, prompt_style="compact")
    seen = []

    def gen(prompts, params, seeds):
        seen.extend(tok.decode(p) for p in prompts)
        return Generation(
            [tok('{"formula": "1"}', add_special_tokens=False)["input_ids"]] * len(prompts),
            [[]] * len(prompts),
            [True] * len(prompts),
        )

    run_episodes(gen, tok, task, _examples()[:1], SamplingParams(max_new_tokens=8), (0, 0, "id"), 4)
    assert "You failed this trial because incorrect number" in seen[1]
    assert seen[1].count("<|assistant|>") == 2


def test_frozen_evalset_is_created_once_and_reloaded(tmp_path):
    task = GeneralPoints(prompt_style="compact")
    a = frozen_evalset(task, {"name": "gp"}, "ood", 20, 42, tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1
    b = frozen_evalset(task, {"name": "gp"}, "ood", 20, 42, tmp_path)
    assert [e.data for e in a] == [e.data for e in b]
    # item i does not depend on the set size; a different seed gives different hands
    c = frozen_evalset(task, {"name": "gp"}, "ood", 10, 42, tmp_path)
    assert [e.data for e in c] == [e.data for e in a[:10]]
    d = frozen_evalset(task, {"name": "gp"}, "ood", 20, 43, tmp_path)
    assert [e.data for e in d] != [e.data for e in a]
    assert all(any(v > 10 for v in e.data["values"]) for e in a)  # OOD hands hold a face card
    assert json.loads(files[0].read_text().splitlines()[0])["split"] == "ood"


def test_conversation_that_outgrows_the_context_ends_the_episode():
    tok = build_tokenizer()
    task = TaggedTask(max_attempts=5, prompt_style="compact", max_new_tokens=8)
    long_answer = '{"formula": "' + "1+" * 40 + '1"}'

    def gen(prompts, params, seeds):
        ids = tok(long_answer, add_special_tokens=False)["input_ids"]
        return Generation([ids] * len(prompts), [[0.0] * len(ids)] * len(prompts), [True] * len(prompts))

    ex = _examples()[:1]
    first = len(
        tok.apply_chat_template([{"role": "user", "content": task.prompt(ex[0])}], add_generation_prompt=True)[
            "input_ids"
        ]
    )
    eps = run_episodes(gen, tok, task, ex, SamplingParams(max_new_tokens=8), (0, 0, "id"), 4, max_length=first + 150)
    assert eps[0].truncated and 1 <= len(eps[0].rewards) < 5
    assert summarize(task, eps)["err/context_exhausted"] > 0


def test_non_finite_reward_is_a_one_line_error():
    tok = build_tokenizer()

    class NanTask(TaggedTask):
        def grade(self, example, completion):
            from sweeps.tasks.base import Grade

            return Grade(reward=float("nan"), correct=False)

    def gen(prompts, params, seeds):
        return Generation([[5]] * len(prompts), [[0.0]] * len(prompts), [True] * len(prompts))

    with pytest.raises(ValueError, match="non-finite reward") as e:
        run_episodes(gen, tok, NanTask(prompt_style="compact"), _examples(), SamplingParams(max_new_tokens=8), (0,), 4)
    assert "\n" not in str(e.value)
