"""Theory-mode training is pinned bit for bit (the speed work's safety net, issue 7 §6).

experiments/klp19-theory records a run in theory mode, so an optimisation of the theory code
paths (AE per-shot sampling, tomography values, l-infinity tomography of the gradients) must not
change a single number: same seed, same losses, same weights. These tests train the paper
network for a few steps on a small seeded input with :meth:`QuantumConfig.theory` and with each
theory option alone, and compare the losses (exact float equality) and a SHA-256 of every
parameter's bytes with values computed by the code before the optimisations (commit e25137c).
Notebook mode is pinned separately by tests/test_regression_notebook.py.

The theory preset changed once, on purpose (issue 17): its version 2 estimates the norm that
rescales each tomography gradient by amplitude estimation instead of reading it exactly. Its
values were pinned anew then; version 1 (``QuantumConfig.theory(version=1)``) keeps the values
of e25137c, so the old preset's records are still reproduced bit for bit.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from qcnn.models import make_optimizer, paper_qcnn
from qcnn.nn import softmax_cross_entropy
from qcnn.nn.parallel import DataParallel
from qcnn.quantum import QuantumConfig

BATCH = 16

CONFIGS = {
    "theory": QuantumConfig.theory(),
    "theory_v1": QuantumConfig.theory(version=1),
    "estimated_gradient_norm": QuantumConfig(
        gradient_model="linf_tomography", gradient_norm="amplitude_estimation", failure_prob=0.01
    ),
    "ae_ipe": QuantumConfig(ipe="amplitude_estimation", failure_prob=0.01, noise_order="theory"),
    "noise_per_shot": QuantumConfig(noise_per_shot=True),
    "tomography_values": QuantumConfig(
        sampled_value="tomography", tomography_normaliser="amplitude_estimation"
    ),
    "linf_gradients": QuantumConfig(gradient_model="linf_tomography"),
    "linf_input_gradients": QuantumConfig(
        gradient_model="linf_tomography", input_gradient_noise=True, gradient_on="quantum"
    ),
    "exact_signs": QuantumConfig(gradient_model="linf_tomography", gradient_signs="exact"),
}


def train_fingerprint(config: QuantumConfig, steps: int, shards: int) -> tuple[list[float], str]:
    """Losses of ``steps`` SGD steps (batch 16, seeded synthetic MNIST-like input) and the
    SHA-256 of the trained parameters' bytes."""
    rng = np.random.default_rng(2024)
    n = BATCH * steps
    x = (rng.random((n, 1, 28, 28)) * (rng.random((n, 1, 28, 28)) < 0.3)).astype(np.float32)
    y = rng.integers(0, 10, n)
    model = paper_qcnn(config, seed=3)
    optimizer = make_optimizer(model, lr=0.05, momentum=0.9, config=config, seed=3)
    runner = DataParallel(model, shards)
    losses = []
    for i in range(steps):
        sl = slice(i * BATCH, (i + 1) * BATCH)
        loss, _ = runner.train_step(x[sl], y[sl], softmax_cross_entropy)
        losses.append(float(loss))
        optimizer.step()
        optimizer.zero_grad()
    digest = hashlib.sha256()
    for p in model.parameters():
        digest.update(np.ascontiguousarray(p.data).tobytes())
    return losses, digest.hexdigest()


# (config name, steps, shards): (losses, SHA-256 of the parameters), from commit e25137c; the
# theory preset's version 2 and the estimated gradient norm alone from issue 17's commit
EXPECTED: dict[tuple[str, int, int], tuple[list[float], str]] = {
    ("theory", 3, 2): (
        [2.2979934215545654, 2.314657509326935, 2.2407116889953613],
        "f3b0a15ad9083020cd9314cef71266cf5b9af797165e0e8747802a83926b659b",
    ),
    ("theory", 2, 1): (
        [2.3231644928455353, 2.2957352697849274],
        "4b7193e6655ce70532b1dd650cd568fd22c9decabb8efce329814af2a584698d",
    ),
    # pinned in the reference arithmetic (tests/reference_arithmetic.py), like every other value
    ("estimated_gradient_norm", 2, 2): (
        [2.3244648426771164, 2.295060843229294],
        "d0e202b7f573c63ef1c6d97e7307b7d6e91919db4e4d2327aba99d26787b6bbc",
    ),
    ("theory_v1", 3, 2): (
        [2.2979934215545654, 2.3147553354501724, 2.2419270873069763],
        "70c688e8b942eae485e41ea919c329aee61dbbed99c4c24c61b16f7153ee3a15",
    ),
    ("theory_v1", 2, 1): (
        [2.3231644928455353, 2.2937712967395782],
        "5d7995e99891ffa90ec127901a762adbed10ceaf52fca9092eae8f30302721dc",
    ),
    ("ae_ipe", 2, 2): (
        [2.3240139931440353, 2.2951109558343887],
        "6a5990593df210cf52ced304e5fd3a4dc302a05a3c5de67978fd5051411fdf1c",
    ),
    ("noise_per_shot", 2, 2): (
        [2.323510065674782, 2.295123040676117],
        "1a9b5529cd960067138a1044bafea82b0f8438adf9e8bbeff2f4af44d40149fb",
    ),
    ("tomography_values", 2, 2): (
        [2.316050425171852, 2.2925573885440826],
        "939bf5b78edefcc10886c1b69852dc8fd0c9c08ad038d2198b17d05182d31408",
    ),
    ("linf_gradients", 2, 2): (
        [2.3244648426771164, 2.29490827023983],
        "a1142358e7be8c6b1d04aee801d62cdc61c4d9f4f0fc1eb2fa176995f66718e0",
    ),
    ("linf_input_gradients", 2, 2): (
        [2.3244648426771164, 2.2950491905212402],
        "7f07d09be3d26e7af21593e0e643b17cdf131402162913f834545be543dc5491",
    ),
    ("exact_signs", 2, 2): (
        [2.3244648426771164, 2.2948257476091385],
        "696c115ca0f70f2bfd720dfac8f66a08f4a0315027e418eaac3a4966b0e2e02d",
    ),
}


@pytest.mark.parametrize("key", list(EXPECTED))
def test_training_is_bit_identical(key):
    name, steps, shards = key
    losses, digest = train_fingerprint(CONFIGS[name], steps, shards)
    expected_losses, expected_digest = EXPECTED[key]
    assert losses == expected_losses
    assert digest == expected_digest
