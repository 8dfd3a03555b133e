"""Backend matrix for lvm_core.functional: every function on numpy and on
array-api-strict's device1, in float32 and float64.  Results must equal the
NumPy float64 reference (computed from the same, possibly float32-rounded,
data), every output must keep the input dtype and stay on the input device.
"""
from __future__ import annotations

import numpy as np
import pytest

import lvm_core.functional as F
from lvm_core.backend import device_of, to_numpy
from lvm_core.gradcheck import relative_error

from .conftest import Backend

REFERENCE = Backend("numpy", "float64")
N, D, K, L, R = 5, 4, 3, 2, 3


def _data(dtype_name):
    rng = np.random.default_rng(1234)
    data = {
        "x": rng.standard_normal((N, D)),
        "W": rng.standard_normal((D, K)),
        "b": rng.standard_normal(K),
        "u": rng.uniform(size=(N, D)),
        "logits": 3.0 * rng.standard_normal((N, D)),
        "cb_logits": np.array([[-30.0, -0.6, -1e-3, 0.0], [0.2, 0.49, 0.51, 4.0],
                               [-4.0, 1e-6, 12.0, -0.3], [1.0, -1.0, 2.0, -2.0],
                               [60.0, -60.0, 0.7, 0.45]]),
        "mu": rng.standard_normal((N, L)),
        "log_var": rng.standard_normal((N, L)),
        "mu_p": rng.standard_normal(L),
        "log_var_p": rng.standard_normal(L),
        "eps": rng.standard_normal((R, N, L)),
        "g": rng.gumbel(size=(R, N, K)),
        "cat_logits": rng.standard_normal((N, K)),
        "dy": rng.standard_normal((N, K)),
        "dz": rng.standard_normal((R, N, L)),
        "dyD": rng.standard_normal((N, D)),
        "dlse": rng.standard_normal(N),
    }
    # round to the tested precision so that the reference sees the same numbers
    data = {k: v.astype(dtype_name).astype(np.float64) for k, v in data.items()}
    data["labels"] = rng.integers(0, K, size=N)
    return data


def _case_linear(B, d):
    y, cache = F.linear_forward(d["x"], d["W"], d["b"])
    return [y, *F.linear_backward(d["dy"], cache)]


def _activation_case(name, **kwargs):
    def case(B, d):
        y, cache = getattr(F, f"{name}_forward")(d["x"], **kwargs)
        return [y, getattr(F, f"{name}_backward")(d["dyD"], cache)]

    return case


def _case_helpers(B, d):
    return [F.sigmoid(d["logits"]), F.softplus(d["logits"]), F.log_sigmoid(d["logits"])]


def _case_bernoulli(B, d):
    return list(F.bernoulli_log_likelihood(d["logits"], d["u"]))


def _case_cb(B, d):
    return [*F.continuous_bernoulli_log_likelihood(d["cb_logits"], d["u"]),
            *F.continuous_bernoulli_log_normalizer(d["cb_logits"]),
            F.continuous_bernoulli_mean(d["cb_logits"])]


def _case_gaussian(B, d):
    return [*F.gaussian_log_likelihood(d["x"], d["u"], d["log_var_p"][:1] + d["x"][0, :]),
            *F.gaussian_log_likelihood(d["mu"], d["mu_p"], d["log_var"])]


def _case_categorical(B, d):
    return list(F.categorical_log_likelihood(d["cat_logits"], d["labels"]))


def _case_kl_std(B, d):
    return [*F.kl_normal_std_normal(d["mu"], d["log_var"]),
            *F.kl_normal_std_normal(d["mu"], d["log_var"], prior_var=2.5)]


def _case_kl(B, d):
    return list(F.kl_normal_normal(d["mu"], d["log_var"], d["mu_p"], d["log_var_p"]))


def _case_reparameterize(B, d):
    z, cache = F.reparameterize_forward(d["mu"], d["log_var"], d["eps"])
    return [z, *F.reparameterize_backward(d["dz"], cache)]


