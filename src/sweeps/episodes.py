"""The verification loop shared by evaluation and RL rollouts.

An episode is the paper's multi-attempt loop: the model answers, the task's grader scores
the answer, and after a failure the answer and a feedback user turn ("You failed this trial
because ...") are appended to the conversation, up to ``max_attempts`` graded attempts (no
ungraded extra turn). All episodes advance together: each round is one batched generation
over the still-running episodes, sorted by prompt length to limit padding. An episode whose
conversation no longer fits the model's context ends, failed, with "context_exhausted".

Multi-step tasks (``task.num_steps(example) > 1``, route following): a correct answer at step k
earns its reward and, unless it was the last step, opens step k + 1 with a fresh conversation,
the user prompt of ``task.at_step(example, k + 1)`` (which carries the history it needs). The
attempt budget is per step; an episode fails when a step uses it up, and succeeds when its last
step is answered correctly. A one-step task plays exactly the loop above.

Every turn keeps its prompt and response token ids and the sampler's log-probs, so RL can
train on exactly what was sampled; evaluation only reads rewards and error classes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
    truncated: bool = False  # ended by the context limit, not by the attempt budget

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
    ``seed_parts + (item, turn)`` (the turn index of the episode, which is the attempt index of a
    one-step task), so an episode samples the same tokens whichever rank plays it and however
    many ranks share the batch.
    """
    attempts = task.max_attempts if max_attempts is None else max_attempts
    items = list(range(len(examples))) if items is None else list(items)
    if len(items) != len(examples):
        raise ValueError(f"play: {len(items)} item indices for {len(examples)} examples")
    episodes = [Episode(item=items[i]) for i in range(len(examples))]
    steps, tries = [0] * len(examples), [0] * len(examples)  # current step, attempts used there
    views = [task.at_step(ex, 0) for ex in examples]  # each example as seen at its step
    convs = [[{"role": "user", "content": task.prompt(v)}] for v in views]
    active = list(range(len(examples)))
    while active:
        prompts = {i: chat_ids(tokenizer, convs[i], add_generation_prompt=True) for i in active}
        if max_length is not None:
            for i in [i for i in active if len(prompts[i]) + params.max_new_tokens > max_length]:
                episodes[i].truncated = True
                active.remove(i)
        order = sorted(active, key=lambda i: len(prompts[i]))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            seeds = [derive_seed(*seed_parts, items[i], len(episodes[i].turns)) for i in chunk]
            gen = generate([prompts[i] for i in chunk], params, seeds)
            for i, toks, lps in zip(chunk, gen.tokens, gen.logprobs):
                text = tokenizer.decode(toks, skip_special_tokens=True)
                grade = task.grade(views[i], text)
                if not math.isfinite(grade.reward):
                    raise ValueError(
                        f"task {task.name!r} graded item {items[i]} with a non-finite reward "
                        f"({grade.reward}); a grader must return finite rewards"
                    )
                episodes[i].turns.append(
                    Turn(
                        prompts[i],
                        list(toks),
                        list(lps),
                        text,
                        float(grade.reward),
                        bool(grade.correct),
                        list(grade.errors),
                    )
                )
                if grade.correct:
                    steps[i], tries[i] = steps[i] + 1, 0
                    if steps[i] == task.num_steps(examples[i]):
                        episodes[i].success = True
                    else:
                        views[i] = task.at_step(examples[i], steps[i])
                        convs[i] = [{"role": "user", "content": task.prompt(views[i])}]
                else:
                    tries[i] += 1
                    convs[i] = convs[i] + [
                        {"role": "assistant", "content": text},
                        {"role": "user", "content": task.feedback_message(grade)},
                    ]
        active = [i for i in active if not episodes[i].success and tries[i] < attempts]
    return episodes
