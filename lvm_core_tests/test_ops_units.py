"""lvm_core.ops.units: layers of binary stochastic units (means, log-normalisers, samples).

* fused == reference (hypothesis, NumPy float32 / float64, in place or not);
* what the math means: p = dA/dx (float64 central differences through the public
  function), A = log sum_h exp(h . x) by enumeration, sigmoid and softplus far out;
* samples: the fused stream equals a NumPy re-implementation of SplitMix64 keyed by
  one draw of the generator, and its frequencies match p (chi-square);
* every backend (NumPy and array-api-strict's device1, both dtypes).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core import ops
from lvm_core.gradcheck import check_gradient
from lvm_core.ops import reference as ref
from lvm_core.validation import all_binary, check_finite, check_magnitude

seeds = st.integers(min_value=0, max_value=2**32 - 1)
dtypes = st.sampled_from([np.float32, np.float64])


def _data(seed, N, H, dtype, scale):
    rng = np.random.default_rng(seed)
    a = (scale * rng.standard_normal((N, H))).astype(dtype)
    b = rng.standard_normal(H).astype(dtype)
    return a, b


@settings(max_examples=30)
@given(N=st.integers(1, 7), H=st.integers(1, 40), dtype=dtypes, seed=seeds,
       scale=st.sampled_from([0.1, 3.0, 40.0]), inplace=st.booleans())
def test_bernoulli_units_fused_equals_reference(N, H, dtype, seed, scale, inplace):
    a, b = _data(seed, N, H, dtype, scale)
    p_ref, A_ref = ref.bernoulli_units(a.astype(np.float64), b.astype(np.float64))
    work = a.copy()
    p, A = ops.bernoulli_units(work, b, out=work if inplace else None)
    assert (p is work) == inplace and p.dtype == dtype and A.dtype == dtype
    tol = 2e-7 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(p, p_ref, rtol=tol * 4, atol=tol)
    np.testing.assert_allclose(A, A_ref, rtol=tol * 4, atol=tol * H)
    if not inplace:
        np.testing.assert_array_equal(work, a)  # the input is left alone


def test_bernoulli_units_far_out_and_exact_values():
    """sigmoid and softplus at 0, far out on both sides and through the float32 exponent
    cap: p in [0, 1], A = max(x, 0) + log(1 + e^-|x|) without overflow.  float32: the
    polynomial exp is capped at e^-87.3 (1.2e-38, the smallest normal float32), so p
    is exact to 1.2e-38 absolute below x = -87; x itself carries float32's 6e-8
    relative rounding, which exp(x) turns into 3e-6 relative at |x| = 30."""
    x = np.array([[0.0, 1e-8, -1e-8, 30.0, -30.0, 90.0, -90.0, 200.0, -200.0, 1e30, -1e30]])
    for dtype, rtol, atol in ((np.float32, 3e-6, 1.2e-38), (np.float64, 1e-13, 0.0)):
        p, A = ops.bernoulli_units(x.astype(dtype), np.zeros(x.shape[1], dtype))
        e = np.exp(-np.abs(x[0]))
        p_ref = np.where(x[0] >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        np.testing.assert_allclose(p[0], p_ref, rtol=rtol, atol=atol)
        sp = np.maximum(x[0], 0.0) + np.log1p(np.exp(-np.abs(x[0])))
        np.testing.assert_allclose(A[0], sp.sum(), rtol=1e-6)
        assert p[0, 0] == 0.5 and np.all((p >= 0) & (p <= 1))


@settings(max_examples=15)
@given(H=st.integers(1, 6), seed=seeds, scale=st.sampled_from([0.5, 4.0]))
def test_units_mean_is_the_gradient_of_the_log_normalizer(H, seed, scale):
    """What the math means: A(x) = log sum_{h in {0,1}^H} exp(h . x) by enumeration,
    and p = dA/dx (central differences of the public function, float64)."""
    a, b = _data(seed, 1, H, np.float64, scale)
    p, A = ops.bernoulli_units(a, b)
    x = a[0] + b
    hs = np.array(list(itertools.product([0.0, 1.0], repeat=H)))
    np.testing.assert_allclose(A[0], np.log(np.exp(hs @ x).sum()), rtol=1e-12)
    err = check_gradient(lambda v: float(ops.bernoulli_units(v[None, :], b)[1][0]),
                         a[0].copy(), p[0], name="a")
    assert err < 1e-6


def _splitmix_uniforms(key, n, dtype):
    """The fused sampler's uniforms, re-implemented with NumPy uint64 arithmetic."""
    gamma, m1, m2 = (np.uint64(v) for v in (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9,
                                             0x94D049BB133111EB))
    with np.errstate(over="ignore"):
        x = np.uint64(key) + np.arange(1, n + 1, dtype=np.uint64) * gamma
        z = (x ^ (x >> np.uint64(30))) * m1
        z = (z ^ (z >> np.uint64(27))) * m2
        z = z ^ (z >> np.uint64(31))
    if dtype == np.float32:
        return (z >> np.uint64(40)).astype(np.float32) * np.float32(2.0 ** -24)
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


