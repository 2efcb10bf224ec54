"""Data parallelism over batch shards, in threads: the second core for numpy's single-core loops.

BLAS already runs the GEMMs on every core, but everything else numpy does (copies, element-wise
arithmetic, sorting, random numbers: most of a noisy layer's work) runs on one. Those loops
release the GIL, so a batch split into contiguous shards, each pushed through its own replica of
the network in its own thread with single-threaded BLAS, keeps every core busy.

- Replicas share the master's parameter arrays (re-linked on every call, so loading new weights
  into the master is always seen) and keep their own caches and workspaces.
- The loss is the batch mean, so shard s's logit gradient is scaled by ``n_s / n`` and the
  master's gradient is the sum of the replicas' gradients: the same gradient as one full-batch
  pass (up to float summation order) for a deterministic network.
- Random layers (``layer.rng`` not None, e.g. dropout) draw, on every call, per-shard
  generators seeded from the master layer's generator through ``SeedSequence``. Results depend
  on the master's generator state and on ``shards`` (fixed by the caller, never the core count):
  same seed and shards, same numbers; the checkpointed state stays the master's generators.
- Every layer must be ``thread_safe``; a model with one that is not is refused for ``shards > 1``.

Which networks gain is measured in docs/benchmarks.md: those whose time is outside the GEMMs
(which BLAS already spreads over the cores).
"""

from __future__ import annotations

import atexit
import contextlib
import copy
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from qcnn.checks import check_int
from qcnn.nn.layers import walk
from qcnn.nn.model import Sequential

__all__ = ["DataParallel", "one_blas_thread"]

LossFn = Callable[[np.ndarray, np.ndarray], tuple[float, np.ndarray]]


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Run the block with one BLAS thread, restored afterwards: the package's one helper for it.

    Why: OpenBLAS's matrix products round differently with 1 and 2 threads, so a run pinned to
    one thread computes the same numbers whatever the machine's cores (the sweep's executors pin
    every run); and small products run faster on one thread when cores are shared (shards,
    per-image analyses). threadpoolctl, with one controller per process: entering and leaving
    costs microseconds, negligible next to a step (docs/benchmarks.md)."""
    from threadpoolctl import ThreadpoolController

    global _controller
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


_controller = None
_pool: ThreadPoolExecutor | None = None


def _get_pool(workers: int) -> ThreadPoolExecutor:
    """One shared pool for the process (idle threads cost nothing; no pool per model)."""
    global _pool
    if _pool is None or _pool._max_workers < workers:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="qcnn-shard")
        atexit.register(_pool.shutdown, wait=False)
    return _pool


class DataParallel:
    """Run ``model``'s training step on ``shards`` contiguous slices of each batch in threads.

    Args:
        model: the master network; its ``Parameter`` objects receive the summed gradients and
            are what the optimizer updates.
        shards: number of slices (and threads); 1 runs the master itself, unchanged.
    """

    def __init__(self, model: Sequential, shards: int = 2) -> None:
        shards = check_int(shards, "shards", min=1)
        self.model, self.shards = model, shards
        self.replicas: list[Sequential] = []
        if shards > 1:
            for layer in walk(model):
                if not layer.thread_safe:
                    raise ValueError(
                        f"DataParallel with shards={shards} needs thread-safe layers; {layer!r} "
                        "is not (thread_safe=False): use shards=1"
                    )
            self.replicas = [copy.deepcopy(model) for _ in range(shards)]

    def _sync(self) -> None:
        """Point every replica parameter at the master's current arrays; the master's modes and
        forward hooks; fresh random streams."""
        # deepcopy keeps the structure, so the walks of master and replicas visit the same layers
        replica_layers = [list(walk(replica)) for replica in self.replicas]
        for i, layer in enumerate(walk(self.model)):
            for layers in replica_layers:
                layers[i].training = layer.training
                # the master's forward hooks, shared as in torch.nn.DataParallel: a hook added
                # or removed on the master layer holds for its replicas (called with the replica)
                hooks = layer.__dict__.get("_forward_hooks")
                if hooks is not None:
                    layers[i].__dict__["_forward_hooks"] = hooks
                else:
                    layers[i].__dict__.pop("_forward_hooks", None)
            if layer.rng is None:
                continue
            entropy = layer.rng.integers(0, 2**63, size=2, dtype=np.int64).tolist()
            children = np.random.SeedSequence(entropy).spawn(self.shards)
            for layers, child in zip(replica_layers, children, strict=True):
                layers[i].rng = np.random.default_rng(child)
        master = self.model.parameters()
        for replica in self.replicas:
            for p_rep, p_master in zip(replica.parameters(), master, strict=True):
                p_rep.data = p_master.data

    def train_step(self, x: np.ndarray, y: np.ndarray, loss_fn: LossFn) -> tuple[float, np.ndarray]:
        """Forward and backward of the batch ``x (N, ...)``, ``y (N,)`` in training mode (the
        model is put in it, ``model.train()``): fills the master's ``param.grad`` and returns
        ``(mean loss, logits (N, K))``."""
        self.model.train()
        if self.shards == 1:
            logits = self.model(x)
            loss, dlogits = loss_fn(logits, y)
            self.model.backward(dlogits)
            return loss, logits
        n = len(x)
        bounds = np.linspace(0, n, self.shards + 1).astype(int)
        parts = [
            (r, a, b)
            for r, a, b in zip(self.replicas, bounds[:-1], bounds[1:], strict=True)
            if b > a
        ]
        self._sync()

        def run(part):
            replica, a, b = part
            logits = replica(x[a:b])
            loss, dlogits = loss_fn(logits, y[a:b])
            dlogits *= (b - a) / n  # the batch loss is the mean over all n images
            replica.backward(dlogits)
            return loss * (b - a) / n, logits

        with one_blas_thread():
            results = list(_get_pool(self.shards).map(run, parts))
        shard_params = [replica.parameters() for replica, _, _ in parts]
        for j, p in enumerate(self.model.parameters()):
            grads = [g for params in shard_params if (g := params[j].grad) is not None]
            if not grads:
                p.grad = None
                continue
            total = grads[0] if len(grads) == 1 else grads[0] + grads[1]
            for g in grads[2:]:
                total += g
            p.grad = total
        return float(sum(r[0] for r in results)), np.concatenate([r[1] for r in results])
