"""The SFT example stream: an endless, seekable sequence of tokenised ID-split examples.

Example ``i`` is drawn from its own RNG seeded by (run seed, i), so the stream is a pure
function of the index: a resumed job continues exactly where the killed one stopped (the start
index is read from the trainer's restored step when iteration begins), and two seeds see
different data in a different order.

Several processes: each rank reads its own contiguous slice of every global batch (rank r of
W takes examples ``b*B + r*B/W ... b*B + (r+1)*B/W - 1`` of batch b), so the ranks together see
exactly the examples a one-process job sees, whatever the number of processes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import IterableDataset

from sweeps.episodes import chat_ids
from sweeps.generation.base import derive_seed
from sweeps.parallel import world
from sweeps.tasks.base import Task


def tokenize_pair(tokenizer: Any, prompt: str, completion: str) -> tuple[list[int], int]:
    """Ids of the chat (user prompt, assistant completion) and the number of prompt tokens."""
    user = [{"role": "user", "content": prompt}]
    prompt_ids = chat_ids(tokenizer, user, add_generation_prompt=True)
    full = chat_ids(tokenizer, user + [{"role": "assistant", "content": completion}], add_generation_prompt=False)
    if full[: len(prompt_ids)] != prompt_ids:
        raise ValueError(
            "the chat template renders the prompt differently with and without the answer; "
            "completion-only masking needs a prefix-stable template"
        )
    return full, len(prompt_ids)


def collate(seqs: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad; labels are -100 on prompt tokens and padding (completion-only loss)."""
    T = max(len(ids) for ids, _ in seqs)
    input_ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)  # [B, T]
    attention = torch.zeros((len(seqs), T), dtype=torch.long)  # [B, T]
    labels = torch.full((len(seqs), T), -100, dtype=torch.long)  # [B, T]
    for b, (ids, n_prompt) in enumerate(seqs):
        input_ids[b, : len(ids)] = torch.tensor(ids)
        attention[b, : len(ids)] = 1
        labels[b, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


class SFTStream(IterableDataset):
    """Yields collated batches of ``batch_size`` examples from batch ``start_batch()`` on.

    ``draw(rng)`` makes one example (default: ``task.sft_example``, an ID example; a multi-step
    task's is one step of an episode, its prompt holding the history); the pretraining stage passes
    its own distribution. ``salt`` keeps the two streams' example seeds apart.
    """

    def __init__(
        self,
        task: Task,
        tokenizer: Any,
        seed: int,
        batch_size: int,
        start_batch: Callable[[], int],
        draw: Callable[[random.Random], Any] | None = None,
        salt: str = "sft",
    ):
        self.task, self.tokenizer, self.seed = task, tokenizer, seed
        self.batch_size, self.start_batch = batch_size, start_batch
        self.draw = draw or task.sft_example
        self.salt = salt

    def example(self, i: int) -> tuple[list[int], int]:
        ex = self.draw(random.Random(derive_seed(self.seed, self.salt, i)))
        return tokenize_pair(self.tokenizer, self.task.prompt(ex), self.task.reference_completion(ex))

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        w = world.world()
        per_rank = self.batch_size // w.size
        b = self.start_batch()
        while True:
            start = b * self.batch_size + w.rank * per_rank
            yield collate([self.example(i) for i in range(start, start + per_rank)], self.tokenizer.pad_token_id)
            b += 1


class PromptStream(IterableDataset):
    """Yields ``(first, examples)`` for RL step ``start_step()`` on: this rank's share of the
    step's ``prompts_per_step`` ID prompts and the global index of its first one.

    Prompt ``i`` of step ``s`` is drawn from its own RNG seeded by (run seed, "rl", s, i); rank
    r of W takes prompts ``r*P/W ... (r+1)*P/W - 1``, whole groups each.
    """

    def __init__(self, task: Task, seed: int, prompts_per_step: int, start_step: Callable[[], int]):
        self.task, self.seed, self.n, self.start_step = task, seed, prompts_per_step, start_step

    def __iter__(self) -> Iterator[tuple[int, list]]:
        w = world.world()
        per_rank = self.n // w.size
        first = w.rank * per_rank
        s = self.start_step()
        while True:
            yield (
                first,
                [
                    self.task.sample("id", random.Random(derive_seed(self.seed, "rl-prompt", s, i)))
                    for i in range(first, first + per_rank)
                ],
            )
            s += 1
