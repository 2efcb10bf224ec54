"""The resource report's counts from the construction (:mod:`qcnn.quantum.costs`), physical
estimates (:mod:`qcnn.quantum.physical`, optional) and the crossover, as tables.

Used by ``python -m qcnn.experiments.resources``: :func:`layer_costs` per quantum layer (forward
per image and per batch, backward per batch as the training loop reads the kernel gradient, both
QRAM readings), :func:`crossover_rows` for kernel volumes from the layer's own to 1e6,
:func:`physical_rows` when ``--physical`` is given, :func:`classical_throughput` measured on this
machine, :func:`markdown` for all of it.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from qcnn.nn import functional as F
from qcnn.quantum.config import QuantumConfig
from qcnn.quantum.costs import (
    READINGS,
    Assumptions,
    Counts,
    LayerShape,
    backward_costs,
    forward_costs,
)

__all__ = [
    "GPU_PEAK",
    "VOLUMES",
    "classical_throughput",
    "layer_costs",
    "crossover_rows",
    "crossing",
    "crossovers",
    "physical_rows",
    "markdown",
]

# A stated GPU figure: a published peak, not a measurement (NVIDIA A100 datasheet, FP32 without
# tensor cores). Real convolutions reach a fraction of it; the comparison favours the GPU.
GPU_PEAK: dict[str, Any] = {
    "name": "NVIDIA A100 (SXM), FP32 peak from its datasheet",
    "flop_per_s": 19.5e12,
}
VOLUMES = (49, 245, 1_000, 10_000, 100_000, 1_000_000)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def classical_throughput(repeats: int = 5, seed: int = 0) -> dict[str, Any]:
    """FLOP/s of the engine's convolution (one im2col + GEMM) on this machine: the paper
    network's second layer (5 -> 10 channels, 7x7, 22x22 input) on a batch of 64, best of
    ``repeats`` (2 FLOP per multiply-add)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((64, 5, 22, 22)).astype(np.float32)
    w = rng.standard_normal((10, 5, 7, 7)).astype(np.float32)
    F.conv2d_forward(x, w)  # warm-up
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        F.conv2d_forward(x, w)
        best = min(best, time.perf_counter() - t0)
    flop = 2.0 * 64 * 10 * 16 * 16 * 5 * 7 * 7
    return {
        "flop_per_s": flop / best,
        "cpu": _cpu_name(),
        "cores_visible": _cores(),
        "what": "qcnn.nn.functional.conv2d_forward, float32, (64, 5, 22, 22) * (10, 5, 7, 7)",
        "seconds": best,
    }


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def layer_shape(
    out_shape: tuple[int, int, int], volume: int, input_size: int, bias: bool
) -> LayerShape:
    """``out_shape = (D', H', W')`` of the convolution (before pooling)."""
    d_out, h, w = out_shape
    return LayerShape(patches=h * w, kernels=d_out, volume=volume, input_size=input_size, bias=bias)


def layer_costs(
    shape: LayerShape,
    config: QuantumConfig,
    mean_f: float,
    backward: dict[str, Any] | None,
    *,
    batch: int,
    input_gradient: bool,
    assumptions: Assumptions | None = None,
) -> dict[str, Any]:
    """Forward (both readings) and, with ``backward`` (``{"batch": ..., "image": ...}`` matrix
    parameters), backward counts of one layer."""
    out: dict[str, Any] = {"shape": vars(shape) | {"out_pixels": shape.out_pixels}, "batch": batch}
    out["forward"] = {
        r: forward_costs(shape, config, mean_f, r, batch=batch, assumptions=assumptions)
        for r in READINGS
    }
    if backward is not None and config.delta > 0:
        out["backward"] = {
            r: backward_costs(
                shape,
                config,
                batch_params=backward["batch"],
                image_params=backward["image"],
                batch=batch,
                reading=r,
                input_gradient=input_gradient,
                assumptions=assumptions,
            )
            for r in READINGS
        }
    return out


def _scaled(shape: LayerShape, volume: int) -> LayerShape:
    """The layer with kernel volume ``volume`` (deeper input, same output): the input grows as
    the kernel's depth does."""
    depth_scale = volume / shape.volume
    return LayerShape(
        shape.patches,
        shape.kernels,
        volume,
        max(2, int(round(shape.input_size * depth_scale))),
        shape.bias,
    )


