"""WeightAverage: the exponential moving average of a model's weights (`--average`)."""
from contextlib import contextmanager

import numpy as np

BLOCK = 1 << 14  # elements per block of the update: the temporary stays in cache


class WeightAverage:
    """After step s (0-based), average = d average + (1 - d) weights, where
    d = min(decay, (1 + s) / (10 + s)): an average over the last ~1 / (1 - decay) steps
    (Polyak averaging; the warm-up lets early steps forget the initial weights).

    params: the model's {name: array}, updated in place by the optimiser; `arrays` holds
    the average, {name: array} of the same shapes, starting at the weights.
    """

    def __init__(self, params, decay):
        if not 0 < decay < 1:
            raise ValueError(f"the weight average's decay must be in (0, 1), got {decay!r}")
        self.params, self.decay = params, float(decay)
        self.arrays = {k: p.copy() for k, p in params.items()}
        self._scratch = {}  # per dtype: one (BLOCK,) temporary

    def reset(self, source=None):
        """The average becomes `source` ({name: array}), or the weights when None."""
        source = self.params if source is None else source
        for k, a in self.arrays.items():
            a[...] = source[k]

    def update(self, step):
        """average += (1 - d) (weights - average), d for `step` as above."""
        rate = 1.0 - min(self.decay, (1.0 + step) / (10.0 + step))
        for name, p in self.params.items():
            avg = self.arrays[name]
            if not p.flags.c_contiguous:  # a view: one pass with a temporary
                avg += rate * (p - avg)
                continue
            tmp = self._scratch.get(p.dtype)
            if tmp is None:
                tmp = self._scratch[p.dtype] = np.empty(BLOCK, p.dtype)
            pf, af = p.reshape(-1), avg.reshape(-1)
            # speed: in blocks, so that the difference never leaves the cache
            for a in range(0, pf.size, BLOCK):
                n = min(BLOCK, pf.size - a)
                t = np.subtract(pf[a:a + n], af[a:a + n], out=tmp[:n])
                t *= rate
                af[a:a + n] += t

    @contextmanager
    def swapped_in(self):
        """Within: the model's weights are the average; the trained ones come back after."""
        trained = {k: p.copy() for k, p in self.params.items()}
        try:
            for k, p in self.params.items():
                p[...] = self.arrays[k]
            yield
        finally:
            for k, p in self.params.items():
                p[...] = trained[k]
