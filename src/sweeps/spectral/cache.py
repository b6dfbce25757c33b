"""The reference-decomposition cache: each checkpoint's top-k triplets computed once per process,
fixed references optionally persisted on disk as safetensors."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from .checkpoints import Checkpoint
from .decompositions import Decomp, decompose
from .options import Options, effective_k


class SVDCache:
    """Top-k decompositions per (checkpoint, tensor): computed once, optionally kept on disk.

    ``get`` returns the cached triplets or computes them from the memory-mapped tensor.
    ``persist`` writes one checkpoint's triplets to ``disk_dir`` as a safetensors file whose
    name hashes (checkpoint path, k, method, oversample, n_iter); a later process loads them
    instead of decomposing again. ``retain`` evicts every checkpoint not named.
    """

    def __init__(self, opts: Options, disk_dir: str | Path | None = None):
        self.opts = opts
        self.disk_dir = Path(disk_dir) if disk_dir else None
        self.mem: dict[str, dict[str, Decomp]] = {}
        self.dirty: set[str] = set()
        self.computed = 0

    def _file(self, ckpt: Checkpoint) -> Path | None:
        import hashlib

        if self.disk_dir is None:
            return None
        o = self.opts
        key = f"{ckpt.path.resolve()}|k={o.k}|clip={o.clip_k}|{o.method}|{o.oversample}|{o.n_iter}|{o.seed}"
        return self.disk_dir / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.safetensors"

    def _load_disk(self, ckpt: Checkpoint) -> dict[str, Decomp]:
        f = self._file(ckpt)
        if f is None or not f.is_file():
            return {}
        from safetensors.torch import load_file

        flat = load_file(str(f), device=self.opts.device)
        names = {key.rsplit("::", 1)[0] for key in flat}
        return {n: (flat[f"{n}::U"], flat[f"{n}::S"], flat[f"{n}::V"]) for n in names}

    @staticmethod
    def _key(path: str | Path) -> str:
        return str(Path(path).resolve())

    def get(self, ckpt: Checkpoint, name: str, W: torch.Tensor | None = None, store: bool = True) -> Decomp:
        """The cached triplets, or W's (loaded as stored when not given), kept unless ``store=False``."""
        key = self._key(ckpt.path)
        if key not in self.mem:
            from_disk = self._load_disk(ckpt)
            if from_disk or store:
                self.mem[key] = from_disk
        entry = self.mem.get(key, {})
        if name in entry:
            return entry[name]
        W = ckpt.load(name, self.opts.device, dtype=None) if W is None else W  # [m, n] as stored
        trip = decompose(W, effective_k(tuple(W.shape), self.opts), self.opts)
        self.computed += 1
        if store:
            self.mem[key][name] = trip
            self.dirty.add(key)
        return trip

    def persist(self, ckpt: Checkpoint) -> None:
        """Write one checkpoint's new triplets to disk (temp file, then rename)."""
        key, f = self._key(ckpt.path), self._file(ckpt)
        if f is None or key not in self.dirty:
            return
        from safetensors.torch import save_file

        flat = {
            f"{n}::{part}": t.contiguous().cpu() for n, trip in self.mem[key].items() for part, t in zip("USV", trip)
        }
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_name(f".{f.name}.tmp")  # temp file, then rename: readers never see half a file
        save_file(flat, str(tmp), metadata={"checkpoint": key})
        tmp.replace(f)
        self.dirty.discard(key)

    def retain(self, keep: Iterable[str | Path]) -> None:
        """Evict every checkpoint not in ``keep``."""
        keep = {self._key(p) for p in keep}
        for key in [k for k in self.mem if k not in keep]:
            del self.mem[key]
            self.dirty.discard(key)
