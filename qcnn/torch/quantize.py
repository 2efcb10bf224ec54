"""``quantize``: any torch model made quantum, as :func:`qcnn.quantum.quantize` does for the
numpy engine.

Rules:

- ``Conv2d -> ReLU`` becomes one :class:`~qcnn.torch.QuantumConv2d` with the same
  hyper-parameters (channels, kernel, stride, padding, padding mode, dilation, groups, bias) and a
  copy of the weights; the ReLU becomes the layer's capped ReLU (model §2.3);
- ``Conv2d -> BatchNorm2d -> ReLU`` (the ResNet pattern) becomes one quantum layer with the batch
  norm folded into its kernel and bias with the running statistics. The model must be in eval
  mode. Training the result trains the folded kernel and bias directly: no batch statistics,
  no running averages (a conv whose batch norm is frozen at its folded value);
- an ``nn.MaxPool2d`` / ``nn.AvgPool2d`` right after that ReLU merges into the quantum layer as
  pooling during the write (model §2.6);
- everything else stays classical (a copy): a conv not followed by a ReLU (the output state
  encodes a non-negative activation, model §2.4), a batch norm without running statistics,
  other layers and functions, residual additions.

Where the patterns are found: in every ``nn.Sequential`` (modules in a row, nested ones too; the
result keeps the Sequential and its child names, so the classical ``state_dict`` loads with
``strict=False``), and in any other module by tracing it with ``torch.fx`` (``nn.ReLU``,
``F.relu``, ``torch.relu`` and ``Tensor.relu`` all count; the conv's, the batch norm's and the
ReLU's outputs must have no other use; a conv module called at several places keeps its shared
weights classical). A module ``torch.fx`` cannot trace raises a TypeError
naming it.

Seeding: the k-th quantum layer (in the order the rules meet them: a Sequential's children in
order, an fx graph in execution order) draws from the k-th child of
``seed_stream(seed, 'quantum_noise')``; ``seed=None`` takes fresh OS entropy.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.fx as fx
import torch.nn.functional as TF
from torch import nn

from qcnn.quantum import QuantizeNote, QuantumConfig
from qcnn.seeding import seed_stream
from qcnn.torch.layer import QuantumConv2d

__all__ = ["quantize", "quantization_plan"]

_RELU_FUNCTIONS = (TF.relu, torch.relu, torch.relu_)
_RELU_METHODS = ("relu", "relu_")


@dataclass
class _Quantizer:
    config: QuantumConfig
    parent: np.random.SeedSequence
    notes: list[QuantizeNote] = field(default_factory=list)

    def quantum(
        self, conv: nn.Conv2d, bn: nn.BatchNorm2d | None, pool: nn.Module | None
    ) -> QuantumConv2d:
        (child,) = self.parent.spawn(1)  # the k-th call gives the k-th child
        assert pool is None or isinstance(pool, (nn.MaxPool2d, nn.AvgPool2d))
        return QuantumConv2d.from_conv(
            conv,
            self.config,
            batch_norm=bn,
            pool=None if pool is None else copy.deepcopy(pool),
            seed=child,
        )

    def note_group(
        self, path: str, conv: nn.Module, bn_path: str | None, relu_path: str, pool_path: str | None
    ) -> None:
        detail = "QuantumConv2d" + (" (batch norm folded)" if bn_path else "")
        self.notes.append(QuantizeNote(path, repr(conv), "quantum", detail))
        if bn_path is not None:
            self.notes.append(
                QuantizeNote(bn_path, "BatchNorm2d", "absorbed", "folded into the kernel and bias")
            )
        self.notes.append(
            QuantizeNote(relu_path, "ReLU", "absorbed", "the quantum layer's capped ReLU")
        )
        if pool_path is not None:
            self.notes.append(
                QuantizeNote(
                    pool_path, "pool", "merged", "pooling during the quantum layer's write"
                )
            )

    def note_classical(self, path: str, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            detail = (
                "not followed by a ReLU: the quantum layer's output state needs the capped ReLU"
            )
        elif isinstance(module, nn.BatchNorm2d):
            detail = "classical (not between a Conv2d and a ReLU, or no running statistics)"
        else:
            detail = "classical layer"
        self.notes.append(QuantizeNote(path, repr(module), "classical", detail))

    # -- nn.Sequential ---------------------------------------------------------------------------
    def sequential(self, seq: nn.Sequential, prefix: str) -> nn.Sequential:
        items = list(seq.named_children())
        out: list[tuple[str, nn.Module]] = []
        i = 0
        while i < len(items):
            name, module = items[i]
            j = i + 1
            bn = None
            if _is_classical_conv(module):
                if j < len(items) and _foldable(items[j][1]):
                    bn, j = items[j], j + 1
                if j < len(items) and isinstance(items[j][1], nn.ReLU):
                    relu, j = items[j], j + 1
                    pool = None
                    if j < len(items) and _mergeable_pool(items[j][1]):
                        pool, j = items[j], j + 1
                    assert isinstance(module, nn.Conv2d)
                    out.append(
                        (
                            name,
                            self.quantum(
                                module,
                                None if bn is None else bn[1],  # type: ignore[arg-type]
                                None if pool is None else pool[1],
                            ),
                        )
                    )
                    self.note_group(
                        prefix + name,
                        module,
                        None if bn is None else prefix + bn[0],
                        prefix + relu[0],
                        None if pool is None else prefix + pool[0],
                    )
                    i = j
                    continue
            out.append((name, self.module(module, prefix + name)))
            i += 1
        return nn.Sequential(OrderedDict(out))

    # -- any module ------------------------------------------------------------------------------
    def module(self, module: nn.Module, path: str) -> nn.Module:
        if isinstance(module, nn.Sequential):
            self.notes.append(QuantizeNote(path, "Sequential", "container"))
            return self.sequential(module, f"{path}." if path else "")
        if not any(_is_classical_conv(m) for m in module.modules()):
            self.note_classical(path, module)
            return copy.deepcopy(module)
        if not list(module.children()):  # a lone conv
            self.note_classical(path, module)
            return copy.deepcopy(module)
        return self.traced(module, path)

    def traced(self, module: nn.Module, path: str) -> fx.GraphModule:
        try:
            gm = fx.symbolic_trace(copy.deepcopy(module))
        except Exception as exc:
            raise TypeError(
                f"quantize: torch.fx cannot trace {type(module).__name__} at {path or 'the model'!r} "
                f"({type(exc).__name__}: {exc}); wrap its Conv2d/ReLU in nn.Sequential or make it "
                "traceable"
            ) from exc
        self.notes.append(QuantizeNote(path, type(module).__name__, "container", "torch.fx"))
        prefix = f"{path}." if path else ""
        modules = dict(gm.named_modules())
        calls: dict[str, int] = {}  # call_module targets are qualified names (str)
        for node in gm.graph.nodes:
            if node.op == "call_module":
                calls[str(node.target)] = calls.get(str(node.target), 0) + 1
        used: set[str] = set()
        shared: set[str] = set()
        for node in list(gm.graph.nodes):
            if node.op != "call_module" or not _is_classical_conv(modules[str(node.target)]):
                continue
            if calls[str(node.target)] > 1:  # one module called at several places: shared weights
                shared.add(str(node.target))
                continue
            chain = _fx_chain(node, modules)
            if chain is None:
                continue
            conv_node, bn_node, relu_node, pool_node = chain
            target = str(conv_node.target)
            bn_path = None if bn_node is None else prefix + str(bn_node.target)
            pool_path = None if pool_node is None else prefix + str(pool_node.target)
            conv = modules[target]
            bn = None if bn_node is None else modules[str(bn_node.target)]
            pool = None if pool_node is None else modules[str(pool_node.target)]
            assert isinstance(conv, nn.Conv2d)
            assert bn is None or isinstance(bn, nn.BatchNorm2d)
            q = self.quantum(conv, bn, pool)
            _set_submodule(gm, target, q)
            last = pool_node or relu_node
            with gm.graph.inserting_after(last):
                new = gm.graph.call_module(target, args=conv_node.args)
            last.replace_all_uses_with(new)
            for dead in (pool_node, relu_node, bn_node, conv_node):
                if dead is not None:
                    gm.graph.erase_node(dead)
            used.add(target)
            relu_path = (
                prefix + str(relu_node.target)
                if relu_node.op == "call_module"
                else f"{prefix}{relu_node.name} ({relu_node.op})"
            )
            self.note_group(prefix + target, conv, bn_path, relu_path, pool_path)
        gm.graph.lint()
        gm.delete_all_unused_submodules()
        gm.recompile()
        for name, m in gm.named_modules():
            if name in shared:
                self.notes.append(
                    QuantizeNote(
                        prefix + name,
                        repr(m),
                        "classical",
                        "called at several places (shared weights): left classical",
                    )
                )
            elif name and name not in used and not list(m.children()):
                self.note_classical(prefix + name, m)
        return gm


def _is_classical_conv(m: nn.Module) -> bool:
    return type(m) is nn.Conv2d  # subclasses (QuantumConv2d among them) are not rewritten


def _foldable(m: nn.Module) -> bool:
    return isinstance(m, nn.BatchNorm2d) and m.track_running_stats


def _mergeable_pool(m: nn.Module) -> bool:
    return isinstance(m, nn.AvgPool2d) or (isinstance(m, nn.MaxPool2d) and not m.return_indices)


def _sole_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def _is_relu(node: fx.Node, of: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if not node.args or node.args[0] is not of:
        return False
    if node.op == "call_module":
        return isinstance(modules[node.target], nn.ReLU)  # type: ignore[index]
    if node.op == "call_function":
        return node.target in _RELU_FUNCTIONS
    return node.op == "call_method" and node.target in _RELU_METHODS


def _fx_chain(
    conv: fx.Node, modules: dict[str, nn.Module]
) -> tuple[fx.Node, fx.Node | None, fx.Node, fx.Node | None] | None:
    """``(conv, batch norm or None, relu, pool or None)`` starting at ``conv``, or None."""
    cur, bn = conv, None
    nxt = _sole_user(cur)
    if (
        nxt is not None
        and nxt.op == "call_module"
        and _foldable(modules[nxt.target])  # type: ignore[index]
        and nxt.args[0] is cur
    ):
        bn, cur = nxt, nxt
        nxt = _sole_user(cur)
    if nxt is None or not _is_relu(nxt, cur, modules):
        return None
    relu, pool = nxt, None
    after = _sole_user(relu)
    if (
        after is not None
        and after.op == "call_module"
        and _mergeable_pool(modules[after.target])  # type: ignore[index]
        and after.args[0] is relu
    ):
        pool = after
    return conv, bn, relu, pool


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    *parents, name = target.split(".")
    owner = root.get_submodule(".".join(parents)) if parents else root
    setattr(owner, name, module)


def _parent(seed: int | np.random.SeedSequence | None) -> np.random.SeedSequence:
    if seed is None:
        return np.random.SeedSequence()
    return seed_stream(seed, "quantum_noise")


def quantize(
    module: nn.Module, config: QuantumConfig, *, seed: int | np.random.SeedSequence | None = None
) -> nn.Module:
    """A quantum copy of ``module`` (the rules and the seeding: the module docstring); the
    original is left untouched. A ``nn.Sequential`` comes back a ``nn.Sequential``, another
    module a ``torch.fx.GraphModule`` with the same submodule names."""
    if not isinstance(config, QuantumConfig):
        raise TypeError(f"config must be a QuantumConfig, got {type(config).__name__}")
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    return _Quantizer(config, _parent(seed)).module(module, "")


def quantization_plan(module: nn.Module) -> list[QuantizeNote]:
    """What :func:`quantize` does with every layer of ``module``: a
    :class:`~qcnn.quantum.QuantizeNote` each (``quantum``, ``absorbed``, ``merged``,
    ``classical``, ``container``); nothing of ``module`` changes."""
    q = _Quantizer(QuantumConfig.exact(), np.random.SeedSequence(0))
    q.module(module, "")
    return q.notes