@settings(max_examples=20)
@given(shape=st.sampled_from([(1,), (5,), (3, 7), (2, 3, 4)]), dtype=dtypes, seed=seeds,
       inplace=st.booleans())
def test_bernoulli_sample_is_the_documented_stream(shape, dtype, seed, inplace):
    """s = 1[u < p] with u from SplitMix64 keyed by one 64-bit draw of the generator:
    the same draws as a NumPy re-implementation, and the generator advanced by one draw."""
    rng = np.random.default_rng(seed)
    p = rng.random(shape).astype(dtype)
    g1, g2 = np.random.default_rng(seed + 1), np.random.default_rng(seed + 1)
    work = p.copy()
    s = ops.bernoulli_sample(work, g1, out=work if inplace else None)
    key = g2.integers(0, 2 ** 64, dtype=np.uint64)
    u = _splitmix_uniforms(key, p.size, dtype).reshape(shape)
    np.testing.assert_array_equal(s, (u < p).astype(dtype))
    assert (s is work) == inplace and s.dtype == dtype
    assert g1.integers(1 << 30) == g2.integers(1 << 30)  # both advanced alike


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bernoulli_sample_frequencies_match_p(dtype):
    """Chi-square over 20 probabilities x 20,000 draws each (fixed seed): the sampler is
    Bernoulli(p), and successive calls are independent (their agreement matches p^2 +
    (1 - p)^2)."""
    p = np.linspace(0.001, 0.999, 20).astype(dtype)
    P = np.broadcast_to(p, (20000, 20)).copy()
    rng = np.random.default_rng(0)
    s1, s2 = ops.bernoulli_sample(P, rng), ops.bernoulli_sample(P, rng)
    n = P.shape[0]
    for obs, q in ((s1.sum(0), p), (s2.sum(0), p), ((s1 == s2).sum(0), p * p + (1 - p) ** 2)):
        q = q.astype(np.float64)
        chi2 = float((((obs - n * q) ** 2) / (n * q * (1 - q))).sum())
        assert chi2 < 45.3, chi2  # 20 degrees of freedom, p-value 0.001


def test_units_on_every_backend(backend):
    a, b = _data(3, 4, 5, np.float64, 2.0)
    p_ref, A_ref = ref.bernoulli_units(a, b)
    p, A = ops.bernoulli_units(backend.asarray(a), backend.asarray(b))
    np.testing.assert_allclose(backend.to_numpy(p), p_ref, rtol=backend.rtol * 10)
    np.testing.assert_allclose(backend.to_numpy(A), A_ref, rtol=backend.rtol * 10)
    P = backend.asarray(np.full((4000, 2), 0.3))
    s = ops.bernoulli_sample(P, np.random.default_rng(1))
    s_host = backend.to_numpy(s)
    assert set(np.unique(s_host)) <= {0.0, 1.0} and abs(s_host.mean() - 0.3) < 0.03
    assert str(s.dtype) == str(P.dtype)


def test_fast_validation_paths_agree_with_the_definitions():
    """all_binary / check_finite / check_magnitude on NumPy floats take one-pass paths;
    they must say what the array-API definitions say, edge values included."""
    f32 = np.float32
    cases = [np.array([0.0, 1.0, -0.0]), np.array([0.0, 0.5]), np.array([np.nan, 0.0]),
             np.array([0.0, np.inf], f32), np.array([1e-45, 0.0], f32),
             np.array([5e-324, 1.0]), np.array([np.nextafter(f32(1), f32(0))], f32),
             np.array([2.0, -1.0]), np.zeros((0, 3)), np.ones((3, 4), f32)[:, ::2]]
    for x in cases:
        assert all_binary(x) == bool(np.all((x == 0) | (x == 1))), x
        if x.size and not np.all(np.isfinite(x)):
            with pytest.raises(ValueError, match="NaN|infinite"):
                check_finite(x, "X")
        else:
            assert check_finite(x, "X") is x
    big = np.array([[0.0], [-2e19]], np.float32)  # 4e38 * 2 rows overflows float32
    with pytest.raises(ValueError, match="too large"):
        check_magnitude(big, "X")
    check_magnitude(big, "X", dtype="float64")
