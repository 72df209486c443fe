"""The continuous cache of Grave, Joulin and Usunier (2017): recent words are likely again.

A language model's last-layer outputs h_i at earlier positions of the same stream, each
with the token y_i that followed it, are kept (the last `size` of them). At position t
the cache proposes those tokens, weighted by how much h_t resembles each h_i:

    p_cache(w | h_t) = sum_{i in memory, y_i = w} a_i,   a = softmax_i(theta * h_t . h_i)
    p(w | h_t)       = (1 - lam) * p_model(w | h_t) + lam * p_cache(w | h_t)

a mixture of two normalised distributions, so p stays exact and normalised (with an
empty memory, at a stream's first token, p = p_model). The cache has no parameters and
changes nothing in training: it is used where the model scores or samples text
(`LanguageModelRNN.nll` and `generate`), with state carried as the recurrent state is.
"""
from typing import NamedTuple

import numpy as np

from lm.config.training import CACHE_LAMBDA, CACHE_THETA


class CacheMemory(NamedTuple):
    """The remembered positions of N streams: keys (N, M, H) last-layer outputs, values
    (N, M) the token after each, valid (N, M) bool (False for padding). M <= size."""
    keys: np.ndarray
    values: np.ndarray
    valid: np.ndarray


class CachedState(NamedTuple):
    """What `LanguageModelRNN.nll` carries between windows when it has a cache: the
    recurrent state (per-layer list) and the cache's memory."""
    rnn: list
    memory: CacheMemory


