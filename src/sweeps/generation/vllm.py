"""Rollouts sampled by an in-process vLLM engine that holds a copy of the training weights.

``VLLMRollout`` starts ``vllm.LLM`` in this process, on the same GPU as the trainer
(``gpu_memory_utilization`` caps the engine's share: weights, activations, KV cache), from the
RL job's start checkpoint (``weights_dir``; without one, the model is first saved, LoRA merged,
to a temporary directory). The job pushes the live weights before its first step, so a resumed
job never samples from the start checkpoint's weights.

Several processes (TRL's "colocate" mode): every rank runs its own engine on its own GPU with
``distributed_executor_backend="external_launcher"`` (vLLM then uses the job's process group
instead of starting workers) and ``tensor_parallel_size=1``: each rank samples its own share of
the prompts. Tensor parallelism across ranks is not built: within a TP group every rank would
have to send the same prompts the same number of times, which the per-rank verification loop
does not do (a 7B model fits one GPU). With ``enable_sleep_mode`` the engine sleeps (level 1:
weights to CPU memory, KV cache freed) between a step's sampling and its next weight push, so
the update has the GPU to itself; the push wakes the weights, the next sampling the KV cache.
``generate`` sends one request per prompt, as token ids, each with its own seed (greedy when
the temperature is 0), stops at the tokenizer's end-of-sequence ids and returns the sampled
ids (eos included when produced), their log-probabilities and whether eos ended the sequence,
like the hf backend (a sequence also stops, unfinished, at ``max_model_len`` tokens). vLLM
draws its own random numbers, so a seed does not give the text it gives under ``rollout=hf``;
it gives the same text on every call with the same prompts and weights.

Weights are pushed, not reloaded from disk: ``sync_weights`` walks the model's state dict under
the names ``save_checkpoint`` writes (``.base_layer.`` removed, LoRA factors and tied duplicates
dropped) and hands the tensors, lazily, to the engine model's own ``load_weights``, which maps
Hugging Face names onto vLLM's fused layers (q/k/v into ``qkv_proj``, gate/up into
``gate_up_proj``) and copies in place, casting dtype and device. Plain weights go as the live
tensors; a LoRA-wrapped weight goes as W + BA (peft's ``get_delta_weight``) computed out of
place, one weight at a time. Unlike ``save_checkpoint``'s merge_adapter/unmerge_adapter, this
never writes to the training model: a merge/unmerge round trip in bf16 moves about a tenth of
the frozen base weights by one rounding step (relative change ~1e-3), and a push every step
would repeat that. Then the prefix cache is reset, because cached KV blocks were computed with
the old weights. The engine's model is reached through ``LLM.apply_model``, which hands a
function (and the tensors it closes over) to the model without serialising anything only while
the engine core lives in this process: the constructor sets ``VLLM_ENABLE_V1_MULTIPROCESSING=0``.

Log-prob semantics: the returned values are log-probabilities of the sampled tokens under the
distribution they were drawn from (temperature-scaled, after top-k/top-p) and the plain
softmax when greedy, as in the hf backend. vLLM's V1 engine returns *raw* log-probs (before
temperature and filtering) unless the engine is started with
``logprobs_mode="processed_logprobs"``, which this module passes whenever ``EngineArgs`` has
that field. Releases that have the field but compute "processed" before temperature, and V1
releases without it, return raw values; V0 engines return processed ones. Rather than trusting
a version number, the constructor probes the engine once (does the most likely token's
log-prob change with the temperature?) and records the answer in ``processed_logprobs``; when
it is False, ``generate`` refuses settings under which raw and sampled log-probs differ. vLLM
applies top-k/top-p after the temperature, so processed log-probs include the filtering too.

Version-dependent (each chosen by feature detection): the ``logprobs_mode`` engine argument
(0.10 and later; temperature-scaled from 0.10.2 on), the value of ``top_k`` that disables it
(-1 in older ``SamplingParams``, 0 in newer: read from the default), how the engine's model is
reached (``LLM.apply_model``, which reaches V1 engines from 0.9.1 on, else the V0 path
``llm_engine.model_executor.driver_worker.model_runner.model``), and how ``close`` shuts the
engine down. The code targets the V1 engine of vLLM 0.10.2 to 0.11+; none of it has been run
against a real vLLM here (the GPU tests in tests/gpu/test_vllm_rollout.py do that).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from sweeps.generation.base import Generation, Rollout, SamplingParams, eos_ids
from sweeps.models.checkpoint import merged_weights as hf_weights
from sweeps.models.checkpoint import save_checkpoint

MISSING_VLLM = "rollout=vllm needs vLLM on a CUDA machine: pip install '.[vllm]' (or choose rollout=hf)"
NO_CUDA = (
    "rollout=vllm needs a CUDA GPU but torch.cuda.is_available() is False: run it on a GPU node (or choose rollout=hf)"
)
DEFAULTS = dict(
    gpu_memory_utilization=0.3,
    dtype="bfloat16",
    enforce_eager=True,
    max_model_len=2048,
    engine_seed=0,
    tensor_parallel_size=1,
    enable_sleep_mode=False,
    sleep_level=1,
)
NO_TP = (
    "rollout.tensor_parallel_size={} is not built: each rank runs its own engine (tensor_parallel_size=1); "
    "shard the trainer with trainer/strategy=fsdp instead"
)


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise ImportError(MISSING_VLLM) from None
    return vllm


class VLLMRollout(Rollout):
    """Rollout backend on an in-process vLLM engine (``rollout=vllm``); see the module doc."""

    is_policy = False

    def __init__(self, model: torch.nn.Module, tokenizer: Any, cfg: Any = None, weights_dir: Any = None):
        opt = {k: getattr(cfg, k, v) if cfg is not None else v for k, v in DEFAULTS.items()}
        if int(opt["tensor_parallel_size"]) != 1:
            raise ValueError(NO_TP.format(opt["tensor_parallel_size"]))
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # engine core in this process (read when LLM starts)
        vllm = _import_vllm()
        if not torch.cuda.is_available():
            raise RuntimeError(NO_CUDA)
        from sweeps.parallel import world

        self.sleep_level = int(opt["sleep_level"]) if opt["enable_sleep_mode"] else 0
        self.asleep: set[str] = set()  # parts of the engine asleep: "weights", "kv_cache"
        self._vllm, self.llm = vllm, None
        self.eos = eos_ids(tokenizer, model)
        self.vocab_size = int(getattr(getattr(model, "config", None), "vocab_size", 0) or len(tokenizer))
        self._top_k_off = vllm.SamplingParams().top_k  # -1 or 0, whichever this release uses
        self._tmp = Path(tempfile.mkdtemp(prefix="sweeps-vllm-"))
        self._remove_tmp = weakref.finalize(self, shutil.rmtree, self._tmp, True)  # also if close() is never called
        try:
            w = world.world()
            if weights_dir is None and w.size > 1:
                raise ValueError(
                    "rollout=vllm in a multi-process job needs the start checkpoint's directory (weights_dir)"
                )
            path = weights_dir if weights_dir is not None else save_checkpoint(model, tokenizer, self._tmp / "weights")
            kwargs = dict(
                model=str(path),
                dtype=str(opt["dtype"]),
                seed=int(opt["engine_seed"]),
                gpu_memory_utilization=float(opt["gpu_memory_utilization"]),
                enforce_eager=bool(opt["enforce_eager"]),
                max_model_len=int(opt["max_model_len"]),
            )
            fields = {f.name for f in dataclasses.fields(vllm.EngineArgs)}
            if "logprobs_mode" in fields:
                kwargs["logprobs_mode"] = "processed_logprobs"
            if self.sleep_level:
                kwargs["enable_sleep_mode"] = True
            if w.size > 1:  # colocate: the job's process group, one engine per rank
                kwargs.update(distributed_executor_backend="external_launcher", tensor_parallel_size=1)
                os.environ.update(RANK=str(w.rank), LOCAL_RANK=str(w.local_rank), WORLD_SIZE=str(w.size))
            self.llm = vllm.LLM(**kwargs)
            probe = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else self.eos[0]
            self.processed_logprobs = self._probe_processed_logprobs(int(probe))
        except BaseException:
            self.close()
            raise

    # --- sampling -----------------------------------------------------------------------
    def generate(
        self, prompts: Sequence[Sequence[int]], params: SamplingParams, seeds: Sequence[int] | None
    ) -> Generation:
        if not prompts:
            return Generation([], [], [])
        if not params.greedy and (seeds is None or len(seeds) != len(prompts)):
            raise ValueError("sampling needs one seed per prompt (seeds=...)")
        self._check_logprob_semantics(params)
        requests = [{"prompt_token_ids": [int(t) for t in p]} for p in prompts]
        per_request = [self._sampling_params(params, None if params.greedy else seeds[i]) for i in range(len(prompts))]
        outputs = self.llm.generate(requests, per_request, use_tqdm=False)  # same order as the prompts
        eos = set(self.eos)
        tokens, logprobs, finished = [], [], []
        for out in outputs:
            seq = out.outputs[0]
            ids = [int(t) for t in seq.token_ids]
            # seq.logprobs: one {token id: Logprob} per generated token; logprobs=0 asks for the
            # sampled token only, which vLLM always includes.
            lps = [float(step[t].logprob) for t, step in zip(ids, seq.logprobs or [])]
            if len(lps) != len(ids):
                raise RuntimeError(f"vLLM returned {len(lps)} log-probs for {len(ids)} tokens")
            tokens.append(ids)
            logprobs.append(lps)
            # finish_reason is "length" when eos is also the max_tokens-th token: test the id.
            finished.append(bool(ids) and ids[-1] in eos)
        return Generation(tokens=tokens, logprobs=logprobs, finished=finished)

    def _sampling_params(self, params: SamplingParams, seed: int | None) -> Any:
        common = dict(n=1, max_tokens=params.max_new_tokens, logprobs=0, stop_token_ids=list(self.eos))
        if params.greedy:
            return self._vllm.SamplingParams(temperature=0.0, **common)
        top_k = params.top_k if 0 < params.top_k < self.vocab_size else self._top_k_off
        return self._vllm.SamplingParams(
            temperature=float(params.temperature), top_p=float(params.top_p), top_k=int(top_k), seed=int(seed), **common
        )

    def _check_logprob_semantics(self, params: SamplingParams) -> None:
        untouched = params.greedy or (
            params.temperature == 1.0 and params.top_p == 1.0 and not 0 < params.top_k < self.vocab_size
        )
        if not (self.processed_logprobs or untouched):
            raise ValueError(
                f"this vLLM returns log-probs of the unscaled distribution, not of the one sampled at "
                f"temperature={params.temperature}, top_p={params.top_p}, top_k={params.top_k}: use a vLLM with "
                f"logprobs_mode='processed_logprobs' (0.10.2 or later), sample at temperature 1 without top-k/top-p, or choose rollout=hf"
            )

    def _probe_processed_logprobs(self, token_id: int) -> bool:
        """True when returned log-probs follow the temperature. Two one-token requests differ only
        in temperature (1 and 10); ``logprobs=1`` also returns the most likely token, whose raw
        log-prob is the same in both, while its processed log-prob drops at temperature 10
        (unless the distribution is a point mass; then the answer is False, the safe side)."""
        probes = [self._vllm.SamplingParams(n=1, temperature=t, max_tokens=1, logprobs=1, seed=0) for t in (1.0, 10.0)]
        outs = self.llm.generate([{"prompt_token_ids": [token_id]}] * 2, probes, use_tqdm=False)
        top = [max(float(lp.logprob) for lp in out.outputs[0].logprobs[0].values()) for out in outs]
        return top[1] < top[0] - 1e-3

    # --- sleep mode ---------------------------------------------------------------------
    @contextlib.contextmanager
    def generating(self) -> Iterator[None]:
        """Around a step's sampling: wake the engine (sleep mode), and put it back to sleep after."""
        self._wake("weights", "kv_cache")
        try:
            yield
        finally:
            if self.sleep_level:
                self.llm.sleep(level=self.sleep_level)
                self.asleep = {"weights", "kv_cache"}

    def _wake(self, *tags: str) -> None:
        """Wake the sleeping parts among ``tags`` (vLLM maps memory again for each woken tag)."""
        todo = [t for t in tags if t in self.asleep]
        if todo:
            self.llm.wake_up(tags=todo)
            self.asleep -= set(todo)

    # --- weights ------------------------------------------------------------------------
    def sync_weights(self, model: torch.nn.Module) -> None:
        """Copy every weight of ``model`` (LoRA merged; gathered whole when sharded: every rank
        calls this together) into the engine, then drop stale KV."""

        def load(engine_model: torch.nn.Module) -> None:
            engine_model.load_weights(hf_weights(model))  # copies in place; nothing shipped back

        self._wake("weights")  # the KV cache wakes when sampling starts
        with torch.no_grad():
            self._on_engine_model(load)
        reset = getattr(self.llm, "reset_prefix_cache", None) or self.llm.llm_engine.reset_prefix_cache
        if reset() is False:
            raise RuntimeError("vLLM refused to reset its prefix cache after a weight push (requests still running?)")

    def _on_engine_model(self, fn: Callable[[torch.nn.Module], Any]) -> Any:
        """``fn(engine model)``. In-process engines (ours: multiprocessing off) keep the V0 alias
        ``llm_engine.model_executor``, whose driver worker forwards ``model_runner`` to the V1
        worker: TRL's colocate mode reaches the model this way. ``LLM.apply_model`` (V1 from
        0.9.1, through collective_rpc) is the fallback."""
        executor = getattr(self.llm.llm_engine, "model_executor", None)
        runner = getattr(getattr(executor, "driver_worker", None), "model_runner", None)
        if runner is not None:
            return [fn(runner.model)]
        if hasattr(self.llm, "apply_model"):
            return self.llm.apply_model(fn)
        raise RuntimeError(
            "rollout=vllm cannot reach the engine's model: no in-process executor and no LLM.apply_model"
        )

    # --- teardown -----------------------------------------------------------------------
    def close(self) -> None:
        """Shut the engine down, free its GPU memory and delete the temporary checkpoint."""
        llm, self.llm = getattr(self, "llm", None), None
        if llm is not None:
            core = getattr(llm.llm_engine, "engine_core", None)  # V1 only
            shutdown = getattr(llm, "shutdown", None) or getattr(core, "shutdown", None)
            if callable(shutdown):
                shutdown()
            del llm, core
            try:
                from vllm.distributed import parallel_state
            except ImportError:  # pragma: no cover - layout differs in very old releases
                parallel_state = None
            for name in ("destroy_model_parallel", "destroy_distributed_environment"):
                fn = getattr(parallel_state, name, None)
                if callable(fn):
                    fn()
            gc.collect()
            torch.cuda.empty_cache()
        if getattr(self, "_remove_tmp", None) is not None:
            self._remove_tmp()
