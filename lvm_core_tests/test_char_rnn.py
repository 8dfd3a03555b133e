"""CharRNN: finite differences through loss_and_grads (the training path: embedding,
GRU/LSTM BPTT, output layer, fused categorical likelihood), a PyTorch oracle
(nn.Embedding + nn.GRU/LSTM + nn.Linear with the same weights), what the model
means (next-symbol probabilities sum to 1 at every step; temperature -> 0 is
greedy; nats per character with carried state equals the window scores), the
backend matrix, save/load, errors and the example's --quick run.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core import io as lvm_io
from lvm_core.backend import to_numpy
from lvm_core.gradcheck import check_grads_resolvable, relative_error
from lvm_core.models.char_rnn import CharRNN, make_windows

from .conftest import require

ROOT = Path(__file__).resolve().parents[1]
small = st.integers(min_value=1, max_value=4)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


def random_model(K, E, H, cell, seed, dtype="float64", scale=1.0):
    model = CharRNN(K, n_embed=E, n_hidden=H, cell=cell, seq_len=5, dtype=dtype,
                    random_state=seed)
    model.initialize()
    if scale != 1.0:
        for k in model.params:
            model.params[k] = model.params[k] * scale
    return model


def random_windows(K, N, T, seed):
    return np.random.default_rng(seed).integers(0, K, size=(N, T + 1))


# ---------------------------------------------------------------- finite differences
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@settings(max_examples=8)
@given(K=st.integers(2, 5), E=small, H=small, N=small, T=small, seed=seeds,
       scale=st.sampled_from([1.0, 2.0]))
def test_grad_finite_differences(cell, K, E, H, N, T, seed, scale):
    """Every parameter through loss_and_grads, float64: relative error < 1e-6 scaled by
    max(|analytic|, |numeric|), filtered on the numeric gradient only."""
    model = random_model(K, E, H, cell, seed, scale=scale)
    X = random_windows(K, N, T, seed)
    loss, grads = model.loss_and_grads(X)
    grads = {k: np.array(v) for k, v in grads.items()}

    def f(p):
        return float(model.loss_and_grads(X, params=p)[0])

    check_grads_resolvable(f, dict(model.params), grads, float(loss))


# ---------------------------------------------------------------- PyTorch oracle
@pytest.mark.oracle
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@settings(max_examples=6)
@given(K=st.integers(2, 6), E=small, H=small, N=small, T=st.integers(1, 6), seed=seeds)
def test_matches_torch_autograd(cell, K, E, H, N, T, seed):
    torch = require("torch")
    model = random_model(K, E, H, cell, seed)
    X = random_windows(K, N, T, seed)
    loss, grads = model.loss_and_grads(X)
    p = model.params
    emb = torch.nn.Embedding(K, E).double()
    rnn = (torch.nn.GRU if cell == "gru" else torch.nn.LSTM)(E, H).double()
    lin = torch.nn.Linear(H, K).double()
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(p["emb_W"]))
        rnn.weight_ih_l0.copy_(torch.tensor(p["rnn_W_x"].T))
        rnn.weight_hh_l0.copy_(torch.tensor(p["rnn_W_h"].T))
        rnn.bias_ih_l0.copy_(torch.tensor(p["rnn_b_x"]))
        rnn.bias_hh_l0.copy_(torch.tensor(p["rnn_b_h"]))
        lin.weight.copy_(torch.tensor(p["out_W"].T))
        lin.bias.copy_(torch.tensor(p["out_b"]))
    tX = torch.tensor(X)
    out, _ = rnn(emb(tX[:, :-1].T))  # (T, N, H)
    logits = lin(out)  # (T, N, K)
    t_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, K), tX[:, 1:].T.reshape(-1))
    t_loss.backward()
    assert abs(float(loss) - t_loss.item()) < 1e-10 * (1 + t_loss.item())
    theirs = {"emb_W": emb.weight.grad, "rnn_W_x": rnn.weight_ih_l0.grad.T,
              "rnn_W_h": rnn.weight_hh_l0.grad.T, "rnn_b_x": rnn.bias_ih_l0.grad,
              "rnn_b_h": rnn.bias_hh_l0.grad, "out_W": lin.weight.grad.T,
              "out_b": lin.bias.grad}
    for k, v in theirs.items():
        assert relative_error(grads[k], v.numpy()) < 1e-10, k


# ---------------------------------------------------------------- meaning
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_probabilities_sum_to_one_at_every_step(cell):
    model = random_model(7, 3, 5, cell, 0, scale=3.0)
    X = random_windows(7, 4, 9, 1)
    P = np.exp(model.predict_log_proba(X))  # (N, T, K)
    assert P.shape == (4, 9, 7)
    np.testing.assert_allclose(P.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    # and the window score is the sum of the chosen log-probabilities
    chosen = np.take_along_axis(np.log(P), X[:, 1:, None], axis=2)[..., 0]
    np.testing.assert_allclose(model.score_samples(X), chosen.sum(axis=1), rtol=1e-12)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_temperature_to_zero_is_greedy(cell):
    model = random_model(6, 4, 8, cell, 3, scale=2.0)
    greedy = model.sample(30, rng=0, temperature=0.0, prime=[1, 2])
    for seed in range(3):
        np.testing.assert_array_equal(model.sample(30, rng=seed, temperature=1e-6,
                                                   prime=[1, 2]), greedy)
    # greedy means: each symbol is the argmax of the model's next-symbol distribution
    seq = np.concatenate([[1, 2], greedy])
    log_p = model.predict_log_proba(seq[None, :])[0]  # (T, K)
    np.testing.assert_array_equal(np.argmax(log_p[1:], axis=1), greedy)
    # at temperature 1 draws differ between seeds
    assert not np.array_equal(model.sample(30, rng=0), model.sample(30, rng=1))


def test_sampling_frequencies_follow_the_model():
    """First symbol after the prime: empirical frequencies match softmax(l) (chi-square)."""
    stats = require("scipy.stats")
    model = random_model(4, 3, 5, "gru", 7, scale=2.0)
    p = np.exp(model.predict_log_proba(np.array([[2, 0]]))[0, 0])
    draws = np.array([model.sample(1, rng=s, prime=[2])[0] for s in range(2000)])
    counts = np.bincount(draws, minlength=4)
    assert stats.chisquare(counts, 2000 * p).pvalue > 1e-3


def test_nats_per_char_carries_the_state():
    """One stream, one chunk == chunks of 3 with the state carried; both equal the
    window score of the whole sequence."""
    model = random_model(5, 3, 6, "lstm", 2, scale=1.5)
    ids = np.random.default_rng(0).integers(0, 5, size=40)
    whole = -model.score_samples(ids[None, :])[0] / 39
    assert abs(model.nats_per_char(ids, n_streams=1, chunk=100) - whole) < 1e-12
    assert abs(model.nats_per_char(ids, n_streams=1, chunk=3) - whole) < 1e-12


def test_training_learns_a_deterministic_cycle():
    ids = np.tile(np.arange(5), 200)  # 0 1 2 3 4 0 1 ... : predictable after one symbol
    model = CharRNN(5, n_embed=8, n_hidden=16, seq_len=10, random_state=0)
    model.fit(ids[:800], epochs=30, batch_size=16, lr=1e-2, validation_data=ids[800:],
              early_stopping_patience=5, random_state=0)
    assert model.nats_per_char(ids[800:], n_streams=4) < 0.1
    np.testing.assert_array_equal(model.sample(7, temperature=0, prime=[3]), [4, 0, 1, 2, 3, 4, 0])


def test_make_windows():
    W = make_windows(np.arange(10), 3)
    np.testing.assert_array_equal(W, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    with pytest.raises(ValueError, match="seq_len"):
        make_windows(np.arange(3), 5)


# ---------------------------------------------------------------- backends, io, errors
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_backends(backend, cell):
    ref = random_model(6, 3, 4, cell, 5)
    X = random_windows(6, 3, 4, 0)
    loss_ref, grads_ref = ref.loss_and_grads(X)
    grads_ref = {k: np.array(v) for k, v in grads_ref.items()}
    model = CharRNN(6, n_embed=3, n_hidden=4, cell=cell, dtype=backend.dtype_name)
    model.params = {k: backend.asarray(v) for k, v in ref.params.items()}
    Xb = backend.asarray(X)
    loss, grads = model.loss_and_grads(Xb)
    tol = 1e-5 if backend.dtype_name == "float32" else 1e-10
    assert abs(float(to_numpy(loss)) - float(loss_ref)) < tol * 10
    for k in grads_ref:
        assert type(grads[k]) is type(model.params[k]) and grads[k].dtype == model.params[k].dtype
        assert relative_error(to_numpy(grads[k]), grads_ref[k]) < tol * 10, k
    s = model.score_samples(Xb)
    assert relative_error(to_numpy(s), ref.score_samples(X)) < tol * 10
    assert model.sample(5, rng=0, temperature=0).shape == (5,)
    np.testing.assert_array_equal(model.sample(5, rng=0, temperature=0),
                                  ref.sample(5, rng=0, temperature=0))


def test_save_load_roundtrip(tmp_path):
    model = random_model(6, 3, 4, "lstm", 1)
    path = tmp_path / "char_rnn.h5"
    lvm_io.save(model, path)
    loaded = lvm_io.load(path, expected_type=CharRNN)
    X = random_windows(6, 2, 5, 3)
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))


def test_errors():
    with pytest.raises(ValueError, match="cell"):
        CharRNN(5, cell="rnn")
    model = CharRNN(5, n_embed=2, n_hidden=3, random_state=0)
    with pytest.raises(ValueError, match="symbol 7"):
        model.score_samples(np.array([[0, 7]]))
    with pytest.raises(TypeError, match="integral"):
        model.score_samples(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="temperature"):
        model.sample(3, temperature=-1.0)
    with pytest.raises(ValueError, match="prime"):
        model.sample(3, prime=[9])


@pytest.mark.slow
def test_example_quick(tmp_path):
    require("matplotlib")
    env = dict(os.environ, MPLBACKEND="Agg", MPLCONFIGDIR=str(tmp_path / "mpl"),
               OPENBLAS_NUM_THREADS="1")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "char_rnn_text.py"),
                           "--quick", "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "char_rnn_training.png").stat().st_size > 2000
    assert (out / "char_rnn_samples.txt").read_text().count("temperature") == 2
    assert "RESULT char_rnn_text" in proc.stdout
