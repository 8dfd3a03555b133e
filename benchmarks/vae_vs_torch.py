"""VAE on Fashion-MNIST: lvm_core (handwritten gradients, NumPy + numba) vs PyTorch, and JAX.

Config a (BENCHMARKS.md, "VAE vs PyTorch"): 60k train / 10k test, pixels /
255 in float32; encoder 784-400-(20 mu, 20 log_var), decoder 20-400-784, ReLU;
Bernoulli likelihood on the [0, 1] grey levels (BCE with logits summed over
pixels) + analytic KL (Kingma & Welling 2014); one z sample; Adam lr 1e-3 with
default betas/eps; batch 128 shuffled each epoch; 5 epochs.

Config b (``--config b``): encoder 784-512-256-(32 mu, 32 log_var) with ELU,
decoder mirrored 32-256-512-784 (ELU), continuous-Bernoulli likelihood
(Loaiza-Ganem & Cunningham 2019), IWAE objective with k = 5 samples (Burda et
al. 2016), Adam lr 1e-3, batch 128, 3 epochs.

Both sides start from the same weights, drawn once with PyTorch's default
nn.Linear scheme (U(+-1/sqrt(fan_in)) for W and b; lvm_core's init="torch") and
copied into the peers.

The libraries alternate epoch by epoch in this one process.  lvm_core trains
through its public API only: ``VAE.fit(X, epochs=e, checkpoint=path,
resume=True)`` continues the same run (params, Adam state, rng) one epoch
further each time; its seconds per epoch are ``history_.seconds_per_epoch``
(the training loop, as for the peers), and the whole fit call (which also
reloads and saves the checkpoint) is printed too.

Peers: PyTorch eager (torch.optim.Adam); and, when jax is importable, a JAX
twin (float32, optax.adam(1e-3)) compiled two ways: ``jax.jit`` of one
training step ("jax step"), and one ``jax.jit`` over the whole epoch with
``lax.scan`` over its steps ("jax scan"; the last, smaller batch is one
extra compiled step).  Compilation is done ahead of time and reported
separately, never inside an epoch's seconds.  JAX is a peer only (never a
dependency of lvm_core); ``--no-jax`` skips it.

Threads (a 2-core budget for everyone): NumPy's BLAS 2 threads
(OPENBLAS/OMP/MKL_NUM_THREADS=2, set before NumPy is imported; the numba
kernels are serial); PyTorch ``torch.set_num_threads(2)``; XLA (JAX)
sizes its CPU thread pool to the schedulable CPUs and has no flag for it, so
the process is pinned to 2 CPUs when the machine has more (this one has 2);
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=true`` (set before jax is imported).
NumPy's OpenBLAS picks its kernels from the CPU; ``OPENBLAS_CORETYPE`` in the
environment overrides that choice (some machines set it to older kernels for
old OpenBLAS builds: on an AVX-512 AMD EPYC, forcing "Haswell" made our matrix
products 1.3-1.6x slower).  The "threads:" line prints which kernels ran.

Same randomness on all sides: the peers draw their shuffles and eps from a
NumPy Generator with the same seed, in the order ``fit`` draws them (per
epoch a permutation of the N rows, then per step eps (R, B, L) float32), so
all see the same batches and noise; the runs then differ only by
floating-point round-off.  Before anything is timed the script checks this:
the loss and gradients of one batch with one eps (ours ``loss_and_grads(X,
eps=eps)`` vs torch autograd vs ``jax.grad``), and the training loss of a
2-step ``fit`` against torch replaying the same draws.

Test figures, with the same eps (fixed seed) on all sides: -ELBO with one z
per test image after every epoch; at the end, config a: the IWAE k = 100 bound
(ours ``log_marginal``, torch its own draws) and config b: the IWAE k = 5
bound (the training objective) with one fixed eps (5, 10000, 32) given to
every side (ours through ``loss_and_grads(X, eps=eps)``).

Config b and round-off: the twins part after a few hundred steps, because
this training amplifies round-off (Adam divides by sqrt(v) + eps; the
continuous Bernoulli's log-normaliser grows without bound as logits go to
+-infinity on pixels that are exactly 0 or 1, so the bound keeps climbing at a
rate that depends on the path).  Two measurements in the same run show how far
that alone moves the test bound: ``RESULT vae_b_sensitivity`` retrains ours with
one output bias moved by 1e-6 and everything else equal, and ``RESULT
vae_b_float64`` trains ours and the torch twin again in float64 from one start
with the same batches and eps (``--no-float64`` skips both; about 2 minutes).

``--profile PATH`` writes where one of our epochs spends its time (manual
timers: data, forward + backward, optimizer; the epoch's matmuls replayed at
their real shapes; a cProfile top list) for configs a and b, and exits.

Usage::

    python benchmarks/vae_vs_torch.py                 # config a: 5 epochs on 60k images
    python benchmarks/vae_vs_torch.py --config b      # config b: 3 epochs on 60k images
    python benchmarks/vae_vs_torch.py --quick         # smoke run: 1 epoch on 1280 images
    python benchmarks/vae_vs_torch.py --profile vae_profile.txt

Ends with ``RESULT vae ratio=R nelbo_ours=X nelbo_torch=X nelbo_diff=X`` (config
a) or ``RESULT vae_b ratio=R bound_ours=X bound_torch=X bound_diff=X`` (config
b), ratio = median torch s/epoch / median ours, diff = ours - torch; with jax,
also ``RESULT vae_jax ratio_step=R ratio_scan=R nelbo_diff=X`` (``vae_b_jax``
for config b; JAX s/epoch over ours); config b adds ``RESULT vae_b_sensitivity
bound_shift=X`` and ``RESULT vae_b_float64 bound_diff=X`` (see above).
"""
from __future__ import annotations

