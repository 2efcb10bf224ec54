"""Randomness of the torch layers: one ``SeedSequence`` per layer, two streams drawn from it.

A quantum layer draws on two kinds of generator, both derived from its own
:class:`numpy.random.SeedSequence` (never ``seed + i``):

- a ``torch.Generator`` on the tensors' device for what runs there (Gaussian estimation noise,
  pixel sampling with ``torch.multinomial``, Gaussian gradient noise); one per device, created
  the first time the layer meets that device, all seeded from the same child of the sequence;
- a ``numpy.random.Generator`` for the error models that run on the host through the emulator's
  own functions (the amplitude-estimation outcome law, noise per shot, l-infinity tomography).

:func:`multinomial_counts` is the device's pixel sampler: ``shots`` i.i.d. draws per row with
probability proportional to the row's weights (``torch.multinomial`` with replacement, weights in
float64 where the device has it, so the law is exact up to float64 rounding as numpy's is).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["Streams", "as_seed_sequence", "multinomial_counts"]

# torch.multinomial refuses more categories than this (2^24)
MAX_CATEGORIES = 1 << 24


def as_seed_sequence(seed: int | np.random.SeedSequence | None) -> np.random.SeedSequence:
    """``seed`` as a SeedSequence: an int seeds it, None takes fresh entropy from the OS (its
    ``entropy`` is kept, so such a run can still be repeated)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(
            f"seed must be None, a non-negative integer or a SeedSequence, got {seed!r}"
        )
    return np.random.SeedSequence(int(seed))


class Streams:
    """The generators of one layer (or one gradient hook), all children of ``seed``."""

    def __init__(self, seed: int | np.random.SeedSequence | None) -> None:
        self.seed = as_seed_sequence(seed)
        device_seq, host_seq = self.seed.spawn(2)
        # 63 bits: torch.Generator.manual_seed takes a signed or unsigned 64-bit integer
        self._device_seed = int(device_seq.generate_state(1, np.uint64)[0] >> np.uint64(1))
        self.host = np.random.default_rng(host_seq)
        self._device: dict[str, torch.Generator] = {}

    def device(self, device: torch.device) -> torch.Generator:
        """The generator of ``device`` (created, seeded, on first use)."""
        key = str(device)
        gen = self._device.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self._device_seed)
            self._device[key] = gen
        return gen


def multinomial_counts(
    weights: torch.Tensor, shots: int, generator: torch.Generator
) -> torch.Tensor:
    """Counts ``(B, d)`` int64 of ``shots`` i.i.d. draws per row of ``weights (B, d)`` (>= 0),
    each column with probability ``w / sum(w)``; a row of zeros gives zeros (no draw)."""
    b, d = weights.shape
    counts = torch.zeros((b, d), dtype=torch.int64, device=weights.device)
    if shots == 0 or b == 0 or d == 0:
        return counts
    if d > MAX_CATEGORIES:
        raise ValueError(
            f"a layer output of {d} pixels per image is more than torch.multinomial's "
            f"{MAX_CATEGORIES} categories"
        )
    w = weights.detach()
    if w.device.type != "mps":  # float64 cumulative sums: the law exact to float64 rounding
        w = w.to(torch.float64)
    live_rows = w.sum(dim=1) > 0
    every = bool(live_rows.all())  # the usual case: no row to leave out
    live = None if every else torch.nonzero(live_rows).flatten()
    rows = w if live is None else w[live]
    if rows.shape[0] == 0:
        return counts
    draws = torch.multinomial(rows, shots, replacement=True, generator=generator)  # (L, shots)
    flat = draws + (torch.arange(rows.shape[0], device=w.device) * d)[:, None]
    # scatter_add of ones: the counts per (row, column), much faster than bincount on the CPU
    per_row = torch.zeros(rows.shape[0] * d, dtype=torch.int64, device=w.device)
    per_row.scatter_add_(
        0, flat.flatten(), torch.ones(flat.numel(), dtype=torch.int64, device=w.device)
    )
    if live is None:
        return per_row.view(b, d)
    counts[live] = per_row.view(-1, d)
    return counts
