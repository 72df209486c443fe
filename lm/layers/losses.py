"""Softmax cross-entropy losses: per time step (masked, summed over T) and per example."""
import numpy as np

# Rows are processed in chunks of about this many scores, so the four passes over
# each chunk (max, subtract, exp, scale) hit the cache instead of main memory.
CHUNK_ELEMS = 1 << 18


def _float_scores(scores):
    """scores as a float array, and whether it is a fresh copy we may overwrite."""
    arr = np.asarray(scores)
    if not np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float64), True
    return arr, arr is not scores and not np.shares_memory(arr, scores)


def _check_labels(y, valid, V, shape):
    """y: int array of `shape`; returns y with padded entries replaced by 0."""
    y = np.asarray(y)
    if y.shape != shape:
        raise ValueError(f"labels shape {y.shape} does not match scores' {shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {y.dtype}")
    if valid is not None:
        y = np.where(valid, y, 0)               # padded labels may be anything (-1, pad id)
    if y.size and (y.min() < 0 or y.max() >= V):
        raise ValueError(f"labels must lie in [0, {V}), got min {y.min()} max {y.max()}")
    return y


def _cross_entropy_rows(s, y, w, out):
    """Weighted softmax cross-entropy of each row, written in place.

    s: (R, V) scores; y: (R,) labels; w: (R,) float64 weights (0 = ignore the row);
    out: (R, V) buffer, may be `s` itself. Returns sum_r w_r * (logsumexp(s_r) - s_r[y_r])
    and leaves out_r = w_r * (softmax(s_r) - onehot(y_r)), exactly 0 where w_r == 0.
    Stable: every row is shifted by its max before exp.
    """
    R, V = s.shape
    rows = max(1, CHUNK_ELEMS // V)
    ones = np.ones(V, dtype=out.dtype)  # row sums as one BLAS product (speed)
    total = 0.0
    for a in range(0, R, rows):
        b = min(R, a + rows)
        sc, oc, yc, wc = s[a:b], out[a:b], y[a:b], w[a:b]
        r = np.arange(b - a)
        np.subtract(sc, sc.max(axis=1, keepdims=True), out=oc)   # shifted: max is 0
        sy = oc[r, yc].astype(np.float64)                        # shifted target score
        np.exp(oc, out=oc)
        z = (oc @ ones).astype(np.float64)                       # in [1, V]
        live = wc != 0
        total += float(np.dot(wc[live], np.log(z[live]) - sy[live]))
        oc *= (wc / z).astype(oc.dtype)[:, None]                 # w * softmax
        oc[r, yc] -= wc.astype(oc.dtype)
        if not live.all():
            oc[~live] = 0                                        # even if those scores were NaN
    return total


def temporal_softmax_loss(scores, y, mask=None, overwrite_scores=False, per_token=False):
    """Cross-entropy at every valid time step, summed over time, averaged over the batch.

    scores: (N, T, V) unnormalised log-probabilities; y: (N, T) int labels in [0, V);
    mask: (N, T) bool, True where a step counts (None = all). Labels at masked-out steps
    are ignored. loss = (1/N) sum_{n,t} mask[n,t] * (logsumexp(scores[n,t]) - scores[n,t,y]).
    per_token=True divides by the number of valid steps instead of N (the mean per token;
    no valid step is then a ValueError), at no extra cost.
    Returns (loss: float, dscores: (N, T, V) in scores' dtype). Only one (N, T, V) array
    is allocated (dscores); with overwrite_scores=True even that is avoided and dscores
    reuses the scores buffer (scores are then destroyed).
    """
    scores, owned = _float_scores(scores)
    if scores.ndim != 3:
        raise ValueError(f"scores must be (N, T, V), got shape {scores.shape}")
    N, T, V = scores.shape
    valid = None
    if mask is not None:
        valid = np.asarray(mask, dtype=bool)
        if valid.shape != (N, T):
            raise ValueError(f"mask shape {valid.shape} does not match scores' (N, T) = {(N, T)}")
    y = _check_labels(y, valid, V, (N, T))
    count = N if not per_token else N * T if valid is None else int(np.count_nonzero(valid))
    if count == 0:
        raise ValueError("per_token loss needs at least one valid step")
    w = np.full(N * T, 1.0 / count) if valid is None else valid.reshape(-1) / count
    s = scores.reshape(N * T, V)
    if not np.shares_memory(s, scores):
        owned = True                              # reshape had to copy: reuse that copy
    out = s if overwrite_scores or owned else np.empty_like(s)
    loss = _cross_entropy_rows(s, y.reshape(-1), w, out)
    return loss, out.reshape(N, T, V)


def softmax_cross_entropy(scores, y, overwrite_scores=False):
    """Mean softmax cross-entropy over a batch.

    scores: (N, C); y: (N,) int labels in [0, C).
    loss = (1/N) sum_n (logsumexp(scores[n]) - scores[n, y[n]]), stable for huge scores.
    Returns (loss: float, dscores: (N, C) in scores' dtype); overwrite_scores=True
    writes dscores into the scores buffer instead of a new array.
    """
    scores, owned = _float_scores(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N, C), got shape {scores.shape}")
    N, C = scores.shape
    y = _check_labels(y, None, C, (N,))
    out = scores if overwrite_scores or owned else np.empty_like(scores)
    loss = _cross_entropy_rows(scores, y, np.full(N, 1.0 / N), out)
    return loss, out


def log_softmax_at(scores, y):
    """log softmax(scores)[y] at every position, without a gradient.

    scores: (..., V) unnormalised log-probabilities; y: (...) int labels in [0, V).
    Returns (...) float64: scores[..., y] - logsumexp(scores), stable (row max first).
    """
    scores = np.asarray(scores)
    if scores.ndim < 1:
        raise ValueError(f"scores must have a class axis, got shape {scores.shape}")
    lead, V = scores.shape[:-1], scores.shape[-1]
    y = _check_labels(y, None, V, lead).reshape(-1)
    s = scores.reshape(-1, V)
    out = np.empty(len(y))
    rows = max(1, CHUNK_ELEMS // V)                 # chunks that stay in the cache
    for a in range(0, len(y), rows):
        sc = s[a:a + rows].astype(np.float64)
        top = sc.max(axis=1)
        lse = top + np.log(np.exp(sc - top[:, None]).sum(axis=1))
        out[a:a + rows] = sc[np.arange(len(sc)), y[a:a + rows]] - lse
    return out.reshape(lead)