import os
import sys

THREADS = 2  # the budget of every side; ``--threads N`` (read here, before NumPy is imported)
for _i, _arg in enumerate(sys.argv[:-1]):
    if _arg == "--threads":
        THREADS = int(sys.argv[_i + 1])
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)
# XLA has no flag for its thread count: its CPU pool takes the schedulable CPUs, so the
# budget is held by pinning the process (only when JAX runs and the machine has more).
# ("intra_op_parallelism_threads=N" in XLA_FLAGS, a common recipe, is silently ignored.)
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                           + " --xla_cpu_multi_thread_eigen=true").strip()
_PINNED = None
if "--no-jax" not in sys.argv and hasattr(os, "sched_getaffinity") \
        and len(os.sched_getaffinity(0)) > THREADS:
    _PINNED = sorted(os.sched_getaffinity(0))[:THREADS]
    os.sched_setaffinity(0, _PINNED)

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import pstats  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_tools.mnist import load_mnist_like  # noqa: E402
from lvm_core.models.vae import VAE  # noqa: E402

import vae_peers  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from _setup import blas_kernels  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
D, H, L = 784, 400, 20


QUICK_TRAIN, QUICK_TEST = 1280, 500
CONFIGS = {
    "a": dict(hidden=(400,), n_latent=20, activation="relu", decoder="bernoulli",
              objective="elbo", n_samples=1, epochs=5),
    "b": dict(hidden=(512, 256), n_latent=32, activation="elu",
              decoder="continuous_bernoulli", objective="iwae", n_samples=5, epochs=3),
}
BATCH, LR = 128, 1e-3


def load(quick):
    """(X_train, X_test) float32 in [0, 1]; --quick: 1280 train / 500 test rows.

    Without the full data (a fresh checkout), --quick uses the embedded test
    split: its first rows for training, its last for testing.
    """
    if os.path.isdir(DATA):
        X_train, _, _ = load_mnist_like("fashion-mnist", "train", path=DATA, normalize=True,
                                        dtype="float32", verbose=False, download=False)
        X_test, _, _ = load_mnist_like("fashion-mnist", "test", path=DATA, normalize=True,
                                       dtype="float32", verbose=False, download=False)
    elif quick:
        X, _, _ = load_mnist_like("fashion-mnist", "test", normalize=True, dtype="float32",
                                  verbose=False, download=False)
        X_train, X_test = X[:QUICK_TRAIN], X[-QUICK_TEST:]
    else:
        raise SystemExit(f"the full Fashion-MNIST is needed in {DATA} (or run with --quick)")
    if quick:
        X_train, X_test = X_train[:QUICK_TRAIN], X_test[:QUICK_TEST]
    return np.ascontiguousarray(X_train), np.ascontiguousarray(X_test)


# ------------------------------------------------------------------ PyTorch
def make_torch(torch, params):
    nn = torch.nn

    class TorchVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(D, H)
            self.fc21 = nn.Linear(H, L)
            self.fc22 = nn.Linear(H, L)
            self.fc3 = nn.Linear(L, H)
            self.fc4 = nn.Linear(H, D)

        def encode(self, x):
            h = torch.relu(self.fc1(x))
            return self.fc21(h), self.fc22(h)

        def decode_logits(self, z):
            return self.fc4(torch.relu(self.fc3(z)))

        def terms(self, x, eps):
            """log p(x|z) (N,) with z = mu + exp(log_var/2) eps, and KL (N,)."""
            mu, log_var = self.encode(x)
            z = mu + torch.exp(0.5 * log_var) * eps
            logits = self.decode_logits(z)
            log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x, reduction="none").sum(1)
            kl = 0.5 * (log_var.exp() + mu * mu - 1.0 - log_var).sum(1)
            return log_px, kl, mu, log_var, z

    model = TorchVAE()
    names = {"fc1": ("enc_W0", "enc_b0"), "fc21": ("enc_W_mu", "enc_b_mu"),
             "fc22": ("enc_W_log_var", "enc_b_log_var"), "fc3": ("dec_W0", "dec_b0"),
             "fc4": ("dec_W_out", "dec_b_out")}
    with torch.no_grad():
        for layer, (w, b) in names.items():
            getattr(model, layer).weight.copy_(torch.from_numpy(params[w].T.copy()))
            getattr(model, layer).bias.copy_(torch.from_numpy(params[b].copy()))
    return model


