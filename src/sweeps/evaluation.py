"""Checkpoint-wise evaluation: frozen ID/OOD sets, multi-attempt episodes, success with CIs.

An episode is the paper's verification loop: the model answers, the task's grader scores the
answer, and after a failure the answer and a feedback turn ("You failed this trial because
...") are appended to the conversation, up to ``task.max_attempts`` graded attempts (no
ungraded extra turn). All episodes of a split advance together: each attempt is one batched,
left-padded generation over the still-unsolved episodes (sorted by length to limit padding).

Metrics per split: ``success`` (an episode with a correct attempt within the budget; for a
multi-step task, every step answered correctly) with a Wilson 95% interval,
``first_attempt_success`` (every step right at its first try), ``reward_mean`` over attempts,
and the per-error-type step rates ``err/<class>`` = attempts showing that class / all attempts.
Greedy decoding by default; sampled decoding draws each attempt's randomness from a seed
derived from (run seed, checkpoint step, split, item, attempt).

Evaluation sets are frozen: item i of a split is drawn from its own RNG seeded by
(eval seed, split, i), saved once per study as JSONL, and reloaded for every checkpoint.

Several processes: rank r of W plays items r, r + W, r + 2W, ... with the seeds those items
have in a one-process evaluation; rank 0 gathers every episode, computes the metrics from the
exact counts and writes the files, and every rank returns the same metrics. A sharded (FSDP)
model is gathered whole once per evaluation, so ranks never wait for each other mid-sampling.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweeps.episodes import Episode, play
from sweeps.generation.base import SamplingParams, derive_seed, eos_ids
from sweeps.runs import atomic_write_text
from sweeps.tasks.base import Example, Task


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n (scipy's implementation)."""
    from scipy.stats import binomtest

    if n == 0:
        return float("nan"), float("nan")
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def max_positions(model: Any) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "max_position_embeddings", None)


