"""Optimisers (Adam, SGD with momentum) and gradient-norm clipping, updating params in place."""
import math

import numpy as np

from lm.config.checks import MAX_LEARNING_RATE

# Adam updates each parameter in blocks of this many values, so that its dozen passes
# run over data held in the CPU cache rather than streaming whole arrays from memory.
CHUNK = 1 << 16


class Optimizer:
    """Common machinery: the model's flat `params`/`grads`, `lr`, frozen names, state I/O.

    Subclasses keep per-parameter state buffers in `self.state[kind][name]` (preallocated,
    same shape and dtype as the parameter) and scalar state in `self.scalars`.
    `state_dict()` flattens both as `"<prefix>.<kind>.<name>"` and `"<prefix>.<scalar>"`.
    """

    prefix = "optim"
    kinds = ()

    def __init__(self, model, lr, weight_decay=0.0, frozen=(), decay=None):
        if not lr > 0 or not math.isfinite(lr):
            raise ValueError(f"learning rate must be a positive number, got {lr!r}")
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        self.params = model.params
        self.grads = model.grads
        unknown = sorted(set(frozen) - set(self.params))
        if unknown:
            raise ValueError(f"frozen names are not parameters: {', '.join(unknown)}")
        self.frozen = set(frozen)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.names = [n for n in self.params if n not in self.frozen]  # updated by step()
        unknown = sorted(set(decay or ()) - set(self.params))
        if unknown:
            raise ValueError(f"decayed names are not parameters: {', '.join(unknown)}")
        # weight decay applies to these names only (None: every parameter)
        self.decayed = set(self.params) if decay is None else set(decay)
        self.state = {k: {n: np.zeros_like(self.params[n]) for n in self.names}
                      for k in self.kinds}
        self.scalars = {}

    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0)

    def state_dict(self):
        """Flat dict: `"<prefix>.<kind>.<param name>"` arrays, `"<prefix>.<scalar>"` numbers."""
        d = {f"{self.prefix}.{k}": np.asarray(v) for k, v in self.scalars.items()}
        d[f"{self.prefix}.lr"] = np.asarray(self.lr)
        for kind, bufs in self.state.items():
            for name, buf in bufs.items():
                d[f"{self.prefix}.{kind}.{name}"] = buf.copy()
        return d

    def load_state_dict(self, d, check_only=False):
        """Restore what `state_dict()` returned (copied into the existing buffers);
        `check_only`: only check it.

        Everything is checked before anything changes (ValueError naming the entry): the
        same names, buffers of the same shape with finite floats (second moments >= 0),
        a positive finite lr and non-negative integer counters."""
        expected = set(self.state_dict())
        got = set(d)
        if got != expected:
            missing = sorted(expected - got)[:5]
            extra = sorted(got - expected)[:5]
            raise ValueError(f"optimizer state does not match {type(self).__name__}: "
                             f"missing {missing}, unexpected {extra}")
        for kind, bufs in self.state.items():
            for name, buf in bufs.items():
                key = f"{self.prefix}.{kind}.{name}"
                src = np.asarray(d[key])
                if src.shape != buf.shape or src.dtype.kind != "f":
                    raise ValueError(f"optimizer state {key} has shape {src.shape} ({src.dtype}), "
                                     f"expected {buf.shape} floats")
                if not np.isfinite(src).all() or (kind == "v" and (src < 0).any()):
                    raise ValueError(f"optimizer state {key} holds "
                                     f"{'negative' if kind == 'v' else 'NaN or infinite'} values")
        scalars = {}
        for k, v in self.scalars.items():
            a = np.asarray(d[f"{self.prefix}.{k}"])
            if a.shape != () or a.dtype.kind not in "iu" or int(a) < 0:
                raise ValueError(f"optimizer state {self.prefix}.{k} must be an integer >= 0")
            scalars[k] = type(v)(a.item())
        lr = np.asarray(d[f"{self.prefix}.lr"])
        if lr.shape != () or lr.dtype.kind != "f" or not (
                np.isfinite(lr) and 0 < lr <= MAX_LEARNING_RATE):
            raise ValueError(f"optimizer state {self.prefix}.lr must be a number in "
                             f"(0, {MAX_LEARNING_RATE:g}], got {lr!r}")
        if check_only:
            return
        for kind, bufs in self.state.items():
            for name, buf in bufs.items():
                np.copyto(buf, d[f"{self.prefix}.{kind}.{name}"], casting="same_kind")
        self.scalars.update(scalars)
        self.lr = float(lr)