def check_cache(size, theta, lam):
    """(size, theta, lam) as (int, float, float), or ValueError: size >= 0 (0 = off),
    theta >= 0 finite, 0 <= lam < 1."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
        raise ValueError(f"cache_size must be an integer >= 0 (0 = no cache), got {size!r}")
    try:
        theta, lam = float(theta), float(lam)
    except (TypeError, ValueError):
        raise ValueError(f"cache_theta and cache_lambda must be numbers, got {theta!r} "
                         f"and {lam!r}") from None
    if not (np.isfinite(theta) and theta >= 0):
        raise ValueError(f"cache_theta must be a finite number >= 0, got {theta!r}")
    if not 0 <= lam < 1:
        raise ValueError(f"cache_lambda must be in [0, 1), got {lam!r}")
    return int(size), theta, lam


class ContinuousCache:
    """p = (1 - lam) p_model + lam p_cache over the last `size` positions (module docstring)."""

    def __init__(self, size, theta=CACHE_THETA, lam=CACHE_LAMBDA):
        self.size, self.theta, self.lam = check_cache(size, theta, lam)

    def empty(self, N, H, dtype):
        """The memory of N fresh streams."""
        return CacheMemory(np.zeros((N, 0, H), dtype=dtype), np.zeros((N, 0), dtype=np.int64),
                           np.zeros((N, 0), dtype=bool))

    def _attention(self, h, memory, valid):
        """Weights of every query over memory + the window itself, before it.

        h: (N, T, H); valid: (N, T) bool. Returns (keys (N, M+T, H), their valid flags
        (N, M+T), a (N, T, M+T) with rows summing to 1 or all 0 where nothing may be
        attended, M). Query t sees the positions j of the concatenation with
        t + M - size <= j < t + M that are valid.
        """
        M, T = memory.keys.shape[1], h.shape[1]
        keys = np.concatenate([memory.keys, h], axis=1)                 # (N, M+T, H)
        key_valid = np.concatenate([memory.valid, valid], axis=1)       # (N, M+T)
        j = np.arange(M + T)[None, :]
        t = np.arange(T)[:, None] + M
        allowed = (j < t) & (j >= t - self.size)                        # (T, M+T)
        allowed = allowed[None] & key_valid[:, None, :]                 # (N, T, M+T)
        s = self.theta * np.matmul(h, keys.transpose(0, 2, 1)).astype(np.float64)
        s[~allowed] = -np.inf
        top = s.max(axis=2, keepdims=True)
        top[~np.isfinite(top)] = 0.0                                    # rows with nothing
        a = np.exp(s - top)                                             # exp(-inf) = 0
        z = a.sum(axis=2, keepdims=True)
        np.divide(a, z, out=a, where=z > 0)
        return keys, key_valid, a, M

    def _remember(self, keys, values, valid):
        """The last `size` positions as the next memory (fresh arrays)."""
        k = min(self.size, keys.shape[1])
        start = keys.shape[1] - k
        return CacheMemory(keys[:, start:].copy(), values[:, start:].copy(),
                           valid[:, start:].copy())

    def mix_targets(self, log_p_model, h, targets, memory, mask=None):
        """log p(targets) under the mixture, and the memory after this window.

        log_p_model: (N, T) log p_model(targets); h: (N, T, H) last-layer outputs;
        targets: (N, T) ids (targets[n, t] follows position t, the value h[n, t] will
        carry); memory: CacheMemory or None (empty); mask: (N, T) bool or None.
        Returns (log p (N, T) float64, CacheMemory).
        """
        N, T, H = h.shape
        memory = self.empty(N, H, h.dtype) if memory is None else memory
        valid = np.ones((N, T), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        keys, key_valid, a, M = self._attention(h, memory, valid)
        values = np.concatenate([memory.values, np.asarray(targets, dtype=np.int64)], axis=1)
        hit = values[:, None, :] == np.asarray(targets)[:, :, None]     # (N, T, M+T)
        p_cache = (a * hit).sum(axis=2)                                 # (N, T)
        seen = a.sum(axis=2) > 0                                        # some memory to use
        log_p = np.asarray(log_p_model, dtype=np.float64).copy()
        with np.errstate(divide="ignore"):                              # log 0 = -inf is right
            mixed = np.logaddexp(np.log1p(-self.lam) + log_p[seen],
                                 np.log(self.lam) + np.log(p_cache[seen]))
        log_p[seen] = mixed
        return log_p, self._remember(keys, values, key_valid)

    def mix_distribution(self, log_p_model, h, memory):
        """The mixture's log-probabilities over the whole vocabulary at one step.

        log_p_model: (N, V) exact log-probabilities; h: (N, H) the outputs that produced
        them; memory: CacheMemory (its values are the tokens after each remembered
        position). Returns log p (N, V) float64; with an empty memory, log_p_model.
        """
        N, V = log_p_model.shape
        log_p = np.asarray(log_p_model, dtype=np.float64).copy()
        if memory is None or memory.keys.shape[1] == 0:
            return log_p
        keys, _, a, M = self._attention(h[:, None, :], memory, np.zeros((N, 1), dtype=bool))
        a = a[:, 0, :M]                                                 # (N, M): memory only
        p_cache = np.zeros((N, V))
        for n in range(N):
            np.add.at(p_cache[n], memory.values[n], a[n])
        seen = a.sum(axis=1) > 0
        with np.errstate(divide="ignore"):
            log_p[seen] = np.logaddexp(np.log1p(-self.lam) + log_p[seen],
                                       np.log(self.lam) + np.log(p_cache[seen]))
        return log_p

    def remember(self, h, values):
        """A memory holding positions h (N, T, H) whose next tokens are values (N, T)."""
        N, T = np.shape(values)
        return self._remember(np.asarray(h), np.asarray(values, dtype=np.int64),
                              np.ones((N, T), dtype=bool))

    def append(self, memory, h, token):
        """The memory after one step: key h (N, H) with value token (N,) ints."""
        N, H = h.shape
        memory = self.empty(N, H, h.dtype) if memory is None else memory
        return self._remember(np.concatenate([memory.keys, h[:, None, :]], axis=1),
                              np.concatenate([memory.values,
                                              np.asarray(token, dtype=np.int64)[:, None]], axis=1),
                              np.concatenate([memory.valid, np.ones((N, 1), dtype=bool)], axis=1))
