"""Policy-gradient RL as a LightningModule with manual optimisation (the shared loop).

One RL step: sample ``batch_size`` episodes of the task's ID split (``batch_size / group_size``
prompts, ``group_size`` episodes each, one seed per request derived from (run seed, step,
episode, attempt)); grade every turn with the task's grader; score the sampled tokens under the
current policy (and the frozen reference and the critic, when used) without gradients; turn
rewards into per-turn advantages (the subclass's estimator); then ``epochs`` passes over the
turns in ``minibatches`` shuffled mini-batches, each one optimiser step accumulated by hand over
micro-batches of ``micro_batch_size`` turns, weighted by their share of the mini-batch's
response tokens so the result equals one big token-mean. Gradients are clipped with
``self.clip_gradients``; the learning-rate schedule steps once per RL step.

Simplifications, stated: every turn of a multi-attempt episode is one training sequence (the
conversation so far as the prompt, the answer as the response); the value of a turn is read at
its last prompt token; the loss is per token (no 0.5 weight on the tokens before "formula").

Several processes: each rank samples whole groups of its share of the step's prompts (the
episodes keep the seeds they have in a one-process job), scores and updates on its own turns,
and splits them into the same number of mini-batches as the others. The loss of a mini-batch
is weighted by the response tokens of that mini-batch on *all* ranks, so the averaged gradient
is the one-process token mean; metrics are sums and counts reduced over ranks (maxima for the
``_max`` ones). Because the forward passes of a sharded model are collectives, every rank runs
as many micro-batches as the rank with the most, padding with zero-weighted passes.
"""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate

from sweeps.episodes import Episode, play
from sweeps.evaluation import max_positions
from sweeps.generation.base import SamplingParams, derive_seed
from sweeps.modules import optim
from sweeps.parallel import strategies, world
from sweeps.parallel.fsdp import total_grad_norm
from sweeps.rl.batch import TurnBatch, forward_logp, pack
from sweeps.rl.kl import kl_penalty
from sweeps.rl.losses import entropy_from_logits, masked_mean


