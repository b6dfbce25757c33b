import random

import pytest
from omegaconf import OmegaConf

from sweeps.models.tokenizer import build_tokenizer
from sweeps.modules.data import tokenize_pair
from sweeps.schema import build_task
from tests.conftest import CONF


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer()


@pytest.mark.parametrize(
    "text",
    [
        "Rule: J=10 Q=10 K=10. Cards: A 10 Q 7.",
        '{"formula": "(1+2)*8=24"}',
        "123456 0 07 99 100",
        "unknownword Zebra  \n\t spaces",
    ],
)
def test_roundtrip_is_lossless(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text


def test_numbers_up_to_99_are_one_token(tok):
    for n in (0, 7, 24, 99):
        assert len(tok(str(n), add_special_tokens=False)["input_ids"]) == 1
    # 123 is "12" + "3": two pieces, decoded back exactly
    assert tok.convert_ids_to_tokens(tok("123", add_special_tokens=False)["input_ids"]) == ["12", "3"]


@pytest.mark.parametrize("task_file", sorted((CONF / "task").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_prompts_have_no_unknown_tokens(tok, task_file):
    task = build_task(OmegaConf.load(task_file))
    for split in ("id", "ood"):
        for seed in range(5):
            ex = task.sample(split, random.Random(seed))
            ids, n_prompt = tokenize_pair(tok, task.prompt(ex), task.reference_completion(ex))
            assert tok.unk_token_id not in ids
            assert 0 < n_prompt < len(ids)
            # completion-only masking: the completion decodes to the reference answer + end token
            assert tok.decode(ids[n_prompt:], skip_special_tokens=True) == task.reference_completion(ex)


def test_chat_template_is_prefix_stable(tok):
    ids, n_prompt = tokenize_pair(tok, "Cards: A", "hi")
    assert tok.convert_ids_to_tokens(ids[:2]) == ["<s>", "<|user|>"]
    assert tok.convert_ids_to_tokens(ids[n_prompt - 1 :]) == ["<|assistant|>", "h", "i", "<|end|>"]
