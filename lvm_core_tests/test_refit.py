"""Refitting and inference on the gradient-trained models.

* a second ``VAE.fit`` starts again from the initialisation (same seeds: the same
  result as the first fit), unless ``warm_start=True``;
* ``n_features=None`` takes the width from the data, so a refit on data of another
  width works; a width that contradicts ``n_features`` is refused with a clear message;
* inference (score, score_samples, elbo, encode, transform, sample, ...) never
  rebinds or changes the fitted arrays of any gradient-trained model.
"""
from __future__ import annotations

import numpy as np
import pytest

from lvm_core.models.aevb_fa import AEVBFactorAnalysis
from lvm_core.models.autoregressive.fvsbn import FVSBN
from lvm_core.models.autoregressive.nade import NADE
from lvm_core.models.autoregressive.rnade import RNADE
from lvm_core.models.char_rnn import CharRNN
from lvm_core.models.energy.rbm import RBM, GaussianBernoulliRBM
from lvm_core.models.made import MADE
from lvm_core.models.vae import VAE


def _binary(n=48, D=6, seed=0):
    return (np.random.default_rng(seed).random((n, D)) > 0.5).astype(np.float32)


def _fit_vae(model, X, seed=3):
    return model.fit(X, epochs=2, batch_size=16, lr=1e-2, random_state=seed, progress=False)


def test_a_second_vae_fit_starts_again_from_the_initialisation():
    """Defect: the second fit continued from the first one's parameters."""
    X = _binary()
    model = _fit_vae(VAE(6, n_latent=2, hidden=(4,), random_state=0), X)
    first = {k: v.copy() for k, v in model.params.items()}
    _fit_vae(model, X)
    for k in first:
        np.testing.assert_array_equal(model.params[k], first[k])
    fresh = _fit_vae(VAE(6, n_latent=2, hidden=(4,), random_state=0), X)
    for k in first:
        np.testing.assert_array_equal(fresh.params[k], first[k])


def test_warm_start_continues_from_the_current_parameters():
    X = _binary()
    model = _fit_vae(VAE(6, n_latent=2, hidden=(4,), random_state=0, warm_start=True), X)
    first = {k: v.copy() for k, v in model.params.items()}
    loss_before = model.validation_loss(X)
    _fit_vae(model, X)
    assert any(not np.array_equal(model.params[k], first[k]) for k in first)
    # continued training: from the fitted parameters, not from the initialisation
    restarted = _fit_vae(VAE(6, n_latent=2, hidden=(4,), random_state=0), X)
    assert any(not np.array_equal(model.params[k], restarted.params[k]) for k in first)
    assert np.isfinite(loss_before)


def test_vae_refit_on_data_of_another_width():
    """Defect: a refit on data of another width failed."""
    model = _fit_vae(VAE(None, n_latent=2, hidden=(4,), random_state=0), _binary(D=6))
    assert model.n_features_in_ == 6 and model.params["enc_W0"].shape == (6, 4)
    _fit_vae(model, _binary(D=9))
    assert model.n_features_in_ == 9 and model.params["enc_W0"].shape == (9, 4)
    assert model.params["dec_W_out"].shape == (4, 9)
    assert np.all(np.isfinite(model.elbo(_binary(D=9), rng=0)))
    # warm_start with another width cannot continue: it starts from the initialisation
    model.set_params(warm_start=True)
    _fit_vae(model, _binary(D=5))
    assert model.params["enc_W0"].shape == (5, 4)


def test_vae_width_contradicting_n_features_is_refused_clearly():
    with pytest.raises(ValueError, match=r"X has 7 features.*n_features=6.*n_features=None"):
        _fit_vae(VAE(6, n_latent=2, hidden=(4,)), _binary(D=7))


def _snapshot(model):
    state = {}
    for name, value in vars(model).items():
        if name.startswith("_") and name not in ("_params",):
            continue
        if isinstance(value, dict):
            for k, v in value.items():
                if hasattr(v, "shape"):
                    state[(name, k)] = (id(v), np.array(v, copy=True))
        elif hasattr(value, "shape"):
            state[name] = (id(value), np.array(value, copy=True))
        else:
            state[name] = (id(value), None)
    return state


def _assert_unchanged(before, after, what):
    assert before.keys() == after.keys(), (what, set(before) ^ set(after))
    for key, (ident, value) in before.items():
        assert after[key][0] == ident, (what, key, "rebound")
        if value is not None:
            np.testing.assert_array_equal(after[key][1], value, err_msg=f"{what}: {key}")


