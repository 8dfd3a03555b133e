"""A character-level GRU (or LSTM) trained on The Devil's Dictionary, sampled at two temperatures.

    python examples/char_rnn_text.py                # about 10 epochs on the whole text
    python examples/char_rnn_text.py --cell lstm --hidden 256
    python examples/char_rnn_text.py --quick        # smoke test (seconds)

Model (Karpathy 2015; course notes on autoregressive models): characters ->
embedding (32) -> GRU (``--hidden``, default 128) -> logits over the
vocabulary, trained on windows of 64 + 1 characters by truncated
backpropagation through time (Adam, lr 2e-3, batches of 64, gradient norm
clipped at 5), early stopping on the held-out text.  Data: Ambrose Bierce's
*The Devil's Dictionary* (1911), embedded in data_tools (public domain),
lower-cased; the first 90% of the characters train, the last 10% are held out.

Prints the held-out nats (and bits) per character, then text sampled at
temperatures 0.5 and 1.0 from the prime "the ", and writes to ``--out``:
``char_rnn_samples.txt`` (both samples) and ``char_rnn_training.png``
(train and held-out nats per character per epoch).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    from _setup import limit_blas_threads

    limit_blas_threads()

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_tools.text import Vocabulary, load_embedded_text  # noqa: E402
from lvm_core.models.char_rnn import CharRNN, make_windows  # noqa: E402

TEMPERATURES = (0.5, 1.0)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=None, help="most epochs (default 10; 2 quick)")
    p.add_argument("--cell", choices=["gru", "lstm"], default="gru")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--embed", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--n-chars", type=int, default=400, help="characters per sample")
    p.add_argument("--prime", default="the ")
    p.add_argument("--out", default="outputs/char_rnn_text")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1; 0 leaves the library default)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 30,000 training characters, 2 epochs, H = 64")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 2 if args.quick else 10
    if args.quick:
        args.hidden, args.n_chars = min(args.hidden, 64), min(args.n_chars, 120)
    return args


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def main(argv=None):
    args = parse_args(argv)
    text = load_embedded_text()
    vocab = Vocabulary.build(text)
    ids = vocab.encode(text)
    cut = int(0.9 * ids.shape[0])
    train_ids, test_ids = ids[:cut], ids[cut:]
    if args.quick:
        train_ids, test_ids = train_ids[:30000], test_ids[:5000]
    print(f"The Devil's Dictionary: {ids.shape[0]:,} characters, vocabulary of {vocab.size}; "
          f"{train_ids.shape[0]:,} train / {test_ids.shape[0]:,} held out")
    model = CharRNN(vocab.size, n_embed=args.embed, n_hidden=args.hidden, cell=args.cell,
                    seq_len=args.seq_len, random_state=args.seed)
    start = time.perf_counter()
    model.fit(train_ids, epochs=args.epochs, batch_size=64, lr=args.lr,
              validation_data=make_windows(test_ids, args.seq_len), early_stopping_patience=2,
              random_state=args.seed)
    h = model.history_
    for e, (tr, va) in enumerate(zip(h.train_loss, h.val_loss), 1):
        print(f"epoch {e:3d}: train {tr:.4f}  held-out {va:.4f} nats/char")
    print(f"training: {time.perf_counter() - start:.1f} s, best epoch {h.best_epoch}")
    npc = model.nats_per_char(test_ids)
    print(f"held-out: {npc:.4f} nats per character ({npc / math.log(2):.4f} bits), state "
          "carried through 32 streams")
    os.makedirs(args.out, exist_ok=True)
    prime = vocab.encode(args.prime)
    blocks = []
    for i, tau in enumerate(TEMPERATURES):
        out = model.sample(args.n_chars, rng=args.seed + i, temperature=tau, prime=prime)
        sample = args.prime + vocab.decode(out)
        blocks.append(f"--- temperature {tau} ---\n{sample}\n")
        print(blocks[-1])
    (Path(args.out) / "char_rnn_samples.txt").write_text("\n".join(blocks))
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(h.train_loss) + 1)
    ax.plot(epochs, h.train_loss, marker="o", label="train windows")
    ax.plot(epochs, h.val_loss, marker="o", label="held-out windows")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per character")
    ax.set_title(f"char-RNN ({args.cell.upper()}, H = {args.hidden}) on The Devil's Dictionary")
    ax.legend()
    fig.tight_layout()
    fig.savefig(Path(args.out) / "char_rnn_training.png", dpi=100)
    plt.close(fig)
    print(f"samples and figure written to {args.out}")
    print(f"RESULT char_rnn_text nats_per_char={npc:.4f} epochs={len(h.train_loss)} "
          f"cell={args.cell}")


if __name__ == "__main__":
    main()