def torch_epoch(torch, model, opt, X_t, rng, batch_size=128):
    """One training epoch; returns (seconds, mean training loss).

    The shuffle and the eps are drawn from the NumPy Generator ``rng`` in the
    order lvm_core.train.fit_minibatch draws them (a permutation per epoch, then
    eps (1, B, L) float32 per step), so with the same seed both libraries see the
    same batches and the same noise.
    """
    start = time.perf_counter()
    N = X_t.shape[0]
    perm = torch.from_numpy(rng.permutation(N))
    total = torch.zeros(())
    for s in range(0, N, batch_size):
        xb = X_t[perm[s:s + batch_size]]
        eps = torch.from_numpy(rng.standard_normal((1, xb.shape[0], L), dtype=np.float32)[0])
        log_px, kl, _, _, _ = model.terms(xb, eps)
        loss = (kl - log_px).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * xb.shape[0]
    mean_loss = float(total) / N
    return time.perf_counter() - start, mean_loss


def torch_nelbo(torch, model, X_t, eps_t):
    with torch.no_grad():
        log_px, kl, _, _, _ = model.terms(X_t, eps_t)
        return float((kl - log_px).mean())


def torch_iwae(torch, model, X_t, k, seed, batch=100):
    """mean over test images of logsumexp_i log w_i - log k, z_i ~ q(z|x)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for s in range(0, X_t.shape[0], batch):
            x = X_t[s:s + batch]
            n = x.shape[0]
            x_rep = x.unsqueeze(0).expand(k, n, D).reshape(k * n, D)
            eps = torch.randn(k * n, L, generator=gen)
            mu, log_var = model.encode(x)
            mu_r = mu.unsqueeze(0).expand(k, n, L).reshape(k * n, L)
            lv_r = log_var.unsqueeze(0).expand(k, n, L).reshape(k * n, L)
            z = mu_r + torch.exp(0.5 * lv_r) * eps
            logits = model.decode_logits(z)
            log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x_rep, reduction="none").sum(1)
            log_pz_minus_log_qz = -0.5 * (z * z - eps * eps - lv_r).sum(1)
            log_w = (log_px + log_pz_minus_log_qz).reshape(k, n)
            out.append(torch.logsumexp(log_w, 0) - math.log(k))
    return float(torch.cat(out).mean())


# ------------------------------------------------------------------- twins
def make_ours(cfg, seed, dtype="float32"):
    return VAE(D, n_latent=cfg["n_latent"], hidden=cfg["hidden"], activation=cfg["activation"],
               decoder=cfg["decoder"], objective=cfg["objective"], n_samples=cfg["n_samples"],
               init="torch", dtype=dtype, random_state=seed).initialize()


def make_torch_twin(torch, config, cfg, params):
    """The torch twin with lvm_core's weights: config a's module as before, else the generic one."""
    if config == "a":
        return make_torch(torch, params)
    return vae_peers.make_torch_vae(torch, params, len(cfg["hidden"]), cfg["activation"],
                                    cfg["decoder"], cfg["objective"])


def torch_train_epoch(torch, config, cfg, model, opt, X_t, rng):
    if config == "a":
        return torch_epoch(torch, model, opt, X_t, rng, batch_size=BATCH)
    return vae_peers.torch_train_epoch(torch, model, opt, X_t, rng, cfg["n_samples"],
                                       cfg["n_latent"], batch_size=BATCH)


def torch_loss_and_grads(torch, config, cfg, model, xb, eps):
    """Loss and gradients (lvm_core's names and layout) of one batch; leaves no .grad behind."""
    model.zero_grad(set_to_none=True)
    x_t, eps_t = torch.from_numpy(xb), torch.from_numpy(eps)
    if config == "a":
        log_px, kl, _, _, _ = model.terms(x_t, eps_t[0])
        loss = (kl - log_px).mean()
        loss.backward()
        names = {"fc1": ("enc_W0", "enc_b0"), "fc21": ("enc_W_mu", "enc_b_mu"),
                 "fc22": ("enc_W_log_var", "enc_b_log_var"), "fc3": ("dec_W0", "dec_b0"),
                 "fc4": ("dec_W_out", "dec_b_out")}
        grads = {}
        for layer, (w, b) in names.items():
            grads[w] = getattr(model, layer).weight.grad.numpy().T.copy()
            grads[b] = getattr(model, layer).bias.grad.numpy().copy()
    else:
        loss = model.loss(x_t, eps_t)
        loss.backward()
        grads = {k: v.copy() for k, v in
                 vae_peers.torch_grads(torch, model, len(cfg["hidden"])).items()}
    model.zero_grad(set_to_none=True)
    return float(loss.detach()), grads


def import_jax(enabled):
    """(jax, versions string) or (None, reason)."""
    if not enabled:
        return None, "skipped (--no-jax)"
    try:
        import jax
        import optax
    except ImportError as exc:
        return None, f"not installed ({exc.name})"
    jax.config.update("jax_enable_x64", False)
    return jax, (f"jax {jax.__version__} / optax {optax.__version__}, "
                 f"{jax.devices()[0].platform}, XLA_FLAGS='{os.environ['XLA_FLAGS']}'")


def check_twins(torch, jax_twin, config, cfg, ours, theirs, X_train, seed, tol=1e-4):
    """Same loss and gradients on one batch with one eps; same 2-step fit as torch replaying it.

    Returns a list of (what, relative difference) and raises SystemExit when a
    difference exceeds ``tol`` (float32 round-off is ~1e-6 here).
    """
    R, Lz = cfg["n_samples"], cfg["n_latent"]
    xb = np.ascontiguousarray(X_train[:BATCH])
    eps = np.random.default_rng(99).standard_normal((R, BATCH, Lz), dtype=np.float32)
    loss_o, g_o = ours.loss_and_grads(xb, eps=eps)
    loss_o = float(loss_o)
    g_o = {k: np.asarray(v) for k, v in g_o.items()}
    out = []
    loss_t, g_t = torch_loss_and_grads(torch, config, cfg, theirs, xb, eps)
    out.append(("first batch loss, ours vs torch", abs(loss_o - loss_t) / abs(loss_t), ""))
    out.append(("first batch gradients, ours vs torch",) + vae_peers.max_rel_diff(g_o, g_t))
    if jax_twin is not None:
        loss_j, g_j = jax_twin.first_step(xb, eps)
        out.append(("first batch loss, ours vs jax", abs(loss_o - loss_j) / abs(loss_j), ""))
        out.append(("first batch gradients, ours vs jax",) + vae_peers.max_rel_diff(g_o, g_j))
    if cfg["decoder"] == "continuous_bernoulli":  # the peers' own log C(l), large |l| included

        def torch_fn(l):
            return vae_peers.torch_cb_log_normalizer(torch, torch.from_numpy(l)).numpy()

        def torch_grad(l):
            lt = torch.from_numpy(l).requires_grad_()
            vae_peers.torch_cb_log_normalizer(torch, lt).sum().backward()
            return lt.grad.numpy()

        peers = [("torch", torch_fn, torch_grad)]
        if jax_twin is not None:
            jnp = jax_twin.jnp

            def jax_fn(l):
                return np.asarray(vae_peers.jax_cb_log_normalizer(jnp, jnp.asarray(l)))

            def jax_grad(l):
                return np.asarray(jax_twin.jax.grad(
                    lambda x: vae_peers.jax_cb_log_normalizer(jnp, x).sum())(jnp.asarray(l)))

            peers.append(("jax", jax_fn, jax_grad))
        for name, fn, grad_fn in peers:
            err, gerr = vae_peers.check_cb_log_normalizer(fn, grad_fn)
            out.append((f"{name} log C(l), |l| in [0, 1e6], vs float64 closed form", err, ""))
            out.append((f"{name} d log C / dl (absolute error)", gerr, ""))
    # fit's draw order: 2 steps of fit on 2 batches vs torch replaying the same draws
    n2 = min(2 * BATCH, X_train.shape[0])
    probe = make_ours(cfg, seed)
    probe.fit(X_train[:n2], epochs=1, batch_size=BATCH, lr=LR, optimizer="adam",
              random_state=seed, progress=False)
    twin = make_torch_twin(torch, config, cfg, make_ours(cfg, seed).params)
    _, loss_t2 = torch_train_epoch(torch, config, cfg, twin, torch.optim.Adam(twin.parameters(),
                                   lr=LR), torch.from_numpy(X_train[:n2]),
                                   np.random.default_rng(seed))
    loss_f = probe.history_.train_loss[0]
    out.append((f"fit on {n2} rows (2 Adam steps), training loss, ours vs torch",
                abs(loss_f - loss_t2) / abs(loss_t2), ""))
    print("twin checks (float32; relative: |ours - peer| / |peer|, gradients max|diff| / "
          "max|peer| per parameter, worst shown):")
    bad = False
    for what, rel, where in out:
        flag = "ok" if rel <= tol else "MISMATCH"
        bad |= rel > tol
        print(f"  {what:<62} {rel:9.2e} {where:>14} {flag}")
    print(f"  first batch loss: ours {loss_o:.6f}, torch {loss_t:.6f}; 2-step fit loss: ours "
          f"{loss_f:.6f}, torch {loss_t2:.6f}")
    if bad:
        raise SystemExit(f"twin check failed (tolerance {tol:g}): the peers do not compute "
                         "the same thing as lvm_core; no timing is meaningful")
    return out


def nudged_rerun(cfg, X_train, X_test, eps, epochs, seed):
    """Our float32 run of config b again, with one decoder output bias (pixel 400)
    moved by 1e-6 before training and everything else the same; returns its test
    bound.  How far it lands from the unchanged run measures how much of a
    difference between two implementations' bounds round-off alone can make."""
    model = make_ours(cfg, seed)
    model.warm_start = True  # keep the nudged start (fit would draw it again)
    model.params["dec_b_out"][400] += np.float32(1e-6)
    model.fit(X_train, epochs=epochs, batch_size=BATCH, lr=LR, optimizer="adam",
              random_state=seed, progress=False)
    return ours_bound(model, X_test, eps)


def float64_twins(torch, cfg, X_train, X_test, epochs, seed):
    """Config b trained again by both sides in float64 from one start, with the same
    batches and eps; returns the test IWAE bounds {"ours", "torch"} (one fixed eps).

    In float32 the two runs part after a few hundred steps: Adam divides by
    sqrt(v) + eps, and round-off differences of 1e-7 grow until the runs are two
    different samples of training; their test bounds then differ by as much as two
    seeds of one library do (see the module docstring).  In float64 the same
    arithmetic stays together for the whole run, so the bounds test that the two
    sides compute the same objective and gradients, not which one is luckier.
    """
    R, Lz = cfg["n_samples"], cfg["n_latent"]
    X64, T64 = X_train.astype(np.float64), X_test.astype(np.float64)
    ours = make_ours(cfg, seed, dtype="float64")
    theirs = vae_peers.make_torch_vae(torch, ours.params, len(cfg["hidden"]),
                                      cfg["activation"], cfg["decoder"], cfg["objective"])
    opt = torch.optim.Adam(theirs.parameters(), lr=LR)
    start = time.perf_counter()
    ours.fit(X64, epochs=epochs, batch_size=BATCH, lr=LR, optimizer="adam",
             random_state=seed, progress=False)
    t_ours = time.perf_counter() - start
    rng, X64_t = np.random.default_rng(seed), torch.from_numpy(X64)
    start = time.perf_counter()
    for _ in range(epochs):
        vae_peers.torch_train_epoch(torch, theirs, opt, X64_t, rng, R, Lz, batch_size=BATCH,
                                    dtype=np.float64)
    t_torch = time.perf_counter() - start
    eps = np.random.default_rng(321).standard_normal((R, T64.shape[0], Lz))
    bound = {"ours": ours_bound(ours, T64, eps),
             "torch": vae_peers.torch_eval(torch, theirs, T64, eps)[1]}
    print(f"float64 twins, {epochs} epoch(s) from one start (ours {t_ours:.1f} s, torch "
          f"{t_torch:.1f} s; not a timing): test IWAE k={R} bound ours {bound['ours']:.4f}, "
          f"torch {bound['torch']:.4f}", flush=True)
    return bound


def ours_bound(model, X, eps, chunk=1000):
    """Mean training objective over X for the fixed eps (R, N, L), through loss_and_grads."""
    total = 0.0
    for s in range(0, X.shape[0], chunk):
        loss, _ = model.loss_and_grads(X[s:s + chunk], eps=np.ascontiguousarray(eps[:, s:s + chunk]))
        total -= float(loss) * min(chunk, X.shape[0] - s)
    return total / X.shape[0]


# ------------------------------------------------------------------ profile
def gemm_shapes(cfg, N):
    """(m, k, n) of every matmul of one training step (forward, dW = h^T da, dh = da W^T)."""
    enc = [D] + list(cfg["hidden"])
    dec = [cfg["n_latent"]] + list(reversed(cfg["hidden"])) + [D]
    M = N * cfg["n_samples"]
    shapes = []
    layers = [(N, enc[i], enc[i + 1], i > 0) for i in range(len(enc) - 1)]
    layers.append((N, enc[-1], 2 * cfg["n_latent"], len(enc) > 1))  # both heads in one matmul
    layers += [(M, dec[i], dec[i + 1], True) for i in range(len(dec) - 1)]
    for rows, d_in, d_out, need_dh in layers:
        shapes.append((rows, d_in, d_out))  # h W
        shapes.append((d_in, rows, d_out))  # h^T da
        if need_dh:
            shapes.append((rows, d_out, d_in))  # da W^T
    return shapes


def time_gemms(cfg, n_steps, N, repeats=3):
    """Seconds for the matmuls of n_steps training steps at their real shapes (float32, out=)."""
    rng = np.random.default_rng(0)
    work = []
    for m, k, n in gemm_shapes(cfg, N):
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        work.append((a, b, np.empty((m, n), np.float32)))
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n_steps):
            for a, b, c in work:
                np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - start)
    flops = 2.0 * sum(m * k * n for m, k, n in gemm_shapes(cfg, N)) * n_steps
    return best, flops


