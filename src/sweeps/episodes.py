"""The verification loop shared by evaluation and RL rollouts.

An episode is the paper's multi-attempt loop: the model answers, the task's grader scores
the answer, and after a failure the answer and a feedback user turn ("You failed this trial
because ...") are appended to the conversation, up to ``max_attempts`` graded attempts (no
ungraded extra turn). All episodes advance together: each attempt is one batched generation
over the still-unsolved episodes, sorted by prompt length to limit padding. An episode whose
conversation no longer fits the model's context ends, failed, with "context_exhausted".

Every turn keeps its prompt and response token ids and the sampler's log-probs, so RL can
train on exactly what was sampled; evaluation only reads rewards and error classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from sweeps.generation.base import Generation, SamplingParams, derive_seed
from sweeps.tasks.base import Example, Task

CONTEXT_EXHAUSTED = "context_exhausted"
GenerateFn = Callable[[list[list[int]], SamplingParams, list[int]], Generation]


@dataclass
class Turn:
    prompt_ids: list[int]
    response_ids: list[int]
    sampler_logprobs: list[float]
    text: str
    reward: float
    correct: bool
    errors: list[str]


@dataclass
class Episode:
    item: int
    turns: list[Turn] = field(default_factory=list)
    success: bool = False
    truncated: bool = False          # ended by the context limit, not by the attempt budget

    @property
    def rewards(self) -> list[float]:
        return [t.reward for t in self.turns]

    @property
    def errors(self) -> list[list[str]]:
        return [t.errors for t in self.turns] + ([[CONTEXT_EXHAUSTED]] if self.truncated else [])

    @property
    def texts(self) -> list[str]:
        return [t.text for t in self.turns]

    @property
    def ret(self) -> float:
        return sum(self.rewards)


def chat_ids(tokenizer: Any, messages: list[dict[str, str]], add_generation_prompt: bool) -> list[int]:
    """Token ids of a conversation rendered with the tokenizer's chat template."""
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True)
    if hasattr(out, "keys"):  # transformers 5 returns a BatchEncoding
        out = out["input_ids"]
    return list(out)


def play(
    generate: GenerateFn,
    tokenizer: Any,
    task: Task,
    examples: Sequence[Example],
    params: SamplingParams,
    seed_parts: tuple[Any, ...],
    batch_size: int,
    max_attempts: int | None = None,
    max_length: int | None = None,
    items: Sequence[int] | None = None,
) -> list[Episode]:
    """Play one episode per example to the end (see module docstring).

    ``items`` are the examples' global indices (default 0, 1, ...): a rank playing its share of
    a batch passes the indices the examples have in the whole batch. Sampling seeds derive from
    ``seed_parts + (item, attempt)``, so an episode samples the same tokens whichever rank plays
    it and however many ranks share the batch.
    """
    attempts = task.max_attempts if max_attempts is None else max_attempts
    items = list(range(len(examples))) if items is None else list(items)
    if len(items) != len(examples):
        raise ValueError(f"play: {len(items)} item indices for {len(examples)} examples")
    episodes = [Episode(item=items[i]) for i in range(len(examples))]
    convs = [[{"role": "user", "content": task.prompt(ex)}] for ex in examples]
    active = list(range(len(examples)))
    for attempt in range(attempts):
        prompts = {i: chat_ids(tokenizer, convs[i], add_generation_prompt=True) for i in active}
        if max_length is not None:
            for i in [i for i in active if len(prompts[i]) + params.max_new_tokens > max_length]:
                episodes[i].truncated = True
                active.remove(i)
        order = sorted(active, key=lambda i: len(prompts[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            seeds = [derive_seed(*seed_parts, items[i], attempt) for i in chunk]
            gen = generate([prompts[i] for i in chunk], params, seeds)
            for i, toks, lps in zip(chunk, gen.tokens, gen.logprobs):
                text = tokenizer.decode(toks, skip_special_tokens=True)
                grade = task.grade(examples[i], text)
                if not math.isfinite(grade.reward):
                    raise ValueError(f"task {task.name!r} graded item {items[i]} with a non-finite reward "
                                     f"({grade.reward}); a grader must return finite rewards")
                episodes[i].turns.append(Turn(prompts[i], list(toks), list(lps), text, float(grade.reward),
                                              bool(grade.correct), list(grade.errors)))
                if grade.correct:
                    episodes[i].success = True
                else:
                    convs[i] = convs[i] + [{"role": "assistant", "content": text},
                                           {"role": "user", "content": task.feedback_message(grade)}]
        active = [i for i in active if not episodes[i].success]
        if not active:
            break
    return episodes
