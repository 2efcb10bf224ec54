"""Tests of qcnn.nn.optim: SGD (plain, momentum, Nesterov, weight decay) and Adam against
hand-written update formulas and against ``torch.optim``; gradient hooks; zero_grad; state
round trips through ``.npz``."""

from __future__ import annotations

import numpy as np
import pytest

from qcnn.io import atomic_savez
from qcnn.nn import SGD, Adam, Dense, Parameter, Sequential
from qcnn.nn.model import load_npz_strict

SHAPES = {"a": (3, 4), "b": (5,)}
STEPS = 12

SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.8, nesterov=True),
    dict(lr=0.1, weight_decay=0.01),
    dict(lr=0.03, momentum=0.9, nesterov=True, weight_decay=0.05),
]
ADAM_CONFIGS = [
    dict(lr=0.01),
    dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.02, weight_decay=0.1),
]


def initial_weights(dtype=np.float64):
    rng = np.random.default_rng(0)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def make_params(weights):
    return [Parameter(w.copy(), name) for name, w in weights.items()]


def grad_fn(name, w, t):
    """A gradient that depends on the weights (a quadratic bowl) plus step-dependent noise."""
    noise = np.random.default_rng([t, len(name)]).standard_normal(w.shape)
    return 0.5 * w + noise


def run_qcnn(opt_cls, config, steps=STEPS, dtype=np.float64, weights=None):
    params = make_params(initial_weights(dtype) if weights is None else weights)
    opt = opt_cls(params, **config)
    for t in range(steps):
        for p in params:
            p.grad = grad_fn(p.name, p.data, t).astype(dtype)
        opt.step()
    return {p.name: p.data for p in params}, opt, params


def sgd_reference(config, steps=STEPS):
    """torch.optim.SGD's documented algorithm, written out."""
    lr, mu = config["lr"], config.get("momentum", 0.0)
    nesterov, wd = config.get("nesterov", False), config.get("weight_decay", 0.0)
    weights = initial_weights()
    bufs = {}
    for t in range(steps):
        for name, w in weights.items():
            d = grad_fn(name, w, t) + wd * w
            if mu:
                bufs[name] = d.copy() if t == 0 else mu * bufs[name] + d
                d = d + mu * bufs[name] if nesterov else bufs[name]
            weights[name] = w - lr * d
    return weights


def adam_reference(config, steps=STEPS):
    """Kingma & Ba, Algorithm 1, with L2 weight decay added to the gradient."""
    lr, (b1, b2) = config["lr"], config.get("betas", (0.9, 0.999))
    eps, wd = config.get("eps", 1e-8), config.get("weight_decay", 0.0)
    weights = initial_weights()
    m = {k: np.zeros(s) for k, s in SHAPES.items()}
    v = {k: np.zeros(s) for k, s in SHAPES.items()}
    for t in range(1, steps + 1):
        for name, w in weights.items():
            g = grad_fn(name, w, t - 1) + wd * w
            m[name] = b1 * m[name] + (1 - b1) * g
            v[name] = b2 * v[name] + (1 - b2) * g**2
            m_hat, v_hat = m[name] / (1 - b1**t), v[name] / (1 - b2**t)
            weights[name] = w - lr * m_hat / (np.sqrt(v_hat) + eps)
    return weights


def torch_reference(opt_name, config, steps=STEPS):
    torch = pytest.importorskip("torch")
    tparams = {k: torch.nn.Parameter(torch.from_numpy(w)) for k, w in initial_weights().items()}
    if opt_name == "sgd":
        opt = torch.optim.SGD(list(tparams.values()), **config)
    else:
        opt = torch.optim.Adam(list(tparams.values()), **config)
    for t in range(steps):
        for name, p in tparams.items():
            p.grad = torch.from_numpy(grad_fn(name, p.detach().numpy(), t))
        opt.step()
    return {k: p.detach().numpy() for k, p in tparams.items()}


def assert_weights_close(a, b, rtol=1e-12):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=rtol, atol=rtol, err_msg=k)


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=str)
def test_sgd_matches_reference_formula(config):
    ours, _, _ = run_qcnn(SGD, config)
    assert_weights_close(ours, sgd_reference(config))
    # and it actually moved
    assert not np.allclose(ours["a"], initial_weights()["a"])


@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=str)
def test_adam_matches_reference_formula(config):
    ours, _, _ = run_qcnn(Adam, config)
    assert_weights_close(ours, adam_reference(config))