def crossover_rows(
    shape: LayerShape,
    config: QuantumConfig,
    mean_f_of: Callable[[int], tuple[float, str]],
    backward: dict[str, Any] | None,
    *,
    batch: int,
    flops: dict[str, float],
    estimate: Callable[[Counts, float], list[dict[str, Any]]] | None = None,
    volumes: tuple[int, ...] = VOLUMES,
) -> list[dict[str, Any]]:
    """Quantum / classical cost of one layer for kernel volumes ``volumes`` (the output held):
    logical ops (QRAM queries against multiply-adds, paper reading; RY rotations against
    multiply-adds, circuit reading), forward with the shots the emulator draws and with the
    eta guarantee's, backward per image of a batch; with ``estimate``, physical runtime (paper
    reading) against this CPU's measured FLOP/s and the stated GPU peak. ``mean_f_of(V)`` gives
    E[f] and its source ("measured", "fit", "held"); mu and kappa are held at the measured
    layer's."""
    rows = []
    for v in volumes:
        s = _scaled(shape, v)
        mean_f, source = mean_f_of(v)
        fp = forward_costs(s, config, mean_f, "paper", batch=batch)
        fc = forward_costs(s, config, mean_f, "circuit", batch=batch)
        macs = s.classical_forward
        row: dict[str, Any] = {
            "kernel_volume": v,
            "mean_f": mean_f,
            "mean_f_source": source,
            "aa_rounds": fp["factors"]["aa_rounds"],
            "forward_paper_ops_ratio": fp["per_image"]["qram_queries"] / macs,
            "forward_paper_eta_ops_ratio": fp["per_image_eta"]["qram_queries"] / macs,
            "forward_circuit_ops_ratio": fc["per_image"]["rotations"] / macs,
        }
        if backward is not None and config.delta > 0:
            bp = backward_costs(
                s,
                config,
                batch_params=backward["batch"],
                image_params=backward["image"],
                batch=batch,
                reading="paper",
                input_gradient=True,
            )
            row["backward_paper_ops_ratio"] = (
                bp["per_image"]["qram_queries"] / bp["classical_per_image"]
            )
        if estimate is not None:
            cpu_s = 2.0 * macs / flops["cpu"]
            gpu_s = 2.0 * macs / flops["gpu"]
            phys = estimate(Counts(**fp["shot"]), fp["factors"]["shots_used"])
            norm = fp["normaliser"]
            extra = estimate(Counts(**norm), 1.0) if norm["rotations"] else None
            row["physical"] = []
            for i, p in enumerate(phys):
                t = p["runtime_s"] + (extra[i]["runtime_s"] if extra else 0.0)
                row["physical"].append(
                    {
                        "qubit_model": p["qubit_model"],
                        "qec_scheme": p["qec_scheme"],
                        "runtime_s": t,
                        "over_cpu": t / cpu_s,
                        "over_gpu": t / gpu_s,
                    }
                )
            row["classical_cpu_s"] = cpu_s
            row["classical_gpu_s"] = gpu_s
        rows.append(row)
    return rows


def crossing(points: list[tuple[float, float]]) -> str:
    """Where a ratio quantum / classical, given at increasing kernel volumes, crosses 1 (log-log
    interpolation between the points), in words."""
    if not points:
        return "-"
    if points[0][1] <= 1:
        return f"below 1 already at V = {points[0][0]:,}"
    for (v0, r0), (v1, r1) in zip(points, points[1:], strict=False):
        if r1 <= 1 < r0:
            t = math.log(r0) / (math.log(r0) - math.log(r1))
            return f"V ~ {math.exp(math.log(v0) + t * (math.log(v1) - math.log(v0))):.3g}"
    return f"none up to V = {points[-1][0]:,} (ratio {points[-1][1]:.3g} there)"


def crossovers(table: list[dict[str, Any]]) -> dict[str, str]:
    """:func:`crossing` of every ratio of a :func:`crossover_rows` table."""
    keys = {
        "forward, paper": "forward_paper_ops_ratio",
        "forward, paper, eta shots": "forward_paper_eta_ops_ratio",
        "forward, circuit": "forward_circuit_ops_ratio",
        "backward, paper": "backward_paper_ops_ratio",
    }
    out = {
        name: crossing([(t["kernel_volume"], t[k]) for t in table if k in t])
        for name, k in keys.items()
    }
    if table and "physical" in table[0]:
        for i, p in enumerate(table[0]["physical"]):
            for over in ("cpu", "gpu"):
                out[f"physical forward / {over.upper()}, {p['qubit_model']}"] = crossing(
                    [(t["kernel_volume"], t["physical"][i][f"over_{over}"]) for t in table]
                )
    return out


