"""Batched generation backends behind one interface (``conf/rollout/``): hf, vllm."""

from sweeps.generation.base import Generation, SamplingParams, derive_seed

__all__ = ["Generation", "SamplingParams", "derive_seed"]
