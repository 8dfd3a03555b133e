"""Out-of-core and online EM give the in-memory results.

* chunked fits (an h5py.Dataset or any array-like with row slicing, several
  chunk sizes) equal the in-memory fit to 1e-10 relative, for every mixture,
  HMM and factor model;
* HMMs: chunks hold whole sequences; the order of the sequences does not
  change the fit (from fixed starting parameters) beyond round-off;
* online EM (``partial_fit``) with step size 1 on one chunk is exactly one EM
  iteration; with a decaying step size it approaches the batch optimum.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from lvm_core.models.bernoulli_mixture import BernoulliMixture
from lvm_core.models.factor_analysis import PPCA, FactorAnalysis
from lvm_core.models.gmm import GaussianMixture
from lvm_core.models.hmm import GMMHMM, CategoricalHMM, GaussianHMM, PoissonHMM

RTOL = 1e-10

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


class Rows:
    """A minimal array-like: ``shape`` and row slicing only (no __array__)."""

    def __init__(self, X):
        self._X = X
        self.shape = X.shape
        self.reads = []

    def __getitem__(self, index):
        rows = index[0] if isinstance(index, tuple) else index
        if isinstance(rows, slice):
            self.reads.append(rows.stop - rows.start)
        return np.array(self._X[index], copy=True)


def blobs(rng, N=900, D=3, K=3, offset=50.0):
    centers = rng.normal(size=(K, D)) * 4.0 + offset
    return centers[rng.integers(0, K, size=N)] + rng.normal(size=(N, D))


def close(a, b, rtol=RTOL, atol=0.0):
    assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def h5file(tmp_path_factory):
    h5py = pytest.importorskip("h5py")
    path = tmp_path_factory.mktemp("ooc") / "data.h5"
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f["gauss"] = blobs(rng)
        f["binary"] = (rng.random((600, 6)) < rng.uniform(0.1, 0.9, size=6)).astype(np.float64)
    return path


# ----------------------------------------------------------------- mixtures

@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("chunk_size", [1, 97, 450, 10_000])
def test_gmm_streamed_equals_in_memory(h5file, covariance_type, chunk_size):
    import h5py

    kwargs = dict(n_components=3, covariance_type=covariance_type, random_state=0, max_iter=8,
                  tol=0.0)
    with h5py.File(h5file, "r") as f:
        X = f["gauss"][...]
        if chunk_size == 1:  # every row its own chunk (the plain array-like, a shorter run)
            X = X[:120]
            kwargs["max_iter"] = 3
            ds = Rows(X)
        else:
            ds = f["gauss"]
        ref = GaussianMixture(**kwargs).fit(X)
        got = GaussianMixture(**kwargs).fit(ds, chunk_size=chunk_size)
    close(got.lower_bounds_, ref.lower_bounds_)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        close(getattr(got, name), getattr(ref, name), atol=1e-13)


def test_gmm_streaming_reads_one_chunk_at_a_time():
    X = blobs(np.random.default_rng(1), N=500)
    ds = Rows(X)
    GaussianMixture(3, random_state=0, max_iter=3, tol=0.0).fit(ds, chunk_size=64)
    assert max(ds.reads) <= 64


def test_gmm_chunk_size_is_validated():
    X = blobs(np.random.default_rng(1), N=50)
    with pytest.raises(ValueError, match="chunk_size"):
        GaussianMixture(2).fit(X, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        GaussianMixture(2).fit(X, chunk_size=2.5)
    with pytest.raises(TypeError, match="row slicing"):
        GaussianMixture(2).fit(object(), chunk_size=10)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gmm_partial_fit_with_step_one_is_one_em_iteration(covariance_type):
    rng = np.random.default_rng(2)
    X = blobs(rng, N=300)
    start = GaussianMixture(3, covariance_type=covariance_type, random_state=0, max_iter=2).fit(X)
    inits = dict(weights_init=start.weights_, means_init=start.means_,
                 precisions_init=start.precisions_)
    one = GaussianMixture(3, covariance_type=covariance_type, max_iter=1, **inits).fit(X)
    online = GaussianMixture(3, covariance_type=covariance_type, **inits)
    online.partial_fit(X, step_size=1.0)
    close(online.lower_bound_, one.lower_bounds_[0])
    for name in ("weights_", "means_", "covariances_"):
        close(getattr(online, name), getattr(one, name), atol=1e-13)


def test_gmm_online_em_approaches_the_batch_fit():
    rng = np.random.default_rng(3)
    X = blobs(rng, N=6000)
    batch = GaussianMixture(3, covariance_type="diag", random_state=0, max_iter=200).fit(X)
    online = GaussianMixture(3, covariance_type="diag", random_state=0,
                             means_init=batch.means_ + 0.5)
    for epoch in range(3):
        for chunk in np.array_split(X[rng.permutation(len(X))], 30):
            online.partial_fit(chunk)
    assert online.online_steps_ == 90
    assert abs(online.score(X) - batch.score(X)) < 1e-2
    order = np.argsort(online.means_[:, 0])
    assert_allclose(online.means_[order], batch.means_[np.argsort(batch.means_[:, 0])], atol=0.6)


def test_bernoulli_mixture_streamed_equals_in_memory(h5file):
    import h5py

    with h5py.File(h5file, "r") as f:
        X = f["binary"][...]
        for init in ("random", "kmeans"):
            kwargs = dict(n_components=3, random_state=0, max_iter=10, tol=0.0, init_params=init)
            ref = BernoulliMixture(**kwargs).fit(X)
            got = BernoulliMixture(**kwargs).fit(f["binary"], chunk_size=77)
            close(got.lower_bounds_, ref.lower_bounds_)
            close(got.probs_, ref.probs_)
            close(got.weights_, ref.weights_)


@pytest.mark.parametrize("model", [FactorAnalysis(2), PPCA(2), PPCA(2, method="em")],
                         ids=["fa", "ppca", "ppca-em"])
@pytest.mark.parametrize("chunk_size", [33, 500])
def test_factor_models_streamed_equal_in_memory(h5file, model, chunk_size):
    import h5py

    with h5py.File(h5file, "r") as f:
        ref = model.fit(f["gauss"][...])
        cov, loglike, mean = ref.get_covariance().copy(), list(ref.loglike_), ref.mean_.copy()
        got = model.fit(f["gauss"], chunk_size=chunk_size)
    close(got.loglike_, loglike)
    close(got.get_covariance(), cov, atol=1e-13)
    close(got.mean_, mean)


# ---------------------------------------------------------------------- HMMs

KINDS = {
    "gaussian-diag": (GaussianHMM, dict(covariance_type="diag")),
    "gaussian-full": (GaussianHMM, dict(covariance_type="full")),
    "gaussian-tied": (GaussianHMM, dict(covariance_type="tied")),
    "gaussian-spherical": (GaussianHMM, dict(covariance_type="spherical")),
    "gmm-diag": (GMMHMM, dict(n_mix=2, covariance_type="diag")),
    "gmm-full": (GMMHMM, dict(n_mix=2, covariance_type="full")),
    "gmm-tied": (GMMHMM, dict(n_mix=2, covariance_type="tied")),
    "gmm-spherical": (GMMHMM, dict(n_mix=2, covariance_type="spherical")),
    "categorical": (CategoricalHMM, dict()),
    "poisson": (PoissonHMM, dict()),
}
LENGTHS = np.array([120, 80, 200, 50, 150, 100])


def hmm_data(kind, seed=0):
    rng = np.random.default_rng(seed)
    true = GaussianHMM(3, covariance_type="diag")
    true.startprob_ = np.full(3, 1 / 3)
    true.transmat_ = np.full((3, 3), 0.1) + 0.7 * np.eye(3)
    true.means_ = rng.normal(size=(3, 2)) * 3.0 + 20.0
    true.covars_ = np.ones((3, 2))
    X, _ = true.sample(int(LENGTHS.sum()), random_state=seed)
    if kind == "categorical":
        return (np.abs(X[:, :1]).astype(np.int64) % 6)
    if kind == "poisson":
        return np.abs(X - 14.0).astype(np.int64) % 9
    return X


def params_of(model):
    return {n: np.array(getattr(model, n + "_"), copy=True) for n in model._param_names_all}


def close_params(a, b, rtol=RTOL):
    for name in a:
        close(a[name], b[name], rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("kind", list(KINDS))
def test_hmm_streamed_equals_in_memory(h5file, kind, tmp_path):
    import h5py

    cls, hyper = KINDS[kind]
    X = hmm_data(kind)
    kwargs = dict(n_components=3, random_state=0, n_iter=4, tol=0.0, **hyper)
    ref = cls(**kwargs).fit(X, LENGTHS)
    with h5py.File(tmp_path / "seq.h5", "w") as f:
        f["X"] = X
    with h5py.File(tmp_path / "seq.h5", "r") as f:
        for chunk_size in (1, 250, 10_000):
            got = cls(**kwargs).fit(f["X"], LENGTHS, chunk_size=chunk_size)
            close(got.monitor_.history, ref.monitor_.history)
            close_params(params_of(got), params_of(ref))


@pytest.mark.parametrize("kind", ["gaussian-diag", "gaussian-full", "gmm-diag", "categorical",
                                  "poisson"])
def test_hmm_sequence_order_does_not_matter(kind):
    cls, hyper = KINDS[kind]
    X = hmm_data(kind)
    start = cls(n_components=3, random_state=0, n_iter=1, **hyper).fit(X, LENGTHS)
    fixed = params_of(start)

    def fitted(X, lengths, **kw):
        model = cls(n_components=3, n_iter=4, tol=0.0, init=(), **hyper)
        for name, value in fixed.items():
            setattr(model, name + "_", value)
        return model.fit(X, lengths, **kw)

    ref = fitted(X, LENGTHS)
    starts = np.concatenate([[0], np.cumsum(LENGTHS)[:-1]])
    order = np.random.default_rng(1).permutation(len(LENGTHS))
    X_perm = np.concatenate([X[starts[s]:starts[s] + LENGTHS[s]] for s in order])
    for kw in (dict(), dict(chunk_size=180)):
        got = fitted(X_perm, LENGTHS[order], **kw)
        close(got.monitor_.history, ref.monitor_.history)
        close_params(params_of(got), params_of(ref), rtol=1e-9)


def test_hmm_streamed_fit_keeps_partial_labels():
    X = hmm_data("gaussian-diag")
    states = np.full(len(X), -1)
    states[::7] = np.random.default_rng(0).integers(0, 3, size=len(states[::7]))
    kwargs = dict(n_components=3, random_state=0, n_iter=3, tol=0.0)
    ref = GaussianHMM(**kwargs).fit(X, LENGTHS, states=states)
    got = GaussianHMM(**kwargs).fit(Rows(X), LENGTHS, states=states, chunk_size=300)
    close(got.monitor_.history, ref.monitor_.history)
    close_params(params_of(got), params_of(ref))


@pytest.mark.parametrize("kind", list(KINDS))
def test_hmm_partial_fit_with_step_one_is_one_em_iteration(kind):
    cls, hyper = KINDS[kind]
    X = hmm_data(kind)
    fixed = params_of(cls(n_components=3, random_state=0, n_iter=2, **hyper).fit(X, LENGTHS))

    def model(**kw):
        m = cls(n_components=3, init=(), tol=0.0, **hyper, **kw)
        for name, value in fixed.items():
            setattr(m, name + "_", value)
        return m

    one = model(n_iter=1).fit(X, LENGTHS)
    online = model().partial_fit(X, LENGTHS, step_size=1.0)
    close(online.last_log_prob_, one.monitor_.history[0])
    close_params(params_of(online), params_of(one))


def test_hmm_online_em_improves_the_likelihood():
    X = hmm_data("gaussian-diag")
    model = GaussianHMM(3, random_state=0)
    bounds = np.concatenate([[0], np.cumsum(LENGTHS)])
    before = None
    for epoch in range(4):
        for s in range(len(LENGTHS)):
            model.partial_fit(X[bounds[s]:bounds[s + 1]])
            if before is None:
                before = model.score(X, LENGTHS)
    assert model.online_steps_ == 4 * len(LENGTHS)
    assert model.score(X, LENGTHS) > before


def test_hmm_streamed_rejects_missing_rows_option():
    X = hmm_data("gaussian-diag")
    with pytest.raises(ValueError, match="allow_missing"):
        GaussianHMM(2, allow_missing=True).fit(Rows(X), chunk_size=100)


def test_step_size_is_validated():
    X = blobs(np.random.default_rng(0), N=60)
    with pytest.raises(ValueError, match="step_size"):
        GaussianMixture(2, random_state=0).partial_fit(X, step_size=1.5)
    with pytest.raises(ValueError, match="decay"):
        GaussianMixture(2, random_state=0).partial_fit(X, decay=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="step_size"):
            GaussianHMM(2, random_state=0).partial_fit(X, step_size=0.0)


def test_dask_collection_without_a_client_says_how_to_fix():
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")

    try:
        distributed.default_client()
        pytest.skip("a default client is running in this process")
    except ValueError:
        pass
    with pytest.raises(ValueError, match="Client"):
        GaussianMixture(2).fit(da.from_array(np.ones((10, 2)), chunks=(5, 2)))
