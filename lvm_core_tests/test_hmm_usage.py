"""HMMs used as hmmlearn users expect: a second fit starts from the
initialisation (unless ``warm_start``), hand-set parameters are kept only when
not in ``init``, inference never changes the estimator, parameters and priors
may be lists or arrays of any real dtype, refits on data of another width,
and the stationary distribution.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

from lvm_core.models.hmm import GMMHMM, CategoricalHMM, GaussianHMM, MultinomialHMM, PoissonHMM

KINDS = ("gaussian", "categorical", "poisson", "gmm", "multinomial")
PARAMS = {"gaussian": ("startprob_", "transmat_", "means_", "covars_"),
          "categorical": ("startprob_", "transmat_", "emissionprob_"),
          "poisson": ("startprob_", "transmat_", "lambdas_"),
          "multinomial": ("startprob_", "transmat_", "emissionprob_"),
          "gmm": ("startprob_", "transmat_", "weights_", "means_", "covars_")}


def _data(kind, seed=0, T=120, D=2):
    rng = np.random.default_rng(seed)
    z = (np.arange(T) // 20) % 2
    if kind == "categorical":
        return np.where(rng.random(T) < 0.8, 2 * z, rng.integers(0, 3, T))[:, None]
    if kind == "multinomial":
        p = np.where(z[:, None] == 1, np.linspace(1.0, 2.0, D), np.linspace(2.0, 1.0, D))
        return np.stack([rng.multinomial(5, row / row.sum()) for row in p])
    if kind == "poisson":
        return rng.poisson(np.where(z[:, None] == 1, 6.0, 1.0), size=(T, D))
    return rng.normal(size=(T, D)) + 4.0 * z[:, None]


def _model(kind, **kw):
    kw.setdefault("random_state", 0)
    kw.setdefault("n_iter", 4)
    kw.setdefault("tol", 0.0)
    cls = {"gaussian": GaussianHMM, "categorical": CategoricalHMM, "poisson": PoissonHMM,
           "gmm": GMMHMM, "multinomial": MultinomialHMM}[kind]
    if kind == "gmm":
        kw.setdefault("n_mix", 2)
    if kind == "multinomial":
        kw.setdefault("n_trials", 5)
    return cls(2, **kw)


def _snapshot(model):
    return {k: (v, copy.deepcopy(v)) for k, v in vars(model).items()}


def _assert_unchanged(model, snap):
    now = vars(model)
    assert set(now) == set(snap), f"attributes added/removed: {set(now) ^ set(snap)}"
    for k, (obj, value) in snap.items():
        assert now[k] is obj, f"{k} was rebound"
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(now[k], value, err_msg=k)


@pytest.mark.parametrize("kind", KINDS)
def test_second_fit_starts_from_the_initialisation(kind):
    """fit(X2) after fit(X1) gives what a fresh estimator gives on X2 (it used to
    continue from the first fit's parameters)."""
    X1, X2 = _data(kind, seed=1), _data(kind, seed=2)
    twice = _model(kind).fit(X1).fit(X2)
    fresh = _model(kind).fit(X2)
    for name in PARAMS[kind]:
        np.testing.assert_allclose(getattr(twice, name), getattr(fresh, name), rtol=1e-12,
                                   atol=1e-14, err_msg=name)
    np.testing.assert_allclose(twice.monitor_.history, fresh.monitor_.history, rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_warm_start_continues_from_the_previous_fit(kind):
    """warm_start=True: fit(X) with n_iter=2 twice equals n_iter=4 from the same start."""
    X = _data(kind, seed=3)
    warm = _model(kind, n_iter=2, warm_start=True).fit(X).fit(X)
    once = _model(kind, n_iter=4).fit(X)
    for name in PARAMS[kind]:
        np.testing.assert_allclose(getattr(warm, name), getattr(once, name), rtol=1e-9,
                                   atol=1e-12, err_msg=name)


def test_hand_set_parameter_kept_unless_in_init():
    """A parameter assigned after a fit is kept by init="auto" (and by a tuple
    init that does not name it), and drawn afresh when init names it."""
    X = _data("gaussian", seed=4)
    m = _model("gaussian", learn=("startprob", "means", "covars")).fit(X)
    A = np.array([[0.6, 0.4], [0.3, 0.7]])
    m.transmat_ = A
    m.fit(X)
    np.testing.assert_array_equal(m.transmat_, A)
    m.transmat_ = A
    m.set_params(init=("startprob", "means", "covars")).fit(X)
    np.testing.assert_array_equal(m.transmat_, A)
    m.transmat_ = A
    m.set_params(init=("startprob", "transmat", "means", "covars")).fit(X)
    assert not np.allclose(m.transmat_, A)
    # a fitted transmat_ is not "set by hand": init="auto" draws it again
    fresh = _model("gaussian", learn=("startprob", "means", "covars")).fit(X)
    again = copy.deepcopy(fresh).fit(X)
    np.testing.assert_array_equal(again.transmat_, fresh.transmat_)


@pytest.mark.parametrize("kind", ["gaussian", "poisson", "gmm", "categorical"])
def test_refit_on_data_of_another_width(kind):
    """A second fit on data with another number of features (symbols) works."""
    X = _data(kind, seed=5, D=2)
    m = _model(kind).fit(X)
    X3 = _data(kind, seed=5, D=3)
    if kind == "categorical":
        X3 = X3 + 2  # symbols up to 4: more than the first fit's 3
    m.fit(X3)
    assert np.isfinite(m.score(X3))
    with pytest.raises(ValueError, match="features|symbol"):
        m.score(X if kind != "categorical" else X + 10)


@pytest.mark.parametrize("kind", KINDS)
def test_inference_never_changes_the_estimator(kind):
    """predict, score, decode, predict_proba, score_samples, sample, aic/bic and
    the stationary distribution leave every attribute bound to the same,
    unchanged object, and do not change X."""
    X = _data(kind, seed=6)
    X_copy = X.copy()
    m = _model(kind).fit(X)
    snap = _snapshot(m)
    m.predict(X)
    m.score(X)
    m.score_samples(X)
    m.predict_proba(X)
    m.decode(X, algorithm="map")
    m.decode(X, algorithm="viterbi")
    m.sample(5, random_state=1)
    m.aic(X)
    m.bic(X)
    m.get_stationary_distribution()
    _assert_unchanged(m, snap)
    np.testing.assert_array_equal(X, X_copy)


def _hand_params(kind, dtype):
    pi, A = [0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]]
    if dtype == "int":  # integer arrays where the values allow it
        pi, A = [1, 0], [[1, 0], [0, 1]]
    p = {"startprob_": pi, "transmat_": A}
    if kind == "gaussian":
        p.update(means_=[[0, 0], [4, 4]], covars_=[[1, 1], [2, 2]])
    elif kind == "categorical":
        p.update(emissionprob_=[[0.25, 0.25, 0.5], [0.5, 0.25, 0.25]] if dtype != "int"
                 else [[0, 0, 1], [1, 0, 0]])
    elif kind == "poisson":
        p.update(lambdas_=[[1, 2], [5, 6]])
    elif kind == "multinomial":
        p.update(emissionprob_=[[0.25, 0.75], [0.5, 0.5]] if dtype != "int" else [[0, 1], [1, 0]])
    else:
        p.update(weights_=[[0.5, 0.5], [0.5, 0.5]] if dtype != "int" else [[1, 0], [0, 1]],
                 means_=[[[0, 0], [1, 1]], [[4, 4], [5, 5]]], covars_=[[[1, 1], [1, 1]],
                                                                     [[2, 2], [2, 2]]])
    if dtype == "list":
        return p
    np_dtype = {"float32": np.float32, "int": np.int64, "float64": np.float64}[dtype]
    return {k: np.asarray(v, dtype=np_dtype) for k, v in p.items()}


@pytest.mark.parametrize("dtype", ["list", "float32", "int", "float64"])
@pytest.mark.parametrize("kind", KINDS)
def test_parameters_set_as_lists_or_any_real_dtype(kind, dtype):
    """Hand-set parameters as lists, float32 or integer arrays: inference,
    sampling, a fit from them (init=()) and the stationary distribution work,
    and the caller's values are not changed."""
    X = _data(kind, seed=7)
    if kind == "categorical" and dtype == "int":
        X = np.array([[2], [2], [2]])  # possible under the 0/1 parameters (state 0 only)
    if kind == "multinomial" and dtype == "int":
        X = np.array([[0, 5], [0, 5]])
    m = _model(kind, init=())
    hand = _hand_params(kind, dtype)
    before = copy.deepcopy(hand)
    for name, value in hand.items():
        setattr(m, name, value)
    ref = _model(kind, init=())
    for name, value in hand.items():
        setattr(ref, name, np.asarray(value, dtype=np.float64))
    np.testing.assert_allclose(m.score(X), ref.score(X), rtol=1e-6 if dtype == "float32" else 1e-12)
    m.predict(X)
    m.predict_proba(X)
    m.sample(4, random_state=0)
    m.bic(X)
    assert np.isclose(np.sum(m.get_stationary_distribution()), 1.0)
    if kind not in ("categorical", "multinomial") or dtype != "int":
        m.fit(X)
    for name in hand:
        if isinstance(before[name], list):
            assert hand[name] == before[name]
        else:
            np.testing.assert_array_equal(hand[name], before[name])


def test_priors_as_lists():
    """Prior hyper-parameters given as lists work like the same arrays."""
    X = _data("gaussian", seed=8)
    kw = dict(startprob_prior=[2.0, 3.0], transmat_prior=[[2.0, 1.0], [1.0, 2.0]],
              means_prior=[[0.0, 0.0], [1.0, 1.0]], means_weight=[0.1, 0.1])
    a = _model("gaussian", **kw).fit(X)
    b = _model("gaussian", **{k: np.asarray(v) for k, v in kw.items()}).fit(X)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)
    Xc = _data("categorical", seed=8)
    c = _model("categorical", emissionprob_prior=[[1.0, 2.0, 1.0], [2.0, 1.0, 1.0]]).fit(Xc)
    assert np.all(np.isfinite(c.emissionprob_))
    Xp = _data("poisson", seed=8)
    p = _model("poisson", lambdas_prior=[1.0, 2.0], lambdas_weight=[1.0, 1.0]).fit(Xp)
    assert np.all(p.lambdas_ > 0)


