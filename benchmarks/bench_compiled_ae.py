"""What a compiled kernel would buy theory mode: the AE window law and its median map, fused.

    pip install numba            # NOT a dependency of qcnn: for this measurement only
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_compiled_ae.py

Issue 7 asks a theory-preset run to stay within 2.5x of the paper preset; the exact numpy
emulation takes 5.2-5.7x (docs/benchmarks.md). The largest single block of a theory step is the
law of the median of k amplitude-estimation runs on each output's window
(:func:`qcnn.quantum.ae_law.window` + :func:`~qcnn.quantum.ae_law.median_window_law`): dozens of
numpy passes over ``(2W, n)`` arrays. This script is a prototype of the same computation as one
compiled loop over the outputs (numba), for the usual case (a grid larger than the window), and
measures, in the same process on the same phases:

- the time of the numpy path and of the compiled one (best of ``--repeats``), single-threaded;
- how far the compiled law is from numpy's (max absolute difference of the window probabilities
  and of the masses below/above it): not bit for bit, because a compiled float32 ``sin`` is
  not numpy's SIMD ``sin``; the law is the same up to float32 rounding.

It does not touch the package: qcnn's numbers stay those of numpy. The result informs the
decision of issue 7 (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qcnn.quantum.ae_law import (  # noqa: E402
    _EM,  # the Euler-Maclaurin coefficients of the lower tail: the prototype must use the same
    MEDIAN_WINDOW,
    ae_phase,
    median_window_law,
    window,
)


def numpy_law(x: np.ndarray, m: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The package's path: window law, then the law of the median of k on it."""
    win = window(x, m)
    probs, below, above, _ = median_window_law(win, k)
    return probs, below, above


