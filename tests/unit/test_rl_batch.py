from types import SimpleNamespace

import torch

from sweeps.rl.batch import forward_logp, pack


def test_pack_aligns_response_mask_with_the_prediction_frame():
    # prompt [1, 2, 3] + response [7, 8]: logits at positions 2 and 3 predict 7 and 8,
    # so in the shifted frame (length L-1 = 4) positions 2 and 3 are response tokens.
    t1 = SimpleNamespace(prompt_ids=[1, 2, 3], response_ids=[7, 8], sampler_logprobs=[-0.5, -0.25])
    t2 = SimpleNamespace(prompt_ids=[4], response_ids=[9], sampler_logprobs=[-1.0])
    b = pack([t1, t2], pad_id=0)
    assert b.input_ids.tolist() == [[1, 2, 3, 7, 8], [4, 9, 0, 0, 0]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
    assert b.response_mask.tolist() == [[False, False, True, True], [True, False, False, False]]
    assert b.sampler_logp.tolist() == [[0, 0, -0.5, -0.25], [-1.0, 0, 0, 0]]
    assert b.last_prompt.tolist() == [2, 0]
    sub = b.select(torch.tensor([1]))  # trimmed to its own length
    assert sub.input_ids.tolist() == [[4, 9]] and sub.response_mask.tolist() == [[True]]


def test_a_pad_id_that_is_a_real_token_does_not_change_the_mask():
    t = SimpleNamespace(prompt_ids=[0, 5], response_ids=[0, 0], sampler_logprobs=[-1.0, -2.0])
    b = pack([t], pad_id=0)
    assert b.response_mask.tolist() == [[False, True, True]]


def test_forward_logp_matches_a_manual_log_softmax(tiny):
    model, tok = tiny
    t = SimpleNamespace(prompt_ids=[1, 5, 20], response_ids=[30, 2], sampler_logprobs=[0.0, 0.0])
    b = pack([t], tok.pad_token_id)
    logp, _, hidden = forward_logp(model, b, temperature=0.5, want_hidden=True)
    with torch.no_grad():
        logits = model(b.input_ids).logits[0]
    manual = torch.log_softmax(logits[2] / 0.5, -1)[30]  # position 2 predicts token 30
    assert torch.allclose(logp[0, 2], manual, atol=1e-5)
    assert hidden.shape == (1, model.config.hidden_size)


def test_to_moves_every_tensor_including_extras():
    import torch

    from sweeps.rl.batch import TurnBatch

    b = TurnBatch(
        torch.ones(2, 3, dtype=torch.long),
        torch.ones(2, 3, dtype=torch.long),
        torch.ones(2, 2, dtype=torch.bool),
        torch.zeros(2, 2),
        torch.tensor([0, 1]),
        {"advantages": torch.tensor([1.0, -1.0])},
    )
    moved = b.to("meta")  # a device without memory: every field must follow
    tensors = [
        moved.input_ids,
        moved.attention_mask,
        moved.response_mask,
        moved.sampler_logp,
        moved.last_prompt,
        *moved.extras.values(),
    ]
    assert all(t.device.type == "meta" for t in tensors) and moved.extras.keys() == b.extras.keys()
    assert all(t.device.type == "cpu" for t in (b.input_ids, b.extras["advantages"]))  # the original stays
