"""GRUCell and LSTMCell: hypothesis finite-difference checks of BPTT (float64,
through the masked unroll and through single steps), PyTorch autograd oracle
(torch.nn.GRU / LSTM with the same weights), what the recurrences mean (the
unroll is T steps; masks carry the state; saturated gates copy it), the
backend matrix and argument errors.

Finite-difference checks filter examples on the *numeric* gradient only and
scale the error by max(|analytic|, |numeric|), so a backward that wrongly
returns zeros fails (test_fd_check_catches_a_zero_gradient).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lvm_core.backend import device_of, to_numpy
from lvm_core.gradcheck import numerical_gradient, relative_error
from lvm_core.nn import Embedding, GRUCell, LSTMCell

from .conftest import require

RTOL = 1e-6
# Central-difference step: rounding of a loss of size |f| contributes ~eps |f| / h
# to the numeric gradient, ~2e-11 (1 + |f|) at h = 1e-5, far below the gradients
# admitted by the filter in fd_check; the O(h^2) truncation is smaller still.
STEP = 1e-5
MAX_EXAMPLES = 12
_ERRORS = []

CELLS = {"gru": GRUCell, "lstm": LSTMCell}


@pytest.fixture(scope="module", autouse=True)
def _report_largest_error():
    yield
    if _ERRORS:
        print(f"\n[test_nn_recurrent] {len(_ERRORS)} gradient checks, largest relative "
              f"error {max(_ERRORS):.3e}")


def fd_check(f, x, analytic, name, skip_example=assume, record=True):
    """Relative error of ``analytic`` against central differences of scalar ``f`` at ``x``.

    Examples whose *numeric* gradient is too small to resolve to 1e-6 (below
    1e-4 (1 + |f|)) are not drawn; the analytic gradient plays no part in the
    filter, so an analytic zero against a resolvable numeric gradient fails.
    """
    num = numerical_gradient(f, x, h=STEP)
    f0 = float(f(x))
    skip_example(float(np.max(np.abs(num))) > 1e-4 * (1.0 + abs(f0)))
    err = relative_error(analytic, num)
    if record:
        _ERRORS.append(err)
    assert err < RTOL, f"gradient of {name}: relative error {err:.3e} >= {RTOL}"
    return err


def test_fd_check_catches_a_zero_gradient():
    """The check above fails a backward that returns zeros (and one off by 1e-5)."""
    x = np.array([0.3, -1.2, 2.0])

    def f(a):
        return float(np.sum(np.tanh(a)))

    def resolvable(ok):  # outside hypothesis: the example must pass the filter
        assert ok

    good = 1.0 - np.tanh(x) ** 2
    fd_check(f, x, good, "x", resolvable, record=False)
    with pytest.raises(AssertionError, match="relative error"):
        fd_check(f, x, np.zeros_like(x), "x", resolvable, record=False)
    with pytest.raises(AssertionError, match="relative error"):
        fd_check(f, x, good * (1 + 1e-5), "x", resolvable, record=False)


# ------------------------------------------------------------------ helpers
def random_state0(kind, rng, N, H, scale=1.0):
    h0 = scale * rng.standard_normal((N, H))
    return h0 if kind == "gru" else (h0, scale * rng.standard_normal((N, H)))


def final_state(kind, H_seq, cache):
    return H_seq[-1] if kind == "gru" else (H_seq[-1], cache.C_seq[-1])


def state_list(kind, state):
    return [state] if kind == "gru" else list(state)


def make_state(kind, arrays):
    return arrays[0] if kind == "gru" else tuple(arrays)


def random_mask(rng, T, N):
    """Random 0/1 steps (not only prefixes: any step may be skipped)."""
    return (rng.random((T, N)) < 0.7).astype(np.float64)


def scaled_params(cell, seed, scale):
    params = cell.init(seed, dtype="float64")
    return {k: scale * v for k, v in params.items()}


dims = st.integers(min_value=1, max_value=3)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
scales = st.sampled_from([0.5, 1.0, 2.0])


# ------------------------------------------------------------------ finite differences
@pytest.mark.parametrize("kind", sorted(CELLS))
@settings(max_examples=MAX_EXAMPLES)
@given(T=dims, N=dims, D=dims, H=dims, seed=seeds, masked=st.booleans(), scale=scales)
def test_grad_unroll(kind, T, N, D, H, seed, masked, scale):
    """Every parameter, X, the initial state and dstate_T through the masked unroll."""
    rng = np.random.default_rng(seed)
    cell = CELLS[kind](D, H, prefix="rnn_")
    params = scaled_params(cell, seed, scale)
    X = rng.standard_normal((T, N, D))
    state0 = random_state0(kind, rng, N, H)
    mask = random_mask(rng, T, N) if masked else None
    W = rng.standard_normal((T, N, H))  # dL/dH_seq
    W_T = state_list(kind, random_state0(kind, rng, N, H))  # dL/d final state

    def loss(p, X_, s0):
        H_seq, cache = cell.forward(p, X_, s0, mask)
        fin = state_list(kind, final_state(kind, H_seq, cache))
        return float(np.sum(W * H_seq) + sum(np.sum(w * s) for w, s in zip(W_T, fin)))

    H_seq, cache = cell.forward(params, X, state0, mask)
    grads = {}
    dX, dstate0 = cell.backward_with_state(params, W, cache, grads,
                                           dstate_T=make_state(kind, W_T))
    assert sorted(grads) == sorted(cell.param_names)
    for key in cell.param_names:
        def f(v, key=key):
            return loss({**params, key: v}, X, state0)
        fd_check(f, params[key], grads[key], key)
    fd_check(lambda v: loss(params, v, state0), X, dX, "X")
    s0, ds0 = state_list(kind, state0), state_list(kind, dstate0)
    for j in range(len(s0)):
        def f0(v, j=j):
            return loss(params, X, make_state(kind, [v if i == j else s for i, s in enumerate(s0)]))
        fd_check(f0, s0[j], ds0[j], f"state0[{j}]")


@pytest.mark.parametrize("kind", sorted(CELLS))
@settings(max_examples=MAX_EXAMPLES)
@given(T=dims, N=dims, D=dims, H=dims, seed=seeds, scale=scales)
def test_grad_single_steps(kind, T, N, D, H, seed, scale):
    """step_forward chained T times, step_backward accumulating the weight
    gradients: every parameter, every x_t and the initial state."""
    rng = np.random.default_rng(seed)
    cell = CELLS[kind](D, H)
    params = scaled_params(cell, seed, scale)
    xs = [rng.standard_normal((N, D)) for _ in range(T)]
    state0 = random_state0(kind, rng, N, H)
    Ws = [state_list(kind, random_state0(kind, rng, N, H)) for _ in range(T)]  # dL/d state_t

    def loss(p, xs_, s0):
        state, total = s0, 0.0
        for x_t, w in zip(xs_, Ws):
            state, _ = cell.step_forward(p, x_t, state)
            total += sum(float(np.sum(a * b)) for a, b in zip(w, state_list(kind, state)))
        return total

    state, caches = state0, []
    for x_t in xs:
        state, cache = cell.step_forward(params, x_t, state)
        caches.append(cache)
    grads, dxs = {}, [None] * T
    dstate = [np.zeros((N, H)) for _ in state_list(kind, state0)]
    for t in range(T - 1, -1, -1):
        d_out = make_state(kind, [a + b for a, b in zip(dstate, Ws[t])])
        dxs[t], dprev = cell.step_backward(params, d_out, caches[t], grads)
        dstate = state_list(kind, dprev)
    for key in cell.param_names:
        def f(v, key=key):
            return loss({**params, key: v}, xs, state0)
        fd_check(f, params[key], grads[key], key)
    for t in range(T):
        def fx(v, t=t):
            return loss(params, [v if i == t else x for i, x in enumerate(xs)], state0)
        fd_check(fx, xs[t], dxs[t], f"x_{t}")
    s0 = state_list(kind, state0)
    for j in range(len(s0)):
        def f0(v, j=j):
            return loss(params, xs, make_state(kind, [v if i == j else s for i, s in enumerate(s0)]))
        fd_check(f0, s0[j], dstate[j], f"state0[{j}]")


@pytest.mark.parametrize("kind", sorted(CELLS))
@settings(max_examples=6)
@given(T=dims, N=dims, seed=seeds)
def test_grad_embedding_into_cell(kind, T, N, seed):
    """Symbols -> Embedding -> masked unroll, one flat params dict: the gradient of
    every key (the embedding's through BPTT's dX) against central differences."""
    K, D, H = 4, 2, 3
    rng = np.random.default_rng(seed)
    emb, cell = Embedding(K, D, prefix="emb_"), CELLS[kind](D, H, prefix="rnn_")
    params = {**emb.init(seed, dtype="float64"), **cell.init(seed + 1, dtype="float64")}
    symbols = rng.integers(0, K, size=(T, N))
    mask = random_mask(rng, T, N)
    W = rng.standard_normal((T, N, H))

    def loss(p):
        X, _ = emb.forward(p, symbols)
        return float(np.sum(W * cell.forward(p, X, None, mask)[0]))

    X, c_emb = emb.forward(params, symbols)
    H_seq, c_rnn = cell.forward(params, X, None, mask)
    grads = {}
    dX = cell.backward(params, W, c_rnn, grads)
    emb.backward(params, dX, c_emb, grads)
    assert sorted(grads) == sorted(params)
    for key in params:
        def f(v, key=key):
            return loss({**params, key: v})
        fd_check(f, params[key], grads[key], key)


# ------------------------------------------------------------------ PyTorch oracle
def _torch_module(torch, kind, cell, params, single_step):
    D, H = cell.D, cell.H
    if single_step:
        mod = (torch.nn.GRUCell if kind == "gru" else torch.nn.LSTMCell)(D, H).double()
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    else:
        mod = (torch.nn.GRU if kind == "gru" else torch.nn.LSTM)(D, H).double()
        names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    # torch stacks the gates (r, z, n / i, f, g, o) on the rows of (3H or 4H, D):
    # the transpose of our column layout.
    ours = {"weight_ih": params[cell.prefix + "W_x"].T, "weight_hh": params[cell.prefix + "W_h"].T,
            "bias_ih": params[cell.prefix + "b_x"], "bias_hh": params[cell.prefix + "b_h"]}
    with torch.no_grad():
        for name in names:
            getattr(mod, name).copy_(torch.tensor(ours[name.replace("_l0", "")]))
    return mod, names


@pytest.mark.oracle
@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("masked", [False, True])
@settings(max_examples=10)
@given(T=st.integers(min_value=1, max_value=5), N=dims, D=st.integers(min_value=1, max_value=4),
       H=st.integers(min_value=1, max_value=4), seed=seeds)
def test_matches_torch_autograd(kind, masked, T, N, D, H, seed):
    """Outputs and every gradient (weights, biases, X, h0, c0) equal torch's to 1e-10.

    Unmasked: torch.nn.GRU / LSTM over the whole sequence.  Masked: torch's
    GRUCell / LSTMCell stepped with torch.where carrying the state.
    """
    torch = require("torch")
    rng = np.random.default_rng(seed)
    cell = CELLS[kind](D, H, prefix="c_")
    params = scaled_params(cell, seed, 1.5)
    X = rng.standard_normal((T, N, D))
    s0 = state_list(kind, random_state0(kind, rng, N, H))
    mask = random_mask(rng, T, N) if masked else None
    W = rng.standard_normal((T, N, H))
    W_T = state_list(kind, random_state0(kind, rng, N, H))

    mod, names = _torch_module(torch, kind, cell, params, single_step=masked)
    tX = torch.tensor(X, requires_grad=True)
    ts0 = [torch.tensor(s, requires_grad=True) for s in s0]
    if masked:
        tm = torch.tensor(mask, dtype=torch.bool)[:, :, None]
        state, outs = ts0, []
        for t in range(T):
            new = mod(tX[t], state[0] if kind == "gru" else tuple(state))
            new = [new] if kind == "gru" else list(new)
            state = [torch.where(tm[t], a, b) for a, b in zip(new, state)]
            outs.append(state[0])
        t_out, t_fin = torch.stack(outs), state
    else:
        t_init = ts0[0][None] if kind == "gru" else tuple(s[None] for s in ts0)
        t_out, t_fin = mod(tX, t_init)
        t_fin = [t_fin[0]] if kind == "gru" else [t_fin[0][0], t_fin[1][0]]
    t_loss = (torch.tensor(W) * t_out).sum() + sum((torch.tensor(w) * s).sum()
                                                   for w, s in zip(W_T, t_fin))
    t_loss.backward()

    H_seq, cache = cell.forward(params, X, make_state(kind, s0), mask)
    grads = {}
    dX, dstate0 = cell.backward_with_state(params, W, cache, grads, dstate_T=make_state(kind, W_T))
    tol = 1e-10
    assert relative_error(H_seq, t_out.detach().numpy()) < tol
    for ours, theirs in zip(state_list(kind, final_state(kind, H_seq, cache)), t_fin):
        assert relative_error(ours, theirs.detach().numpy()) < tol
    assert relative_error(dX, tX.grad.numpy()) < tol
    for ours, theirs in zip(state_list(kind, dstate0), ts0):
        assert relative_error(ours, theirs.grad.numpy()) < tol
    key_of = {"weight_ih": "W_x", "weight_hh": "W_h", "bias_ih": "b_x", "bias_hh": "b_h"}
    for name in names:
        theirs = getattr(mod, name).grad.numpy()
        key = cell.prefix + key_of[name.replace("_l0", "")]
        assert relative_error(grads[key], theirs.T if theirs.ndim == 2 else theirs) < tol, key


# ------------------------------------------------------------------ meaning
@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("masked", [False, True])
def test_unroll_equals_single_steps(kind, masked):
    """forward == T calls of step_forward (with the mask applied by hand), and the
    BPTT gradients == step_backward accumulated over the steps."""
    T, N, D, H = 4, 3, 2, 3
    rng = np.random.default_rng(1)
    cell = CELLS[kind](D, H)
    params = scaled_params(cell, 2, 1.5)
    X = rng.standard_normal((T, N, D))
    state0 = random_state0(kind, rng, N, H)
    mask = random_mask(rng, T, N) if masked else np.ones((T, N))
    W = rng.standard_normal((T, N, H))
    H_seq, cache = cell.forward(params, X, state0, mask if masked else None)
    grads = {}
    dX, dstate0 = cell.backward_with_state(params, W, cache, grads)

    state, caches, outs = state0, [], []
    for t in range(T):
        new, c = cell.step_forward(params, X[t], state)
        m = mask[t][:, None] == 1
        state = make_state(kind, [np.where(m, a, b) for a, b in
                                  zip(state_list(kind, new), state_list(kind, state))])
        caches.append(c)
        outs.append(state_list(kind, state)[0])
    np.testing.assert_allclose(np.stack(outs), H_seq, rtol=1e-13, atol=1e-15)

    step_grads, dxs = {}, []
    d = [np.zeros((N, H)) for _ in state_list(kind, state0)]
    for t in range(T - 1, -1, -1):
        d[0] = d[0] + W[t]
        m = mask[t][:, None]
        d_cell = [m * a for a in d]
        dx, dprev = cell.step_backward(params, make_state(kind, d_cell), caches[t], step_grads)
        dxs.append(dx)
        d = [a + (1 - m) * b for a, b in zip(state_list(kind, dprev), d)]
    np.testing.assert_allclose(np.stack(dxs[::-1]), dX, rtol=1e-12, atol=1e-14)
    for a, b in zip(d, state_list(kind, dstate0)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    for key in cell.param_names:
        np.testing.assert_allclose(step_grads[key], grads[key], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_masked_steps_carry_the_state_and_get_zero_gradient(kind, backend):
    T, N, D, H = 5, 4, 3, 2
    rng = np.random.default_rng(3)
    cell = CELLS[kind](D, H)
    like = backend.asarray(np.zeros(1))
    params = cell.init(0, dtype=backend.dtype_name, like=like)
    X = backend.asarray(rng.standard_normal((T, N, D)))
    lengths = np.array([5, 3, 1, 2])
    mask_host = np.arange(T)[:, None] < lengths[None, :]  # (T, N) variable lengths
    mask_host[3, 0] = False  # and one skipped step inside a sequence
    mask = backend.asarray(mask_host)
    H_seq, cache = cell.forward(params, X, None, mask)
    dH = backend.asarray(rng.standard_normal((T, N, H)))
    grads = {}
    dX, dstate0 = cell.backward_with_state(params, dH, cache, grads)
    H_host, dX_host = to_numpy(H_seq), to_numpy(dX)
    prev = np.concatenate([np.zeros((1, N, H)), H_host[:-1]], axis=0)
    skipped = ~mask_host
    np.testing.assert_array_equal(H_host[skipped], prev[skipped])  # carried exactly
    assert np.all(dX_host[skipped] == 0)
    assert np.all(np.abs(dX_host[mask_host]).max(axis=-1) > 0)
    if kind == "lstm":
        C_host = to_numpy(cache.C_seq)
        prev_c = np.concatenate([np.zeros((1, N, H)), C_host[:-1]], axis=0)
        np.testing.assert_array_equal(C_host[skipped], prev_c[skipped])
    # a sequence masked out everywhere: the state is h0 throughout, no weight
    # gradient, and all output gradients reach h0 unchanged
    all_off = backend.asarray(np.zeros((T, N), dtype=bool))
    h0 = random_state0(kind, rng, N, H)
    s0 = make_state(kind, [backend.asarray(a) for a in state_list(kind, h0)])
    H_seq, cache = cell.forward(params, X, s0, all_off)
    grads = {}
    dX, dstate0 = cell.backward_with_state(params, dH, cache, grads)
    np.testing.assert_array_equal(to_numpy(H_seq), np.broadcast_to(state_list(kind, h0)[0],
                                                                    (T, N, H)).astype(backend.dtype_name))
    assert all(np.all(to_numpy(g) == 0) for g in grads.values())
    assert np.all(to_numpy(dX) == 0)
    np.testing.assert_allclose(to_numpy(state_list(kind, dstate0)[0]), to_numpy(dH).sum(axis=0),
                               rtol=backend.rtol)


def test_lstm_saturated_forget_gate_carries_the_cell(backend):
    """f = 1 and i = 0 (biases +-1e3): c_t = c_0 at every step, and dL/dc_T reaches
    c_0 unchanged with no gradient on any weight."""
    T, N, D, H = 6, 3, 2, 4
    rng = np.random.default_rng(4)
    cell = LSTMCell(D, H)
    like = backend.asarray(np.zeros(1))
    params = cell.init(1, dtype=backend.dtype_name, like=like)
    b = rng.uniform(-1, 1, 4 * H)
    b[:H] = -1e3  # input gate shut
    b[H:2 * H] = 1e3  # forget gate open
    params["b_x"] = backend.asarray(b)
    X = backend.asarray(rng.standard_normal((T, N, D)))
    h0, c0 = (backend.asarray(rng.standard_normal((N, H))) for _ in range(2))
    H_seq, cache = cell.forward(params, X, (h0, c0))
    C = to_numpy(cache.C_seq)
    np.testing.assert_array_equal(C, np.broadcast_to(to_numpy(c0), C.shape))
    dc_T = backend.asarray(rng.standard_normal((N, H)))
    grads = {}
    _, (dh0, dc0) = cell.backward_with_state(params, None, cache, grads, dstate_T=(None, dc_T))
    np.testing.assert_array_equal(to_numpy(dc0), to_numpy(dc_T))
    assert np.all(to_numpy(dh0) == 0)
    assert all(np.all(to_numpy(g) == 0) for g in grads.values())


def test_gru_update_gate_one_copies_the_state(backend):
    """z = 1 (bias 1e3): h_t = h_0 at every step; dL/dh_0 = sum_t dL/dh_t + dL/dh_T."""
    T, N, D, H = 5, 3, 2, 4
    rng = np.random.default_rng(5)
    cell = GRUCell(D, H)
    like = backend.asarray(np.zeros(1))
    params = cell.init(2, dtype=backend.dtype_name, like=like)
    b = rng.uniform(-1, 1, 3 * H)
    b[H:2 * H] = 1e3
    params["b_x"] = backend.asarray(b)
    X = backend.asarray(rng.standard_normal((T, N, D)))
    h0 = backend.asarray(rng.standard_normal((N, H)))
    H_seq, cache = cell.forward(params, X, h0)
    np.testing.assert_array_equal(to_numpy(H_seq), np.broadcast_to(to_numpy(h0), (T, N, H)))
    dH = rng.standard_normal((T, N, H)).astype(backend.dtype_name)
    dh_T = rng.standard_normal((N, H)).astype(backend.dtype_name)
    grads = {}
    dX, dh0 = cell.backward_with_state(params, backend.asarray(dH), cache, grads,
                                       dstate_T=backend.asarray(dh_T))
    np.testing.assert_allclose(to_numpy(dh0), dH.sum(axis=0) + dh_T, rtol=backend.rtol,
                               atol=backend.rtol)
    assert np.all(to_numpy(dX) == 0)
    assert all(np.all(to_numpy(g) == 0) for g in grads.values())


def test_gru_reset_gate_zero_drops_the_recurrent_candidate():
    """r = 0 (bias -1e3) and z = 0: h_1 = tanh(x W_in + b_in), whatever h_0 is."""
    D, H = 3, 2
    cell = GRUCell(D, H)
    params = cell.init(0, dtype="float64")
    b = params["b_x"].copy()
    b[:2 * H] = -1e3
    params["b_x"] = b
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, D))
    h1, _ = cell.step_forward(params, x, rng.standard_normal((4, H)))
    expected = np.tanh(x @ params["W_x"][:, 2 * H:] + b[2 * H:])
    np.testing.assert_allclose(h1, expected, rtol=1e-14)


# ------------------------------------------------------------------ backends
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_backend_matches_numpy_float64(kind, backend):
    """Unroll (masked), BPTT and single steps on every backend and dtype against
    NumPy float64; results keep the dtype and device; gradients are written in
    place into the buffers passed in."""
    T, N, D, H = 4, 3, 2, 3
    rng = np.random.default_rng(7)
    cell = CELLS[kind](D, H, prefix="r_")
    like = backend.asarray(np.zeros(1))
    params = cell.init(3, dtype=backend.dtype_name, like=like)
    for v in params.values():
        assert v.dtype == backend.dtype and device_of(v) == device_of(like)
    ref_params = {k: to_numpy(v).astype(np.float64) for k, v in params.items()}
    params["unrelated"] = backend.asarray(np.ones(3))  # the flat dict may hold other keys

    def host(shape):
        return rng.standard_normal(shape).astype(backend.dtype_name).astype(np.float64)

    X, dH = host((T, N, D)), host((T, N, H))
    s0 = [host((N, H)) for _ in state_list(kind, random_state0(kind, rng, N, H))]
    mask = random_mask(rng, T, N)
    H_ref, c_ref = cell.forward(ref_params, X, make_state(kind, s0), mask)
    g_ref = {}
    dX_ref, ds_ref = cell.backward_with_state(ref_params, dH, c_ref, g_ref)

    dev = [backend.asarray(a) for a in s0]
    H_seq, cache = cell.forward(params, backend.asarray(X), make_state(kind, dev),
                                backend.asarray(mask))
    buffers = {k: backend.asarray(np.full(to_numpy(params[k]).shape, 7.0))
               for k in cell.param_names}
    grads = dict(buffers)
    dX, ds = cell.backward_with_state(params, backend.asarray(dH), cache, grads)
    tol = 1e-5 if backend.dtype_name == "float32" else 1e-12
    pairs = [(H_seq, H_ref), (dX, dX_ref)]
    pairs += list(zip(state_list(kind, ds), state_list(kind, ds_ref)))
    pairs += [(grads[k], g_ref[k]) for k in cell.param_names]
    for ours, theirs in pairs:
        assert ours.dtype == backend.dtype and device_of(ours) == device_of(like)
        assert relative_error(to_numpy(ours), theirs) < tol
    for k in cell.param_names:
        assert grads[k] is buffers[k]  # written in place, no new array
    # need_dx=False: same parameter gradients, no dX
    grads2 = {}
    assert cell.backward(params, backend.asarray(dH), cache, grads2, need_dx=False) is None
    for k in cell.param_names:
        assert relative_error(to_numpy(grads2[k]), g_ref[k]) < tol

    # single steps, accumulating into buffers
    x0 = backend.asarray(X[0])
    new, c = cell.step_forward(params, x0, make_state(kind, dev))
    new_ref, c_ref1 = cell.step_forward(ref_params, X[0], make_state(kind, s0))
    for ours, theirs in zip(state_list(kind, new), state_list(kind, new_ref)):
        assert ours.dtype == backend.dtype and device_of(ours) == device_of(like)
        assert relative_error(to_numpy(ours), theirs) < tol
    d_out = [host((N, H)) for _ in s0]
    g_step_ref = {}
    dx_ref, _ = cell.step_backward(ref_params, make_state(kind, d_out), c_ref1, g_step_ref)
    zeros = {k: backend.asarray(np.zeros(to_numpy(params[k]).shape)) for k in cell.param_names}
    g_step = dict(zeros)
    for _ in range(2):  # accumulate=True (default): two calls give twice the gradient
        dx, dprev = cell.step_backward(params, make_state(kind, [backend.asarray(a) for a in d_out]),
                                       c, g_step)
    assert relative_error(to_numpy(dx), dx_ref) < tol
    for k in cell.param_names:
        assert g_step[k] is zeros[k]
        assert relative_error(to_numpy(g_step[k]), 2 * g_step_ref[k]) < tol


# ------------------------------------------------------------------ init and errors
@pytest.mark.parametrize("kind", sorted(CELLS))
def test_init_matches_torch_bound_and_is_reproducible(kind):
    D, H = 20, 64
    cell = CELLS[kind](D, H, prefix="enc_")
    a, b, c = cell.init(0), cell.init(0), cell.init(1)
    G = cell.n_gates * H
    shapes = {"enc_W_x": (D, G), "enc_W_h": (H, G), "enc_b_x": (G,), "enc_b_h": (G,)}
    assert list(a) == cell.param_names and {k: v.shape for k, v in a.items()} == shapes
    bound = 1 / math.sqrt(H)
    for k in a:
        assert a[k].dtype == np.float32
        np.testing.assert_array_equal(a[k], b[k])
        assert not np.array_equal(a[k], c[k])
        assert np.abs(a[k]).max() <= bound
    assert a["enc_W_h"].var() == pytest.approx(bound**2 / 3, rel=0.05)  # U(-k, k): k^2 / 3
    assert cell.init(0, dtype="float64")["enc_W_x"].dtype == np.float64


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_argument_errors(kind):
    cell = CELLS[kind](2, 3)
    params = cell.init(0, dtype="float64")
    X = np.zeros((4, 5, 2))
    with pytest.raises(ValueError, match="positive integer"):
        CELLS[kind](0, 3)
    with pytest.raises(ValueError, match=r"\(T, N, D\)"):
        cell.forward(params, np.zeros((5, 2)))
    with pytest.raises(ValueError, match="D = 2"):
        cell.forward(params, np.zeros((4, 5, 3)))
    with pytest.raises(TypeError, match="float32"):
        cell.forward(params, X.astype(np.float32))
    with pytest.raises(ValueError, match=r"mask must have shape \(T, N\)"):
        cell.forward(params, X, mask=np.ones((5, 4)))
    with pytest.raises(ValueError, match="only 0 and 1"):
        cell.forward(params, X, mask=np.full((4, 5), 0.5))
    with pytest.raises(ValueError, match=r"shape \(N, H\)"):
        cell.step_forward(params, X[0], make_state(kind, [np.zeros((5, 2))] * (1 + (kind == "lstm"))))
    with pytest.raises(KeyError, match="W_h"):
        cell.forward({k: v for k, v in params.items() if k != "W_h"}, X)
    with pytest.raises(ValueError, match="W_x"):
        cell.forward({**params, "W_x": np.zeros((3, 3))}, X)
    with pytest.raises(ValueError, match="dtype must be"):
        cell.init(0, dtype="int32")
    H_seq, cache = cell.forward(params, X)
    with pytest.raises(TypeError, match="dH_seq has dtype float32"):
        cell.backward(params, np.ones((4, 5, 3), dtype=np.float32), cache, {})
    with pytest.raises(ValueError, match="dH_seq must have shape"):
        cell.backward(params, np.ones((4, 5, 2)), cache, {})
    with pytest.raises(ValueError, match="grads"):
        cell.backward(params, np.ones((4, 5, 3)), cache, {"W_h": np.zeros((2, 2))})
    if kind == "lstm":
        with pytest.raises(TypeError, match=r"tuple \(h, c\)"):
            cell.forward(params, X, np.zeros((5, 3)))
    assert repr(cell).startswith(type(cell).__name__ + "(D=2, H=3")


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_does_not_mutate_inputs(kind):
    cell = CELLS[kind](2, 3)
    params = cell.init(0, dtype="float64")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 2, 2))
    s0 = random_state0(kind, rng, 2, 3)
    mask = random_mask(rng, 3, 2)
    dH = rng.standard_normal((3, 2, 3))
    before = [a.copy() for a in [X, mask, dH, *state_list(kind, s0), *params.values()]]
    H_seq, cache = cell.forward(params, X, s0, mask)
    cell.backward_with_state(params, dH, cache, {}, dstate_T=s0)
    after = [X, mask, dH, *state_list(kind, s0), *params.values()]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
