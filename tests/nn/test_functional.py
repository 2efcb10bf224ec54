"""Tests of qcnn.nn.functional (conv2d, pooling, im2col/col2im, patch norms) and qcnn.nn.losses.

Every check compares against a reference written here independently of the library: scipy's
``correlate``, direct nested loops over output pixels, hand-derived size rules, scipy.special's
``logsumexp``/``softmax`` and (when installed) PyTorch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.signal
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st

from qcnn.nn import functional as F
from qcnn.nn.gradcheck import numerical_gradient, relative_error
from qcnn.nn.losses import log_softmax, softmax, softmax_cross_entropy

HYP = settings(max_examples=30, deadline=None, derandomize=True, database=None)

# ----------------------------------------------------------------------------------------------
# Independent references
# ----------------------------------------------------------------------------------------------


def ref_axis(size: int, k: int, s: int, padding) -> tuple[int, int, int]:
    """(pad_before, pad_after, out) along one axis; ``padding`` is an int, 'same' or 'valid'.

    Integer padding with a non-integer output returns out = -1.
    """
    if padding == "valid":
        return 0, 0, math.ceil((size - k + 1) / s)
    if padding == "same":
        out = math.ceil(size / s)
        total = max((out - 1) * s + k - size, 0)
        return total // 2, total - total // 2, out
    span = size + 2 * padding - k
    return padding, padding, (span // s + 1 if span % s == 0 else -1)


def ref_geometry(hw, kernel, stride, padding):
    """Pads ((top, bottom), (left, right)) and (H', W') from the rules in the module docstring."""
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    stride = (stride, stride) if isinstance(stride, int) else stride
    if isinstance(padding, str):
        per_axis = (padding, padding)
    elif isinstance(padding, int):
        per_axis = (padding, padding)
    else:
        per_axis = padding
    res = [ref_axis(hw[a], kernel[a], stride[a], per_axis[a]) for a in range(2)]
    return ((res[0][0], res[0][1]), (res[1][0], res[1][1])), (res[0][2], res[1][2]), kernel, stride


def ref_pad(x, pads, value=0.0):
    return np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]), constant_values=value)


def conv_ref_scipy(x, w, b, stride, padding):
    """Cross-correlation via scipy.signal.correlate summed over channels, then subsampled."""
    pads, (ho, wo), _, (sh, sw) = ref_geometry(x.shape[2:], w.shape[2:], stride, padding)
    xp = ref_pad(x.astype(np.float64), pads)
    w64 = w.astype(np.float64)
    n, o = x.shape[0], w.shape[0]
    out = np.empty((n, o, ho, wo))
    for i in range(n):
        for j in range(o):
            full = sum(
                scipy.signal.correlate(xp[i, c], w64[j, c], mode="valid", method="direct")
                for c in range(x.shape[1])
            )
            sub = full[::sh, ::sw]
            assert sub.shape == (ho, wo)
            out[i, j] = sub + (0.0 if b is None else float(b[j]))
    return out


def conv_ref_loop(x, w, b, stride, padding):
    """Cross-correlation by a direct loop over every output pixel."""
    pads, (ho, wo), (kh, kw), (sh, sw) = ref_geometry(x.shape[2:], w.shape[2:], stride, padding)
    xp = ref_pad(x.astype(np.float64), pads)
    w64 = w.astype(np.float64)
    n, o = x.shape[0], w.shape[0]
    out = np.zeros((n, o, ho, wo))
    for i in range(n):
        for j in range(o):
            for r in range(ho):
                for c in range(wo):
                    patch = xp[i, :, r * sh : r * sh + kh, c * sw : c * sw + kw]
                    out[i, j, r, c] = np.sum(patch * w64[j]) + (0.0 if b is None else b[j])
    return out


def pool_ref(x, kernel, stride, padding, kind):
    """Max (-inf padding) or average (zeros count) pooling by a loop over windows."""
    stride = kernel if stride is None else stride
    pads, (ho, wo), (kh, kw), (sh, sw) = ref_geometry(x.shape[2:], kernel, stride, padding)
    xp = ref_pad(x.astype(np.float64), pads, -np.inf if kind == "max" else 0.0)
    n, c = x.shape[:2]
    out = np.empty((n, c, ho, wo))
    for r in range(ho):
        for q in range(wo):
            win = xp[:, :, r * sh : r * sh + kh, q * sw : q * sw + kw]
            out[:, :, r, q] = win.max(axis=(2, 3)) if kind == "max" else win.mean(axis=(2, 3))
    return out


def pool_backward_ref(x, dout, kernel, stride, padding, kind):
    """Max: each window's dout to its first (row-major) maximum. Avg: dout/(kh*kw) everywhere."""
    stride = kernel if stride is None else stride
    pads, (ho, wo), (kh, kw), (sh, sw) = ref_geometry(x.shape[2:], kernel, stride, padding)
    xp = ref_pad(x.astype(np.float64), pads, -np.inf)
    dxp = np.zeros(xp.shape)
    n, c = x.shape[:2]
    for a in range(n):
        for b in range(c):
            for r in range(ho):
                for q in range(wo):
                    r0, q0 = r * sh, q * sw
                    if kind == "avg":
                        dxp[a, b, r0 : r0 + kh, q0 : q0 + kw] += dout[a, b, r, q] / (kh * kw)
                        continue
                    best, pos = -np.inf, None
                    for i in range(kh):
                        for j in range(kw):
                            if pos is None or xp[a, b, r0 + i, q0 + j] > best:
                                best, pos = xp[a, b, r0 + i, q0 + j], (r0 + i, q0 + j)
                    dxp[a, b, pos[0], pos[1]] += dout[a, b, r, q]
    (top, _), (left, _) = pads
    h, w = x.shape[2:]
    return dxp[:, :, top : top + h, left : left + w]