def time_transcendentals(cfg, n_steps, N, repeats=3):
    """Seconds for the exp/log work a step cannot avoid, on float32 arrays of the real shapes.

    Likelihood on the (M, D) logits (M = R N): exp(-|l|) and log1p for softplus and
    sigmoid (Bernoulli); plus log|l|, expm1 and log for log C(l) (continuous
    Bernoulli).  ELU: expm1 on every hidden layer's pre-activations.
    """
    rng = np.random.default_rng(0)
    M = N * cfg["n_samples"]
    work = [(np.exp, (M, D)), (np.log1p, (M, D))]
    if cfg["decoder"] == "continuous_bernoulli":
        work += [(np.log, (M, D)), (np.expm1, (M, D)), (np.log, (M, D))]
    if cfg["activation"] == "elu":
        work += [(np.expm1, (N, h)) for h in cfg["hidden"]]
        work += [(np.expm1, (M, h)) for h in cfg["hidden"]]
    # inputs where the functions are used: exp/expm1 of -|l| (<= 0), log/log1p of positives
    arrays = [(f, (-1.0 if f in (np.exp, np.expm1) else 1.0) * (0.01 + rng.random(shape,
              dtype=np.float32)), np.empty(shape, np.float32)) for f, shape in work]
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(n_steps):
            for f, a, out in arrays:
                f(a, out=out)
        best = min(best, time.perf_counter() - start)
    return best


