"""Binarisation of grey-level images for Bernoulli models (VAE, RBM, NADE, FVSBN).

References: Salakhutdinov & Murray, "On the quantitative analysis of deep
belief networks" (ICML 2008) introduced the stochastically binarised MNIST
(x ~ Bernoulli(grey level)); Burda, Grosse & Salakhutdinov, "Importance
weighted autoencoders" (ICLR 2016) resample the binarisation at every epoch
("dynamic binarisation"), which acts as a regulariser; a fixed threshold is
the deterministic alternative.

Three ways, none of which modifies its input:

* :func:`binarize_threshold`: x_bin = 1[x > threshold];
* :func:`binarize_stochastic`: one fixed draw x_bin ~ Bernoulli(x), seeded;
* :func:`dynamic_binarizer`: a callable ``transform_batch(X_batch, rng)``
  that draws a fresh x_bin ~ Bernoulli(x) every time it is called (every
  minibatch of every epoch), for ``lvm_core.train.fit_minibatch(transform_batch=...)``.

Inputs may be NumPy arrays or any array-API array (e.g. CuPy); the output has
the input's namespace, device and (floating) dtype.
"""
from __future__ import annotations

from lvm_core.backend import get_namespace
from lvm_core.random import as_generator, uniform

__all__ = ["binarize_threshold", "binarize_stochastic", "dynamic_binarizer"]


def _check_grey_levels(X, name, xp, need_unit_interval=True):
    """X must be a floating array without NaN; grey levels must lie in [0, 1]."""
    if not xp.isdtype(X.dtype, "real floating"):
        raise TypeError(
            f"{name} must be a floating array of grey levels in [0, 1]; got dtype {X.dtype}. "
            f"Convert raw pixels with X.astype('float32') / 255 "
            f"(load_mnist_like(normalize=True) does this)."
        )
    if bool(xp.any(xp.isnan(X))):
        raise ValueError(f"{name} contains NaN; binarisation needs finite grey levels.")
    if need_unit_interval and X.size and (
        bool(xp.any(X < 0.0)) or bool(xp.any(X > 1.0))
    ):
        raise ValueError(
            f"{name} must hold grey levels in [0, 1] (Bernoulli means); got values in "
            f"[{float(xp.min(X))}, {float(xp.max(X))}]. Divide raw pixels by 255 first."
        )


def binarize_threshold(X, threshold=0.5):
    """Deterministic binarisation x_bin = 1[x > threshold].

    Parameters
    ----------
    X : (N, D) floating array (any shape works)
    threshold : float

    Returns
    -------
    (N, D) array of 0.0 / 1.0 in X's dtype; X is not modified.
    """
    xp = get_namespace(X)
    _check_grey_levels(X, "X", xp, need_unit_interval=False)
    return xp.astype(X > float(threshold), X.dtype)


def _bernoulli_draw(X, rng, xp):
    """x_bin = 1[u < x] with u ~ U[0, 1), so that P(x_bin = 1) = x."""
    u = uniform(rng, tuple(X.shape), like=X, dtype=X.dtype)  # (N, D)
    return xp.astype(u < X, X.dtype)


def binarize_stochastic(X, random_state):
    """One fixed stochastic binarisation x_bin ~ Bernoulli(x), elementwise.

    E[x_bin] = x: the grey level is the probability of a 1 (Salakhutdinov &
    Murray 2008).  The same ``random_state`` gives the same binary data set.

    Parameters
    ----------
    X : (N, D) floating array of grey levels in [0, 1]
    random_state : int, numpy Generator or None

    Returns
    -------
    (N, D) array of 0.0 / 1.0 in X's dtype; X is not modified.
    """
    xp = get_namespace(X)
    _check_grey_levels(X, "X", xp)
    return _bernoulli_draw(X, as_generator(random_state), xp)


def dynamic_binarizer(random_state=None):
    """A ``transform_batch(X_batch, rng)`` that resamples x_bin ~ Bernoulli(x) at each call.

    Dynamic binarisation (Burda et al. 2016): every minibatch of every epoch
    sees a fresh binary draw of the same grey-level images.  The callable
    uses the ``rng`` it is given (the training loop's generator, so the
    whole run is reproducible from the loop's seed); when called with
    ``rng=None`` it uses its own generator, created once from
    ``random_state``, so successive calls (epochs) differ while the sequence
    of draws is reproducible from ``random_state``.

    Returns
    -------
    transform_batch : callable (X_batch (B, D), rng) -> (B, D) binary array
        in X_batch's dtype and namespace; X_batch is not modified.
    """
    own_rng = as_generator(random_state)

    def transform_batch(X_batch, rng=None):
        xp = get_namespace(X_batch)
        _check_grey_levels(X_batch, "X_batch", xp)
        return _bernoulli_draw(X_batch, own_rng if rng is None else as_generator(rng), xp)

    return transform_batch
