"""What every generation backend takes and returns."""

from __future__ import annotations

import contextlib
import hashlib
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings; ``temperature == 0`` means greedy."""

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Generation:
    """Per prompt: the new token ids (without padding, eos included if produced), their
    log-probabilities under the sampling distribution, and whether eos ended the sequence."""

    tokens: list[list[int]]
    logprobs: list[list[float]]
    finished: list[bool]


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from (run seed, step, prompt index, ...): stable across processes and
    backends, unlike Python's ``hash``."""
    digest = hashlib.blake2b("/".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def eos_ids(tokenizer: Any, model: Any) -> list[int]:
    """Every end-of-sequence id: the tokenizer's and the model's generation config's, sorted."""
    ids = {tokenizer.eos_token_id}
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(gen_eos if isinstance(gen_eos, (list, tuple)) else [gen_eos])
    return sorted(i for i in ids if i is not None)


class Rollout:
    """The interface every rollout backend implements (``conf/rollout/<name>.yaml``).

    ``generate`` samples continuations of token-id prompts with one seed per prompt;
    ``sync_weights`` pushes the training model's current weights into the sampler (a no-op
    when the sampler *is* the training model; every rank calls it, together). ``generating()``
    is entered once around all of a step's ``generate`` calls, on every rank together: a
    backend that samples from a sharded training model gathers it there, so that ranks can
    then call ``generate`` different numbers of times. ``is_policy`` tells the RL loop whether
    the sampler's log-probs come from the training model itself; when not, it logs the mismatch
    between sampler and trainer log-probs.
    """

    is_policy: bool = True

    def generate(self, prompts: list[list[int]], params: SamplingParams, seeds: list[int]) -> Generation:
        raise NotImplementedError

    def sync_weights(self, model: object) -> None:
        pass

    def generating(self) -> ContextManager[object]:
        return contextlib.nullcontext()
