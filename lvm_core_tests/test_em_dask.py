"""EM on a dask.distributed cluster equals the single-process fit.

One LocalCluster per module: 2 worker processes, loopback only, dashboard
off, one thread each.  The workers run the E-steps (numba kernels included)
on their blocks; statistics are tree-summed and the M-step runs here.
"""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from lvm_core_tests.conftest import require

RTOL = 1e-10

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(scope="module")
def client():
    distributed = require("distributed")
    require("dask.array")
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       host="127.0.0.1", dashboard_address=None,
                                       silence_logs=50)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def close(a, b, rtol=RTOL, atol=1e-12):
    assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


def blobs(rng, N=1200, D=3, K=3, offset=30.0):
    centers = rng.normal(size=(K, D)) * 4.0 + offset
    return centers[rng.integers(0, K, size=N)] + rng.normal(size=(N, D))


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_gmm_dask_array_and_client_equal_in_process(client, covariance_type):
    import dask.array as da

    from lvm_core.models.gmm import GaussianMixture

    X = blobs(np.random.default_rng(0))
    kwargs = dict(n_components=3, covariance_type=covariance_type, random_state=0, max_iter=6,
                  tol=0.0)
    ref = GaussianMixture(**kwargs).fit(X)
    for got in (GaussianMixture(**kwargs).fit(da.from_array(X, chunks=(250, 3))),
                GaussianMixture(**kwargs).fit(X, client=client, chunk_size=500)):
        close(got.lower_bounds_, ref.lower_bounds_)
        for name in ("weights_", "means_", "covariances_"):
            close(getattr(got, name), getattr(ref, name))


def test_hmm_on_dask_equals_in_process(client):
    import dask.array as da

    from lvm_core.models.hmm import CategoricalHMM, GaussianHMM

    rng = np.random.default_rng(1)
    true = GaussianHMM(3, covariance_type="diag")
    true.startprob_ = np.full(3, 1 / 3)
    true.transmat_ = np.full((3, 3), 0.1) + 0.7 * np.eye(3)
    true.means_ = rng.normal(size=(3, 2)) * 3.0
    true.covars_ = np.ones((3, 2))
    lengths = np.array([300, 200, 250, 150, 100])
    X, _ = true.sample(int(lengths.sum()), random_state=2)
    kwargs = dict(n_components=3, random_state=0, n_iter=4, tol=0.0)
    ref = GaussianHMM(**kwargs).fit(X, lengths)
    for got in (GaussianHMM(**kwargs).fit(X, lengths, client=client, chunk_size=400),
                GaussianHMM(**kwargs).fit(da.from_array(X, chunks=(100, 2)), lengths)):
        close(got.monitor_.history, ref.monitor_.history)
        for name in ("startprob_", "transmat_", "means_", "covars_"):
            close(getattr(got, name), getattr(ref, name))
    symbols = (np.abs(X[:, :1]) * 2).astype(np.int64) % 5
    ref = CategoricalHMM(**kwargs).fit(symbols, lengths)
    got = CategoricalHMM(**kwargs).fit(symbols, lengths, client=client)
    close(got.monitor_.history, ref.monitor_.history)
    close(got.emissionprob_, ref.emissionprob_)


def test_factor_models_and_bernoulli_mixture_on_dask(client):
    import dask.array as da

    from lvm_core.models.bernoulli_mixture import BernoulliMixture
    from lvm_core.models.factor_analysis import PPCA, FactorAnalysis

    rng = np.random.default_rng(3)
    X = rng.normal(size=(800, 2)) @ rng.normal(size=(2, 6)) + 0.3 * rng.normal(size=(800, 6)) + 5
    for model in (FactorAnalysis(2), PPCA(2)):
        ref = model.fit(X)
        cov, loglike = ref.get_covariance().copy(), list(ref.loglike_)
        got = model.fit(da.from_array(X, chunks=(200, 6)))
        close(got.get_covariance(), cov)
        close(got.loglike_, loglike)
    B = (rng.random((600, 5)) < rng.uniform(0.1, 0.9, size=5)).astype(np.float64)
    kwargs = dict(n_components=2, random_state=0, max_iter=5, tol=0.0)
    ref = BernoulliMixture(**kwargs).fit(B)
    got = BernoulliMixture(**kwargs).fit(B, client=client, chunk_size=150)
    close(got.lower_bounds_, ref.lower_bounds_)
    close(got.probs_, ref.probs_)


def test_hmm_on_a_dask_bag_of_sequences_equals_in_process(client):
    """A dask Bag whose elements are whole sequences: the lengths come from the Bag."""
    db = require("dask.bag")
    from lvm_core.models.hmm import GaussianHMM

    rng = np.random.default_rng(4)
    lengths = np.array([120, 80, 150, 60, 90])
    seqs = [rng.normal(size=(t, 2)) + (i % 2) * 3.0 for i, t in enumerate(lengths)]
    X = np.concatenate(seqs)
    kwargs = dict(n_components=2, random_state=0, n_iter=4, tol=0.0)
    ref = GaussianHMM(**kwargs).fit(X, lengths)
    got = GaussianHMM(**kwargs).fit(db.from_sequence(seqs, npartitions=3))
    close(got.monitor_.history, ref.monitor_.history)
    for name in ("startprob_", "transmat_", "means_", "covars_"):
        close(getattr(got, name), getattr(ref, name))
    with pytest.raises(ValueError, match="lengths must be None"):
        GaussianHMM(**kwargs).fit(db.from_sequence(seqs, npartitions=2), lengths)
