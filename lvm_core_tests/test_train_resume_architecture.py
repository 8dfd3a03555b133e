"""fit_minibatch(..., resume=True) refuses a checkpoint written by another architecture."""
from __future__ import annotations

import numpy as np
import pytest

from lvm_core.models.vae import VAE
from lvm_core.train import fit_minibatch


def _X(D=6, n=32):
    return (np.random.default_rng(0).random((n, D)) > 0.5).astype(np.float32)


def _train(model, path, epochs, resume=False):
    return fit_minibatch(model, _X(), epochs=epochs, batch_size=16, lr=1e-2, random_state=0,
                         progress=False, checkpoint=path, resume=resume)


def _vae(**kwargs):
    options = dict(n_latent=2, hidden=(4,), random_state=0)
    options.update(kwargs)
    return VAE(6, **options).initialize()


@pytest.mark.parametrize("changed, message", [
    (dict(hidden=(5,)), r"enc_W0 has shape \(6, 4\) in the checkpoint but \(6, 5\)"),
    (dict(n_latent=3), r"enc_W_mu has shape \(4, 2\) in the checkpoint but \(4, 3\)"),
    (dict(dtype="float64"), r"enc_W0 has dtype float32 in the checkpoint but float64"),
    (dict(activation="tanh"), r"activation='relu' in the checkpoint but activation='tanh'"),
    (dict(prior_var=2.0), r"prior_var=1.0 in the checkpoint but prior_var=2.0"),
])
def test_resume_refuses_a_checkpoint_of_another_architecture(tmp_path, changed, message):
    """Defect: resume=True loaded a checkpoint of another architecture (same parameter names)."""
    path = tmp_path / "ck.h5"
    _train(_vae(), path, 1)
    model = _vae(**changed)
    before = {k: np.array(v, copy=True) for k, v in model.params.items()}
    with pytest.raises(ValueError, match="another architecture") as info:
        _train(model, path, 2, resume=True)
    assert info.match(message) and info.match("resume=False")
    for k, v in before.items():  # the model is left as it was
        np.testing.assert_array_equal(model.params[k], v)


def test_resume_accepts_another_seed_and_continues_exactly(tmp_path):
    full = _vae()
    _train(full, tmp_path / "full.h5", 2)
    first = _vae()
    _train(first, tmp_path / "split.h5", 1)
    resumed = _vae(random_state=7)  # the seed of the initialisation is replaced by the file
    _train(resumed, tmp_path / "split.h5", 2, resume=True)
    for k in full.params:
        np.testing.assert_array_equal(resumed.params[k], full.params[k])