def physical_rows(
    costs: dict[str, Any],
    estimate: Callable[[Counts, float], list[dict[str, Any]]],
    flops: dict[str, float],
) -> list[dict[str, Any]]:
    """Physical estimates of one layer: forward per image (one shot estimated, times the
    shots; theory mode's normaliser AE added), backward per batch (one state of each quantum
    matrix multiplication, times its shots), for each reading and qubit model."""
    rows = []
    shape = costs["shape"]
    macs = float(shape["out_pixels"] * shape["volume"])
    batch = costs["batch"]
    for reading in READINGS:
        fw = costs["forward"][reading]
        shots = fw["factors"]["shots_used"]
        est = estimate(Counts(**fw["shot"]), shots)
        norm = estimate(Counts(**fw["normaliser"]), 1.0) if fw["normaliser"]["rotations"] else None
        bw = costs.get("backward", {}).get(reading)
        back = None
        if bw is not None:
            f = bw["factors"]
            per_shot_k = Counts(**bw["kernel_gradient"]).times(
                1.0 / f["kernel_gradient_shots_per_batch"]
            )
            back = [estimate(per_shot_k, f["kernel_gradient_shots_per_batch"])]
            if f["input_gradient"]:
                n_x = f["input_gradient_shots_per_image"]
                per_shot_x = Counts(**bw["input_gradient_per_image"]).times(1.0 / n_x)
                back.append(estimate(per_shot_x, n_x * batch))
        for i, p in enumerate(est):
            fwd_s = p["runtime_s"] + (norm[i]["runtime_s"] if norm else 0.0)
            row = {
                "reading": reading,
                **{
                    k: p[k]
                    for k in (
                        "qubit_model",
                        "qec_scheme",
                        "physical_qubits",
                        "code_distance",
                        "t_factories",
                        "logical_qubits",
                        "runtime_unit_s",
                    )
                },
                "forward_per_image_s": fwd_s,
                "forward_over_cpu": fwd_s / (2.0 * macs / flops["cpu"]),
                "forward_over_gpu": fwd_s / (2.0 * macs / flops["gpu"]),
            }
            if back is not None:
                bwd_s = sum(b[i]["runtime_s"] for b in back)
                classical = 2.0 * bw["classical_per_batch"]
                row |= {
                    "backward_per_batch_s": bwd_s,
                    "backward_physical_qubits": max(b[i]["physical_qubits"] for b in back),
                    "backward_over_cpu": bwd_s / (classical / flops["cpu"]),
                    "backward_over_gpu": bwd_s / (classical / flops["gpu"]),
                }
            rows.append(row)
    return rows


# -- markdown -----------------------------------------------------------------------------------


