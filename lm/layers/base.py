"""The layer contract: `params`/`grads` dicts, composition by prefix, train/eval mode."""
import numpy as np


def as_rng(rng=None):
    """An np.random.Generator from a Generator, a seed, or None (seed 0)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(0 if rng is None else rng)


class Layer:
    """Base of every layer and model.

    `params` and `grads` are dicts with the same keys and shapes. Parameters are only
    ever updated in place (optimisers, checkpoint loading), so a composite's flat dicts
    and its children's dicts always hold the same arrays. `backward` adds into `grads`.
    """

    def __init__(self):
        self.params = {}
        self.grads = {}
        self.children = {}
        self.training = True

    def add_param(self, name, value):
        """Register a parameter array and its zeroed gradient."""
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    def add_child(self, name, layer):
        """Register a sub-layer; its params appear here as `name.key` ('' adds no prefix)."""
        self.children[name] = layer
        prefix = f"{name}." if name else ""
        for key in layer.params:
            full = prefix + key
            if full in self.params:
                raise ValueError(f"duplicate parameter name {full!r}")
            self.params[full] = layer.params[key]
            self.grads[full] = layer.grads[key]
        return layer

    def zero_grad(self):
        for g in self.grads.values():
            g.fill(0)

    def train(self, mode=True):
        self.training = mode
        for child in self.children.values():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    @property
    def dtype(self):
        for p in self.params.values():
            return p.dtype
        return np.dtype(getattr(self, "_dtype", np.float32))

    def num_params(self):
        return int(sum(p.size for p in self.params.values()))
