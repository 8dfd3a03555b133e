import os, sys
os.environ["OPENBLAS_NUM_THREADS"]="1"
sys.path.insert(0, "benchmarks")
import numpy as np, torch
torch.set_num_threads(1)
import relatives_sbn as B
X_train, X_test = B.load(True)
n = int(sys.argv[1]); X = np.ascontiguousarray(np.concatenate([X_train]*(n*128//1280+1))[:n*128])
ours = B.make_ours(0)
twin = B.make_torch(torch, ours.params)
ours.fit(X, epochs=1, batch_size=128, lr=1e-3, random_state=0, progress=False, dynamic_binarization=True)
B.torch_epoch(torch, twin, torch.optim.Adam(twin.parameters(), lr=1e-3), X, np.random.default_rng(0))
tp = {}
for name, key in B.TORCH_KEYS.items():
    l = getattr(twin, name); tp[key.format("W")] = l.weight.detach().numpy().T; tp[key.format("b")] = l.bias.detach().numpy()
tp["prior_logits"] = twin.prior_logits.detach().numpy()
init = B.make_ours(0).params
for k in sorted(tp):
    d = np.abs(ours.params[k]-tp[k]).max(); moved = np.abs(tp[k]-init[k]).max()
    print(f"{k:12s} max|ours-torch| {d:.2e}  max|moved| {moved:.2e}")
print("state", ours.baseline_state_, twin.state)