def patches_ref(x, kernel, stride, padding):
    """im2col by hand: column (n, h', w') is the flattened (c, i, j) patch."""
    pads, (ho, wo), (kh, kw), (sh, sw) = ref_geometry(x.shape[2:], kernel, stride, padding)
    xp = ref_pad(x, pads)
    n, c = x.shape[:2]
    cols = np.empty((c * kh * kw, n * ho * wo), dtype=x.dtype)
    col = 0
    for a in range(n):
        for r in range(ho):
            for q in range(wo):
                cols[:, col] = xp[a, :, r * sh : r * sh + kh, q * sw : q * sw + kw].reshape(-1)
                col += 1
    return cols


def assert_close_scaled(actual, ref, tol, scale):
    """|actual - ref| <= tol * scale everywhere (scale: the magnitude of the summed terms)."""
    assert actual.shape == ref.shape
    err = np.max(np.abs(actual.astype(np.float64) - ref), initial=0.0)
    assert err <= tol * scale, f"max error {err:.3g} > {tol:g} * {scale:.3g}"


def conv_scale(x, w, b):
    """Upper bound on |output| (and the natural unit of rounding error)."""
    terms = np.prod(w.shape[1:])
    return float(terms * np.abs(x).max() * np.abs(w).max() + (0 if b is None else np.abs(b).max()))


TOL = {np.float32: 1e-5, np.float64: 1e-10}

# ----------------------------------------------------------------------------------------------
# Output sizes
# ----------------------------------------------------------------------------------------------

sizes = st.integers(1, 12)
kernels = st.integers(1, 5)
strides = st.integers(1, 4)