# --- frozen evaluation sets -------------------------------------------------------------
def evalset_path(root: Path, task_cfg: dict[str, Any], split: str, n: int, seed: int) -> Path:
    key = json.dumps({"task": task_cfg, "split": split, "n": n, "seed": seed}, sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return root / f"{task_cfg.get('name', 'task')}-{split}-n{n}-seed{seed}-{digest}.jsonl"


def frozen_evalset(task: Task, task_cfg: dict[str, Any], split: str, n: int, seed: int, root: Path) -> list[Example]:
    """Load the study's frozen evaluation set for ``split``, creating it once (atomically)."""
    path = evalset_path(root, task_cfg, split, n, seed)
    if path.is_file():
        try:
            examples = [Example.from_json(json.loads(line)) for line in path.read_text().splitlines() if line]
        except (ValueError, KeyError, TypeError, AttributeError):  # torn or edited: it is only a cache
            examples = []
        if len(examples) == n:
            return examples
        logging.getLogger(__name__).warning("%s is unreadable or incomplete: drawing the set again", path)
    examples = [task.sample(split, random.Random(derive_seed(seed, split, i))) for i in range(n)]
    atomic_write_text(path, "".join(json.dumps(e.to_json(), sort_keys=True) + "\n" for e in examples))
    return examples


# --- episodes ------------------------------------------------------------------------------
def run_episodes(
    generate: Any,
    tokenizer: Any,
    task: Task,
    examples: Sequence[Example],
    params: SamplingParams,
    seed_parts: tuple[Any, ...],
    batch_size: int,
    max_length: int | None = None,
) -> list[Episode]:
    """Evaluation episodes of every item, this rank playing its share (see the module doc);
    the whole list, in item order, on rank 0; None on the other ranks."""
    from sweeps.parallel import world

    w = world.world()
    mine = list(range(w.rank, len(examples), w.size))
    episodes = play(
        generate,
        tokenizer,
        task,
        [examples[i] for i in mine],
        params,
        seed_parts,
        batch_size,
        max_length=max_length,
        items=mine,
    )
    parts = world.gather(episodes)
    return None if parts is None else sorted((e for part in parts for e in part), key=lambda e: e.item)


def summarize(task: Task, episodes: Sequence[Episode]) -> dict[str, float]:
    """Success (+ Wilson CI), first-attempt success, mean reward and error-type step rates."""
    n = len(episodes)
    k = sum(e.success for e in episodes)
    lo, hi = wilson(k, n)
    steps = [errs for e in episodes for errs in e.errors]
    rewards = [r for e in episodes for r in e.rewards if r == r]
    out = {
        "success": k / n if n else float("nan"),
        "success_lo": lo,
        "success_hi": hi,
        "first_attempt_success": sum(e.success and all(t.correct for t in e.turns) for e in episodes) / max(n, 1),
        "reward_mean": sum(rewards) / max(len(rewards), 1),
        "attempts_mean": len(steps) / max(n, 1),
        "n": float(n),
    }
    classes = sorted(set(task.error_classes) | {c for errs in steps for c in errs})
    for c in classes:
        out[f"err/{c}"] = sum(c in errs for errs in steps) / max(len(steps), 1)
    return out


def save_episodes(path: Path, examples: Sequence[Example], episodes: Sequence[Episode]) -> None:
    lines = [
        json.dumps(
            {
                "item": ep.item,
                "success": ep.success,
                "texts": ep.texts,
                "rewards": ep.rewards,
                "errors": ep.errors,
                "example": ex.to_json(),
            },
            sort_keys=True,
        )
        for ex, ep in zip(examples, episodes)
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


class Evaluator:
    """Scores a model on the frozen ID/OOD sets of one study; used in training and standalone."""

    def __init__(self, task: Task, task_cfg: dict[str, Any], eval_cfg: Any, evalset_root: Path, run_seed: int):
        self.task, self.eval_cfg, self.run_seed = task, eval_cfg, run_seed
        n = eval_cfg.size or task.eval_items
        from sweeps.parallel import world

        # rank 0 loads (or creates) the study's frozen sets and hands them to the other ranks
        self.sets = {
            s: world.on_main(frozen_evalset, task, task_cfg, s, n, eval_cfg.seed, evalset_root) for s in eval_cfg.splits
        }
        self.params = SamplingParams(
            max_new_tokens=task.max_new_tokens,
            temperature=eval_cfg.temperature,
            top_p=eval_cfg.top_p,
            top_k=eval_cfg.top_k,
        )

    def __call__(
        self, model: Any, tokenizer: Any, step: int, out_dir: Path | None = None, stop_check: Any = None
    ) -> dict[str, float]:
        """Score ``model`` (every rank calls this together); writes the files on rank 0 and
        returns the metrics on every rank."""
        import torch

        from sweeps.generation import hf
        from sweeps.parallel import world
        from sweeps.parallel.fsdp import gathered

        was_training = model.training
        model.eval()
        eos = eos_ids(tokenizer, model)

        def generate(prompts: list[list[int]], params: SamplingParams, seeds: list[int]) -> Any:
            if stop_check is not None:
                stop_check(step)  # SIGTERM: stop between batches (one process)
            return hf.generate(model, prompts, params, pad_id=tokenizer.pad_token_id, eos_ids=eos, seeds=seeds)

        metrics: dict[str, float] = {}
        try:
            with gathered(model), torch.inference_mode():
                for split, examples in self.sets.items():
                    episodes = run_episodes(
                        generate,
                        tokenizer,
                        self.task,
                        examples,
                        self.params,
                        (self.run_seed, step, split),
                        self.eval_cfg.batch_size,
                        max_length=max_positions(model),
                    )
                    if episodes is None:  # not rank 0: the metrics come below
                        continue
                    metrics.update({f"eval/{split}/{k}": v for k, v in summarize(self.task, episodes).items()})
                    if out_dir is not None:
                        save_episodes(Path(out_dir) / f"episodes_{split}.jsonl", examples, episodes)
        finally:
            model.train(was_training)
        if out_dir is not None and world.world().main:
            atomic_write_text(
                Path(out_dir) / "eval.json", json.dumps({"step": step, **metrics}, sort_keys=True, indent=1)
            )
        return world.broadcast(metrics)