def _case_gumbel(B, d):
    y, cache = F.gumbel_softmax_forward(d["cat_logits"], d["g"], 0.7)
    return [y, F.gumbel_softmax_backward(d["g"], cache)]


def _case_reductions(B, d):
    y, cache = F.logsumexp_forward(d["x"], axis=-1)
    return [y, F.logsumexp_backward(d["dlse"], cache), F.logsumexp(d["x"], axis=0),
            F.logsumexp(d["x"], axis=(0, 1)), F.softmax(d["x"], axis=0),
            F.log_softmax(d["x"])]


CASES = {
    "linear": _case_linear,
    "relu": _activation_case("relu"),
    "leaky_relu": _activation_case("leaky_relu", negative_slope=0.1),
    "tanh": _activation_case("tanh"),
    "sigmoid": _activation_case("sigmoid"),
    "softplus": _activation_case("softplus"),
    "elu": _activation_case("elu", alpha=0.5),
    "helpers": _case_helpers,
    "bernoulli": _case_bernoulli,
    "continuous_bernoulli": _case_cb,
    "gaussian": _case_gaussian,
    "categorical": _case_categorical,
    "kl_normal_std_normal": _case_kl_std,
    "kl_normal_normal": _case_kl,
    "reparameterize": _case_reparameterize,
    "gumbel_softmax": _case_gumbel,
    "reductions": _case_reductions,
}


def _run(case, B):
    host = _data(B.dtype_name)
    d = {k: B.asarray(v) for k, v in host.items()}
    return case(B, d)


@pytest.mark.parametrize("name", sorted(CASES))
def test_backend_matches_numpy_float64(name, backend):
    case = CASES[name]
    outputs = _run(case, backend)
    ref_data = {k: REFERENCE.asarray(v) for k, v in _data(backend.dtype_name).items()}
    reference = case(REFERENCE, ref_data)
    assert len(outputs) == len(reference)
    tol = 2e-5 if backend.dtype_name == "float32" else 1e-12
    expected_device = device_of(backend.asarray(np.zeros(1)))
    for i, (out, ref) in enumerate(zip(outputs, reference)):
        assert out.dtype == backend.dtype, f"output {i} of {name}: {out.dtype}"
        assert device_of(out) == expected_device, f"output {i} of {name} left the device"
        host = to_numpy(out)
        assert host.shape == ref.shape
        assert np.all(np.isfinite(host))
        err = relative_error(host, ref)
        assert err < tol, f"output {i} of {name}: relative error {err:.2e} >= {tol:.0e}"


@pytest.mark.parametrize("dtype_name", ["float32", "float64"])
def test_mixed_namespaces_raise(dtype_name):
    """A NumPy array mixed with a device1 array is refused, never moved silently."""
    strict = Backend("strict-device1", dtype_name)
    x = strict.asarray(np.ones((2, 3)))
    W = np.ones((3, 2), dtype=dtype_name)
    with pytest.raises(TypeError, match="numpy"):
        F.linear_forward(x, W, None)
    with pytest.raises(TypeError, match="numpy"):
        F.bernoulli_log_likelihood(x, np.ones((2, 3)))


def test_float32_not_promoted_by_python_scalars(backend32):
    """Python-float hyper-parameters and 0-d log_var keep float32."""
    B = backend32
    x = B.asarray(np.linspace(-2.0, 2.0, 6).reshape(2, 3))
    outs = [*F.gaussian_log_likelihood(x, 0.5, -0.3),
            *F.gaussian_log_likelihood(x, np.float64(0.5), np.float64(-0.3)),
            *F.kl_normal_normal(x, x, np.float64(0.1), 0.2),
            *F.kl_normal_std_normal(x, x, prior_var=3.0),
            F.elu_forward(x, alpha=2.0)[0], F.leaky_relu_forward(x, 0.3)[0],
            F.gumbel_softmax_forward(x, x, 0.3)[0]]
    assert all(o.dtype == B.dtype for o in outs)
