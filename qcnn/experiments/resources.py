"""``python -m qcnn.experiments.resources``: predicted quantum vs classical running time per layer.

Runs test images through the QCNN (fresh, or with trained weights from a run of the ``mnist``
command) and reports, first, the **logical counts of the construction**
(:mod:`qcnn.quantum.costs`, tables by :mod:`qcnn.experiments.cost_report`): forward per image and
per batch, backward per batch as training reads it (the kernel gradient once per batch, with the
mu and kappa of the batch's stacked matrices), in the paper's and the circuit's reading of QRAM,
and the crossover re-derived for kernel volumes up to 1e6; with ``--physical`` (the optional
extra ``qcnn[estimate]``) their physical resources from Microsoft's resource estimator
(:mod:`qcnn.quantum.physical`) against this machine's measured convolution throughput and a
stated GPU peak. Then, for comparison, the first running-time model of
:mod:`qcnn.quantum.resources` (model §4's big-O formula):

- **forward**: measured ``M``, ``E[f]`` in each quantum layer; classical multiply-adds against
  ``sigma H'W'D' * M sqrt(C) / (eps sqrt(E[f]))``; the shots used (``sigma d``), the shots the
  l-infinity guarantee needs for eta = 0.1 (``36 ln d / eta^2``) and the implied eta;
- **backward**: one training batch's ``dL/dY``; per image the mu (both definitions) and kappa of
  ``A``, ``dL/dY``, ``F``, ``dL/dF = A^T dL/dY`` and ``dL/dX = dL/dY F^T``, and the quantum
  backward cost ``((mu(A) + mu(dY)) kappa(dF) + (mu(dY) + mu(F)) kappa(dX)) / delta^2`` next to the
  classical ``2 H'W'D' kh kw D``;
- **larger kernels**: ``M`` grows with the kernel volume, so Q is *measured* for each kernel size
  and depth of the table on synthetic deeper inputs with trained-like statistics (channels drawn
  from the activations the last quantum layer sees, kernel weights drawn from its trained kernel
  and rescaled by ``sqrt(V_0 / V)`` as training from a fan-in initialisation keeps them), the
  growth ``M ~ V^alpha`` is fitted on those measurements, and the crossover volume solves
  ``V = sigma Q(V)``. The fixed-Q table of the first report is kept for comparison.

Writes ``resources.json`` and ``resources.md``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qcnn.experiments.cli import (
    add_common_arguments,
    add_model_arguments,
    add_quantum_arguments,
    check_data_dir,
    check_output_dir,
    check_sampling_memory,
    cli_errors,
    command_parser,
    config_from_args,
    default_out,
    int_in,
    usage_error,
)
from qcnn.experiments.cost_report import (
    GPU_PEAK,
    classical_throughput,
    crossover_rows,
    crossovers,
    layer_costs,
    layer_shape,
    physical_rows,
)
from qcnn.experiments.cost_report import markdown as cost_markdown
from qcnn.experiments.runner import environment_info, load_data, portable_paths
from qcnn.io import atomic_write_json, atomic_write_text
from qcnn.models import build_model, quantum_layers, transfer_weights
from qcnn.nn import Sequential
from qcnn.nn import functional as F
from qcnn.nn.losses import softmax_cross_entropy
from qcnn.nn.model import load_npz_strict
from qcnn.nn.parallel import one_blas_thread
from qcnn.quantum import QuantumConfig, QuantumConv2D
from qcnn.quantum.costs import Assumptions, Counts, LayerShape
from qcnn.quantum.layer_stats import watch_statistics
from qcnn.quantum.physical import ERROR_BUDGET, estimator_available, physical_estimates
from qcnn.quantum.resources import (
    LayerMeasurements,
    backward_resources,
    crossover_table,
    crossover_volume,
    fit_growth,
    layer_resources,
    matrix_parameters,
)
from qcnn.train import evaluate

KERNELS = (3, 7, 11)
TRAIN_BATCH = 64  # the paper's batch: the backward counts are per batch of this many images
DEPTHS = (1, 16, 64, 256, 1024)

__all__ = ["build_parser", "main", "report"]


def report(
    model: Sequential,
    config: QuantumConfig,
    x: np.ndarray,
    y: np.ndarray,
    *,
    backward_images: int = 0,
    synthetic: bool = False,
    synthetic_images: int = 8,
    seed: int = 0,
    batch: int = 64,
    estimate: Callable[[Counts, float], list[dict[str, Any]]] | None = None,
    flops: dict[str, float] | None = None,
) -> list[dict]:
    """Measure each quantum layer (nested ones too) on ``x`` ``(N, C, H, W)`` and evaluate the
    running-time model with the input shape each layer saw; ``backward_images`` > 0 adds the
    backward pass (one training batch of that many images), ``synthetic`` the measured Q of
    larger kernels and deeper inputs for the last quantum layer. Every layer also gets the logical
    counts of its construction (``costs``: forward per image and per ``batch``, backward per batch
    as training reads it, both QRAM readings) and the last one the re-derived crossover
    (``crossover_costs``); with ``estimate`` (:func:`qcnn.quantum.physical.physical_estimates`)
    and ``flops`` (``{"cpu": ..., "gpu": ...}``) their physical estimates too."""
    if config.sigma is None:
        raise ValueError("the running-time model needs sigma (the fraction of pixels sampled)")
    layers = quantum_layers(model)
    inputs: dict[int, np.ndarray] = {}
    handles = []
    observed = watch_statistics(model, detailed=True)
    for i, layer in enumerate(layers):
        layer.reset_stats()
        if synthetic and i == len(layers) - 1:  # keep the inputs the last layer sees

            def keep(_layer, layer_inputs, _output, _i=i):
                inputs.setdefault(_i, layer_inputs[0][:synthetic_images].copy())

            handles.append(layer.register_forward_hook(keep))
    try:
        evaluate(model, x, y, batch_size=128)
    finally:
        for handle in handles:
            handle.remove()
    backward = (
        _backward_parameters(model, layers, x[:backward_images], y[:backward_images])
        if (backward_images > 0 and config.delta > 0)
        else [None] * len(layers)
    )
    out: list[dict[str, Any]] = []
    last_inputs: tuple[LayerShape, float, dict | None] | None = None
    for layer in layers:
        s = observed[layer].mean()
        in_shape = layer.last_input_shape
        assert in_shape is not None  # evaluate ran every layer
        out_c, out_h, out_w = layer.conv_output_shape(in_shape)
        res = layer_resources(
            (out_c, out_h, out_w),
            (in_shape[0], *layer.kernel_size),
            sigma=config.sigma,
            eps=config.effective_eps,
            cap=config.cap,
            measured=LayerMeasurements.from_stats(s),
        )
        row: dict[str, Any] = {
            "layer": repr(layer),
            "resources": res.to_dict(),
            "crossover_fixed_q": crossover_table(res, KERNELS, DEPTHS),
        }
        params = backward[len(out)]
        batch_params = params.pop("batch", None) if params is not None else None
        if batch_params is not None:
            row["backward_matrices_batch"] = batch_params
        if params is not None:
            row["backward_matrices"] = params
            row["backward"] = backward_resources(
                (out_c, out_h, out_w),
                (in_shape[0], *layer.kernel_size),
                delta=config.delta,
                mu_A=params["A"]["mu"],
                mu_dY=params["dY"]["mu"],
                mu_F=params["F"]["mu"],
                kappa_dF=params["dF"]["kappa"],
                kappa_dX=params["dX"]["kappa"],
            ).to_dict()
        shape = layer_shape(
            (out_c, out_h, out_w), res.kernel_volume, int(np.prod(in_shape)), layer.bias is not None
        )
        cost_params = {"batch": batch_params, "image": params} if params and batch_params else None
        row["costs"] = layer_costs(
            shape,
            config,
            s["mean_f"],
            cost_params,
            batch=batch,
            input_gradient=bool(layer.need_input_grad),
        )
        last_inputs = (shape, s["mean_f"], cost_params)
        if estimate is not None and flops is not None:
            row["physical"] = physical_rows(row["costs"], estimate, flops)
        out.append(row)
    _synthetic_tables(out, layers, inputs, config, synthetic, seed)
    if last_inputs is not None:
        shape, mean_f, cost_params = last_inputs
        measured = out[-1].get("synthetic") or []
        fit = None
        vols = [m["kernel_volume"] for m in measured]
        if len(set(vols)) >= 2:
            fit = fit_growth(vols, [m["mean_f"] for m in measured])

        def mean_f_of(v: int) -> tuple[float, str]:
            if v == shape.volume:
                return mean_f, "measured"
            if fit is None:
                return mean_f, "held"
            beta, c = fit
            return float(min(config.cap, c * v**beta)), "fit"

        table = crossover_rows(
            shape,
            config,
            mean_f_of,
            cost_params,
            batch=batch,
            flops=flops or {},
            estimate=estimate if flops else None,
        )
        out[-1]["crossover_costs"] = table
        out[-1]["crossovers"] = crossovers(table)
    return out


def _synthetic_tables(out, layers, inputs, config, synthetic, seed) -> None:
    """The measured Q of larger kernels and deeper inputs (last layer), and its crossover."""
    if synthetic and out:
        last, res_last = layers[-1], out[-1]["resources"]
        measured = synthetic_q(last, inputs[len(layers) - 1], config, seed=seed)
        volumes = [m["kernel_volume"] for m in measured]
        if len(set(volumes)) < 2:  # inputs too small for the table's kernels: nothing to fit
            out[-1]["synthetic"] = measured
            return
        alpha, _ = fit_growth(volumes, [m["M"] for m in measured])
        alpha_q, c_q = fit_growth(volumes, [m["Q"] for m in measured])
        q_of = {(m["kernel"], m["depth"]): m["Q"] for m in measured}
        from qcnn.quantum.resources import LayerResources

        lr = LayerResources(**res_last)
        out[-1]["synthetic"] = measured
        out[-1]["growth_alpha"] = alpha  # M ~ V^alpha
        out[-1]["growth_alpha_q"] = alpha_q  # Q ~ c V^alpha_q (E[f] changes too)
        out[-1]["crossover_volume_fixed_q"] = lr.crossover_kernel_volume
        # V = sigma c V^alpha_q on the synthetic fit; and the measured layer's Q grown as M grows
        out[-1]["crossover_volume_fit"] = (
            float((lr.sigma * c_q) ** (1.0 / (1.0 - alpha_q))) if alpha_q < 1 else float("inf")
        )
        out[-1]["crossover_volume_growth"] = crossover_volume(lr, alpha)
        # a kernel larger than the layer's input cannot be measured: its Q comes from the fit
        extrapolated = sorted({k for k in KERNELS for d in DEPTHS if (k, d) not in q_of})
        out[-1]["crossover_q_from_fit"] = extrapolated  # kernel sizes k (k x k)
        out[-1]["crossover"] = crossover_table(
            lr,
            KERNELS,
            DEPTHS,
            q_of=lambda k, d: q_of.get((k, d), c_q * (k * k * d) ** alpha_q),
        )
    return out


def _estimate(counts: Counts, units: float) -> list[dict[str, Any]]:
    return physical_estimates(counts, units=units)


def _backward_parameters(model, layers, x, y) -> list[dict | None]:
    """One training batch: per quantum layer, the median over images of mu (both forms), kappa
    and rank of A, dL/dY, F, dL/dF and dL/dX (model §4)."""
    captured: dict[int, np.ndarray] = {}
    originals = {}
    for i, layer in enumerate(layers):
        originals[i] = layer.backward

        def grab(dout, _i=i, _orig=layer.backward):
            captured[_i] = dout.copy()
            return _orig(dout)

        layer.backward = grab
    try:
        logits = model.train()(x)
        _, dlogits = softmax_cross_entropy(logits, y)
        model.backward(dlogits)
    finally:
        for i, bwd in originals.items():
            layers[i].backward = bwd
    with one_blas_thread():  # many small SVDs: threads only fight
        return _parameters_of(layers, captured)


def _parameters_of(layers, captured: dict[int, np.ndarray]) -> list[dict | None]:
    out: list[dict | None] = []
    for i, layer in enumerate(layers):
        if i not in captured:
            out.append(None)
            continue
        a, dy, f = layer.gradient_matrices(captured[i])
        per: dict[str, list[dict[str, float]]] = {k: [] for k in ("A", "dY", "F", "dF", "dX")}
        for n in range(a.shape[0]):
            if not dy[n].any():  # no gradient reaches this image (nothing sampled): skip it
                continue
            per["A"].append(matrix_parameters(a[n]))
            per["dY"].append(matrix_parameters(dy[n]))
            per["dF"].append(matrix_parameters(a[n].T @ dy[n]))
            per["dX"].append(matrix_parameters(dy[n] @ f.T))
        per["F"].append(matrix_parameters(f))
        row: dict[str, Any] = {
            k: {p: float(np.nanmedian([v[p] for v in vals])) for p in vals[0]}
            | {"images": len(vals)}
            for k, vals in per.items()
            if vals
        }
        live = [n for n in range(a.shape[0]) if dy[n].any()]
        if live:  # the batch's kernel gradient A^T dY with A, dY stacked over the images
            a_b = a[live].reshape(-1, a.shape[-1])
            dy_b = dy[live].reshape(-1, dy.shape[-1])
            row["batch"] = {
                "A": matrix_parameters(a_b),
                "dY": matrix_parameters(dy_b),
                "dF": matrix_parameters(a_b.T @ dy_b),
                "images": len(live),
            }
        out.append(row)
    return out


def synthetic_q(
    layer: QuantumConv2D,
    x_in: np.ndarray,
    config: QuantumConfig,
    kernels: tuple[int, ...] = KERNELS,
    depths: tuple[int, ...] = DEPTHS,
    seed: int = 0,
    positions: int = 64,
) -> list[dict[str, float]]:
    """M, E[f] and Q of a quantum layer with a k x k kernel over D input channels, for every
    (k, D), measured on synthetic inputs with the statistics of ``layer``'s: each channel is a
    channel of one of the real inputs ``x_in (N, C, H, W)`` (image and channel drawn at random),
    each weight is drawn from ``layer``'s trained kernel and scaled by ``sqrt(V_0 / V)``, the
    biases from its trained biases. M is exact (all patch norms, box filter); E[f] is the mean
    over ``positions`` random output positions per image of ``E[f(Y + e)]`` (the Gaussian closed
    form with standard deviation ``2 eps ||A_p|| ||F_q||``, eps the config's effective one)."""
    from qcnn.quantum.per_shot import gaussian_mean_f

    rng = np.random.default_rng(seed)
    n, c, h, w = x_in.shape
    w0 = layer.kernel().ravel().astype(np.float64)
    b0 = (layer.bias.data if layer.bias is not None else np.zeros(layer.out_channels)).astype(
        np.float64
    )
    d_out = layer.out_channels
    v0 = w0.size // d_out
    eps = config.effective_eps
    rows = []
    for k in kernels:
        if k > min(h, w):
            continue
        for depth in depths:
            volume = depth * k * k
            img = rng.integers(0, n, size=(n, depth))
            chan = rng.integers(0, c, size=(n, depth))
            xs = x_in[img, chan].astype(np.float64)  # (n, depth, H, W)
            weight = rng.choice(w0, size=(d_out, depth, k, k)) * np.sqrt(v0 / volume)
            bias = rng.choice(b0, size=d_out)
            a_norm = np.sqrt(F.patch_sq_norms(xs, (k, k), 1, 0))  # (n, H', W')
            f_norm = np.linalg.norm(weight.reshape(d_out, -1), axis=1)
            m = float((a_norm.reshape(n, -1).max(axis=1) * f_norm.max()).mean())
            ho, wo = h - k + 1, w - k + 1
            pi = rng.integers(0, ho, size=(n, positions))
            pj = rng.integers(0, wo, size=(n, positions))
            w2d = weight.reshape(d_out, -1)
            y = np.empty((n, positions, d_out))
            patch_norm = np.empty((n, positions))
            for im in range(n):  # one image at a time: a patch of a deep input is large
                ii = (pi[im][:, None] + np.arange(k))[:, None, :, None]  # (P, 1, k, 1)
                jj = (pj[im][:, None] + np.arange(k))[:, None, None, :]  # (P, 1, 1, k)
                flat = xs[im][np.arange(depth)[None, :, None, None], ii, jj].reshape(positions, -1)
                y[im] = flat @ w2d.T + bias
                patch_norm[im] = np.linalg.norm(flat, axis=1)
            scale = patch_norm[:, :, None] * f_norm  # (n, P, D')
            mu = y if config.noise_order == "theory" else np.clip(y, 0.0, config.cap)
            mean_f = float(gaussian_mean_f(mu, 2.0 * eps * scale, config.cap).mean())
            big_q = m * np.sqrt(config.cap) / (eps * np.sqrt(mean_f))
            rows.append(
                {
                    "kernel": k,
                    "depth": depth,
                    "kernel_volume": volume,
                    "M": m,
                    "mean_f": mean_f,
                    "Q": float(big_q),
                }
            )
    return rows


def _grid(table: list[dict], key: str = "speedup") -> list[str]:
    depths = sorted({t["depth"] for t in table})
    lines = [
        "| kernel \\ depth D | " + " | ".join(str(d) for d in depths) + " |",
        "|---|" + "---|" * len(depths),
    ]
    for k in sorted({t["kernel"] for t in table}):
        by_depth = {t["depth"]: t[key] for t in table if t["kernel"] == k}
        cells = [f"{by_depth[d]:.2g}" if d in by_depth else "-" for d in depths]
        lines.append(f"| {k}x{k} | " + " | ".join(cells) + " |")
    return lines


def _markdown(rows: list[dict]) -> str:
    lines = [
        "## The big-O formula of model §4, evaluated (the first model: it misses the factors "
        "counted above)",
        "",
        "### Forward pass (per image)",
        "",
        "| layer | H'W'D' | kernel volume | classical ops | M | E[f] | Q | quantum ops | speed-up | "
        "shots used (sigma d) | shots for eta 0.1 | implied eta |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows):
        s = r["resources"]
        lines.append(
            f"| {i} | {s['out_pixels']} | {s['kernel_volume']} | {s['classical_ops']:.3g} | {s['M']:.3g} | "
            f"{s['mean_f']:.3g} | {s['Q']:.3g} | {s['quantum_ops']:.3g} | {s['speedup']:.3g} | "
            f"{s['shots']:.0f} | {s['shots_for_eta'] or float('nan'):.0f} | {s['implied_eta'] or float('nan'):.2f} |"
        )
    if any("backward" in r for r in rows):
        lines += [
            "",
            "### Backward pass (per image; mu relative to the spectral norm, median over "
            "images; kappa over the non-zero singular values)",
            "",
            "| layer | matrix | mu_F = ||V||_F/||V||_2 | mu_KP | kappa | rank |",
            "|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(rows):
            for name, p in r.get("backward_matrices", {}).items():
                lines.append(
                    f"| {i} | {name} | {p['mu_F']:.3g} | {p['mu_KP']:.3g} | "
                    f"{p['kappa']:.3g} | {p['rank']:.0f} |"
                )
        lines += [
            "",
            "| layer | delta | quantum backward ops | classical backward ops | speed-up |",
            "|---|---|---|---|---|",
        ]
        for i, r in enumerate(rows):
            if "backward" in r:
                b = r["backward"]
                lines.append(
                    f"| {i} | {b['delta']:g} | {b['quantum_ops']:.3g} | "
                    f"{b['classical_ops']:.3g} | {b['speedup']:.3g} |"
                )
    last = rows[-1]
    if "crossover" in last:
        lines += [
            "",
            "### Larger kernels and deeper inputs (last layer)",
            "",
            f"On synthetic inputs M grows as V^{last['growth_alpha']:.2f} and Q as "
            f"V^{last['growth_alpha_q']:.2f} (V = kernel volume). Crossover volume "
            f"(V = sigma Q(V)): {last['crossover_volume_fit']:.3g} on the fit of the "
            f"measured Q; {last['crossover_volume_growth']:.3g} for the measured layer's Q "
            f"grown as M grows; {last['crossover_volume_fixed_q']:.3g} if Q were fixed.",
            "",
            "Measured Q = M sqrt(C) / (eps sqrt(E[f])):",
            "",
        ]
        if last.get("crossover_q_from_fit"):
            sizes = ", ".join(f"{k}x{k}" for k in last["crossover_q_from_fit"])
            lines += [
                f"({sizes} kernels are larger than the layer's input: their Q is the fit "
                f"c V^{last['growth_alpha_q']:.2f}, not a measurement.)",
                "",
            ]
        lines += _grid(last["crossover"], "Q")
        lines += ["", "Predicted forward speed-up (classical / quantum) with the measured Q:", ""]
        lines += _grid(last["crossover"])
    lines += ["", "With Q held at the measured layer's value (optimistic, the first report):", ""]
    lines += _grid(last["crossover_fixed_q"])
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "resources",
        "Predicted quantum vs classical running time of each quantum layer, with measured M, E[f], mu.",
    )
    p.add_argument(
        "--weights",
        default=None,
        help="model.npz of a trained QCNN or CNN (from python -m qcnn.experiments.mnist); default: fresh",
    )
    add_model_arguments(p)
    p.add_argument(
        "--images", type=int_in(1, 100_000), default=512, help="test images measured, 1..100000"
    )
    p.add_argument(
        "--backward-images",
        type=int_in(1, 1024),
        default=TRAIN_BATCH,
        help="images of the training batch whose backward-pass matrices are measured (the "
        "counts are per batch of 64, the paper's)",
    )
    p.add_argument(
        "--physical",
        action="store_true",
        help="physical estimates of the logical counts with Microsoft's resource estimator "
        "(needs the optional extra: pip install 'qcnn[estimate]')",
    )
    p.add_argument(
        "--no-synthetic",
        action="store_true",
        help="skip measuring Q on synthetic deeper inputs (the crossover table then holds Q)",
    )
    add_common_arguments(
        p,
        out_default=None,
        out_help="output folder (default runs/resources-<timestamp>); must be new or empty",
        seed_help="seed of the network (its weights unless --weights; its quantum layers' streams)",
    )
    add_quantum_arguments(p)
    return p


def load_weights(path: str, model: Sequential, donor: Sequential, arch: str) -> str:
    """Load a QCNN's or its CNN twin's ``model.npz`` into ``model``; returns which it was.

    Raises:
        ValueError: the file is not a readable npz, holds NaN/inf, or fits neither network; the
            message names the file and, for the closer of the two, the parameters that are
            missing, extra or of another shape.
    """
    state = load_npz_strict(path)
    bad = [k for k, v in state.items() if v.dtype.kind == "f" and not np.isfinite(v).all()]
    if bad:
        raise ValueError(f"--weights {path!r}: parameters {bad} hold NaN or infinity")
    problems = {}
    for kind, net in (("qcnn", model), ("cnn", donor)):
        expected = {name: p.data.shape for name, p in net.named_parameters()}
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        shapes = [
            f"{k} {state[k].shape} (expected {expected[k]})"
            for k in sorted(set(expected) & set(state))
            if state[k].shape != expected[k]
        ]
        if not (missing or extra or shapes):
            net.load_state_dict(state)
            if kind == "cnn":
                transfer_weights(donor, model)  # CNN weights: into the QCNN in order
            return kind
        problems[kind] = (missing, extra, shapes)
    kind = min(problems, key=lambda k: sum(len(x) for x in problems[k]))
    missing, extra, shapes = problems[kind]
    parts = [
        f"missing {missing}" if missing else "",
        f"extra {extra}" if extra else "",
        f"other shapes: {', '.join(shapes)}" if shapes else "",
    ]
    raise ValueError(
        f"--weights {path!r} does not fit --arch {arch} (closest: its "
        f"{'CNN' if kind == 'cnn' else 'QCNN'}): " + "; ".join(p for p in parts if p)
    )


@cli_errors
def main(argv: list[str] | None = None) -> int:
    # Floating-point warnings stay quiet in the report, as they always did under ``python -m``;
    # scoped here so the console script behaves the same and callers' numpy state is untouched.
    with np.errstate(all="ignore"):
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        config = config_from_args(args)
        if config.sigma is None:
            raise ValueError(
                "the running-time model needs --sigma (the fraction of pixels sampled)"
            )
        if config.effective_eps <= 0:
            raise ValueError("the running-time model needs eps > 0")
        check_sampling_memory(config, args.arch, (min(128, args.images),), args.dataset)
        if args.weights is not None and not Path(args.weights).is_file():
            raise ValueError(f"--weights {args.weights!r} is not a file")
        check_data_dir(args.data_dir)
        out = Path(args.out) if args.out else default_out("resources")
        check_output_dir(out, resume=False, can_resume=False)
    except ValueError as exc:
        usage_error(p, str(exc))
    estimate = None
    meta: dict[str, Any] = {"batch": TRAIN_BATCH}
    if args.physical:
        if not estimator_available():
            print(
                "error: --physical needs the optional extra: pip install 'qcnn[estimate]' "
                "(Microsoft's resource estimator, package qdk)",
                file=sys.stderr,
            )
            return 2
        estimate = _estimate
        meta |= {
            "throughput": classical_throughput(),
            "error_budget": ERROR_BUDGET,
            "qdk_version": importlib.metadata.version("qdk"),
        }
    try:
        data = load_data(args.data_dir, train_size=1, test_size=args.images, dataset=args.dataset)
        shape: dict[str, Any] = dict(input_shape=data.shape, classes=data.classes)
        model = build_model(args.arch, config, seed=args.seed, **shape)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not quantum_layers(model):
        print(f"error: --arch {args.arch} has no quantum layer once quantized", file=sys.stderr)
        return 2
    if args.weights:
        try:
            donor = build_model(args.arch, None, seed=args.seed, **shape)
            load_weights(args.weights, model, donor, args.arch)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    flops = None
    if "throughput" in meta:
        flops = {"cpu": meta["throughput"]["flop_per_s"], "gpu": GPU_PEAK["flop_per_s"]}
    rows = report(
        model,
        config,
        data.x_test,
        data.y_test,
        backward_images=args.backward_images,
        synthetic=not args.no_synthetic,
        seed=args.seed,
        batch=TRAIN_BATCH,
        estimate=estimate,
        flops=flops,
    )
    result = {
        "config": config.to_dict(),
        "costs_meta": meta | {"assumptions": Assumptions().to_dict(), "gpu": GPU_PEAK},
        "dataset": data.info,
        "weights": portable_paths(args.weights, out),
        "environment": environment_info(out),
        "layers": rows,
    }
    atomic_write_json(out / "resources.json", result)
    md = "\n".join(cost_markdown(rows, meta)) + "\n\n" + _markdown(rows)
    atomic_write_text(
        out / "resources.md", f"# Resource report\n\nConfig: `{config.to_json()}`\n\n" + md
    )
    if not args.quiet:
        print(md)
    print(f"written to {out}/resources.json and resources.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