# ------------------------------------------------------ stationary distribution


def test_stationary_distribution_of_a_two_state_chain():
    """For A = [[1-a, a], [b, 1-b]], pi = (b, a) / (a + b) (solves pi A = pi)."""
    a, b = 0.1, 0.3
    m = GaussianHMM(2)
    m.startprob_ = [1.0, 0.0]
    m.transmat_ = [[1 - a, a], [b, 1 - b]]
    m.means_, m.covars_ = [[0.0], [1.0]], [[1.0], [1.0]]
    np.testing.assert_allclose(m.get_stationary_distribution(), [b / (a + b), a / (a + b)],
                               rtol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_stationary_distribution_solves_pi_A_equals_pi(seed):
    rng = np.random.default_rng(seed)
    K = 5
    A = rng.dirichlet(np.ones(K), size=K)
    m = CategoricalHMM(K)
    m.startprob_, m.transmat_, m.emissionprob_ = np.full(K, 1 / K), A, np.full((K, 2), 0.5)
    pi = m.get_stationary_distribution()
    np.testing.assert_allclose(pi @ A, pi, atol=1e-12)
    np.testing.assert_allclose(pi.sum(), 1.0, rtol=1e-12)
    assert np.all(pi >= 0)
    # the long-run frequency of a power of A
    np.testing.assert_allclose(np.linalg.matrix_power(A, 200)[0], pi, atol=1e-10)


def test_stationary_distribution_needs_a_fit():
    from lvm_core.validation import NotFittedError

    with pytest.raises(NotFittedError):
        GaussianHMM(2).get_stationary_distribution()


# --------------------------------------------------------- GMMHMM initialisation


def _tight_two_clusters(seed=0):
    """Two tight, far-apart clusters: more states x components than clusters."""
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0.0, 0.01, (150, 2)), rng.normal(4.0, 0.01, (150, 2))])