def compiled_law(m: int, k: int, w: int = MEDIAN_WINDOW):
    """A numba kernel ``f(x) -> (probs (n, 2W), below (n,), above (n,))`` for m-qubit AE with
    the median of k runs; the same steps as ae_law.window + median_window_law, per output."""
    from numba import njit

    big_m = 1 << m
    half = big_m // 2
    width = 2 * w
    phi = math.pi / big_m
    h = (k + 1) // 2
    n_terms = k - h
    combs = np.array([math.comb(k, h + j) for j in range(n_terms + 1)], dtype=np.float32)
    em = np.array(_EM)
    if half <= width:
        raise ValueError("the prototype covers grids larger than the window only")

    @njit(cache=False, error_model="numpy", fastmath=False)
    def median_map(u: np.float32) -> np.float32:
        u = min(max(u, np.float32(0.0)), np.float32(1.0))
        v = np.float32(1.0) - u
        if n_terms == 0:
            acc = combs[0]
        else:
            vpow = v
            acc = u
            for j in range(n_terms - 1, -1, -1):
                if j < n_terms - 1:
                    vpow *= v
                    acc *= u
                acc += combs[j] * vpow
        power = np.float32(1.0)
        for _ in range(h):
            power *= u
        return min(acc * power, np.float32(1.0))

    @njit(cache=False, error_model="numpy", fastmath=False)
    def kernel(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = x.size
        probs = np.empty((n, width))
        below = np.empty(n)
        above = np.empty(n)
        cdf = np.empty(width + 1)
        prob = np.empty(width, dtype=np.float32)
        for i in range(n):
            xi = x[i]
            n0 = math.floor(xi)
            frac = xi - n0
            lo = int(min(max(n0 - (w - 1), 0.0), half + 1 - width))
            if frac == 0.0:  # on the grid: J = fold(n0) for sure
                jf = int(min(n0, big_m - n0))
                lo = min(max(jf - (w - 1), 0), half + 1 - width)
                for c in range(width + 1):
                    cdf[c] = 1.0 if lo + c - 1 >= jf else 0.0
            else:
                s = math.sin(math.pi * min(frac, 1.0 - frac))
                cc = s * s / (big_m * big_m)
                c32 = np.float32(cc)
                edge = lo == 0 or lo + width - 1 >= half
                for t in range(width):
                    sm = np.float32(math.sin(np.float32(((lo - n0) + t - frac) * phi)))
                    u = (lo + t) + xi
                    u = min(u, big_m - u) * phi
                    sf = np.float32(math.sin(np.float32(u)))
                    main = c32 / (sm * sm)
                    j = lo + t
                    if edge and (j == 0 or j == half):
                        prob[t] = main
                    else:
                        prob[t] = main + c32 / (sf * sf)
                low = 0.0
                if lo >= 1:
                    ua = phi * (-(lo - 1) - xi)
                    ub = phi * ((lo - 1) - xi)
                    ta = 1.0 / math.tan(ua)
                    tb = 1.0 / math.tan(ub)
                    total = (cc / phi) * (ta - tb) + 0.5 * cc * ((1 + ta * ta) + (1 + tb * tb))
                    ta2, tb2 = ta * ta, tb * tb
                    d1a = -2.0 * ta * (1.0 + ta2)
                    d1b = -2.0 * tb * (1.0 + tb2)
                    d3a = -ta * (16.0 + ta2 * (40.0 + 24.0 * ta2))
                    d3b = -tb * (16.0 + tb2 * (40.0 + 24.0 * tb2))
                    d5a = -ta * (272.0 + ta2 * (1232.0 + ta2 * (1680.0 + 720.0 * ta2)))
                    d5b = -tb * (272.0 + tb2 * (1232.0 + tb2 * (1680.0 + 720.0 * tb2)))
                    total += em[0] * cc * phi * (d1b - d1a)
                    total += em[1] * cc * phi**3 * (d3b - d3a)
                    total += em[2] * cc * phi**5 * (d5b - d5a)
                    low = total
                cdf[0] = low
                run = np.float64(prob[0])
                cdf[1] = run + low
                for c in range(1, width):
                    run += prob[c]
                    cdf[c + 1] = run + low
            g_prev = np.float64(median_map(np.float32(cdf[0])))
            below[i] = g_prev
            for c in range(1, width + 1):
                g = np.float64(median_map(np.float32(cdf[c])))
                probs[i, c - 1] = g - g_prev
                g_prev = g
            above[i] = 1.0 - g_prev
        return probs, below, above

    return kernel


def best_of(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--outputs", type=int, default=160_000, help="outputs of one layer call")
    p.add_argument("--bits", type=int, default=9, help="AE bits m (theory preset: 9 at eps 0.01)")
    p.add_argument("--median", type=int, default=11, help="runs k of the median")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    try:
        import numba
    except ImportError:
        print("this measurement needs numba (pip install numba); qcnn does not", file=sys.stderr)
        return 2
    numba.set_num_threads(1)
    rng = np.random.default_rng(0)
    # inner products like a trained layer's: many near 0 (ReLU-dead), the rest spread
    a = np.where(rng.random(args.outputs) < 0.3, 0.0, rng.beta(1.2, 3.0, args.outputs))
    x = ae_phase(a, args.bits)
    kernel = compiled_law(args.bits, args.median)
    t0 = time.perf_counter()
    got = kernel(x)  # compiles
    compile_s = time.perf_counter() - t0
    want = numpy_law(x, args.bits, args.median)
    diff = [float(np.max(np.abs(g - w))) for g, w in zip(got, want, strict=True)]
    t_numpy = best_of(lambda: numpy_law(x, args.bits, args.median), args.repeats)
    t_compiled = best_of(lambda: kernel(x), args.repeats)
    res = {
        "outputs": args.outputs,
        "bits": args.bits,
        "median": args.median,
        "numpy_ms": 1e3 * t_numpy,
        "compiled_ms": 1e3 * t_compiled,
        "speedup": t_numpy / t_compiled,
        "compile_s": compile_s,
        "max_abs_diff_probs_below_above": diff,
        "numba": numba.__version__,
        "numpy": np.__version__,
    }
    print(
        f"window law + median of {args.median} (m = {args.bits}) on {args.outputs:,} outputs: "
        f"numpy {res['numpy_ms']:.1f} ms, compiled {res['compiled_ms']:.1f} ms "
        f"({res['speedup']:.1f}x; first call compiles in {compile_s:.1f} s); largest difference "
        f"of the law: {max(diff):.2e}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