class Adam(Optimizer):
    """Adam (Kingma & Ba), with PyTorch's bias correction and epsilon placement.

        g  = grad + weight_decay * p            (L2 penalty, as torch.optim.Adam)
        m  = b1 m + (1 - b1) g ;  v = b2 v + (1 - b2) g^2 ;  t += 1
        p -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + eps)

    `weight_decay` is the classic L2 penalty folded into the gradient (what the sentiment
    classifier's `--weight_decay` means); with `decoupled=True` it is AdamW's decoupled
    decay instead: p *= 1 - lr * weight_decay before the Adam update. Decay applies to
    the names in `decay` (None: all; the classifier decays its matrices only). Names in `frozen`
    are never updated (e.g. a frozen encoder). The model's grads are not modified.
    """

    prefix = "adam"
    kinds = ("m", "v")

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 decoupled=False, frozen=(), decay=None):
        super().__init__(model, lr, weight_decay, frozen, decay)
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas!r}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps!r}")
        self.betas = (float(b1), float(b2))
        self.eps = float(eps)
        self.decoupled = bool(decoupled)
        self.scalars = {"t": 0}

    def step(self):
        b1, b2 = self.betas
        t = self.scalars["t"] = self.scalars["t"] + 1
        # p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps), written as
        # p -= (lr/bc1 * sqrt(bc2)) * m / (sqrt(v) + eps * sqrt(bc2)): two passes fewer
        sqrt_bc2 = math.sqrt(1 - b2 ** t)
        step_size = self.lr / (1 - b1 ** t) * sqrt_bc2
        eps = self.eps * sqrt_bc2
        scratch = {}  # per dtype: two (CHUNK,) work buffers, shared by all parameters
        for name in self.names:
            p = self.params[name]
            wd = self.weight_decay if name in self.decayed else 0.0
            l2 = wd and not self.decoupled
            if wd and self.decoupled:
                p *= 1 - self.lr * wd
            if p.dtype not in scratch:
                scratch[p.dtype] = (np.empty(CHUNK, p.dtype), np.empty(CHUNK, p.dtype))
            flats = [a.reshape(-1) for a in (p, self.grads[name],
                                             self.state["m"][name], self.state["v"][name])]
            if not np.shares_memory(flats[0], p):  # not contiguous: one block, in place
                flats = [p, self.grads[name], self.state["m"][name], self.state["v"][name]]
                bufs = (np.empty_like(p), np.empty_like(p))
                self._update(*flats, *bufs, b1, b2, step_size, eps, wd if l2 else 0.0)
                continue
            for a in range(0, p.size, CHUNK):
                n = min(CHUNK, p.size - a)
                self._update(*(f[a:a + n] for f in flats), scratch[p.dtype][0][:n],
                             scratch[p.dtype][1][:n], b1, b2, step_size, eps, wd if l2 else 0.0)

    @staticmethod
    def _update(p, g, m, v, tmp, g2, b1, b2, step_size, eps, l2):
        """One block of the Adam update, in place on p, m, v (g is not modified)."""
        if l2:  # g + wd * p, the classic L2 penalty
            np.multiply(p, l2, out=g2)
            g2 += g
            g = g2
        np.subtract(g, m, out=tmp)
        tmp *= 1 - b1
        m += tmp                      # m = b1 m + (1 - b1) g
        np.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= 1 - b2
        v += tmp                      # v = b2 v + (1 - b2) g^2
        np.sqrt(v, out=tmp)
        tmp += eps
        np.divide(m, tmp, out=tmp)
        tmp *= step_size
        p -= tmp


class SGD(Optimizer):
    """Stochastic gradient descent with (PyTorch-style) momentum and L2 weight decay.

        g = grad + weight_decay * p ;  buf = momentum * buf + g ;  p -= lr * buf
    (without momentum: p -= lr * g). Names in `frozen` are never updated.
    """

    prefix = "sgd"

    def __init__(self, model, lr, momentum=0.0, weight_decay=0.0, frozen=(), decay=None):
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.kinds = ("buf",) if momentum else ()
        super().__init__(model, lr, weight_decay, frozen, decay)
        self.momentum = float(momentum)

    def step(self):
        scratch = {}  # per dtype: one (CHUNK,) work buffer, shared by all parameters
        for name in self.names:
            p, g = self.params[name], self.grads[name]
            wd = self.weight_decay if name in self.decayed else 0.0
            buf = self.state["buf"][name] if self.momentum else None
            if p.dtype not in scratch:
                scratch[p.dtype] = np.empty(CHUNK, p.dtype)
            flats = [a.reshape(-1) for a in (p, g) + ((buf,) if self.momentum else ())]
            if not np.shares_memory(flats[0], p):  # not contiguous: one block, in place
                self._update(p, g, buf, np.empty_like(p), wd)
                continue
            # speed: in cache-sized blocks, as Adam; the embedding is 10 MB at word level
            for a in range(0, p.size, CHUNK):
                n = min(CHUNK, p.size - a)
                self._update(*(f[a:a + n] for f in flats[:2]),
                             flats[2][a:a + n] if self.momentum else None,
                             scratch[p.dtype][:n], wd)

    def _update(self, p, g, buf, tmp, wd):
        """One block of the update, in place on p (and buf); g is not modified."""
        if wd:
            np.multiply(p, wd, out=tmp)
            tmp += g
            g = tmp
        if buf is not None:
            buf *= self.momentum
            buf += g
            g = buf
        np.multiply(g, self.lr, out=tmp)
        p -= tmp


def clip_grad_norm(grads, max_norm):
    """Scale all gradients in place so that their global L2 norm is at most `max_norm`.

    grads: dict of arrays (or an iterable of arrays). Returns the total norm *before*
    clipping, sqrt(sum_i ||g_i||^2), accumulated in float64. Nothing is scaled when the norm
    is within `max_norm`, when `max_norm` is None, or when the norm is not finite (the
    caller should then skip the step).
    """
    arrays = list(grads.values()) if isinstance(grads, dict) else list(grads)
    if max_norm is not None and not max_norm > 0:
        raise ValueError(f"max_norm must be > 0 (or None for no clipping), got {max_norm!r}")
    total = 0.0
    for g in arrays:
        flat = g.reshape(-1)
        with np.errstate(over="ignore", invalid="ignore"):
            sq = float(np.dot(flat, flat))
        if not math.isfinite(sq) and np.all(np.isfinite(flat)):
            sq = float(np.dot(flat.astype(np.float64), flat.astype(np.float64)))  # overflow
        total += sq
    total = math.sqrt(total)
    if max_norm is not None and math.isfinite(total) and total > max_norm:
        scale = max_norm / (total + 1e-12)
        for g in arrays:
            g *= scale
    return total