@pytest.mark.parametrize("config", SGD_CONFIGS, ids=str)
def test_sgd_matches_torch(config):
    assert_weights_close(run_qcnn(SGD, config)[0], torch_reference("sgd", config))


@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=str)
def test_adam_matches_torch(config):
    assert_weights_close(run_qcnn(Adam, config)[0], torch_reference("adam", config), rtol=1e-10)


def test_reference_formulas_distinguish_the_variants():
    """The comparisons above can fail: each variant leads somewhere else."""
    finals = [sgd_reference(c)["a"] for c in SGD_CONFIGS] + [
        adam_reference(c)["a"] for c in ADAM_CONFIGS
    ]
    for i in range(len(finals)):
        for j in range(i):
            assert np.abs(finals[i] - finals[j]).max() > 1e-3


@pytest.mark.parametrize(("cls", "config"), [(SGD, SGD_CONFIGS[-1]), (Adam, ADAM_CONFIGS[-1])])
def test_float32_parameters_stay_float32(cls, config):
    ours, opt, _ = run_qcnn(cls, config, dtype=np.float32)
    assert all(w.dtype == np.float32 for w in ours.values())
    assert_weights_close(ours, run_qcnn(cls, config)[0], rtol=1e-4)
    for key, value in opt.state_dict().items():
        if key not in ("steps", "lr"):
            assert value.dtype == np.float32, key


# ----------------------------------------------------------------------------------------------
# hooks, zero_grad, validation
# ----------------------------------------------------------------------------------------------


def test_grad_hooks_apply_in_registration_order():
    seen = []

    def double(p, g):
        seen.append(("double", p.name))
        return 2 * g

    def plus_one(p, g):
        seen.append(("plus_one", p.name))
        return g + 1

    def half(p, g):
        seen.append(("half", p.name))
        return g / 2

    params = make_params({"w": np.zeros(3), "v": np.zeros(2)})
    opt = SGD(params, lr=1.0, grad_hooks=[double, plus_one])
    opt.add_grad_hook(half)
    assert opt.grad_hooks == [double, plus_one, half]
    grads = [np.array([1.0, 2.0, 3.0]), np.array([-1.0, 0.5])]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.copy()
    opt.step()
    for p, g in zip(params, grads, strict=True):
        np.testing.assert_array_equal(p.data, -((2 * g + 1) / 2))  # not 2 * (g + 1) / 2 etc.
        np.testing.assert_array_equal(p.grad, g)  # the stored gradient is left alone
    assert seen == [
        ("double", "w"),
        ("plus_one", "w"),
        ("half", "w"),
        ("double", "v"),
        ("plus_one", "v"),
        ("half", "v"),
    ]


def test_hooks_see_the_raw_gradient_before_weight_decay_and_momentum():
    captured = []
    p = Parameter(np.ones(2), "w")
    opt = SGD(
        [p],
        lr=0.1,
        momentum=0.9,
        weight_decay=0.5,
        grad_hooks=[lambda q, g: captured.append(g.copy()) or g],
    )
    p.grad = np.array([1.0, -1.0])
    opt.step()
    np.testing.assert_array_equal(captured[0], [1.0, -1.0])
    np.testing.assert_allclose(p.data, 1 - 0.1 * (np.array([1.0, -1.0]) + 0.5))


def test_zero_grad_and_skipped_parameters():
    params = make_params(initial_weights())
    opt = SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = np.ones_like(p.data)
    opt.zero_grad()
    assert all(p.grad is None for p in params)
    before = [p.data.copy() for p in params]
    opt.step()  # nothing to do: no parameter changes, no momentum buffer appears
    for p, b in zip(params, before, strict=True):
        np.testing.assert_array_equal(p.data, b)
    assert opt.buffers == {}
    params[1].grad = np.ones_like(params[1].data)
    opt.step()
    np.testing.assert_array_equal(params[0].data, before[0])
    np.testing.assert_allclose(params[1].data, before[1] - 0.1)
    assert set(opt.buffers) == {params[1].name}


def test_optimizer_validation():
    p = [Parameter(np.zeros(2), "w")]
    p[0].grad = np.zeros(3)
    with pytest.raises(ValueError, match=r"gradient of w has shape \(3,\), expected \(2,\)"):
        SGD(p, lr=0.1).step()
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="unique names"):
        SGD([Parameter(np.zeros(1), "x"), Parameter(np.zeros(1), "x")], lr=0.1)
    for lr in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="learning rate"):
            SGD(p, lr=lr)
    with pytest.raises(ValueError, match="momentum"):
        SGD(p, momentum=1.0)
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(p, nesterov=True)
    with pytest.raises(ValueError, match="weight_decay"):
        SGD(p, weight_decay=-1.0)
    with pytest.raises(ValueError, match="betas"):
        Adam(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="eps"):
        Adam(p, eps=0.0)