class RLModule(L.LightningModule):
    """Base class: subclasses define ``advantages`` and ``turn_loss``. The advantage estimator,
    the policy loss (with its clip and aggregation) and the KL estimator are built from
    ``algo.advantage``, ``algo.policy_loss`` and ``algo.kl_estimator`` (``_target_`` with
    ``_partial_: true``): a new RL variant is a function and a YAML, not a code change here."""

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        task: Any,
        algo: Any,
        rollout: Any,
        ref_model: torch.nn.Module | None,
        seed: int,
        max_steps: int,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.model, self.tokenizer, self.task, self.algo = model, tokenizer, task, algo
        self.rollout, self._ref, self.seed, self.max_steps = rollout, [ref_model], seed, max_steps
        self.updates_per_step = algo.epochs * algo.minibatches
        self.params = SamplingParams(
            max_new_tokens=task.max_new_tokens, temperature=algo.temperature, top_p=algo.top_p, top_k=algo.top_k
        )
        self.last_lr, self.step_metrics = float("nan"), {}
        self.advantage = instantiate(algo.advantage)  # rewards -> advantages (see the subclass)
        self.policy_loss = instantiate(algo.policy_loss)  # (logp, old_logp, adv, mask) -> (loss, stats)
        self.kl_estimator = instantiate(algo.kl_estimator)  # log-ratio [n, T] -> KL estimate [n, T]

    @property
    def stage_step(self) -> int:
        """RL steps done (the trainer counts optimiser steps: ``updates_per_step`` per RL step)."""
        return self.global_step // self.updates_per_step

    def configure_model(self) -> None:
        strategies.configure(self)  # FSDP shards the policy (and critic) here

    def on_train_start(self) -> None:
        self.rollout.sync_weights(self.model)  # a resumed job's weights, not the start checkpoint's

    # --- one RL step ---------------------------------------------------------------------
    def training_step(self, prompts: tuple[int, list[Any]], batch_idx: int) -> dict[str, torch.Tensor]:
        step, G = self.stage_step, self.algo.group_size
        first, examples = prompts  # this rank's share
        t0 = time.perf_counter()
        grouped = [ex for ex in examples for _ in range(G)]  # P*G episodes
        with self.rollout.generating():
            episodes = play(
                self.rollout.generate,
                self.tokenizer,
                self.task,
                grouped,
                self.params,
                (self.seed, "rl", step),
                self.algo.rollout_batch_size,
                max_attempts=self.algo.max_attempts,
                max_length=max_positions(self.model),
                items=range(first * G, first * G + len(grouped)),
            )
        t1 = time.perf_counter()
        turns = [t for e in episodes for t in e.turns]
        if not turns:
            raise RuntimeError(f"RL step {step}: no episode produced a turn (prompts longer than the context?)")
        batch = pack(turns, self.tokenizer.pad_token_id).to(self.device)  # on the model's device
        self.score(batch)
        batch.extras.update({k: v.to(self.device) for k, v in self.advantages(episodes, batch).items()})
        stats = self.update(batch, step)
        self.lr_schedulers().step()
        self.rollout.sync_weights(self.model)
        slowest = world.all_reduce([t1 - t0, time.perf_counter() - t1], "max")  # the step waits for the slowest rank
        self.step_metrics = {
            **self.rollout_metrics(episodes, batch),
            **stats,
            "time/rollout_s": float(slowest[0]),
            "time/update_s": float(slowest[1]),
        }
        return {"loss": torch.tensor(stats["rl/loss"])}

    @property
    def reuses_logp(self) -> bool:
        """One update per batch and no critic: the policy that scores the batch is the one that
        takes the update, so old_logp is the update's own forward pass, detached (filled in
        during ``update``) and the scoring forward pass is skipped (TRL does the same when
        ``num_iterations=1``)."""
        return self.algo.epochs == 1 and self.algo.minibatches == 1 and not self.wants_hidden

    @torch.no_grad()
    def score(self, batch: TurnBatch) -> None:
        """old_logp (and ref_logp, old_values) for every turn, in micro-batches, no gradients."""
        old, ref, values = torch.zeros_like(batch.sampler_logp), torch.zeros_like(batch.sampler_logp), []
        batch.extras.update(old_logp=old, ref_logp=ref)
        if self.reuses_logp and self.algo.kl_coef <= 0:
            return  # nothing to score
        rows = torch.arange(len(batch))
        for part in world.even_splits(len(batch), self.algo.micro_batch_size):
            idx = rows[part] if part is not None else None  # None: a pass to keep ranks in step
            sub = batch.select(rows[:1] if idx is None else idx)
            if not self.reuses_logp:
                logp, _, hidden = forward_logp(self.model, sub, self.algo.temperature, want_hidden=self.wants_hidden)
                if self.wants_hidden:
                    value = self.value_head(hidden).squeeze(-1)  # [n]
                if idx is not None:
                    old[idx, : logp.shape[1]] = logp
                    if self.wants_hidden:
                        values.append(value)
            if self.algo.kl_coef > 0 and idx is not None:  # the reference is not sharded
                ref_logp = forward_logp(self.reference(), sub, self.algo.temperature)[0]
                ref[idx, : ref_logp.shape[1]] = ref_logp
        if values:
            batch.extras["old_values"] = torch.cat(values)  # [N]

    def update(self, batch: TurnBatch, step: int) -> dict[str, float]:
        """``epochs`` passes of ``minibatches`` optimiser steps; the loss of each mini-batch is
        its token mean over every rank (see the module doc)."""
        opt = self.optimizers()
        sums: dict[str, float] = {}
        norms = 0.0
        size, n_updates = world.world().size, self.algo.epochs * self.algo.minibatches
        for epoch in range(self.algo.epochs):
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "minibatch", step, epoch))
            for mb in torch.randperm(len(batch), generator=gen).tensor_split(self.algo.minibatches):
                self.last_lr = opt.param_groups[0]["lr"]
                opt.zero_grad()
                tokens = float(world.all_reduce([float(batch.response_mask[mb].sum())])[0])  # over every rank
                for part in world.even_splits(len(mb), self.algo.micro_batch_size):
                    micro = mb[part] if part is not None else None  # None: a zero-weighted pass
                    sub = batch.select(torch.arange(1) if micro is None else micro)
                    if self.reuses_logp:
                        sub.extras["old_logp"] = None  # turn_loss uses its own logp, detached
                    loss, st = self.turn_loss(sub)
                    if self.reuses_logp and micro is not None:
                        batch.extras["old_logp"][micro, : sub.extras["old_logp"].shape[1]] = sub.extras["old_logp"]
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"non-finite RL loss ({loss.item()}) at RL step {step}; "
                            f"the last good state is the run's resume/ (state.json)"
                        )
                    w = 0.0 if micro is None else float(sub.response_mask.sum()) / max(tokens, 1.0)
                    self.manual_backward(loss * (w * size))  # ranks' gradients are averaged: undo the 1/size
                    for k, v in {"rl/loss": loss.detach(), **st}.items():
                        sums[k] = sums.get(k, 0.0) + float(v) * w
                norms += total_grad_norm(self.trainable_parameters())
                if self.algo.max_grad_norm:
                    self.clip_gradients(opt, gradient_clip_val=self.algo.max_grad_norm, gradient_clip_algorithm="norm")
                opt.step()
        keys = sorted(sums)
        reduced = world.all_reduce([sums[k] for k in keys])  # token-weighted sums over ranks
        return {**{k: float(v) / n_updates for k, v in zip(keys, reduced)}, "rl/grad_norm": norms / n_updates}

    def regularise(
        self, loss: torch.Tensor, sub: TurnBatch, logp: torch.Tensor, logits: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The policy's loss with the regularisers every RL variant shares: plus ``algo.kl_coef``
        x the masked token mean of the KL estimate (``algo.kl_estimator``) to the frozen start
        policy, minus ``algo.entropy_coef`` x the mean entropy of the next-token distribution.
        ``logp`` is [n, T] and ``logits`` [n, T, V] of the micro-batch ``sub``; a coefficient of
        0 adds nothing (and logs nothing)."""
        stats: dict[str, torch.Tensor] = {}
        if self.algo.kl_coef > 0:
            kl = masked_mean(kl_penalty(logp, sub.extras["ref_logp"], self.kl_estimator), sub.response_mask)  # []
            loss = loss + self.algo.kl_coef * kl
            stats["rl/kl"] = kl.detach()
        if self.algo.entropy_coef > 0:
            entropy = entropy_from_logits(logits, sub.response_mask)  # []
            loss = loss - self.algo.entropy_coef * entropy
            stats["rl/entropy"] = entropy.detach()
        return loss, stats

    # --- plumbing --------------------------------------------------------------------------
    wants_hidden = False

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch  # task examples (plain Python), not tensors

    def reference(self) -> torch.nn.Module:
        ref = self._ref[0]
        if ref is None:
            raise RuntimeError("algo.kl_coef > 0 needs a reference model")
        # held in a list so Lightning neither trains nor checkpoints it, nor moves it: follow the policy
        if next(ref.parameters()).device != self.device:
            self._ref[0] = ref = ref.to(self.device)
        return ref

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def rollout_metrics(self, episodes: list[Episode], batch: TurnBatch) -> dict[str, float]:
        """Rollout statistics of the whole step: sums and counts reduced over ranks."""
        G = self.algo.group_size
        returns = torch.tensor([e.ret for e in episodes]).view(-1, G)  # [P, G]
        rewards = [t.reward for e in episodes for t in e.turns]
        mask = batch.response_mask
        diff = (batch.sampler_logp - batch.extras["old_logp"]).abs()[mask]
        (reward, ret, success, mixed, turns, n_ep, groups, tokens, mismatch, n_diff) = world.all_reduce(
            [
                sum(rewards),
                float(returns.sum()),
                sum(e.success for e in episodes),
                float((returns.std(dim=1) > 0).sum()) if G > 1 else 0.0,
                len(rewards),
                len(episodes),
                returns.shape[0],
                float(mask.sum()),
                float(diff.sum()),
                diff.numel(),
            ]
        ).tolist()
        mismatch_max = float(world.all_reduce([float(diff.max()) if diff.numel() else 0.0], "max")[0])
        return {
            "rl/reward_mean": reward / turns,
            "rl/return_mean": ret / n_ep,
            "rl/success": success / n_ep,
            "rl/mixed_groups": mixed / groups if G > 1 else float("nan"),
            "rl/turns_per_episode": turns / n_ep,
            "rl/response_len": tokens / turns,
            "rl/logp_mismatch_mean": mismatch / n_diff if n_diff else 0.0,
            "rl/logp_mismatch_max": mismatch_max,
        }

    def configure_optimizers(self) -> Any:
        return optim.configure_optimizers(self.trainable_parameters(), self.algo, self.max_steps)