def profile_config(config, X, seed, lines, n_rows):
    """Where our training steps go: manual timers, the matmul floor, a cProfile top list.

    Runs on the first ``n_rows`` rows (n_rows / 128 steps) and scales the
    seconds to a full epoch of 60000 rows (469 steps).
    """
    from lvm_core.nn import adam

    cfg = CONFIGS[config]
    R, Lz = cfg["n_samples"], cfg["n_latent"]
    X = np.ascontiguousarray(X[:n_rows])
    N = X.shape[0]
    n_steps = -(-N // BATCH)
    scale = 469.0 / n_steps
    make_ours(cfg, seed).fit(X[:2 * BATCH], epochs=1, progress=False, random_state=seed)  # warm
    model = make_ours(cfg, seed)
    model.fit(X, epochs=1, batch_size=BATCH, lr=LR, random_state=seed, progress=False)
    t_fit = model.history_.seconds_per_epoch[-1]
    # the same steps by hand through the public API, with timers around each phase
    model = make_ours(cfg, seed)
    rng = np.random.default_rng(seed)
    state = None
    t_data = t_lg = t_opt = 0.0
    start_all = time.perf_counter()
    perm = rng.permutation(N)
    for s in range(n_steps):
        t0 = time.perf_counter()
        xb = X[perm[s * BATCH:(s + 1) * BATCH]]
        eps = rng.standard_normal((R, xb.shape[0], Lz), dtype=np.float32)
        t1 = time.perf_counter()
        loss, grads = model.loss_and_grads(xb, eps=eps)
        t2 = time.perf_counter()
        new, state = adam(model.params, grads, state, lr=LR, inplace=True)
        if new is not model.params:
            model.params.update(new)
        t3 = time.perf_counter()
        t_data += t1 - t0
        t_lg += t2 - t1
        t_opt += t3 - t2
    t_manual = time.perf_counter() - start_all
    t_mm, flops = time_gemms(cfg, n_steps, BATCH)
    t_tr = time_transcendentals(cfg, n_steps, BATCH)
    prof = cProfile.Profile()
    model = make_ours(cfg, seed)
    prof.enable()
    model.fit(X, epochs=1, batch_size=BATCH, lr=LR, random_state=seed, progress=False)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(14)
    top = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    head = next(i for i, ln in enumerate(top) if ln.lstrip().startswith("ncalls"))
    desc = (f"{D}-{'-'.join(map(str, cfg['hidden']))}-{Lz} {cfg['activation']}, "
            f"{cfg['decoder']}, {cfg['objective']} R={R}, batch {BATCH}")

    def row(what, sec):
        return f"  {what:<58} {sec:8.3f} s {sec * scale:8.2f} s {1e3 * sec / n_steps:8.2f} ms"

    lines += [
        f"== config {config}: {desc}; {n_steps} steps on {N} images; columns: seconds "
        f"measured, scaled to a 469-step epoch, per step ==",
        row("VAE.fit (history_.seconds_per_epoch)", t_fit),
        row("the same steps by hand through the public API", t_manual),
        row("  data: X[perm] gather + eps draw", t_data),
        row("  loss_and_grads (forward + backward)", t_lg),
        row("  optimizer: lvm_core.nn.adam(inplace=True)", t_opt),
        row("floor: the steps' matmuls at their real shapes", t_mm),
        row("floor: the exp/log work the math needs (see below)", t_tr),
        row("loss_and_grads minus the matmul floor", t_lg - t_mm),
        f"  (matmuls: {flops / 1e9:.1f} GFLOP, {flops / t_mm / 1e9:.0f} GFLOP/s float32 "
        f"np.matmul out=, best of 3, {len(gemm_shapes(cfg, BATCH))} per step (heads fused); "
        f"exp/log: softplus/sigmoid on the (R N, D) logits"
        f"{', log C(l)' if cfg['decoder'] == 'continuous_bernoulli' else ''}"
        f"{', ELU expm1 on the hidden layers' if cfg['activation'] == 'elu' else ''})",
        "cProfile of one fit epoch, top by tottime (ufunc calls such as np.matmul and "
        "np.exp are not listed on their own: their time is in the caller's tottime):",
    ] + ["  " + ln for ln in top[head:]] + [""]


# --------------------------------------------------------------------- run
def run(config, args):
    import torch

    cfg = CONFIGS[config]
    R, Lz, hidden = cfg["n_samples"], cfg["n_latent"], cfg["hidden"]
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else cfg["epochs"])
    torch.set_num_threads(THREADS)
    torch.manual_seed(args.seed)
    jax, jax_info = import_jax(not args.no_jax)
    X_train, X_test = load(args.quick)
    N_test = X_test.shape[0]
    arch = (f"{D}-{'-'.join(map(str, hidden))}-({Lz} mu, {Lz} log_var) / "
            f"{Lz}-{'-'.join(map(str, reversed(hidden)))}-{D}")
    print(f"VAE config {config}: {arch}, {cfg['activation']}, {cfg['decoder']}, "
          f"{cfg['objective']} with {R} sample(s), Adam {LR:g}, batch {BATCH}, {epochs} epoch(s), "
          f"{X_train.shape[0]} train / {N_test} test")
    print(f"load average at the start: {os.getloadavg()[0]:.1f} (1 min)")
    print(f"threads: torch {torch.get_num_threads()} (torch {torch.__version__}); NumPy BLAS "
          f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}, {blas_kernels()}; "
          f"numba kernels serial; "
          f"JAX: {jax_info} (XLA's pool = the schedulable CPUs); CPUs "
          f"{'pinned to ' + str(_PINNED) if _PINNED else 'schedulable'}: "
          f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()}")

    # warm-up (numba compilation / torch first-call costs), not timed
    make_ours(cfg, 1).fit(X_train[:1280], epochs=1, progress=False, random_state=1)
    warm = make_torch_twin(torch, config, cfg, make_ours(cfg, 1).params)
    torch_train_epoch(torch, config, cfg, warm, torch.optim.Adam(warm.parameters(), lr=LR),
                      torch.from_numpy(X_train[:1280]), np.random.default_rng(1))

    ours = make_ours(cfg, args.seed)
    theirs = make_torch_twin(torch, config, cfg, ours.params)
    opt = torch.optim.Adam(theirs.parameters(), lr=LR)
    X_train_t, X_test_t = torch.from_numpy(X_train), torch.from_numpy(X_test)
    twins = {}
    if jax is not None:
        for mode in ("step", "scan"):
            twins[mode] = vae_peers.JaxTwin(ours.params, len(hidden), cfg["activation"],
                                            cfg["decoder"], cfg["objective"], R, X_train,
                                            BATCH, mode, lr=LR)
    check_twins(torch, twins.get("step"), config, cfg, ours, theirs, X_train, args.seed)
    compile_s = {mode: twin.compile() for mode, twin in twins.items()}
    if twins:
        print("JAX compile (ahead of time, not in the epochs): " + ", ".join(
            f"{mode} {sec:.2f} s" for mode, sec in compile_s.items()))

    rngs = {name: np.random.default_rng(args.seed) for name in ["torch"] + list(twins)}
    eps_test = np.random.default_rng(123).standard_normal((1, N_test, Lz), dtype=np.float32)
    eps_test_t = torch.from_numpy(eps_test[0].copy())

    def nelbo_torch_now():
        if config == "a":
            return torch_nelbo(torch, theirs, X_test_t, eps_test_t)
        return -vae_peers.torch_eval(torch, theirs, X_test, eps_test)[0]

    names = ["torch"] + [f"jax {m}" for m in twins]
    head = f"{'epoch':>5} | {'ours s':>7} {'(fit call)':>10} " + " ".join(
        f"{n + ' s':>10} {'ratio':>6}" for n in names) + " | train loss: ours " + " ".join(
        names) + " | test -ELBO: ours " + " ".join(names)
    print(head)
    times = {"ours": []} | {n: [] for n in names}
    nelbo = {}
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "vae_ckpt.h5")
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            ours.fit(X_train, epochs=epoch, batch_size=BATCH, lr=LR, optimizer="adam",
                     random_state=args.seed, progress=False, checkpoint=ckpt, resume=True)
            call = time.perf_counter() - start
            times["ours"].append(ours.history_.seconds_per_epoch[-1])
            train = {"ours": ours.history_.train_loss[-1]}
            sec, train["torch"] = torch_train_epoch(torch, config, cfg, theirs, opt, X_train_t,
                                                    rngs["torch"])
            times["torch"].append(sec)
            for mode, twin in twins.items():
                sec, train[f"jax {mode}"] = twin.train_epoch(rngs[mode])
                times[f"jax {mode}"].append(sec)
            nelbo = {"ours": -float(np.mean(ours.elbo(X_test, rng=123))),
                     "torch": nelbo_torch_now()}
            for mode, twin in twins.items():
                nelbo[f"jax {mode}"] = -twin.evaluate(X_test, eps_test)[0]
            t0 = times["ours"][-1]
            print(f"{epoch:>5} | {t0:7.3f} {call:10.3f} " + " ".join(
                f"{times[n][-1]:10.3f} {times[n][-1] / t0:6.2f}" for n in names) + " | "
                + " ".join(f"{train[n]:.3f}" for n in ["ours"] + names) + " | "
                + " ".join(f"{nelbo[n]:.3f}" for n in ["ours"] + names), flush=True)

    med = {n: float(np.median(t)) for n, t in times.items()}
    ratio = {n: med[n] / med["ours"] for n in names}
    per_epoch = {n: float(np.median(np.asarray(times[n]) / np.asarray(times["ours"])))
                 for n in names}
    # fastest epoch of each side: the figure least disturbed by other work on a shared machine
    fastest = {n: min(times[n]) / min(times["ours"]) for n in names}
    print("median s/epoch: " + ", ".join(f"{n} {med[n]:.3f}" for n in ["ours"] + names)
          + "; ratios (peer / ours) " + ", ".join(f"{n} {ratio[n]:.2f}" for n in names)
          + " (median of the per-epoch ratios " + ", ".join(
              f"{n} {per_epoch[n]:.2f}" for n in names) + "; of the fastest epochs " + ", ".join(
              f"{n} {fastest[n]:.2f}" for n in names) + ")")
    jax_tail = ""
    if twins:
        jax_tail = (f" s_epoch_ours={med['ours']:.3f} s_epoch_jax_step={med['jax step']:.3f} "
                    f"s_epoch_jax_scan={med['jax scan']:.3f} compile_step_s={compile_s['step']:.2f} "
                    f"compile_scan_s={compile_s['scan']:.2f} "
                    f"ratio_step_per_epoch_median={per_epoch['jax step']:.3f} "
                    f"ratio_scan_per_epoch_median={per_epoch['jax scan']:.3f} "
                    f"ratio_step_fastest={fastest['jax step']:.3f} "
                    f"ratio_scan_fastest={fastest['jax scan']:.3f} epochs={epochs}")
    if config == "a":
        n_iwae = min(200, N_test) if args.quick else N_test
        iwae_ours = float(np.mean(ours.log_marginal(X_test[:n_iwae], n_importance=100, rng=7)))
        iwae_torch = torch_iwae(torch, theirs, X_test_t[:n_iwae], 100, seed=7)
        print(f"IWAE k=100 bound on {n_iwae} test images (mean log p(x) >=): ours "
              f"{iwae_ours:.2f}, torch {iwae_torch:.2f}")
        print(f"RESULT vae ratio={ratio['torch']:.3f} nelbo_ours={nelbo['ours']:.3f} "
              f"nelbo_torch={nelbo['torch']:.3f} nelbo_diff={nelbo['ours'] - nelbo['torch']:.3f} "
              f"ratio_per_epoch_median={per_epoch['torch']:.3f} "
              f"ratio_fastest={fastest['torch']:.3f} "
              f"s_epoch_ours={med['ours']:.3f} s_epoch_torch={med['torch']:.3f} "
              f"iwae100_ours={iwae_ours:.3f} iwae100_torch={iwae_torch:.3f} epochs={epochs}")
        if twins:
            print(f"RESULT vae_jax ratio_step={ratio['jax step']:.3f} "
                  f"ratio_scan={ratio['jax scan']:.3f} "
                  f"nelbo_diff={nelbo['ours'] - nelbo['jax step']:.3f} "
                  f"nelbo_diff_scan={nelbo['ours'] - nelbo['jax scan']:.3f}" + jax_tail)
        return
    eps_bound = np.random.default_rng(321).standard_normal((R, N_test, Lz), dtype=np.float32)
    bound = {"ours": ours_bound(ours, X_test, eps_bound),
             "torch": vae_peers.torch_eval(torch, theirs, X_test, eps_bound)[1]}
    for mode, twin in twins.items():
        bound[f"jax {mode}"] = twin.evaluate(X_test, eps_bound)[1]
    print(f"test IWAE k={R} bound (mean over {N_test} images, one fixed eps for all): "
          + ", ".join(f"{n} {b:.3f}" for n, b in bound.items()))
    print(f"RESULT vae_b ratio={ratio['torch']:.3f} bound_ours={bound['ours']:.3f} "
          f"bound_torch={bound['torch']:.3f} bound_diff={bound['ours'] - bound['torch']:.3f} "
          f"nelbo_ours={nelbo['ours']:.3f} nelbo_torch={nelbo['torch']:.3f} "
          f"nelbo_diff={nelbo['ours'] - nelbo['torch']:.3f} "
          f"ratio_per_epoch_median={per_epoch['torch']:.3f} "
          f"ratio_fastest={fastest['torch']:.3f} s_epoch_ours={med['ours']:.3f} "
          f"s_epoch_torch={med['torch']:.3f} epochs={epochs}")
    if not args.no_float64:
        nudged = nudged_rerun(cfg, X_train, X_test, eps_bound, epochs, args.seed)
        print(f"RESULT vae_b_sensitivity bound_ours={bound['ours']:.3f} "
              f"bound_nudged={nudged:.3f} bound_shift={nudged - bound['ours']:.3f} "
              f"nudge=1e-6 epochs={epochs}")
        bound64 = float64_twins(torch, cfg, X_train, X_test, epochs, args.seed)
        print(f"RESULT vae_b_float64 bound_ours={bound64['ours']:.3f} "
              f"bound_torch={bound64['torch']:.3f} "
              f"bound_diff={bound64['ours'] - bound64['torch']:.4f} epochs={epochs}")
    if twins:
        print(f"RESULT vae_b_jax ratio_step={ratio['jax step']:.3f} "
              f"ratio_scan={ratio['jax scan']:.3f} "
              f"bound_diff={bound['ours'] - bound['jax step']:.3f} "
              f"bound_diff_scan={bound['ours'] - bound['jax scan']:.3f} "
              f"nelbo_diff={nelbo['ours'] - nelbo['jax step']:.3f}" + jax_tail)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="a")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke run: 1 epoch on {QUICK_TRAIN} images, {QUICK_TEST} test")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-jax", action="store_true", help="skip the JAX peer")
    parser.add_argument("--no-float64", action="store_true",
                        help="config b: skip the float64 twins (ours and torch trained again "
                             "in float64, for the bound comparison)")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="threads of every side (BLAS, torch, XLA; default 2)")
    parser.add_argument("--profile", metavar="PATH", default=None,
                        help="write where our training steps go (configs a and b) and exit")
    parser.add_argument("--profile-rows", type=int, default=12800,
                        help="training rows the profile runs on (default 12800 = 100 steps)")
    args = parser.parse_args(argv)
    if args.profile is not None:
        X_train, _ = load(args.quick)
        lines = [f"Where lvm_core's VAE training steps go ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
                 f", load average {os.getloadavg()[0]:.1f} at the start"
                 f", {THREADS} BLAS threads, numba serial; `python benchmarks/vae_vs_torch.py "
                 f"--profile PATH{' --quick' if args.quick else ''}`)", ""]
        for config in ("a", "b"):
            profile_config(config, X_train, args.seed, lines, args.profile_rows)
        text = "\n".join(lines)
        print(text)
        Path(args.profile).write_text(text + "\n")
        return
    run(args.config, args)


if __name__ == "__main__":
    main()
