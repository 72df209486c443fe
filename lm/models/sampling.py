"""Drawing token ids from score vectors: temperature, top-k and nucleus (top-p) filtering."""
import numpy as np

from lm.layers.base import as_rng


def _check_options(temperature, top_k, top_p):
    try:
        ok = float(temperature) > 0 and np.isfinite(float(temperature))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"temperature must be a positive number, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or int(top_k) != top_k or top_k < 0):
        raise ValueError(f"top_k must be a non-negative integer (0 = off), got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def filtered_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """Probabilities after temperature, top-k and top-p filtering.

    logits: (N, V) float. Returns probs: (N, V) float64, each row summing to 1.
      p = softmax(logits / temperature)  (stable: the row maximum is subtracted first)
      top_k: zero all but the k largest scores (0 or None = off; k >= V = off).
      top_p: keep the smallest set of most likely tokens whose probability sum is
             >= top_p (the most likely token always stays), then renormalise.
    """
    _check_options(temperature, top_k, top_p)
    z = np.array(logits, dtype=np.float64)  # a copy: filtered in place below
    if z.ndim != 2 or z.shape[1] == 0:
        raise ValueError(f"logits must be (V,) or (N, V) with V >= 1, got shape {np.shape(logits)}")
    zmax = z.max(axis=1, keepdims=True)  # NaN and +inf show up in the row maximum
    if not np.isfinite(zmax).all():
        if np.isnan(zmax).any() or np.isposinf(zmax).any():
            raise ValueError("logits contain NaN or +inf")
        raise ValueError("every logit of a row is -inf")
    N, V = z.shape
    z -= zmax  # stable softmax; the k largest keep the maximum, so top-k does not change it
    z /= float(temperature)
    if top_k and top_k < V:
        # indices of everything outside the k largest, per row
        drop = np.argpartition(-z, int(top_k) - 1, axis=1)[:, int(top_k):]
        np.put_along_axis(z, drop, -np.inf, axis=1)
    p = np.exp(z, out=z)
    p /= p.sum(axis=1, keepdims=True)
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, axis=1, kind="stable")
        sorted_p = np.take_along_axis(p, order, axis=1)
        before = np.cumsum(sorted_p, axis=1) - sorted_p  # mass of the more likely tokens
        remove = before >= top_p  # already enough mass without this token
        remove[:, 0] = False
        mask = np.empty_like(remove)
        np.put_along_axis(mask, order, remove, axis=1)  # back to vocabulary order
        p[mask] = 0.0
        p /= p.sum(axis=1, keepdims=True)
    return p


def sample_from_logits(logits, temperature=1.0, top_k=None, top_p=None, rng=None):
    """Draw one token id per row of scores.

    logits: (V,) or (N, V) unnormalised scores. temperature > 0 divides them (lower =
    more conservative); top_k keeps the k most likely tokens (0/None = off; 1 = greedy
    argmax); top_p in (0, 1] keeps the smallest set of most likely tokens whose total
    probability is >= top_p. rng: np.random.Generator (or seed; None = seed 0).
    Returns an int for (V,) input, an (N,) int64 array for (N, V) input.
    """
    arr = np.asarray(logits)
    single = arr.ndim == 1
    z = arr[None, :] if single else arr
    if top_k == 1:  # greedy: no randomness needed
        _check_options(temperature, top_k, top_p)
        if z.ndim != 2 or z.shape[1] == 0 or np.isnan(z).any():
            raise ValueError(f"logits must be finite (V,) or (N, V), got shape {arr.shape}")
        ids = np.argmax(z, axis=1).astype(np.int64)
    else:
        p = filtered_probs(z, temperature, top_k, top_p)
        rng = as_rng(rng)
        cdf = np.cumsum(p, axis=1)
        u = rng.random(len(cdf)) * cdf[:, -1]
        # first index whose cdf exceeds u: tokens of probability 0 can never be chosen
        ids = (cdf <= u[:, None]).sum(axis=1)
        ids = np.minimum(ids, cdf.shape[1] - 1).astype(np.int64)
    return int(ids[0]) if single else ids
