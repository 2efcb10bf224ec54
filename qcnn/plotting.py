"""Figures (PNG). matplotlib is imported inside the functions, through the object-oriented API
(``Figure`` + Agg canvas), so importing qcnn never loads it and no global pyplot state is used.
Every figure is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from qcnn.io import atomic_open

__all__ = [
    "smooth",
    "plot_training_curves",
    "plot_feature_maps",
    "plot_sigma_curves",
    "plot_circuit_layer",
    "plot_coherent_layer",
    "plot_kernel_grid",
    "plot_activation_maximisation",
    "plot_feature_projection",
    "save_figure",
]


def smooth(values: Sequence[float], window: int = 12) -> np.ndarray:
    """Trailing moving average over ``window`` points (shorter at the start): the paper's
    curves average the last logs the same way."""
    v = np.asarray(values, dtype=float)
    if v.size == 0 or window <= 1:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, v.size + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 120) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=dpi, bbox_inches="tight")


def _new_figure(width: float, height: float, layout: Literal["constrained"] | None = None):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout=layout)


def _kernel_row(axes_row: Any, maps: np.ndarray, label: str, vmax: float, fontsize: int) -> None:
    """Draw ``maps`` ``(K, H', W')`` into ``axes_row[1:]``, one kernel per column, on ``[0, vmax]``."""
    for q in range(maps.shape[0]):
        ax = axes_row[q + 1]
        ax.imshow(maps[q], cmap="viridis", vmin=0.0, vmax=vmax)
        ax.set_title(f"{label}\nkernel {q}", fontsize=fontsize)


def _save_image_grid(
    fig: Any,
    axes: np.ndarray,
    path: str | os.PathLike,
    title: str,
    title_size: int | None = None,
    dpi: int = 120,
) -> None:
    """The end of every image grid: no ticks, the title (matplotlib's default size unless
    ``title_size``), written to ``path``."""
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        # fontsize=None would not mean "the default": suptitle then falls back to font.size
        fig.suptitle(title, **({} if title_size is None else {"fontsize": title_size}))
    save_figure(fig, path, dpi=dpi)


def plot_training_curves(
    runs: Sequence[dict[str, Any]], path: str | os.PathLike, window: int = 12
) -> None:
    """Training loss against images seen (smoothed) and test accuracy per epoch, runs overlaid.

    Each run is a ``results.json`` run record: ``label`` (or ``model``), ``loss_log`` (list of
    ``{"images_seen", "loss"}``) and ``history`` (list of epoch records).
    """
    fig = _new_figure(11, 4)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for run in runs:
        label = run.get("label") or run["model"]
        log = run.get("loss_log") or []
        if log:
            seen = [s["images_seen"] for s in log]
            ax_loss.plot(seen, smooth([s["loss"] for s in log], window), label=label, lw=1.4)
        hist = [h for h in run.get("history") or [] if h.get("test_accuracy") is not None]
        if hist:
            ax_acc.plot(
                [h["epoch"] for h in hist],
                [100 * h["test_accuracy"] for h in hist],
                "o-",
                label=label,
            )
        elif run.get("test_accuracy") is not None:
            ax_acc.axhline(100 * run["test_accuracy"], ls="--", lw=1, label=f"{label} (eval only)")
    ax_loss.set(
        xlabel="training images seen", ylabel=f"training loss (moving average of {window} logs)"
    )
    ax_loss.set_yscale("log")
    ax_loss.grid(alpha=0.3)
    _legend(ax_loss)
    from matplotlib.ticker import MaxNLocator

    ax_acc.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_acc.set(xlabel="epoch", ylabel="test accuracy (%)")
    ax_acc.grid(alpha=0.3)
    _legend(ax_acc)
    save_figure(fig, path)


def plot_feature_maps(
    image: np.ndarray,
    stages: dict[str, np.ndarray],
    path: str | os.PathLike,
    channels: Sequence[int] = (0, 1, 2),
    title: str = "",
) -> None:
    """The paper's "quantum effects on an image": for one image (H, W) and the stages of
    :meth:`qcnn.quantum.QuantumConv2D.forward_stages` (each ``(1, O, H', W')``), one row per
    output channel: exact conv, with IPE noise, after the cap, after sampling."""
    order = [
        ("exact", "exact convolution"),
        ("estimated", "with IPE noise"),
        ("activated", "capped ReLU"),
        ("sampled", "after sampling"),
    ]
    channels = [c for c in channels if c < stages["exact"].shape[1]]
    fig = _new_figure(2.4 * (len(order) + 1), 2.4 * len(channels) + 0.4)
    axes = np.atleast_2d(fig.subplots(len(channels), len(order) + 1))
    for row, c in enumerate(channels):
        axes[row, 0].imshow(image, cmap="gray")
        axes[row, 0].set_title("input" if row == 0 else "")
        vmax = max(float(np.abs(stages[k][0, c]).max()) for k, _ in order) or 1.0
        for col, (key, name) in enumerate(order, start=1):
            ax = axes[row, col]
            ax.imshow(stages[key][0, c], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
            ax.set_title(name if row == 0 else "")
        axes[row, 1].set_ylabel(f"channel {c}")
    _save_image_grid(fig, axes, path, title)


def plot_circuit_layer(
    image: np.ndarray,
    exact: np.ndarray,
    estimated: np.ndarray,
    sampled: np.ndarray,
    path: str | os.PathLike,
    title: str = "",
) -> None:
    """One image ``(H, W)`` through a quantum conv layer run as circuits: per kernel (column), the
    exact convolution capped, the circuit estimate capped and the sampled map, each ``(K, H', W')``
    on one colour scale."""
    k = exact.shape[0]
    fig = _new_figure(2.2 * (k + 1), 6.6, layout="constrained")  # titles clear of the maps
    axes = fig.subplots(3, k + 1, squeeze=False)
    vmax = max(float(exact.max()), float(estimated.max()), float(sampled.max()), 1e-12)
    axes[0, 0].imshow(image, cmap="gray")
    axes[0, 0].set_title(f"input {image.shape[0]}x{image.shape[1]}")
    for r in (1, 2):
        axes[r, 0].axis("off")
    labels = ("exact conv, capped", "circuit estimate, capped", "sampled (N shots)")
    for r, (data, label) in enumerate(zip((exact, estimated, sampled), labels, strict=True)):
        _kernel_row(axes[r], data, label, vmax, fontsize=8)
    _save_image_grid(fig, axes, path, title, title_size=9, dpi=110)


def plot_coherent_layer(
    image: np.ndarray,
    rows: Sequence[tuple[str, np.ndarray]],
    path: str | os.PathLike,
    title: str = "",
) -> None:
    """The coherent circuit of a layer beside the emulator: the input ``(H, W)`` and, per kernel
    (column), one row per ``(label, maps (K, H', W'))``; rows whose label starts with ``P(``
    share one colour scale (the output distributions), the others another (feature maps)."""
    k = rows[0][1].shape[0]
    fig = _new_figure(2.0 * (k + 1), 2.1 * len(rows) + 0.4, layout="constrained")
    axes = fig.subplots(len(rows), k + 1, squeeze=False)
    axes[0, 0].imshow(image, cmap="gray")
    axes[0, 0].set_title(f"input {image.shape[0]}x{image.shape[1]}", fontsize=8)
    for r in range(1, len(rows)):
        axes[r, 0].axis("off")
    laws = [m for label, m in rows if label.startswith("P(")]
    maps = [m for label, m in rows if not label.startswith("P(")]
    vmax_law = max([float(m.max()) for m in laws] + [1e-12])
    vmax_map = max([float(m.max()) for m in maps] + [1e-12])
    for r, (label, data) in enumerate(rows):
        vmax = vmax_law if label.startswith("P(") else vmax_map
        _kernel_row(axes[r], data, label, vmax, fontsize=7)
    _save_image_grid(fig, axes, path, title, title_size=9, dpi=110)


def plot_sigma_curves(
    cnn_run: dict[str, Any] | None,
    qcnn_runs: Sequence[dict[str, Any]],
    path: str | os.PathLike,
    title: str,
    window: int = 12,
) -> None:
    """One panel like the paper's: smoothed training loss of the CNN and of the QCNN for each
    sigma of one (eps, C, delta) group."""
    fig = _new_figure(6.5, 4.2)
    ax = fig.subplots()
    if cnn_run is not None and cnn_run.get("loss_log"):
        log = cnn_run["loss_log"]
        ax.plot(
            [s["images_seen"] for s in log],
            smooth([s["loss"] for s in log], window),
            "k-",
            lw=1.6,
            label="CNN",
        )
    cmap = _new_colormap(len(qcnn_runs))
    for i, run in enumerate(sorted(qcnn_runs, key=lambda r: r["quantum"]["config"]["sigma"])):
        log = run.get("loss_log") or []
        sigma = run["quantum"]["config"]["sigma"]
        ax.plot(
            [s["images_seen"] for s in log],
            smooth([s["loss"] for s in log], window),
            color=cmap[i],
            lw=1.2,
            label=f"QCNN sigma={sigma:g}",
        )
    ax.set(xlabel="training images seen", ylabel="training loss", title=title)
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    _legend(ax, fontsize=8)
    save_figure(fig, path)


def _image_of(x: np.ndarray) -> tuple[np.ndarray, str | None]:
    """``(C, H, W)`` -> something imshow shows: one channel in grey (centred colour scale for
    signed data), three channels as RGB scaled to [0, 1], else the mean over channels."""
    if x.shape[0] == 3:
        lo, hi = float(x.min()), float(x.max())
        return np.moveaxis((x - lo) / (hi - lo or 1.0), 0, -1), None
    return (x[0] if x.shape[0] == 1 else x.mean(axis=0)), "RdBu_r"


def plot_kernel_grid(kernels: np.ndarray, path: str | os.PathLike, title: str = "") -> None:
    """The kernels ``(O, C, kh, kw)`` of a (first) convolution layer, one tile each, red
    positive and blue negative on a common scale (C = 3 as RGB; other C: the channel mean)."""
    o = kernels.shape[0]
    cols = int(np.ceil(np.sqrt(o)))
    rows = int(np.ceil(o / cols))
    fig = _new_figure(1.3 * cols + 0.6, 1.3 * rows + 0.6, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    vmax = float(np.abs(kernels).max()) or 1.0
    for i, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= o:
            ax.axis("off")
            continue
        img, cmap = _image_of(kernels[i])
        ax.imshow(img, cmap=cmap, vmin=None if cmap is None else -vmax, vmax=vmax if cmap else None)
        ax.set_title(str(i), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def plot_activation_maximisation(
    rows: Sequence[dict[str, Any]], path: str | os.PathLike, title: str = ""
) -> None:
    """One row per (layer, network): ``{"label", "images": [(C, H, W)...], "captions": [...]}``;
    every image on its own centred colour scale (red positive, blue negative)."""
    n_cols = max(len(r["images"]) for r in rows)
    fig = _new_figure(1.6 * n_cols + 1.8, 1.7 * len(rows) + 0.8, layout="constrained")
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, row in enumerate(rows):
        axes[r, 0].set_ylabel(row["label"], fontsize=7)
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(row["images"]):
                ax.axis("off")
                continue
            img, cmap = _image_of(row["images"][c])
            vmax = float(np.abs(img).max()) or 1.0
            ax.imshow(
                img, cmap=cmap, vmin=None if cmap is None else -vmax, vmax=vmax if cmap else None
            )
            ax.set_title(row["captions"][c], fontsize=6)
    if title:
        fig.suptitle(title, fontsize=8)
    save_figure(fig, path)


def plot_feature_projection(
    panels: Sequence[tuple[str, np.ndarray]],
    labels: np.ndarray,
    path: str | os.PathLike,
    title: str = "",
) -> None:
    """Side-by-side scatter plots of 2-D projections ``(N, 2)`` coloured by class ``labels``."""
    from matplotlib import colormaps

    classes = np.unique(labels)
    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    fig = _new_figure(5.0 * len(panels) + 1.2, 5.0, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels), squeeze=False)).ravel()
    for ax, (name, xy) in zip(axes, panels, strict=True):
        for k, c in enumerate(classes):
            sel = labels == c
            ax.scatter(xy[sel, 0], xy[sel, 1], s=4, color=cmap(k % cmap.N), label=str(c))
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(
        title="class", fontsize=7, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5)
    )
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def _legend(ax, **kwargs) -> None:
    if ax.get_legend_handles_labels()[0]:  # an empty legend only produces a warning
        ax.legend(**kwargs)


def _new_colormap(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.9, max(n, 1))]
