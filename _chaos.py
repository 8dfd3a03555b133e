import os, sys
os.environ["OPENBLAS_NUM_THREADS"]="1"
sys.path.insert(0, "benchmarks")
import numpy as np, torch
torch.set_num_threads(1)
import relatives_sbn as B
X_train, X_test = B.load(False)
X_test = X_test[:2000]
rng_bin = np.random.default_rng(321)
Xb = (rng_bin.random(X_test.shape, dtype=np.float32) < X_test).astype(np.float32)
u_elbo = np.random.default_rng(123).random((1, Xb.shape[0], B.L), dtype=np.float32)
rng_iw = np.random.default_rng(456)
iw = [(s, rng_iw.random((10, min(1000, Xb.shape[0]-s), B.L), dtype=np.float32)) for s in range(0, Xb.shape[0], 1000)]
base = B.make_ours(0).params
twins = []
for pert in (0.0, 1e-7):
    p = {k: (v * (1 + pert * np.random.default_rng(5).standard_normal(v.shape))).astype(np.float32) for k, v in base.items()}
    t = B.make_torch(torch, p); twins.append((t, torch.optim.Adam(t.parameters(), lr=1e-3), np.random.default_rng(0)))
for ep in range(int(sys.argv[1])):
    res = []
    for t, opt, rng in twins:
        sec, tr = B.torch_epoch(torch, t, opt, X_train, rng)
        res.append((sec, tr) + B.bounds_torch(torch, t, Xb, u_elbo, iw))
    print(ep + 1, res, flush=True)