def test_optimizer_works_on_sequential_parameters():
    model = Sequential(Dense(3, 4, rng=0, dtype=np.float64), Dense(4, 2, rng=1, dtype=np.float64))
    opt = Adam(model.parameters(), lr=0.01)
    x = np.random.default_rng(0).standard_normal((5, 3))
    model.backward(np.ones_like(model.forward(x)))
    opt.step()
    assert set(opt.m) == {"0.weight", "0.bias", "1.weight", "1.bias"}


# ----------------------------------------------------------------------------------------------
# state_dict round trips
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "config"),
    [(SGD, c) for c in SGD_CONFIGS[1:3]] + [(Adam, c) for c in ADAM_CONFIGS],
    ids=str,
)
def test_state_dict_round_trip_through_npz_continues_identically(tmp_path, cls, config):
    # run 5 steps, checkpoint (weights + optimizer state) to disk, run 7 more
    first = 5
    _, opt, params = run_qcnn(cls, config, steps=first)
    path = tmp_path / "opt.npz"
    atomic_savez(path, opt.state_dict())
    saved_weights = {p.name: p.data.copy() for p in params}
    for t in range(first, STEPS):
        for p in params:
            p.grad = grad_fn(p.name, p.data, t)
        opt.step()
    # a fresh optimizer (different hyper-parameter lr in the constructor: the state wins)
    params2 = make_params(saved_weights)
    opt2 = cls(params2, **{**config, "lr": 123.0})
    opt2.load_state_dict(load_npz_strict(path))
    assert opt2.steps == first and opt2.lr == config["lr"]
    for t in range(first, STEPS):
        for p in params2:
            p.grad = grad_fn(p.name, p.data, t)
        opt2.step()
    for p, p2 in zip(params, params2, strict=True):
        np.testing.assert_array_equal(p.data, p2.data)
    # and the uninterrupted reference agrees too
    assert_weights_close({p.name: p.data for p in params}, run_qcnn(cls, config)[0], rtol=0)


def test_adam_without_its_state_would_diverge():
    """Control for the round-trip test: losing the step count or the moments changes the result."""
    config = ADAM_CONFIGS[0]
    _, opt, params = run_qcnn(Adam, config, steps=5)
    state = opt.state_dict()
    saved = {p.name: p.data.copy() for p in params}
    results = []
    no_steps = {**state, "steps": np.int64(0)}
    no_moment = {k: v for k, v in state.items() if k != "adam_m.a"}
    for partial in (no_steps, no_moment):
        params2 = make_params(saved)
        opt2 = Adam(params2, **config)
        opt2.load_state_dict(partial)
        for t in range(5, STEPS):
            for p in params2:
                p.grad = grad_fn(p.name, p.data, t)
            opt2.step()
        results.append(params2[0].data)
    full = run_qcnn(Adam, config)[0]["a"]
    for r in results:
        assert np.abs(r - full).max() > 1e-6


def test_load_state_dict_rejects_mismatched_shapes():
    _, opt, _ = run_qcnn(SGD, SGD_CONFIGS[1], steps=2)
    state = opt.state_dict()
    state["momentum.a"] = np.zeros((4, 3))
    with pytest.raises(ValueError, match="momentum.a does not match"):
        SGD(make_params(initial_weights()), **SGD_CONFIGS[1]).load_state_dict(state)
    _, opt, _ = run_qcnn(Adam, ADAM_CONFIGS[0], steps=2)
    state = opt.state_dict()
    state["adam_v.b"] = np.zeros(6)
    with pytest.raises(ValueError, match="adam_v.b does not match"):
        Adam(make_params(initial_weights()), **ADAM_CONFIGS[0]).load_state_dict(state)


@pytest.mark.parametrize(("cls", "config"), [(SGD, SGD_CONFIGS[1]), (Adam, ADAM_CONFIGS[0])])
def test_state_dict_is_a_snapshot(cls, config):
    _, opt, params = run_qcnn(cls, config, steps=3)
    state = opt.state_dict()
    frozen = {k: np.array(v, copy=True) for k, v in state.items()}
    for p in params:
        p.grad = np.ones_like(p.data)
    opt.step()
    for k in frozen:
        np.testing.assert_array_equal(state[k], frozen[k], err_msg=k)
