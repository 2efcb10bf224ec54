"""qcnn for PyTorch users: the KLP19 quantum convolution as a ``torch.nn`` module.

The optional extra ``qcnn[torch]`` installs PyTorch; ``import qcnn`` never needs it. The model is
the emulator's (:mod:`qcnn.quantum`): the same :class:`~qcnn.quantum.QuantumConfig`, the same
AE outcome law, per-shot sampler and tomography (imported from there, never copied); this
package runs it on torch tensors, on the tensors' device where the law allows it.

- :class:`QuantumConv2d`: ``nn.Conv2d`` + capped ReLU + l-infinity tomography sampling
  (+ pooling while writing), every error model of the emulator in both modes.
- :class:`QuantumBackprop`: quantum backpropagation on parameter gradients as a step pre-hook of
  any ``torch.optim`` optimizer (the gradient a quantum layer passes back is read out inside the
  layer, ``QuantumConfig.input_gradient_noise``).
- :func:`quantize` / :func:`quantization_plan`: any torch model made quantum (``Conv2d [->
  BatchNorm2d] -> ReLU [-> pool]`` becomes one :class:`QuantumConv2d`), in ``nn.Sequential``
  and, through ``torch.fx``, in any traceable module; :func:`reseed` re-seeds every quantum
  layer of a model.
"""

from __future__ import annotations

try:
    import torch as _torch  # noqa: F401  (the dependency check below)
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "qcnn.torch needs PyTorch, which qcnn does not install by default: "
        "pip install 'qcnn[torch]' (or pip install torch)"
    ) from exc

from qcnn.torch.backprop import QuantumBackprop, noisy_gradient
from qcnn.torch.layer import QuantumConv2d, reseed
from qcnn.torch.quantize import quantization_plan, quantize

__all__ = [
    "QuantumConv2d",
    "QuantumBackprop",
    "noisy_gradient",
    "quantize",
    "quantization_plan",
    "reseed",
]
