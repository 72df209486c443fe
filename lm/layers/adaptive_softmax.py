"""AdaptiveSoftmax: an exact output layer over V words whose cost grows with the frequent words only."""
import numpy as np

from .base import Layer, as_rng
from .losses import _check_labels, _cross_entropy_rows


def default_cutoffs(vocab_size):
    """Cutoffs for a frequency-sorted vocabulary of `vocab_size` words, chosen by measurement.

    Rule: the head holds the V // 10 most frequent words, the first cluster the words up
    to V // 3, the second cluster the rest: V = 10000 gives [1000, 3333]. When V is too
    small for three groups, one cluster: [max(1, V // 10)].
    Why: the head is evaluated for every row, so its width sets the cost; under a Zipf
    law V // 10 words still cover about three quarters of the tokens, so most rows need
    no cluster at all. At V = 10000, H = 256, N*T = 700 (scripts/bench_softmax.py) the
    layer is 7-8x faster than the full softmax and a 1-layer LSTM training step 2.6-3x;
    a head of 2000 (V // 5) gives only 4-5x, one of 500 about 11x but leaves a third of
    the tokens to the narrow (H / div_value) cluster projections.
    """
    V = int(vocab_size)
    if V < 2:
        raise ValueError(f"an adaptive softmax needs vocab_size >= 2, got {V}")
    c0, c1 = max(1, V // 10), V // 3
    return [c0, c1] if c0 < c1 < V else [c0]


class AdaptiveSoftmax(Layer):
    """Adaptive softmax (Grave et al., 2017), PyTorch's nn.AdaptiveLogSoftmaxWithLoss.

    Word ids are sorted by frequency. cutoffs = [c_0, ..., c_{K-1}] (sorted, unique,
    0 < c < V; c_K = V) split them into a head of the c_0 most frequent words and K
    clusters, cluster i holding ids [c_i, c_{i+1}). The head scores its words and one
    entry per cluster; cluster i scores its own words from a narrower projection:
        head   = h @ W (+ b)                                  (M, c_0 + K)
        tail_i = (h @ proj{i}) @ out{i}                       (M, c_{i+1} - c_i)
        log p(w) = log_softmax(head)[w]                                  w <  c_0
        log p(w) = log_softmax(head)[c_0 + i] + log_softmax(tail_i)[w - c_i]   w in cluster i
    This is an exact, normalised distribution over all V words (no sampling, no
    approximation), so perplexity and sampling are exact. Training is cheap because
    `loss` evaluates cluster i only for the rows whose target lies in cluster i.

    Params (h_i = int(H // div_value ** (i + 1)), >= 1):
        W (H, c_0 + K), b (c_0 + K,) only with head_bias,
        proj{i} (H, h_i), out{i} (h_i, c_{i+1} - c_i)  for i = 0..K-1.
    PyTorch state dict, one to one (its Linear weights are (out, in), ours (in, out)):
        W = head.weight.T, b = head.bias, proj{i} = tail.{i}.0.weight.T,
        out{i} = tail.{i}.1.weight.T.  head_bias defaults to False as in PyTorch.
    Initialisation as PyTorch's nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Use as a language model's output layer (in place of TemporalLinear + the loss):
        loss, dh = head.loss(h, targets, mask)   # h (N, T, H), targets (N, T); adds grads
        encoder.backward(dh)                     # dh (N, T, H)
    `loss` with grad=False skips the backward work (evaluation; the loss is exact).
    For generation, `forward(h)` returns full log-probabilities (..., V); they are valid
    logits, so `sample_from_logits(head.forward(h_last)[0], temperature, ...)` samples
    exactly (softmax of log p is p). There is no `backward` for `forward`: train with `loss`.
    """

    def __init__(self, in_features, vocab_size, cutoffs, div_value=4.0, head_bias=False,
                 dtype=np.float32, rng=None):
        super().__init__()
        rng = as_rng(rng)
        H, V = int(in_features), int(vocab_size)
        if H < 1 or V < 2:
            raise ValueError(f"AdaptiveSoftmax needs in_features >= 1, vocab_size >= 2, "
                             f"got {H}, {V}")
        cutoffs = list(cutoffs)
        if (not cutoffs or any(int(c) != c for c in cutoffs) or cutoffs != sorted(set(cutoffs))
                or min(cutoffs) <= 0 or max(cutoffs) >= V):
            raise ValueError(f"cutoffs must be unique increasing integers in [1, {V - 1}], "
                             f"got {cutoffs}")
        if not float(div_value) > 0:
            raise ValueError(f"div_value must be > 0, got {div_value}")
        self.in_features, self.vocab_size = H, V
        self.cutoffs = [int(c) for c in cutoffs] + [V]      # c_1 .. c_K = V
        self.div_value, self.head_bias = float(div_value), bool(head_bias)
        self.shortlist = self.cutoffs[0]                     # c_0, words in the head
        self.n_clusters = len(self.cutoffs) - 1              # K
        C = self.shortlist + self.n_clusters
        k = 1.0 / np.sqrt(H)
        self.add_param("W", rng.uniform(-k, k, (H, C)).astype(dtype))
        if self.head_bias:
            self.add_param("b", rng.uniform(-k, k, (C,)).astype(dtype))
        for i in range(self.n_clusters):
            hi = int(H // self.div_value ** (i + 1))
            size = self.cutoffs[i + 1] - self.cutoffs[i]
            if hi < 1:
                raise ValueError(f"cluster {i} would have width H // div_value**{i + 1} = 0; "
                                 f"use fewer cutoffs or a smaller div_value")
            self.add_param(f"proj{i}", rng.uniform(-k, k, (H, hi)).astype(dtype))
            kh = 1.0 / np.sqrt(hi)
            self.add_param(f"out{i}", rng.uniform(-kh, kh, (hi, size)).astype(dtype))

    def _head(self, h2):
        s = h2 @ self.params["W"]                            # (M, c_0 + K)
        if self.head_bias:
            s += self.params["b"]
        return s

    # ---- training and evaluation ----
    def loss(self, h, targets, mask=None, per_token=True, grad=True):
        """Negative log-likelihood of `targets`; adds every weight gradient into `grads`.

        h: (N, T, H) or (M, H); targets: the same leading shape, ints in [0, V) where
        valid; mask: bool of that shape, True where a target counts (None = all). With
        per_token=True (default) the loss is the mean over valid targets, as
        `temporal_softmax_loss(..., per_token=True)`; per_token=False divides the sum by
        N, h's first dimension (sum over time, mean over the batch), its default.
            loss = -sum_{valid} log p(targets | h) / count
        Returns (loss: float, dh: h's shape and dtype, zero where masked), or (loss, None)
        with grad=False (nothing is added to grads then).
        """
        h = np.asarray(h)
        H = self.in_features
        if h.ndim not in (2, 3) or h.shape[-1] != H:
            raise ValueError(f"AdaptiveSoftmax expects h (N, T, {H}) or (M, {H}), got {h.shape}")
        lead = h.shape[:-1]
        valid = None if mask is None else np.asarray(mask, dtype=bool)
        if valid is not None and valid.shape != lead:
            raise ValueError(f"mask shape {valid.shape} does not match h's {lead}")
        y = _check_labels(targets, valid, self.vocab_size, lead).reshape(-1)
        h2 = h.reshape(-1, H)                                # (M, H)
        if valid is None:
            rows, hv, yv = None, h2, y                       # every row counts
        else:
            rows = np.flatnonzero(valid)                     # masked rows cost nothing
            hv, yv = h2[rows], y[rows]                       # (R, H), (R,)
        count = len(yv) if per_token else lead[0]
        if count == 0:
            raise ValueError("the loss needs at least one valid target")
        w = np.full(len(yv), 1.0 / count)                    # (R,) weight of each row

        c0 = self.shortlist
        scores = self._head(hv)                              # (R, c_0 + K)
        gather = yv.copy()                                   # head entry of each target
        members = []
        for i in range(self.n_clusters):
            idx = np.flatnonzero((yv >= self.cutoffs[i]) & (yv < self.cutoffs[i + 1]))
            gather[idx] = c0 + i
            members.append(idx)
        total = _cross_entropy_rows(scores, gather, w, scores)   # scores -> dscores in place
        dhv = None
        if grad:
            self.grads["W"] += hv.T @ scores
            if self.head_bias:
                self.grads["b"] += scores.sum(axis=0)
            dhv = scores @ self.params["W"].T                # (R, H)
        for i, idx in enumerate(members):
            if idx.size == 0:
                continue                                     # no target here: cluster skipped
            P, O = self.params[f"proj{i}"], self.params[f"out{i}"]
            hi = hv[idx]                                     # (R_i, H)
            p = hi @ P                                       # (R_i, h_i)
            s = p @ O                                        # (R_i, size_i)
            total += _cross_entropy_rows(s, yv[idx] - self.cutoffs[i], w[idx], s)
            if grad:
                self.grads[f"out{i}"] += p.T @ s
                dp = s @ O.T                                 # (R_i, h_i)
                self.grads[f"proj{i}"] += hi.T @ dp
                dhv[idx] += dp @ P.T
        if not grad:
            return float(total), None
        if rows is None:
            return float(total), dhv.reshape(h.shape)
        dh = np.zeros_like(h2)
        dh[rows] = dhv
        return float(total), dh.reshape(h.shape)

    # ---- full distribution: tests, evaluation of every word, sampling ----
    def log_prob(self, h):
        """h: (..., H) -> log p: (..., V), exact; exp sums to 1 along the last axis."""
        h = np.asarray(h)
        H = self.in_features
        if h.ndim < 1 or h.shape[-1] != H:
            raise ValueError(f"AdaptiveSoftmax expects h (..., {H}), got {h.shape}")
        h2 = h.reshape(-1, H)
        head = _log_softmax(self._head(h2))                  # (M, c_0 + K)
        out = np.empty((h2.shape[0], self.vocab_size), dtype=head.dtype)
        c0 = self.shortlist
        out[:, :c0] = head[:, :c0]
        for i in range(self.n_clusters):
            tail = _log_softmax((h2 @ self.params[f"proj{i}"]) @ self.params[f"out{i}"])
            tail += head[:, c0 + i:c0 + i + 1]               # log p(cluster) + log p(w | cluster)
            out[:, self.cutoffs[i]:self.cutoffs[i + 1]] = tail
        return out.reshape(h.shape[:-1] + (self.vocab_size,))

    def target_log_prob(self, h, targets):
        """log p(targets | h), exact, evaluating only the clusters the targets fall in.

        h: (..., H); targets: (...) ints in [0, V). Returns (...) float64; equals
        `log_prob(h)` at the targets without scoring the whole vocabulary.
        """
        h = np.asarray(h)
        H = self.in_features
        if h.ndim < 1 or h.shape[-1] != H:
            raise ValueError(f"AdaptiveSoftmax expects h (..., {H}), got {h.shape}")
        y = _check_labels(targets, None, self.vocab_size, h.shape[:-1]).reshape(-1)
        h2 = h.reshape(-1, H)
        head = _log_softmax(self._head(h2))                  # (M, c_0 + K)
        out = np.empty(len(y))
        c0 = self.shortlist
        short = np.flatnonzero(y < c0)
        out[short] = head[short, y[short]]
        for i in range(self.n_clusters):
            idx = np.flatnonzero((y >= self.cutoffs[i]) & (y < self.cutoffs[i + 1]))
            if idx.size:
                tail = _log_softmax((h2[idx] @ self.params[f"proj{i}"]) @ self.params[f"out{i}"])
                out[idx] = head[idx, c0 + i] + tail[np.arange(idx.size), y[idx] - self.cutoffs[i]]
        return out.reshape(h.shape[:-1])

    def forward(self, h):
        """Scores for sampling: the exact log-probabilities, (..., H) -> (..., V)."""
        return self.log_prob(h)


def _log_softmax(s):
    """Row-wise log_softmax, in place on `s` (a fresh array), stable."""
    s -= s.max(axis=1, keepdims=True)
    s -= np.log(np.exp(s).sum(axis=1, keepdims=True))
    return s