def _cases():
    Xb = _binary(n=40, D=5)
    Xr = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)
    ids = np.random.default_rng(2).integers(0, 4, (8, 6))
    fit_kw = dict(epochs=1, batch_size=20, lr=1e-2, random_state=0, progress=False)
    return {
        "VAE": (lambda: VAE(5, n_latent=2, hidden=(3,), random_state=0).fit(Xb, **fit_kw), Xb,
                ["elbo", "log_marginal", "encode", "reconstruct", "validation_loss", "sample"]),
        "AEVBFactorAnalysis": (
            lambda: AEVBFactorAnalysis(5, 2, random_state=0).fit(Xr, **fit_kw), Xr,
            ["elbo", "exact_elbo", "log_evidence", "score_samples", "score", "posterior",
             "validation_loss", "sample"]),
        "NADE": (lambda: NADE(5, n_hidden=3, random_state=0).fit(Xb, **fit_kw), Xb,
                 ["log_conditionals", "score_samples", "score", "validation_loss", "sample"]),
        "FVSBN": (lambda: FVSBN(5, random_state=0).fit(Xb, **fit_kw), Xb,
                  ["log_conditionals", "score_samples", "score", "validation_loss", "sample"]),
        "RNADE": (lambda: RNADE(5, n_hidden=3, n_components=2, random_state=0).fit(Xr, **fit_kw),
                  Xr, ["log_conditionals", "score_samples", "score", "validation_loss", "sample"]),
        "MADE": (lambda: MADE(5, hidden=(6,), random_state=0).fit(Xb, **fit_kw), Xb,
                 ["log_conditionals", "score_samples", "score", "validation_loss", "sample"]),
        "CharRNN": (lambda: CharRNN(4, n_embed=3, n_hidden=5, seq_len=5,
                                    random_state=0).fit(ids, **fit_kw), ids,
                    ["predict_log_proba", "score_samples", "validation_loss", "sample"]),
        "RBM": (lambda: RBM(n_components=3, n_iter=1, batch_size=20, random_state=0).fit(Xb), Xb,
                ["free_energy", "transform", "score_samples", "score", "gibbs", "sample",
                 "pseudo_log_likelihood"]),
        "GaussianBernoulliRBM": (
            lambda: GaussianBernoulliRBM(n_components=3, n_iter=1, batch_size=20,
                                         random_state=0).fit(Xr), Xr,
            ["free_energy", "transform", "gibbs", "sample"]),
    }


def _call(model, method, X):
    fn = getattr(model, method)
    if method in ("sample",):
        return fn(3, rng=0) if "rng" in fn.__code__.co_varnames else fn(3)
    if method == "gibbs":
        return fn(X, rng=0)
    if method in ("elbo", "log_marginal"):
        return fn(X, rng=0)
    return fn(X)


@pytest.mark.parametrize("name", sorted(_cases()))
def test_inference_never_changes_the_fitted_model(name):
    make, X, methods = _cases()[name]
    model = make()
    X_before = X.copy()
    for method in methods:
        before = _snapshot(model)
        _call(model, method, X)
        _assert_unchanged(before, _snapshot(model), f"{name}.{method}")
    np.testing.assert_array_equal(X, X_before)


# --------------------------------------------------------------------------- CVAE, GMVAE, VRNN, SBN
def _same(a, b):
    return set(a) == set(b) and all(np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def test_cvae_gmvae_vrnn_sbn_refit_start_again_and_warm_start_continues():
    from lvm_core.models.cvae import CVAE
    from lvm_core.models.gmvae import GMVAE
    from lvm_core.models.sbn import SBNVAE
    from lvm_core.models.vrnn import VRNN

    rng = np.random.default_rng(0)
    X = (rng.random((48, 6)) > 0.5).astype(np.float32)
    y = rng.integers(0, 3, 48)
    S = (rng.random((24, 4, 3)) > 0.5).astype(np.float32)
    cases = [(lambda **kw: CVAE(6, 3, n_latent=2, hidden=(8,), random_state=0, **kw), (X, y)),
             (lambda **kw: VRNN(3, n_latent=2, n_hidden=5, phi_x=(4,), phi_z=(4,),
                                encoder=(4,), decoder=(4,), prior=(4,), random_state=0, **kw),
              (S,)),
             (lambda **kw: GMVAE(6, n_components=3, n_latent=2, hidden=(8,), random_state=0,
                                 **kw), (X,)),
             (lambda **kw: SBNVAE(6, n_latent=3, baseline_hidden=(4,), random_state=0, **kw),
              (X,))]
    for make, data in cases:
        fit_kw = dict(epochs=1, batch_size=16, random_state=1, progress=False)
        model = make().fit(*data, **fit_kw)
        first = {k: np.array(v) for k, v in model.params.items()}
        model.fit(*data, **fit_kw)
        assert _same(first, model.params)  # a second fit starts again from the initialisation
        warm = make(warm_start=True).fit(*data, **fit_kw)
        warm.fit(*data, **fit_kw)
        assert not _same(first, warm.params)  # warm_start continues