def _g(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.{digits}g}"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> list[str]:
    """The counts, physical and crossover sections of the report (lines)."""
    lines = [
        "## Logical counts from the construction (qcnn.quantum.costs)",
        "",
        "Two readings of QRAM: **paper** (the headline: a QRAM query is one call costing "
        "ceil(log2 N)^2 Toffolis and ceil(log2 V) rotations, KP17's O(log^2 N)) and **circuit** "
        "(QRAM as the coherent circuit's multiplexed RY-tree loaders: 2^c RY per multiplexer "
        "with c controls, a gate count that grows with the data). Ratios are against the classical "
        "multiply-adds of the same layer. m, k: AE bits and median runs; r: amplitude-amplification "
        "rounds; runs/shot: coherent runs per tomography shot ((2r+1) / P(success)).",
        "",
        "### Forward pass, per image (batch = x" + str(meta["batch"]) + ")",
        "",
        "| layer | reading | m | k | r | runs/shot | shots (sigma d) | shots (36 ln d/eta^2) | AE runs | "
        "Grover iterations | QRAM queries | rotations | Toffolis | T count | logical qubits | "
        "quantum/classical | same, eta shots |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows):
        c = r.get("costs")
        if c is None:
            continue
        macs = c["shape"]["out_pixels"] * c["shape"]["volume"]
        for reading, fw in c["forward"].items():
            f, pi = fw["factors"], fw["per_image"]
            op = pi["qram_queries"] if reading == "paper" else pi["rotations"]
            op_eta = fw["per_image_eta"]["qram_queries" if reading == "paper" else "rotations"]
            lines.append(
                f"| {i} | {reading} | {f['ae_bits']} | {f['ae_median_k']} | {f['aa_rounds']} | "
                f"{f['coherent_runs_per_shot']:.3g} | {f['shots_used']} | {f['shots_for_eta']} | "
                f"{_g(f['ae_runs_per_image'])} | {_g(f['grover_iterations_per_image'])} | "
                f"{_g(pi['qram_queries'])} | {_g(pi['rotations'])} | {_g(pi['toffoli'])} | "
                f"{_g(fw['t_count_per_image'])} | {pi['qubits']:.0f} | {_g(op / macs)} | {_g(op_eta / macs)} |"
            )
    if any("backward" in (r.get("costs") or {}) for r in rows):
        lines += [
            "",
            "### Backward pass (the kernel gradient read once per batch, the gradient "
            "passed back once per image; 36 ln d / delta^2 shots, x2 for the KP sign step)",
            "",
            "| layer | reading | kernel-gradient shots / batch | queries / shot | input-gradient "
            "shots / image | queries / shot | QRAM queries / batch | rotations / batch | "
            "per image: quantum/classical | model §4 formula / classical (per image, old) |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(rows):
            for reading, bw in (r.get("costs") or {}).get("backward", {}).items():
                f, pb = bw["factors"], bw["per_batch"]
                op = bw["per_image"]["qram_queries" if reading == "paper" else "rotations"]
                lines.append(
                    f"| {i} | {reading} | {f['kernel_gradient_shots_per_batch']} | "
                    f"{f['kernel_gradient_queries_per_shot']} | {f['input_gradient_shots_per_image']} | "
                    f"{f['input_gradient_queries_per_shot']} | {_g(pb['qram_queries'])} | "
                    f"{_g(pb['rotations'])} | {_g(op / bw['classical_per_image'])} | "
                    f"{_g(f['model_formula_per_image'] / bw['classical_per_image'])} |"
                )
    flops: dict[str, Any] = meta.get("throughput") or {}
    if any("physical" in r for r in rows):
        lines += [
            "",
            "## Physical estimates (Microsoft resource estimator, qdk "
            f"{meta.get('qdk_version', '?')}; error budget {meta.get('error_budget')} per shot)",
            "",
            f"Classical reference: this machine's engine convolution, {_g(flops['flop_per_s'])} "
            f"FLOP/s ({flops['cpu']}, {flops['cores_visible']} cores, shared), and "
            f"{GPU_PEAK['name']}, {_g(GPU_PEAK['flop_per_s'])} FLOP/s.",
            "",
            "| layer | reading | qubit model | QEC | physical qubits | code distance | T factories | "
            "runtime / shot (s) | forward / image (s) | over CPU | over GPU | backward / batch (s) | over CPU |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(rows):
            for p in r.get("physical", []):
                lines.append(
                    f"| {i} | {p['reading']} | {p['qubit_model']} | {p['qec_scheme']} | "
                    f"{p['physical_qubits']:,} | {p['code_distance']} | {p['t_factories']} | "
                    f"{_g(p['runtime_unit_s'])} | {_g(p['forward_per_image_s'])} | "
                    f"{_g(p['forward_over_cpu'])} | {_g(p['forward_over_gpu'])} | "
                    f"{_g(p.get('backward_per_batch_s'))} | {_g(p.get('backward_over_cpu'))} |"
                )
    last = next((r for r in reversed(rows) if "crossover_costs" in r), None)
    if last is not None:
        tab = last["crossover_costs"]
        lines += [
            "",
            "## The crossover, re-derived (last quantum layer; its output held, the kernel "
            "volume V grown by the input depth)",
            "",
            "E[f] measured at the layer's own V, from the fit of E[f] measured on synthetic "
            "deeper inputs beyond (or held); mu and kappa held at the measured layer's. "
            "Logical ops: QRAM queries (paper) or RY rotations (circuit) against multiply-adds.",
            "",
        ]
        head = (
            "| V | E[f] | r | forward, paper | forward, paper, eta shots | forward, circuit | "
            "backward, paper |"
        )
        sep = "|---|---|---|---|---|---|---|"
        phys = "physical" in tab[0]
        if phys:
            head += (
                " physical forward / CPU ("
                + tab[0]["physical"][0]["qubit_model"]
                + ") | "
                + "/ CPU ("
                + tab[0]["physical"][-1]["qubit_model"]
                + ") | / GPU peak ("
                + tab[0]["physical"][-1]["qubit_model"]
                + ") |"
            )
            sep += "---|---|---|"
        lines += [head, sep]
        for t in tab:
            line = (
                f"| {t['kernel_volume']:,} | {_g(t['mean_f'])} ({t['mean_f_source']}) | "
                f"{t['aa_rounds']} | {_g(t['forward_paper_ops_ratio'])} | "
                f"{_g(t['forward_paper_eta_ops_ratio'])} | {_g(t['forward_circuit_ops_ratio'])} | "
                f"{_g(t.get('backward_paper_ops_ratio'))} |"
            )
            if phys:
                p0, p1 = t["physical"][0], t["physical"][-1]
                line += f" {_g(p0['over_cpu'])} | {_g(p1['over_cpu'])} | {_g(p1['over_gpu'])} |"
            lines.append(line)
        lines += ["", "Crossover kernel volume (quantum / classical = 1):", ""]
        lines += [f"- {name}: {where}" for name, where in last["crossovers"].items()]
    return lines
