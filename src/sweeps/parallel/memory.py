"""The memory plan of a job, per GPU, before anything is loaded (``sweeps-plan``).

The model is built on PyTorch's meta device (shapes, no storage), so the parameter counts are
exact for any Hugging Face model whose config is reachable; the rest is arithmetic, stated here
so that a reader can redo it by hand (bytes per GPU, W = trainer.devices x trainer.num_nodes):

- **states**, resident all the time: parameters P x b (b = bytes of ``model.dtype``, the master
  weights), AdamW's two moments 2 P_t x b (P_t = trainable parameters: all, or LoRA's), each
  divided by W where the strategy shards it (FSDP: all three; DeepSpeed ZeRO-2: optimizer and
  gradients; DDP: none);
- **training peak** on top: gradients P_t x b (/W when sharded); the unsharded copies FSDP
  all-gathers (the root unit, i.e. embeddings, norm and LM head, for the whole step, plus two
  blocks: the one running and the one prefetched) in the compute dtype; autocast's cache of
  bfloat16 weight copies (P x 2) when float32 masters run under ``bf16-mixed`` without FSDP;
  activations of one micro-batch of B sequences x T tokens: per layer and token
  ``6 d + 2 d_kv + 4 I`` values saved for backward in a Llama-style block (norm inputs/outputs,
  q, k, v, attention output; gate, up, act(gate), act x up), + ``2 a T`` for an eager attention
  that stores its scores; with activation checkpointing only each layer's input (d) plus one
  layer recomputed; the logits, ``B T V x 10`` bytes (bf16 logits, their float32 copy and the
  float32 log-softmax the loss keeps for backward); the frozen KL reference (P x b, whole on
  every rank) when ``algo.kl_coef > 0``;
- **generation peak** (evaluation at checkpoints, HF rollouts) instead of the training one:
  the whole model gathered in the compute dtype under FSDP, and the KV cache
  ``2 L d_kv x gen_batch x T`` values;
- **fixed**: vLLM's ``gpu_memory_utilization`` share of the GPU (``rollout=vllm``; in the
  generation peak instead with ``rollout.enable_sleep_mode=true``, which frees it while the
  trainer updates), and ``memory.overhead_gib`` (CUDA context, NCCL buffers, allocator slack).

Total = states + max(training, generation) + fixed. The estimate ignores the allocator's
fragmentation beyond the overhead and CPU offload; it is an estimate for choosing knobs, with
each term printed so that it can be checked against a real run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GIB = 1024**3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class Shapes:
    """What the plan needs to know about a model (exact counts from the meta device)."""

    params: int  # unique parameters (tied weights once)
    trainable: int  # of which trainable (LoRA: the adapters; PPO: + value head)
    block_params: int  # one transformer block
    layers: int
    hidden: int
    intermediate: int
    kv_dim: int  # num_key_value_heads x head_dim
    heads: int
    vocab: int


@dataclass
class Plan:
    gpus: int
    capacity_gib: float | None
    rows: list[tuple[str, str, float, str]] = field(default_factory=list)  # (phase, component, bytes, how)

    def add(self, phase: str, component: str, nbytes: float, how: str) -> None:
        self.rows.append((phase, component, float(nbytes), how))

    def phase(self, name: str) -> float:
        return sum(b for p, _, b, _ in self.rows if p == name)

    @property
    def total(self) -> float:
        return self.phase("states") + max(self.phase("training"), self.phase("generation")) + self.phase("fixed")

    def table(self) -> str:
        lines = [f"{'phase':<11} {'component':<34} {'GiB/GPU':>8}  how"]
        lines += [f"{p:<11} {c:<34} {b / GIB:8.2f}  {h}" for p, c, b, h in self.rows]
        lines.append(
            f"{'total':<11} {'states + max(training, generation) + fixed':<34} {self.total / GIB:8.2f}"
            + (f"  of {self.capacity_gib:g} GiB per GPU, {self.gpus} GPU(s)" if self.capacity_gib else "")
        )
        return "\n".join(lines)

    def fits(self) -> bool:
        return self.capacity_gib is None or self.total <= self.capacity_gib * GIB


def shapes(model: Any, config: Any) -> Shapes:
    """Counts of a (meta-device) model; block = its largest ``_no_split_modules`` module."""
    from sweeps.parallel.fsdp import block_classes

    seen: dict[int, Any] = {}
    for p in model.parameters():
        seen.setdefault(id(p), p)
    params = sum(p.numel() for p in seen.values())
    trainable = sum(p.numel() for p in seen.values() if p.requires_grad)
    names = set(block_classes(model))
    blocks = [m for m in model.modules() if type(m).__name__ in names]
    block = max((sum(p.numel() for p in b.parameters()) for b in blocks), default=0)
    d = int(config.hidden_size)
    heads = int(config.num_attention_heads)
    head_dim = int(getattr(config, "head_dim", None) or d // heads)
    kv = int(getattr(config, "num_key_value_heads", None) or heads) * head_dim
    return Shapes(
        params,
        trainable,
        block,
        int(config.num_hidden_layers),
        d,
        int(getattr(config, "intermediate_size", None) or 4 * d),
        kv,
        heads,
        int(config.vocab_size),
    )


def sharding(strategy_cfg: Any) -> tuple[bool, bool, bool]:
    """Which of (parameters, gradients, optimizer states) a strategy config shards: FSDP all
    three; a DeepSpeed ``stage`` N shards the optimizer from 1, gradients from 2, parameters at 3."""
    if str(strategy_cfg.get("_target_", "")).endswith("fsdp.FSDPStrategy"):
        return True, True, True
    stage = int(strategy_cfg.get("stage", 0) or 0)
    return stage >= 3, stage >= 2, stage >= 1


def plan(
    s: Shapes,
    *,
    gpus: int,
    sharded: tuple[bool, bool, bool],
    param_dtype: str,
    compute_bytes: int,
    mixed: bool,
    micro_batch: int,
    seq_len: int,
    gen_batch: int,
    gen_len: int,
    checkpointing: bool,
    eager_attention: bool,
    kl_reference: bool,
    vllm_fraction: float,
    capacity_gib: float | None,
    overhead_gib: float,
    vllm_sleeps: bool = False,
) -> Plan:
    """The per-GPU plan (see the module doc); ``sharded`` as :func:`sharding` gives it."""
    b = DTYPE_BYTES[param_dtype]
    shard_params, shard_grads, shard_opt = (gpus if flag else 1 for flag in sharded)
    fsdp = sharded[0]
    p = Plan(gpus, capacity_gib)
    where = lambda n: f"/ {n} GPUs" if n > 1 else "whole on each GPU"  # noqa: E731
    p.add("states", "parameters", s.params * b / shard_params, f"{s.params:,} x {b} B {where(shard_params)}")
    p.add("states", "AdamW moments", 2 * s.trainable * b / shard_opt, f"2 x {s.trainable:,} x {b} B {where(shard_opt)}")
    p.add("training", "gradients", s.trainable * b / shard_grads, f"{s.trainable:,} x {b} B {where(shard_grads)}")
    if fsdp and gpus > 1:
        root = s.params - s.layers * s.block_params
        p.add(
            "training",
            "all-gathered units",
            (root + 2 * s.block_params) * compute_bytes,
            f"root {root:,} + 2 blocks x {s.block_params:,}, x {compute_bytes} B",
        )
    elif mixed and b == 4:
        p.add("training", "autocast weight copies", s.params * 2, f"{s.params:,} x 2 B (bf16 casts kept for backward)")
    tokens = micro_batch * seq_len
    per_layer = 6 * s.hidden + 2 * s.kv_dim + 4 * s.intermediate + (2 * s.heads * seq_len if eager_attention else 0)
    if checkpointing:
        act = tokens * (s.layers * s.hidden + per_layer) * compute_bytes
        how = f"{micro_batch} x {seq_len} tokens x ({s.layers} x {s.hidden} + {per_layer}) x {compute_bytes} B (checkpointed)"
    else:
        act = tokens * s.layers * per_layer * compute_bytes
        how = f"{micro_batch} x {seq_len} tokens x {s.layers} layers x {per_layer} x {compute_bytes} B"
    p.add("training", "activations", act, how)
    p.add("training", "logits", tokens * s.vocab * 10, f"{tokens:,} tokens x {s.vocab:,} x 10 B")
    if kl_reference:
        p.add("training", "KL reference model", s.params * b, f"{s.params:,} x {b} B, whole on each GPU")
    if fsdp and gpus > 1:
        p.add("generation", "gathered model", s.params * compute_bytes, f"{s.params:,} x {compute_bytes} B")
    p.add(
        "generation",
        "KV cache",
        2 * s.layers * s.kv_dim * gen_batch * gen_len * compute_bytes,
        f"2 x {s.layers} x {s.kv_dim} x {gen_batch} seqs x {gen_len} tokens x {compute_bytes} B",
    )
    if vllm_fraction:
        if capacity_gib is None:
            raise ValueError("rollout=vllm reserves a share of the GPU: set memory.gpu_gib=<GiB per GPU> to plan it")
        p.add(
            "generation" if vllm_sleeps else "fixed",
            "vLLM engine",
            vllm_fraction * capacity_gib * GIB,
            f"rollout.gpu_memory_utilization={vllm_fraction}" + (", asleep while training" if vllm_sleeps else ""),
        )
    p.add("fixed", "overhead", overhead_gib * GIB, "memory.overhead_gib (CUDA context, NCCL, allocator)")
    return p


def knob(p: Plan, sharded: bool, checkpointing: bool, param_dtype: str) -> str:
    """The setting that frees the most memory from the largest reducible component."""
    size = {c: bts for _, c, bts, _ in p.rows}
    states = size["parameters"] + size["AdamW moments"] + size["gradients"]
    train = p.phase("training")
    if p.phase("generation") > train:
        return "eval.batch_size / algo.rollout_batch_size (fewer sequences sampled at once)"
    if size.get("vLLM engine", 0) > states and size.get("vLLM engine", 0) > size["activations"]:
        return "rollout.gpu_memory_utilization (the engine's share of the GPU)"
    if states >= size["activations"] + size["logits"]:
        if not sharded and p.gpus > 1:
            return "trainer/strategy=fsdp (shard parameters, gradients and optimizer states over the GPUs)"
        if param_dtype == "float32":
            return "model.dtype=bfloat16 (bfloat16 master weights and optimizer states)"
        return "trainer.devices / trainer.num_nodes (more GPUs to shard over) or model.lora.enabled=true"
    if not checkpointing and size["activations"] > size["logits"]:
        return "model.gradient_checkpointing=true (keep only each block's input for backward)"
    return "algo.micro_batch_size (RL) or trainer.batch_size / trainer.accumulate (SFT): fewer tokens per forward"


class PlanError(ValueError):
    """A job whose memory plan does not fit its GPUs; the message names the knob."""


def check(p: Plan, sharded: bool, checkpointing: bool, param_dtype: str) -> None:
    """One line when the plan does not fit, naming the knob to change."""
    if not p.fits():
        raise PlanError(
            f"the memory plan needs {p.total / GIB:.1f} GiB per GPU but a GPU has {p.capacity_gib:g} GiB: "
            f"change {knob(p, sharded, checkpointing, param_dtype)}"
        )


# --- a job's config -> its plan -------------------------------------------------------------
def seq_lengths(cfg: Any, task: Any, tokenizer: Any) -> tuple[int, int]:
    """(training, generation) tokens per sequence: ``memory.seq_len`` when set, else measured
    with the model's tokenizer on 64 sampled ID prompts (a multi-step task's last step, its
    longest prompt): SFT trains on prompt + reference answer; RL trains on, and generation
    holds, prompt + every attempt's answer and feedback (``max_new_tokens`` + 64 per attempt,
    an allowance for the feedback turn)."""
    import random

    from sweeps.modules.data import tokenize_pair

    if cfg.memory.seq_len:
        return int(cfg.memory.seq_len), int(cfg.memory.seq_len)
    try:
        if tokenizer is None:
            raise ValueError("no tokenizer files")
        last = [
            task.at_step(ex, task.num_steps(ex) - 1)  # a route's longest prompt
            for ex in (task.sample("id", random.Random(i)) for i in range(64))
        ]
        pairs = [tokenize_pair(tokenizer, task.prompt(ex), task.reference_completion(ex)) for ex in last]
    except Exception as err:  # noqa: BLE001 - any tokenizer failure: ask for the length instead
        first = str(err).split(". ")[0].splitlines()[0]
        raise ValueError(
            f"cannot measure sequence lengths with model {cfg.model.name}'s tokenizer ({first}): "
            "set memory.seq_len=<tokens per sequence>"
        ) from None
    prompt = max(n for _, n in pairs)
    conversation = lambda attempts: prompt + attempts * task.max_new_tokens + (attempts - 1) * 64  # noqa: E731
    rl_attempts = cfg.algo.get("max_attempts") or task.max_attempts  # null: the task's budget
    training = conversation(int(rl_attempts)) if "group_size" in cfg.algo else max(len(ids) for ids, _ in pairs)
    return training, conversation(max(int(task.max_attempts), int(rl_attempts)))  # evaluation: the task's budget


def for_job(cfg: Any, task: Any) -> Plan:
    """The plan of the job ``cfg`` describes, its model built on the meta device."""
    import torch
    from hydra.utils import get_class

    from sweeps.models.build import build

    model, tokenizer = build(cfg.model, meta=True)
    if cfg.algo.get("module") and get_class(cfg.algo.module).wants_hidden:  # a critic on the backbone (PPO)
        from sweeps.modules.ppo import ValueHead

        with torch.device("meta"):
            head = ValueHead(model.config.hidden_size)
        model.add_module("_value_head", head)  # counted with the trainable parameters
    s = shapes(model, model.config)
    gpus = int(cfg.trainer.devices) * int(cfg.trainer.num_nodes)
    precision = str(cfg.trainer.precision)
    mixed = precision.endswith("-mixed")
    compute = 2 if (mixed or precision.startswith(("bf16", "16"))) else DTYPE_BYTES[cfg.model.dtype]
    train_len, gen_len = seq_lengths(cfg, task, tokenizer)
    rl = "group_size" in cfg.algo
    micro = int(cfg.algo.micro_batch_size) if rl else int(cfg.trainer.batch_size) // gpus
    gen_batch = max(int(cfg.eval.batch_size), int(cfg.algo.rollout_batch_size) if rl else 0)
    vllm = float(cfg.rollout.get("gpu_memory_utilization", 0) or 0) if rl and cfg.get("rollout") else 0.0
    attention = str(getattr(model.config, "_attn_implementation", "sdpa") or "sdpa")
    return plan(
        s,
        gpus=gpus,
        sharded=sharding(cfg.trainer.strategy),
        param_dtype=str(cfg.model.dtype),
        compute_bytes=compute,
        mixed=mixed,
        micro_batch=micro,
        seq_len=train_len,
        gen_batch=gen_batch,
        gen_len=gen_len,
        checkpointing=bool(cfg.model.gradient_checkpointing),
        eager_attention=attention == "eager",
        kl_reference=rl and float(cfg.algo.kl_coef) > 0,
        vllm_fraction=vllm,
        capacity_gib=capacity_gib(cfg),
        overhead_gib=float(cfg.memory.overhead_gib),
        vllm_sleeps=bool(vllm and cfg.rollout.get("enable_sleep_mode")),
    )


def capacity_gib(cfg: Any) -> float | None:
    """``memory.gpu_gib``, else the current CUDA device's memory, else None (no GPU to check)."""
    if cfg.memory.gpu_gib:
        return float(cfg.memory.gpu_gib)
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory / GIB
    return None


def preflight(cfg: Any, task: Any) -> None:
    """``sweeps-train`` on a GPU, before any weight is loaded: the plan against this GPU's
    memory (``memory.check``: warn, refuse or off). Nothing to check on a CPU job."""
    import logging

    if cfg.memory.check == "off" or cfg.trainer.accelerator not in ("gpu", "cuda") or capacity_gib(cfg) is None:
        return
    try:
        p = for_job(cfg, task)
        check(p, sharding(cfg.trainer.strategy)[0], bool(cfg.model.gradient_checkpointing), str(cfg.model.dtype))
    except PlanError as err:
        if cfg.memory.check == "refuse":
            raise
        logging.getLogger(__name__).warning("%s (estimate; memory.check=refuse makes this an error)", err)
    except Exception as err:  # noqa: BLE001 - the plan is advice: an unplannable model must not stop the job
        logging.getLogger(__name__).warning("no memory plan for this job (%s); sweeps-plan shows why", err)
