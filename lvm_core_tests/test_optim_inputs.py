"""The optimizer functions refuse mismatched dicts and states clearly (and never write
out of bounds: the fused in-place kernels used to run on a gradient of another size)."""
from __future__ import annotations

import numpy as np
import pytest

from lvm_core.nn.optim import adam, sgd
from lvm_core.ops.optim import adam_, sgd_

OPTIMIZERS = {"adam_": adam_, "sgd_": sgd_, "adam": adam, "sgd": sgd}
_OTHER_STATE = {"step": 1, "m": {"w": np.ones(2)}, "v": {"w": np.ones(2)},
                "momentum_buffer": {"w": np.ones(2)}}

CASES = {
    "grad of another shape": ({"w": np.ones(3)}, None, ValueError,
                              r"grads\['w'\] has shape \(3,\) but params\['w'\] has shape \(5,\)"),
    "grad of another name": ({"x": np.ones(5)}, None, ValueError, r"params lacks.*'x'"),
    "grad as a list": ({"w": [1.0] * 5}, None, TypeError, r"grads\['w'\] must be an array"),
    "state of other params": ({"w": np.ones(5)}, _OTHER_STATE, ValueError,
                              r"has shape \(2,\) but params\['w'\] has shape \(5,\).*state=None"),
    "not a state": ({"w": np.ones(5)}, {"m": {}}, ValueError, r"state must be None or the state"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_mismatched_dicts_are_refused_and_nothing_changes(name, case):
    grads, state, error, message = CASES[case]
    params = {"w": np.ones(5)}
    kwargs = {"momentum": 0.9} if name.startswith("sgd") else {}
    with pytest.raises(error, match=message):
        OPTIMIZERS[name](params, grads, state, lr=0.1, **kwargs)
    np.testing.assert_array_equal(params["w"], np.ones(5))


def test_adam_betas_must_be_a_pair():
    with pytest.raises(ValueError, match="betas must be a pair"):
        adam({"w": np.ones(2)}, {"w": np.ones(2)}, None, betas=0.9)