@HYP
@given(h=sizes, w=sizes, kh=kernels, kw=kernels, sh=strides, sw=strides)
def test_same_and_valid_output_size_rules(h, w, kh, kw, sh, sw):
    geom = F.conv_geometry((h, w), (kh, kw), (sh, sw), "same")
    assert geom.out == (math.ceil(h / sh), math.ceil(w / sw))
    # padding never exceeds what the last window needs; the extra row/column goes bottom/right
    top, bottom, left, right = geom.pads
    assert 0 <= bottom - top <= 1 and 0 <= right - left <= 1
    assert (geom.out[0] - 1) * sh + kh <= h + top + bottom
    assert (geom.out[1] - 1) * sw + kw <= w + left + right
    if h >= kh and w >= kw:
        geom = F.conv_geometry((h, w), (kh, kw), (sh, sw), "valid")
        assert geom.out == (math.ceil((h - kh + 1) / sh), math.ceil((w - kw + 1) / sw))
        assert geom.pads == (0, 0, 0, 0)
    else:
        with pytest.raises(ValueError, match="larger than input"):
            F.conv_geometry((h, w), (kh, kw), (sh, sw), "valid")


@HYP
@given(
    h=sizes,
    w=sizes,
    kh=kernels,
    kw=kernels,
    sh=strides,
    sw=strides,
    ph=st.integers(0, 3),
    pw=st.integers(0, 3),
)
def test_integer_padding_output_size_rule(h, w, kh, kw, sh, sw, ph, pw):
    span_h, span_w = h + 2 * ph - kh, w + 2 * pw - kw
    # the first failing axis (height, then width) is reported
    problems = []
    for span, s in ((span_h, sh), (span_w, sw)):
        if span < 0:
            problems.append("larger than padded input")
        elif span % s:
            problems.append("non-integer output")
    if problems:
        with pytest.raises(ValueError) as info:
            F.conv_geometry((h, w), (kh, kw), (sh, sw), (ph, pw))
        msg = str(info.value)
        assert problems[0] in msg
        for part in (f"input {(h, w)}", f"kernel {(kh, kw)}"):
            assert part in msg
        if problems[0] == "non-integer output":
            assert f"stride {(sh, sw)}" in msg and f"padding {(ph, pw)}" in msg
    else:
        geom = F.conv_geometry((h, w), (kh, kw), (sh, sw), (ph, pw))
        assert geom.out == (span_h // sh + 1, span_w // sw + 1)
        assert geom.pads == (ph, ph, pw, pw)


def test_non_integer_output_error_names_the_shapes_for_conv_and_pool():
    x = np.zeros((2, 3, 6, 7))
    with pytest.raises(ValueError) as info:
        F.conv2d(x, np.zeros((4, 3, 3, 3)), stride=2, padding=0)
    msg = str(info.value)
    assert "conv2d" in msg and "(6, 7)" in msg and "(3, 3)" in msg and "(2, 2)" in msg
    assert "(6 + 2*0 - 3)/2 + 1 = 2.5" in msg
    with pytest.raises(ValueError, match=r"max_pool2d: input \(6, 7\) with kernel \(2, 2\)"):
        F.max_pool2d(x, 2)
    with pytest.raises(ValueError, match=r"avg_pool2d: input \(6, 7\) with kernel \(2, 2\)"):
        F.avg_pool2d(x, 2)


@pytest.mark.parametrize(
    ("hw", "k", "s", "pads", "out"),
    [
        # hand-computed TensorFlow 'same' splits (extra row/column bottom/right)
        ((5, 5), 3, 2, (1, 1, 1, 1), (3, 3)),
        ((6, 6), 3, 2, (0, 1, 0, 1), (3, 3)),
        ((4, 7), (2, 4), 1, (0, 1, 1, 2), (4, 7)),
        ((5, 4), 1, 3, (0, 0, 0, 0), (2, 2)),
        ((2, 2), 5, 1, (2, 2, 2, 2), (2, 2)),
    ],
)
def test_same_padding_known_values(hw, k, s, pads, out):
    geom = F.conv_geometry(hw, k, s, "SAME")
    assert geom.pads == pads and geom.out == out


def test_geometry_argument_validation():
    with pytest.raises(ValueError, match="stride must be positive"):
        F.conv_geometry((5, 5), 3, 0)
    with pytest.raises(ValueError, match="kernel size must be positive"):
        F.conv_geometry((5, 5), (0, 3))
    with pytest.raises(ValueError, match="non-negative"):
        F.conv_geometry((5, 5), 3, 1, -1)
    with pytest.raises(ValueError, match="'same', 'valid' or 'full'"):
        F.conv_geometry((5, 5), 3, 1, "wide")
    with pytest.raises(TypeError, match="stride"):
        F.conv_geometry((5, 5), 3, True)
    with pytest.raises(TypeError, match="kernel_size"):
        F.conv_geometry((5, 5), (3, 3, 3))
    assert F.pair(np.int64(3), "k") == (3, 3) and F.pair([2, 5], "k") == (2, 5)


# ----------------------------------------------------------------------------------------------
# conv2d forward
# ----------------------------------------------------------------------------------------------

paddings = st.one_of(
    st.integers(0, 2),
    st.tuples(st.integers(0, 2), st.integers(0, 2)),
    st.sampled_from(["same", "valid"]),
)


@st.composite
def conv_cases(draw):
    n, c, o = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(kh, 9)), draw(st.integers(kw, 9))
    stride = draw(st.one_of(st.integers(1, 3), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    padding = draw(paddings)
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    bias = draw(st.booleans())
    seed = draw(st.integers(0, 2**16))
    return n, c, o, (h, w), (kh, kw), stride, padding, dtype, bias, seed


def make_conv_inputs(n, c, o, hw, k, dtype, bias, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, *hw)).astype(dtype)
    w = rng.standard_normal((o, c, *k)).astype(dtype)
    b = rng.standard_normal(o).astype(dtype) if bias else None
    return x, w, b


@HYP
@given(conv_cases())
def test_conv2d_matches_scipy_correlate_and_direct_loop(case):
    n, c, o, hw, k, stride, padding, dtype, bias, seed = case
    x, w, b = make_conv_inputs(n, c, o, hw, k, dtype, bias, seed)
    _, out_hw, _, _ = ref_geometry(hw, k, stride, padding)
    if -1 in out_hw:  # integer padding that does not tile: must refuse, never round
        with pytest.raises(ValueError, match="non-integer output"):
            F.conv2d(x, w, b, stride, padding)
        return
    out = F.conv2d(x, w, b, stride, padding)
    assert out.shape == (n, o, *out_hw)
    assert out.dtype == dtype
    scale = conv_scale(x, w, b)
    assert_close_scaled(out, conv_ref_scipy(x, w, b, stride, padding), TOL[dtype], scale)
    assert_close_scaled(out, conv_ref_loop(x, w, b, stride, padding), TOL[dtype], scale)


@pytest.mark.parametrize(
    ("hw", "k", "stride", "padding"),
    [
        ((7, 6), (3, 2), 1, 0),
        ((7, 6), (3, 2), (2, 1), (1, 2)),
        ((8, 9), 3, 2, "same"),
        ((8, 9), (2, 3), (3, 2), "valid"),
        ((5, 5), 5, 1, 2),
        ((6, 5), 1, (2, 3), "same"),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_fixed_cases(hw, k, stride, padding, dtype):
    x, w, b = make_conv_inputs(2, 3, 4, hw, (k, k) if isinstance(k, int) else k, dtype, True, 7)
    out = F.conv2d(x, w, b, stride, padding)
    assert out.dtype == dtype
    assert_close_scaled(
        out, conv_ref_loop(x, w, b, stride, padding), TOL[dtype], conv_scale(x, w, b)
    )


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
def test_conv2d_same_padding_matches_torch_for_even_and_odd_kernels():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for k in [(2, 2), (3, 4), (4, 1), (5, 5)]:
        x = rng.standard_normal((2, 2, 7, 6))
        w = rng.standard_normal((3, 2, *k))
        ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding="same")
        np.testing.assert_allclose(F.conv2d(x, w, padding="same"), ref.numpy(), atol=1e-12)


def test_conv2d_shape_and_dtype_validation():
    x = np.zeros((2, 3, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"input \(2, 3, 5, 5\) has 3 channels but weight"):
        F.conv2d(x, np.zeros((4, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="bias shape"):
        F.conv2d(x, np.zeros((4, 3, 3, 3), np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="4-D"):
        F.conv2d(x[0], np.zeros((4, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="larger than padded input"):
        F.conv2d(x, np.zeros((4, 3, 7, 7), np.float32))
    # float32 stays float32 (forward and backward); mixed precision promotes
    w32 = np.ones((4, 3, 3, 3), np.float32)
    out, cache = F.conv2d_forward(x, w32, np.ones(4, np.float32))
    assert out.dtype == np.float32
    dx, dw, db = F.conv2d_backward(np.ones_like(out), cache)
    assert dx.dtype == dw.dtype == db.dtype == np.float32
    assert F.conv2d(x, w32.astype(np.float64)).dtype == np.float64


# ----------------------------------------------------------------------------------------------
# conv2d backward: adjoint identities (no finite differences needed: conv is bilinear)
# ----------------------------------------------------------------------------------------------


@HYP
@given(conv_cases())
def test_conv2d_backward_is_the_adjoint_of_forward(case):
    n, c, o, hw, k, stride, padding, _, bias, seed = case
    x, w, b = make_conv_inputs(n, c, o, hw, k, np.float64, bias, seed)
    _, out_hw, _, _ = ref_geometry(hw, k, stride, padding)
    if -1 in out_hw:
        return
    out, cache = F.conv2d_forward(x, w, b, stride, padding)
    g = np.random.default_rng(seed + 1).standard_normal(out.shape)
    dx, dw, db = F.conv2d_backward(g, cache)
    # <conv(x, w), g> is linear in x and in w separately
    lin = np.vdot(F.conv2d(x, w, None, stride, padding), g)
    scale = conv_scale(x, w, None) * np.abs(g).sum()
    assert abs(np.vdot(x, dx) - lin) <= 1e-12 * scale
    assert abs(np.vdot(w, dw) - lin) <= 1e-12 * scale
    assert dx.shape == x.shape and dw.shape == w.shape
    if bias:
        np.testing.assert_allclose(db, g.sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-12)
    else:
        assert db is None
    # dweight against the direct loop definition
    _, (ho, wo), (kh, kw), (sh, sw) = ref_geometry(hw, k, stride, padding)
    xp = ref_pad(x, ref_geometry(hw, k, stride, padding)[0])
    dw_ref = np.zeros_like(w)
    for r in range(ho):
        for q in range(wo):
            patch = xp[:, :, r * sh : r * sh + kh, q * sw : q * sw + kw]
            dw_ref += np.einsum("nchw,no->ochw", patch, g[:, :, r, q])
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-10, atol=1e-10 * scale)


@pytest.mark.parametrize(
    ("hw", "k", "padding"),
    [((6, 7), (3, 2), 0), ((6, 7), (3, 3), "same"), ((5, 5), (2, 4), (2, 1))],
)
def test_stride1_fast_input_grad_equals_col2im(hw, k, padding):
    x, w, _ = make_conv_inputs(3, 2, 4, hw, k, np.float64, False, 11)
    out, cache = F.conv2d_forward(x, w, None, 1, padding)
    g = np.random.default_rng(12).standard_normal(out.shape)
    dx = F.conv2d_backward(g, cache, workspace=F.Workspace())[0]
    geom = cache.geom
    dx_col2im = F.col2im(w.reshape(4, -1).T @ g.transpose(1, 0, 2, 3).reshape(4, -1), x.shape, geom)
    np.testing.assert_allclose(dx, dx_col2im, rtol=1e-12, atol=1e-12)
    assert F.conv2d_backward(g, cache, need_input_grad=False)[0] is None


# ----------------------------------------------------------------------------------------------
# im2col / col2im / patch norms
# ----------------------------------------------------------------------------------------------


@st.composite
def window_cases(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    h, w = draw(st.integers(kh, 8)), draw(st.integers(kw, 8))
    stride = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    padding = draw(st.sampled_from(["same", "valid", 0]))
    if padding == 0 and ((h - kh) % stride[0] or (w - kw) % stride[1]):
        padding = "valid"
    return (n, c, h, w), (kh, kw), stride, padding, draw(st.integers(0, 2**16))


@HYP
@given(window_cases())
def test_im2col_columns_are_patches_and_col2im_is_its_adjoint(case):
    shape, k, stride, padding, seed = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    geom = F.conv_geometry(shape[2:], k, stride, padding)
    cols = F.im2col(x, geom)
    np.testing.assert_array_equal(cols, patches_ref(x, k, stride, padding))
    c = rng.standard_normal(cols.shape)
    back = F.col2im(c, shape, geom)
    assert back.shape == shape
    assert np.vdot(cols, c) == pytest.approx(np.vdot(x, back), rel=1e-12, abs=1e-12)
    # the reusable-buffer path fills the same matrix
    buf = np.full(cols.size + 5, np.nan)
    np.testing.assert_array_equal(F.im2col(x, geom, out=buf[: cols.size]), cols)


@HYP
@given(window_cases(), st.sampled_from([np.float32, np.float64]))
def test_patch_sq_norms_equal_sum_of_squared_im2col_rows(case, dtype):
    shape, k, stride, padding, seed = case
    x = (np.random.default_rng(seed).standard_normal(shape) * 3).astype(dtype)
    norms = F.patch_sq_norms(x, k, stride, padding)
    geom = F.conv_geometry(shape[2:], k, stride, padding)
    ref = (patches_ref(x.astype(np.float64), k, stride, padding) ** 2).sum(axis=0)
    ref = ref.reshape(shape[0], *geom.out)
    assert norms.dtype == dtype and norms.shape == ref.shape
    np.testing.assert_allclose(norms, ref, rtol=TOL[dtype], atol=TOL[dtype] * ref.max())


def test_patch_sq_norms_error_is_bounded_by_the_image_energy():
    # integral images subtract large partial sums: the absolute error is a few ulps of the
    # image's total energy (not of the patch), and a zero patch never comes out negative
    x = np.full((1, 1, 40, 40), 1e3)
    x[..., 10:13, 10:13] = 0.0
    x[..., 20:23, 20:23] = 1e-3
    norms = F.patch_sq_norms(x, 3)
    energy = float((x**2).sum())
    assert norms.min() >= 0.0
    assert abs(norms[0, 10, 10]) <= 16 * np.finfo(float).eps * energy
    assert abs(norms[0, 20, 20] - 9e-6) <= 16 * np.finfo(float).eps * energy
    # MNIST scale (pixels in [0, 1]): far below any tolerance that matters
    img = np.random.default_rng(0).random((2, 1, 28, 28))
    ref = (patches_ref(img, 7, 1, 0) ** 2).sum(axis=0).reshape(2, 22, 22)
    np.testing.assert_allclose(F.patch_sq_norms(img, 7), ref, rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------------------------

POOL_CASES = [
    # (H, W), kernel, stride, padding
    ((4, 6), 2, None, 0),  # tiling fast path
    ((6, 6), 3, 3, 0),  # tiling, 3x3
    ((4, 6), (2, 3), None, 0),  # tiling, rectangular
    ((5, 5), 3, 1, 0),  # overlapping windows
    ((7, 7), 3, 2, 1),  # overlapping with integer padding
    ((5, 6), (2, 3), (1, 2), "same"),
    ((5, 5), 2, 2, "same"),  # padding on bottom/right only
    ((7, 5), 3, 2, "valid"),
    ((5, 5), 2, 2, "valid"),  # last row/column not covered
    ((6, 5), (3, 1), (1, 1), (1, 0)),
]


@pytest.mark.parametrize(("hw", "k", "s", "padding"), POOL_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_forward_and_backward_match_loops(hw, k, s, padding, dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, *hw)).astype(dtype)
    out, cache = F.max_pool2d_forward(x, k, s, padding)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, pool_ref(x, k, s, padding, "max").astype(dtype))
    np.testing.assert_array_equal(F.max_pool2d(x, k, s, padding), out)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = F.max_pool2d_backward(dout, cache)
    assert dx.dtype == dtype and dx.shape == x.shape
    np.testing.assert_allclose(dx, pool_backward_ref(x, dout, k, s, padding, "max"), atol=1e-6)

    avg, avg_cache = F.avg_pool2d_forward(x, k, s, padding)
    assert avg.dtype == dtype and avg.shape == out.shape
    np.testing.assert_allclose(avg, pool_ref(x, k, s, padding, "avg"), atol=TOL[dtype] * 10)
    np.testing.assert_array_equal(F.avg_pool2d(x, k, s, padding), avg)
    assert avg_cache.x_shape == cache.x_shape == x.shape and avg_cache.geom == cache.geom
    davg = F.avg_pool2d_backward(dout, avg_cache)
    assert davg.dtype == dtype and davg.shape == x.shape
    np.testing.assert_allclose(
        davg, pool_backward_ref(x, dout, k, s, padding, "avg"), atol=TOL[dtype] * 10
    )


@pytest.mark.parametrize(("hw", "k", "s", "padding"), POOL_CASES)
def test_max_pool_ties_route_to_first_maximum(hw, k, s, padding):
    rng = np.random.default_rng(9)
    x = rng.integers(0, 2, size=(2, 2, *hw)).astype(np.float64)  # many ties
    out, cache = F.max_pool2d_forward(x, k, s, padding)
    dout = rng.standard_normal(out.shape)
    dx = F.max_pool2d_backward(dout, cache)
    np.testing.assert_allclose(dx, pool_backward_ref(x, dout, k, s, padding, "max"), atol=1e-12)
    # conservation: every window sends its whole gradient to exactly one input
    np.testing.assert_allclose(dx.sum(), dout.sum(), rtol=1e-12)


def test_max_pool_small_hand_examples():
    x = np.ones((1, 1, 2, 2))
    _, cache = F.max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(
        F.max_pool2d_backward(np.full((1, 1, 1, 1), 3.0), cache)[0, 0], [[3.0, 0.0], [0.0, 0.0]]
    )
    # one maximum shared by two overlapping windows collects both gradients
    x = np.array([0.0, 5.0, 0.0]).reshape(1, 1, 1, 3)
    out, cache = F.max_pool2d_forward(x, (1, 2), 1)
    np.testing.assert_array_equal(out.ravel(), [5.0, 5.0])
    np.testing.assert_array_equal(
        F.max_pool2d_backward(np.array([[[[1.0, 2.0]]]]), cache).ravel(), [0.0, 3.0, 0.0]
    )
    # 'same' padding is -inf for max (a negative input still wins) and 0 for avg
    x = -np.ones((1, 1, 3, 3))
    assert F.max_pool2d(x, 2, 2, "same").max() == -1.0
    np.testing.assert_allclose(F.avg_pool2d(x, 2, 2, "same")[0, 0], [[-1, -0.5], [-0.5, -0.25]])


def test_avg_pool_backward_spreads_evenly():
    dout = np.arange(4.0).reshape(1, 1, 2, 2)
    _, cache = F.avg_pool2d_forward(np.zeros((1, 1, 4, 4)), 2)
    dx = F.avg_pool2d_backward(dout, cache)
    np.testing.assert_array_equal(
        dx[0, 0], np.kron(np.arange(4.0).reshape(2, 2), np.ones((2, 2))) / 4
    )


def test_pooling_matches_torch_with_integer_padding():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(2).standard_normal((2, 3, 7, 9))
    for k, s, p in [(3, 2, 1), (2, 1, 1), ((3, 2), (2, 1), (1, 0))]:
        tx = torch.from_numpy(x).requires_grad_(True)
        tout = torch.nn.functional.max_pool2d(tx, k, s, p)
        out, cache = F.max_pool2d_forward(x, k, s, p)
        np.testing.assert_array_equal(out, tout.detach().numpy())
        g = np.random.default_rng(3).standard_normal(out.shape)
        tout.backward(torch.from_numpy(g))
        np.testing.assert_allclose(F.max_pool2d_backward(g, cache), tx.grad.numpy(), atol=1e-12)
        tavg = torch.nn.functional.avg_pool2d(torch.from_numpy(x), k, s, p, count_include_pad=True)
        np.testing.assert_allclose(F.avg_pool2d(x, k, s, p), tavg.numpy(), atol=1e-12)


# ----------------------------------------------------------------------------------------------
# Losses
# ----------------------------------------------------------------------------------------------


def ce_reference(logits, labels):
    z = logits.astype(np.float64)
    lse = scipy.special.logsumexp(z, axis=1)
    loss = float(np.mean(lse - z[np.arange(len(z)), labels]))
    onehot = np.eye(z.shape[1])[labels]
    return loss, (scipy.special.softmax(z, axis=1) - onehot) / len(z)


def test_cross_entropy_matches_direct_formula():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 5)) * 2
    labels = rng.integers(0, 5, 6)
    loss, grad = softmax_cross_entropy(logits, labels)
    # the textbook formula, with no stabilisation at all (fine at this scale)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(6), labels])), rel=1e-13)
    np.testing.assert_allclose(grad, (p - np.eye(5)[labels]) / 6, atol=1e-15)
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-15)
    np.testing.assert_allclose(softmax(logits), p, rtol=1e-13)
    np.testing.assert_allclose(log_softmax(logits), np.log(p), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_huge_logits(dtype):
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((5, 4)) * 1e4).astype(dtype)
    logits[0] = [1e4, -1e4, 1e4, 0]  # exact tie at a huge value
    labels = np.array([0, 1, 2, 3, 0])
    loss, grad = softmax_cross_entropy(logits, labels)
    ref_loss, ref_grad = ce_reference(logits, labels)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert grad.dtype == dtype
    assert loss == pytest.approx(ref_loss, rel=1e-6)
    np.testing.assert_allclose(grad, ref_grad, atol=1e-6)
    assert grad[0, 0] == pytest.approx((0.5 - 1) / 5) and grad[0, 2] == pytest.approx(0.5 / 5)
    np.testing.assert_allclose(
        log_softmax(-logits), scipy.special.log_softmax(-logits.astype(float), axis=1), rtol=1e-5
    )


def test_cross_entropy_gradient_by_finite_differences():
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((4, 6))
    labels = np.array([5, 0, 2, 2])
    _, grad = softmax_cross_entropy(logits, labels)
    idx, num = numerical_gradient(lambda: softmax_cross_entropy(logits, labels)[0], logits)
    assert relative_error(grad.ravel()[idx], num) < 1e-6


def test_cross_entropy_label_validation():
    logits = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        softmax_cross_entropy(logits, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        softmax_cross_entropy(logits, np.zeros((3, 1), int))
    with pytest.raises(TypeError, match="integers"):
        softmax_cross_entropy(logits, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        softmax_cross_entropy(logits, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        softmax_cross_entropy(logits, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match=r"logits must be \(N, K\)"):
        softmax_cross_entropy(np.zeros(4), np.array([0]))
    loss, _ = softmax_cross_entropy(logits, [0, 1, 3])  # lists are accepted
    assert loss == pytest.approx(np.log(4))