@pytest.mark.parametrize("ct", ["diag", "full"])
def test_gmmhmm_default_fit_never_nan_on_twenty_seeds(ct):
    """GMMHMM(4, n_mix=4) with default settings on two tight clusters: every
    seed fits with finite parameters and scores its own data (it used to fail
    in 13 (diag) / 8 (full) of 20 seeds with NaN covariances or an
    "impossible observation" error)."""
    X = _tight_two_clusters()
    for seed in range(20):
        m = GMMHMM(4, n_mix=4, covariance_type=ct, random_state=seed).fit(X)
        for name in ("weights_", "means_", "covars_", "transmat_"):
            assert np.all(np.isfinite(getattr(m, name))), (seed, name)
        assert np.isfinite(m.score(X)), seed


def test_gmmhmm_component_without_mass_keeps_its_parameters():
    """A component with weight 0 gets no posterior mass: its mean and
    covariance stay as they were (they used to become NaN), its weight stays 0."""
    X = _data("gmm", seed=9)
    for ct, cov in (("diag", [[[1.0, 1.0], [3.0, 3.0]], [[1.0, 1.0], [1.0, 1.0]]]),
                    ("spherical", [[1.0, 3.0], [1.0, 1.0]]),
                    ("full", np.tile(np.eye(2), (2, 2, 1, 1)) * np.array([1.0, 3.0])[None, :, None, None])):
        m = GMMHMM(2, n_mix=2, covariance_type=ct, init=(), n_iter=3)
        m.startprob_, m.transmat_ = [0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]]
        m.weights_ = [[1.0, 0.0], [0.5, 0.5]]
        means = np.array([[[0.0, 0.0], [9.0, 9.0]], [[4.0, 4.0], [4.5, 4.5]]])
        m.means_, m.covars_ = means, np.asarray(cov)
        m.fit(X)
        np.testing.assert_array_equal(m.means_[0, 1], means[0, 1])
        np.testing.assert_array_equal(m.covars_[0, 1], np.asarray(cov)[0, 1])
        assert m.weights_[0, 1] == 0.0
        assert np.all(np.isfinite(m.covars_)) and np.all(np.isfinite(m.means_))


