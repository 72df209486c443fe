"""`Batch`: the one batch type every model's `loss(batch)` takes, and padding of id lists.

    inputs       (N, T) int64   token ids read by the model (the source for seq2seq)
    targets      (N, T) int64   next-token ids (language model), (N,) int64 class ids
                 (classifier) or (N, T') int64 target ids (sequence to sequence)
    mask         (N, T) bool    True on valid input steps (a prefix of each row); None: all
    target_mask  (N, T') bool   valid target steps where they differ from `mask`; None:
                                the targets follow `mask` (or are all valid)
"""
from typing import NamedTuple, Optional

import numpy as np


class Batch(NamedTuple):
    inputs: np.ndarray
    targets: np.ndarray
    mask: Optional[np.ndarray] = None
    target_mask: Optional[np.ndarray] = None

    @property
    def size(self):
        """N, the number of rows (examples or streams)."""
        return len(self.inputs)

    def num_targets(self):
        """How many targets the loss averages over: valid target steps, or rows."""
        if self.target_mask is not None:
            return int(np.count_nonzero(self.target_mask))
        if np.ndim(self.targets) == 1:
            return len(self.targets)
        if self.mask is not None:
            return int(np.count_nonzero(self.mask))
        return int(np.size(self.targets))


def pad_batch(seqs, pad_id=0, dtype=np.int64):
    """seqs: N 1-D int arrays -> ids (N, T) and mask (N, T) bool (True = token).

    T is the longest sequence (at least 1); shorter rows are padded with `pad_id` after
    their tokens, so the valid steps are a prefix of each row, as the recurrent layers need.
    """
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    T = max(1, int(lengths.max(initial=0)))
    ids = np.full((len(seqs), T), pad_id, dtype=dtype)
    mask = np.arange(T)[None, :] < lengths[:, None]
    for n, s in enumerate(seqs):
        ids[n, :len(s)] = s
    return ids, mask
