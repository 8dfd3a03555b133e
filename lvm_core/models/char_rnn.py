"""Character-level recurrent language model (char-RNN).

References: Elman 1990 and Mikolov et al. 2010 (recurrent language models);
Karpathy 2015, "The unreasonable effectiveness of recurrent neural networks"
(character RNNs and temperature sampling); Cho et al. 2014 (GRU); Hochreiter &
Schmidhuber 1997 (LSTM); Williams & Peng 1990 (truncated backpropagation
through time); course notes seed 001 (autoregressive models: recurrent nets
keep a summary of the history).

Model (K symbols, E embedding width, H hidden units).  For a sequence of
symbols y_0, y_1, .., y_T, by the chain rule,

    log p(y_1..y_T | y_0) = sum_t log p(y_t | y_<t),
    e_t = W_emb[y_{t-1}]                                  (Embedding, (E,))
    h_t = cell(e_t, h_{t-1}),  h_0 = 0                    (GRU or LSTM, (H,))
    l_t = h_t V + c                                       (Dense, logits (K,))
    p(y_t | y_<t) = softmax(l_t)[y_t].

Training (truncated BPTT): the corpus is cut into windows of T + 1 symbols
(rows of X, shape (N, T + 1)); each window starts from a zero state; the
loss is the mean negative log-likelihood per predicted symbol (nats per
character),

    loss = -1/(N T) sum_{n, t} log p(y_nt | y_n,<t),

and its gradient flows back through the output layer, the cell unroll (BPTT
of :mod:`lvm_core.nn.recurrent`) and the embedding.  Sampling at
temperature tau draws y_t ~ softmax(l_t / tau) (Gumbel-max), and tau = 0 is
the greedy argmax.

One code path: the model composes :class:`lvm_core.nn.Embedding`,
:class:`lvm_core.nn.GRUCell` / :class:`lvm_core.nn.LSTMCell`,
:class:`lvm_core.nn.Dense` and :func:`lvm_core.ops.categorical_loglik`, and
trains through :func:`lvm_core.train.fit_minibatch`.  The vocabulary (symbols
<-> integers) is the caller's: lvm_core works on integer ids.
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import functional as F
from .. import ops
from ..backend import asarray, get_namespace, item
from ..nn import Dense, Embedding, GRUCell, LSTMCell
from ..random import as_generator, gumbel
from ..validation import check_array, check_choice, check_positive_int
from .base import ParamsMixin

__all__ = ["CharRNN", "make_windows"]


def make_windows(ids, seq_len, step=None):
    """Windows of ``seq_len + 1`` consecutive symbols of a 1-D id sequence: (N, seq_len + 1).

    Window n starts at n * step (default step = seq_len, so consecutive windows
    share one symbol: the last target of one is the first input of the next).
    """
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"ids must be a 1-D integer array of symbol ids; got shape {ids.shape}, "
                         f"dtype {ids.dtype}. Encode the text first (vocabulary.encode(text)).")
    check_positive_int(seq_len, "seq_len")
    step = int(seq_len) if step is None else check_positive_int(step, "step")
    T1 = int(seq_len) + 1
    if ids.shape[0] < T1:
        raise ValueError(f"ids has {ids.shape[0]} symbols; a window needs seq_len + 1 = {T1}. "
                         "Use a shorter seq_len or more text.")
    starts = np.arange(0, ids.shape[0] - T1 + 1, step)
    return ids[starts[:, None] + np.arange(T1)[None, :]].astype(np.int64)


class CharRNN(ParamsMixin):
    """Embedding -> GRU/LSTM -> Dense logits over the vocabulary; categorical likelihood.

    Parameters
    ----------
    n_symbols : int
        K, the vocabulary size (symbols are integers 0 .. K-1).
    n_embed : int
        E, the embedding width.
    n_hidden : int
        H, the recurrent state size.
    cell : {"gru", "lstm"}
    seq_len : int
        T, the BPTT window used by :meth:`fit` when it is given a 1-D id sequence.
    dtype : {"float32", "float64"}
    random_state : None, int or Generator
        Initial weights (embedding, cell, output layer, in that order).

    Attributes
    ----------
    params : dict
        ``emb_W`` (K, E); ``rnn_W_x`` (E, G), ``rnn_W_h`` (H, G), ``rnn_b_x``,
        ``rnn_b_h`` (G,) with G = 3H (GRU) or 4H (LSTM); ``out_W`` (H, K), ``out_b`` (K,).
    history_ : History
        Set by :meth:`fit`.
    """

    _estimator_type = "density_estimator"

    def __init__(self, n_symbols, n_embed=32, n_hidden=128, cell="gru", seq_len=64,
                 dtype="float32", random_state=None):
        self.n_symbols = n_symbols
        self.n_embed = n_embed
        self.n_hidden = n_hidden
        self.cell = cell
        self.seq_len = seq_len
        self.dtype = dtype
        self.random_state = random_state
        self._validate_hyperparameters()
        self.params = None

    def _validate_hyperparameters(self):
        check_positive_int(self.n_symbols, "n_symbols")
        check_positive_int(self.n_embed, "n_embed")
        check_positive_int(self.n_hidden, "n_hidden")
        check_choice(self.cell, "cell", ("gru", "lstm"))
        check_positive_int(self.seq_len, "seq_len")
        check_choice(self.dtype, "dtype", ("float32", "float64"))

    def _layers(self):
        key = (int(self.n_symbols), int(self.n_embed), int(self.n_hidden), self.cell)
        cache = getattr(self, "_layer_cache", None)
        if cache is None or cache[0] != key:
            K, E, H = key[:3]
            cell = GRUCell(E, H, prefix="rnn_") if self.cell == "gru" else \
                LSTMCell(E, H, prefix="rnn_")
            cache = self._layer_cache = (key, dict(emb=Embedding(K, E, prefix="emb_"), cell=cell,
                                                   out=Dense(H, K, None, prefix="out_")))
        return cache[1]

    def initialize(self, like=None, random_state=None):
        """New parameters (embedding N(0, 1); cell and output U(+-1/sqrt(H)), as PyTorch)."""
        self._validate_hyperparameters()
        rng = as_generator(self.random_state if random_state is None else random_state)
        layers = self._layers()
        params = {}
        for name in ("emb", "cell", "out"):
            params.update(layers[name].init(rng, dtype=self.dtype, like=like))
        self.params = params
        return self

    def _prepare(self, X, name="X", validate=True, min_len=2):
        """Integer windows X (N, T + 1) on the params' device (params created if needed)."""
        if validate:
            X = check_array(X, name, ndim=2, dtype_kind="integral")
            if X.shape[1] < min_len:
                raise ValueError(f"{name} must have at least {min_len} symbols per row (an input "
                                 f"and a target); got shape {tuple(X.shape)}.")
        if self.params is None:
            self.initialize(like=None if isinstance(X, np.ndarray) else X)
        xp = get_namespace(X, self.params["out_W"])
        if validate:
            lo, hi = int(xp.min(X)), int(xp.max(X))
            if lo < 0 or hi >= int(self.n_symbols):
                raise ValueError(
                    f"{name} holds the symbol {lo if lo < 0 else hi}, outside 0 .. "
                    f"{int(self.n_symbols) - 1} (n_symbols={self.n_symbols}). Build the model "
                    "with n_symbols = the vocabulary size."
                )
        return xp, X

    # ---------------------------------------------------------------- forward
    def _forward(self, xp, inputs, params, state0=None, ws=None, check=True):
        """Logits (T N, K) for inputs (T, N), the caches and the final state."""
        layers = self._layers()
        T, N = inputs.shape
        E_seq, c_emb = layers["emb"].forward(params, inputs, check=check)  # (T, N, E)
        H_seq, c_cell = layers["cell"].forward(params, E_seq, state0=state0)  # (T, N, H)
        H2 = xp.reshape(H_seq, (T * N, int(self.n_hidden)))
        logits, c_out = layers["out"].forward(params, H2, ws)  # (T N, K)
        if self.cell == "gru":
            state = H_seq[T - 1, ...]
        else:
            state = (H_seq[T - 1, ...], c_cell.C_seq[T - 1, ...])
        return logits, (c_emb, c_cell, c_out), state

    @staticmethod
    def _split(xp, X):
        """inputs (T, N) = X[:, :-1]^T and targets (T N,) = X[:, 1:]^T flattened."""
        T = X.shape[1] - 1
        inputs = xp.permute_dims(X[:, :T], (1, 0))  # (T, N)
        targets = xp.reshape(xp.permute_dims(X[:, 1:], (1, 0)), (-1,))  # (T N,)
        if type(targets) is np.ndarray:
            targets = np.ascontiguousarray(targets)
        return inputs, targets

    def loss_and_grads(self, X, rng=None, params=None, grads_out=None, check_input=True):
        """Mean negative log-likelihood per predicted symbol over windows X (N, T + 1)
        and its gradients (truncated BPTT from a zero state per window).

        dlogits = -(onehot(y) - softmax(l)) / (N T), then the output layer, BPTT
        through the cell and the embedding's scatter-add.  ``rng`` is unused (the
        loss is deterministic).  Returns (loss as a 0-d array, grads keyed like params).
        """
        xp, X = self._prepare(X, validate=check_input)
        params = self.params if params is None else params
        if getattr(self, "_ws", None) is None:
            self._ws = ops.Workspace()
        ws = self._ws
        layers = self._layers()
        inputs, targets = self._split(xp, X)
        T, N = inputs.shape
        logits, (c_emb, c_cell, c_out), _ = self._forward(xp, inputs, params, ws=ws,
                                                          check=check_input)
        ll, dlogits = ops.categorical_loglik(logits, targets, -1.0 / (T * N), ws=ws,
                                             name="char_rnn")
        loss = -xp.sum(ll) / float(T * N)
        grads = {} if grads_out is None else grads_out
        dH2 = layers["out"].backward(params, dlogits, c_out, grads, ws)  # (T N, H)
        dH_seq = xp.reshape(dH2, (T, N, int(self.n_hidden)))
        dE = layers["cell"].backward(params, dH_seq, c_cell, grads)
        layers["emb"].backward(params, dE, c_emb, grads)
        if grads_out is None:
            return loss, {k: grads[k] for k in params}
        return loss, grads

    # -------------------------------------------------------------- inference
    def predict_log_proba(self, X):
        """log p(y_t = k | y_<t) for every step: (N, T, K) for X (N, T + 1) (the last symbol of a
        row is only a target; use X[:, :T + 1] with any final symbol for a prefix)."""
        xp, X = self._prepare(X)
        inputs, _ = self._split(xp, X)
        T, N = inputs.shape
        logits, _, _ = self._forward(xp, inputs, self.params)
        log_p = logits - F.logsumexp(logits, axis=1, keepdims=True)  # (T N, K)
        return xp.permute_dims(xp.reshape(log_p, (T, N, int(self.n_symbols))), (1, 0, 2))

    def score_samples(self, X):
        """log p(y_1..y_T | y_0) per row (N,) of X (N, T + 1), from a zero state."""
        xp, X = self._prepare(X)
        inputs, targets = self._split(xp, X)
        T, N = inputs.shape
        logits, _, _ = self._forward(xp, inputs, self.params)
        ll, _ = ops.categorical_loglik(logits, targets)  # (T N,)
        return xp.sum(xp.reshape(ll, (T, N)), axis=0)

    def validation_loss(self, X):
        """Mean negative log-likelihood per predicted symbol of the windows X (nats/char)."""
        s = self.score_samples(X)
        return -item(get_namespace(s).sum(s)) / float(X.shape[0] * (X.shape[1] - 1))

    def nats_per_char(self, ids, n_streams=32, chunk=None):
        """Held-out nats per character of a 1-D id sequence, -1/T' sum_t log p(y_t | y_<t).

        The sequence is cut into ``n_streams`` contiguous streams run side by side;
        each carries its state across chunks of ``chunk`` steps (default seq_len),
        so every prediction sees its whole stream's history (only the first symbol
        of each stream is not predicted).
        """
        ids = check_array(ids, "ids", ndim=1, dtype_kind="integral")
        if self.params is None:
            self.initialize()
        W = self.params["out_W"]
        xp = get_namespace(W)
        n_streams = check_positive_int(n_streams, "n_streams")
        L = ids.shape[0] // n_streams
        if L < 2:
            raise ValueError(f"ids has {ids.shape[0]} symbols: too few for {n_streams} streams "
                             "of at least 2; pass fewer n_streams.")
        chunk = int(self.seq_len) if chunk is None else check_positive_int(chunk, "chunk")
        ids = asarray(ids, like=W, dtype="int64")
        streams = xp.permute_dims(xp.reshape(ids[:n_streams * L], (n_streams, L)), (1, 0))  # (L, S)
        total, count, state = 0.0, 0, None
        for start in range(0, L - 1, chunk):
            stop = min(start + chunk, L - 1)
            inputs = streams[start:stop, :]  # (t, S)
            targets = xp.reshape(streams[start + 1:stop + 1, :], (-1,))
            logits, _, state = self._forward(xp, inputs, self.params, state0=state)
            ll, _ = ops.categorical_loglik(logits, targets)
            total += item(xp.sum(ll))
            count += int(targets.shape[0])
        return -total / count

    def sample(self, n_chars, rng=None, temperature=1.0, prime=None):
        """n_chars symbols (int64, (n_chars,)) drawn y_t ~ softmax(l_t / temperature).

        ``prime``: symbols fed first (their predictions are not returned); None
        starts from symbol 0.  ``temperature=0`` is the greedy argmax; as it
        tends to 0 the draws become greedy.
        """
        check_positive_int(n_chars, "n_chars")
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) \
                or not temperature >= 0:
            raise ValueError(f"temperature must be a number >= 0; got {temperature!r}.")
        if self.params is None:
            self.initialize()
        rng = as_generator(rng)
        W = self.params["out_W"]
        xp = get_namespace(W)
        prime = np.zeros(1, dtype=np.int64) if prime is None else np.asarray(prime)
        if prime.ndim != 1 or prime.shape[0] < 1 or prime.dtype.kind not in "iu" \
                or int(prime.min()) < 0 or int(prime.max()) >= int(self.n_symbols):
            raise ValueError(f"prime must be a non-empty 1-D sequence of symbol ids in 0 .. "
                             f"{int(self.n_symbols) - 1}; got {prime!r}.")
        layers = self._layers()
        state = None
        out = np.empty(int(n_chars), dtype=np.int64)
        x = asarray(prime.astype(np.int64), like=W, dtype="int64")
        for i in range(int(n_chars) + 1):
            # feed x (t symbols): the logits of the last step give the next symbol
            E_seq, _ = layers["emb"].forward(self.params, xp.reshape(x, (-1, 1)))  # (t, 1, E)
            H_seq, c_cell = layers["cell"].forward(self.params, E_seq, state0=state)
            t = H_seq.shape[0]
            state = H_seq[t - 1, ...] if self.cell == "gru" else \
                (H_seq[t - 1, ...], c_cell.C_seq[t - 1, ...])
            if i == int(n_chars):
                break
            logits, _ = layers["out"].forward(self.params, H_seq[t - 1, ...])  # (1, K)
            if temperature == 0:
                y = xp.argmax(logits, axis=1)
            else:
                g = gumbel(rng, tuple(logits.shape), like=logits)
                y = xp.argmax(logits / float(temperature) + g, axis=1)
            out[i] = int(item(y[0]))
            x = y
        return out

    # -------------------------------------------------------------- training
    def fit(self, X, epochs=10, batch_size=64, lr=2e-3, optimizer="adam", optimizer_kwargs=None,
            validation_data=None, early_stopping_patience=None, random_state=None,
            progress=False, clip_norm=5.0, callbacks=None, **fit_kwargs):
        """Train with :func:`lvm_core.train.fit_minibatch`.

        ``X``: windows (N, T + 1) of symbol ids, or a 1-D id sequence (cut into
        windows of ``seq_len + 1`` by :func:`make_windows`); ``validation_data``
        likewise.  Gradients are clipped to a global norm ``clip_norm`` (the usual
        guard against exploding gradients in BPTT; None turns it off).  Returns self.
        """
        from ..train import fit_minibatch

        X = self._as_windows(X, "X")
        _, X = self._prepare(X)
        if validation_data is not None:
            validation_data = self._as_windows(validation_data, "validation_data")
            _, validation_data = self._prepare(validation_data, name="validation_data")
        self.history_ = fit_minibatch(
            self, X, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
            optimizer_kwargs=optimizer_kwargs, validation_data=validation_data,
            early_stopping_patience=early_stopping_patience, random_state=random_state,
            progress=progress, clip_norm=clip_norm, callbacks=callbacks, **fit_kwargs)
        return self

    def _as_windows(self, X, name):
        if hasattr(X, "ndim") and X.ndim == 1:
            return make_windows(X, int(self.seq_len))
        return X