def test_gmmhmm_initialises_each_state_from_its_own_data():
    """With n_iter=1 the start is visible: the M components of each state sit
    in one cluster of the data (per-state k-means), so no component is empty."""
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [0.0, 10.0], [10.0, 0.0], [10.0, 10.0]])
    X = np.concatenate([c + rng.normal(0.0, 0.3, (60, 2)) for c in centres])
    for seed in range(10):
        m = GMMHMM(4, n_mix=2, random_state=seed, n_iter=1, learn=()).fit(X)
        for k in range(4):
            nearest = np.argmin(((m.means_[k][:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
            assert nearest[0] == nearest[1], (seed, k)  # both components in one cluster
        _, post = m.score_samples(X)
        assert np.all(post.sum(axis=0) > 1.0), seed


@pytest.mark.parametrize("ct", ["diag", "full"])
def test_gmmhmm_fit_does_not_depend_on_sequence_order(ct):
    """The same sequences in another order give the same fit up to round-off
    (the start used to depend on the row order)."""
    rng = np.random.default_rng(2)
    z = (np.arange(300) // 30) % 3
    X = rng.normal(size=(300, 2)) + 3.0 * np.stack([z, z % 2], axis=1)
    lengths = [60] * 5
    perm = [4, 2, 0, 3, 1]
    Xp = np.concatenate([X[i * 60:(i + 1) * 60] for i in perm])
    a = GMMHMM(3, n_mix=2, covariance_type=ct, random_state=0).fit(X, lengths)
    b = GMMHMM(3, n_mix=2, covariance_type=ct, random_state=0).fit(Xp, lengths)
    np.testing.assert_allclose(a.score(X, lengths), b.score(X, lengths), rtol=1e-9)
    for name in ("startprob_", "transmat_", "weights_", "means_", "covars_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-6, atol=1e-9,
                                   err_msg=name)


# ------------------------------------------------------------- PoissonHMM floor


def test_poisson_rates_keep_a_positive_floor():
    """A state that only sees zeros used to get a rate of exactly 0, after which
    the model refused its own score; the rate now stops at LAMBDA_FLOOR."""
    from lvm_core.families.poisson import LAMBDA_FLOOR

    rng = np.random.default_rng(0)
    X = np.concatenate([np.zeros((50, 1), int), rng.poisson(20, (50, 1)), np.zeros((50, 1), int)])
    for seed in range(5):
        m = PoissonHMM(2, random_state=seed, n_iter=20).fit(X)
        assert np.all(m.lambdas_ >= LAMBDA_FLOOR)
        assert np.isfinite(m.score(X))
        m.predict(np.array([[3]]))  # a positive count is still possible in either state


def test_poisson_log_factorial_of_huge_counts_is_exact_and_small():
    """log n! for counts far above the table (Stirling's series) agrees with
    lgamma(n + 1) to round-off, without building a table of n entries."""
    import math

    from lvm_core.families.poisson import log_factorial

    n = np.array([0, 1, 2, 10, 4095, 4096, 4097, 10 ** 5, 10 ** 9, 2 ** 50])
    got = log_factorial(n[:, None].astype(np.float64))
    want = np.array([math.lgamma(float(v) + 1.0) for v in n])
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-10)


# ------------------------------------------------------------------ bad input


BAD_X = {
    "complex": (np.ones((5, 2)) + 1j, ValueError, "Complex"),
    "object": (np.array([["a", "b"]] * 5, dtype=object), TypeError, "numbers|numeric"),
    "strings": (np.array([["a", "b"]] * 5), TypeError, "numbers|numeric"),
    "0-row": (np.zeros((0, 2)), ValueError, "row"),
    "0-feature": (np.zeros((5, 0)), ValueError, "feature"),
}


@pytest.mark.parametrize("what", sorted(BAD_X))
@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_is_refused_with_the_fix(kind, what):
    X, err, match = BAD_X[what]
    if kind == "categorical" and what == "0-feature":
        X = np.zeros((5, 0), dtype=int)
    for method in ("fit", "score", "predict"):
        m = _model(kind)
        if method != "fit":
            m.fit(_data(kind, seed=0))
        with pytest.raises(err, match=match):
            getattr(m, method)(X)


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_input_is_refused_saying_so(kind):
    sparse = pytest.importorskip("scipy.sparse")
    X = sparse.csr_matrix(np.ones((5, 2)) if kind != "categorical" else np.ones((5, 1)))
    with pytest.raises(TypeError, match="sparse"):
        _model(kind).fit(X)


def test_huge_symbol_is_refused_before_allocating():
    """One symbol of 10^9 would make emissionprob_ (K, 10^9 + 1): a ValueError
    saying how to re-encode, instead of allocating gigabytes."""
    X = np.array([[0], [1], [10 ** 9]])
    with pytest.raises(ValueError, match="np.unique"):
        CategoricalHMM(2).fit(X)
    with pytest.raises(ValueError, match="n_features"):
        CategoricalHMM(2, n_features=10 ** 9).fit(np.array([[0], [1]]))


def test_huge_poisson_counts_fit_without_a_huge_table():
    """A count of 10^9 fits (no table of 10^9 log-factorials); counts above
    2^53 are refused."""
    X = np.array([[0], [3], [10 ** 9], [10 ** 9 + 7], [2]])
    m = PoissonHMM(2, random_state=0, n_iter=3).fit(X)
    assert np.isfinite(m.score(X))
    with pytest.raises(ValueError, match="2\\*\\*53"):
        PoissonHMM(2).fit(np.array([[0.0], [2.0 ** 60]]))


# ------------------------------------------------------------ other backends


def test_new_models_on_strict_device_equal_numpy(backend64):
    """MultinomialHMM and the variational HMMs fit on array-api-strict's device1
    (the xp kernels) as on NumPy; get_stationary_distribution stays on the device."""
    from lvm_core.models.hmm import VariationalCategoricalHMM, VariationalGaussianHMM

    b = backend64
    X = _data("multinomial", seed=3)
    ref = _model("multinomial", n_iter=3).fit(X)
    dev = _model("multinomial", n_iter=3).fit(b.asarray(X))
    np.testing.assert_allclose(dev.monitor_.history, ref.monitor_.history, rtol=1e-10)
    np.testing.assert_allclose(b.to_numpy(dev.emissionprob_), ref.emissionprob_, rtol=1e-9)
    pi = dev.get_stationary_distribution()
    assert type(pi) is type(dev.transmat_)
    np.testing.assert_allclose(b.to_numpy(pi), ref.get_stationary_distribution(), rtol=1e-9)
    for cls, X in ((VariationalCategoricalHMM, _data("categorical", seed=3)),
                   (VariationalGaussianHMM, _data("gaussian", seed=3))):
        r = cls(2, random_state=0, n_iter=3, tol=0.0).fit(X)
        d = cls(2, random_state=0, n_iter=3, tol=0.0).fit(b.asarray(X))
        np.testing.assert_allclose(d.monitor_.history, r.monitor_.history, rtol=1e-9)
        np.testing.assert_allclose(d.score(b.asarray(X)), r.score(X), rtol=1e-9)


def test_init_rows_do_not_depend_on_row_order_beyond_the_subset_size():
    """Above INIT_MAX_ROWS the initialisation subset is drawn from the rows in
    lexicographic order: the same rows in another order give the same subset."""
    from lvm_core.models.hmm.base import BaseHMM

    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 2))
    perm = rng.permutation(500)
    a = BaseHMM._init_sample(X, np.random.default_rng(1), max_rows=50)
    b = BaseHMM._init_sample(X[perm], np.random.default_rng(1), max_rows=50)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 2)
