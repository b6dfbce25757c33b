"""Batched sampling with a KV cache on any Hugging Face causal LM.

Prompts are left-padded into one batch; one forward pass fills the cache, then each step feeds
one token per row. Identical prompts (the group of a GRPO step: G samples of each prompt) are
encoded once: the prefill runs over the distinct prompts only and its KV cache and last logits
are copied to every row that asked for that prompt (what vLLM's prefix caching does for whole
prompts), which halves the work of a 16 x 8 rollout on the CPU. Rows that produced an end-of-sequence token keep receiving padding and are
masked out; the loop stops when every row is done or the budget is spent. Sampling uses the
Gumbel-max trick with one ``torch.Generator`` per row seeded from the caller's per-prompt seed,
so a prompt's sample does not depend on which other prompts share its batch (the same seed
gives the same text at any batch size, and different seeds differ). Greedy decoding needs no
randomness. Returned log-probabilities are those of the sampled tokens under the distribution
actually sampled from (temperature-scaled, after top-k/top-p filtering when sampling; the plain
softmax when greedy).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch

from sweeps.generation.base import Generation, Rollout, SamplingParams, eos_ids


def _filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask logits outside the top-k / nucleus (top-p) set with -inf."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # [B, 1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # [B, V]
        probs = torch.softmax(sorted_logits, dim=-1)
        cum_before = torch.cumsum(probs, dim=-1) - probs  # mass strictly above
        drop_sorted = cum_before >= top_p  # keep >= 1 token
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def _left_pad(prompts: Sequence[Sequence[int]], L: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask of ``prompts`` left-padded to length ``L``: [N, L] each."""
    ids = torch.full((len(prompts), L), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), L), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, L - len(p) :] = torch.tensor(list(p), dtype=torch.long)
        mask[i, L - len(p) :] = 1
    return ids, mask


def _gumbel(shape_v: int, generators: list[torch.Generator], device: torch.device) -> torch.Tensor:
    u = torch.stack([torch.rand(shape_v, generator=g) for g in generators]).to(device)  # [B, V]
    return -torch.log(-torch.log(u.clamp_(1e-20, 1.0 - 1e-7)))


def _cache_keyword(model: torch.nn.Module) -> str:
    """transformers >= 5.2x calls the KV cache ``cache``; older releases ``past_key_values``."""
    forward = getattr(model, "get_base_model", lambda: model)().forward
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    params: SamplingParams,
    *,
    pad_id: int,
    eos_ids: Sequence[int],
    seeds: Sequence[int] | None = None,
) -> Generation:
    """Sample continuations for ``prompts`` (token id lists) in one left-padded batch."""
    if not prompts:
        return Generation([], [], [])
    if not params.greedy and (seeds is None or len(seeds) != len(prompts)):
        raise ValueError("sampling needs one seed per prompt (seeds=...)")
    device = next(model.parameters()).device
    B, L = len(prompts), max(len(p) for p in prompts)
    # Identical prompts (the G samples of a GRPO group) share one prefill row: the prompt is
    # encoded once and its KV cache and last logits are copied to every row that asks for it.
    first: dict[tuple[int, ...], int] = {}
    row_of = torch.tensor([first.setdefault(tuple(p), len(first)) for p in prompts], device=device)  # [B]
    ids, mask = _left_pad([list(k) for k in first], L, pad_id)  # [U, L] (U unique prompts)
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp_(min=0)  # [U, L]
    eos = torch.tensor(list(eos_ids), device=device)
    gens = None if params.greedy else [torch.Generator().manual_seed(int(s)) for s in seeds]

    out_tok = torch.full((B, params.max_new_tokens), pad_id, dtype=torch.long, device=device)
    out_lp = torch.zeros((B, params.max_new_tokens), device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    lengths = torch.zeros(B, dtype=torch.long, device=device)
    cache_kw = _cache_keyword(model)
    cache, step_ids, step_pos = None, ids, positions
    for t in range(params.max_new_tokens):
        out = model(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=step_pos,
            use_cache=True,
            logits_to_keep=1,
            **{cache_kw: cache},
        )
        cache = out[cache_kw]
        logits = out.logits[:, -1, :].float()  # [B, V] ([U, V] at t = 0)
        if t == 0 and len(first) < B:
            cache.reorder_cache(row_of)  # [U, ...] -> [B, ...]
            logits, mask, step_pos = logits[row_of], mask[row_of], step_pos[row_of]
        if params.greedy:
            nxt = logits.argmax(-1)  # [B]
            logp = torch.log_softmax(logits, -1)
        else:
            logits = _filter_logits(logits / params.temperature, params.top_k, params.top_p)
            logp = torch.log_softmax(logits, -1)  # [B, V]
            nxt = (logits + _gumbel(logits.shape[-1], gens, device)).argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        out_tok[:, t] = nxt
        out_lp[:, t] = torch.where(done, 0.0, logp.gather(-1, nxt[:, None]).squeeze(-1))
        lengths += (~done).long()
        done |= torch.isin(nxt, eos)
        if bool(done.all()):
            break
        step_ids = nxt[:, None]  # [B, 1]
        step_pos = step_pos[:, -1:] + 1
        mask = torch.cat([mask, (~done | torch.isin(nxt, eos)).long()[:, None]], dim=1)
    tokens = [out_tok[i, : lengths[i]].tolist() for i in range(B)]
    logprobs = [out_lp[i, : lengths[i]].tolist() for i in range(B)]
    return Generation(tokens=tokens, logprobs=logprobs, finished=done.tolist())


class HFRollout(Rollout):
    """Rollout backend that samples from the training model itself (``rollout=hf``); a
    sharded (FSDP) model is gathered whole for the duration of a step's sampling."""

    is_policy = True

    def __init__(self, model: torch.nn.Module, tokenizer: object, cfg: object = None, weights_dir: object = None):
        self.model, self.pad_id, self.eos = model, tokenizer.pad_token_id, eos_ids(tokenizer, model)

    def generate(self, prompts: Sequence[Sequence[int]], params: SamplingParams, seeds: Sequence[int]) -> Generation:
        was_training = self.model.training
        self.model.eval()
        try:
            return generate(self.model, prompts, params, pad_id=self.pad_id, eos_ids=self.eos, seeds=seeds)
        finally:
            self.model.train(was_training)

    def sync_weights(self, model: torch.nn.Module) -> None:
        pass

    def generating(self) -> Any:
        from sweeps.parallel.fsdp import gathered

        return gathered(self.model)
