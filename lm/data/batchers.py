"""Batches for training: train/validation split, truncated-BPTT windows, padded lines.

BPTT layout (as in PyTorch's word_language_model): the token stream is cut into N
contiguous streams, one per batch row; step k takes the next T tokens of every stream,
and the targets are the same windows shifted by one token:

    stream  a b c d e f | g h i j k l | m n o p q r    (N = 3, T = 2, tail dropped)
    rows    x0 = [a b]    x1 = [c d]    x2 = [e f]
            y0 = [b c]    y1 = [d e]    y2 = [f .]     (last window may be shorter)
    (rows 1, 2 hold g h i ... and m n o ... in the same way)

Window k+1 continues window k in every row, so the hidden state carries over (the
trainer cuts gradients at the window edge). Each epoch starts the streams again from
their beginning: `starts_epoch` tells the trainer to reset the state.

Line mode: each line is a sample `x = <bos> + line`, `y = line + <eos>`, padded to the
longest line of its batch with id 0 and a mask (N, T), True on valid steps (a prefix of
each row). Lines are grouped by length so that padding costs little.

Both batchers resume exactly: `state_dict()` gives plain ints, `load_state_dict` puts a
new batcher over the same data at the same point.
"""
import numpy as np

from lm.data.batch import Batch

MIN_SPLIT_TOKENS = 2  # a split needs one input and one target token
POOL_BATCHES = 50  # LengthBatcher: sequences are sorted by length within pools of this many batches


def check_val_frac(val_frac):
    if not isinstance(val_frac, (int, float)) or not 0 < val_frac < 1:
        raise ValueError(f"--val_frac must be a fraction in (0, 1), not {val_frac!r}")


class Lines:
    """A list of token lines stored flat: line k is ids[offsets[k]:offsets[k+1]]."""

    def __init__(self, ids, offsets):
        self.ids, self.offsets = ids, np.asarray(offsets, dtype=np.int64)

    @classmethod
    def from_list(cls, lines):
        lens = [len(x) for x in lines]
        offsets = np.concatenate([[0], np.cumsum(lens, dtype=np.int64)])
        ids = np.concatenate([np.asarray(x) for x in lines]) if lines else np.zeros(0, int)
        return cls(ids, offsets)

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, k):
        return self.ids[self.offsets[k]:self.offsets[k + 1]]

    @property
    def lengths(self):
        return np.diff(self.offsets)

    def take(self, order, chunk=1 << 16):
        """The lines in `order` (an index array) as a new Lines with its own ids.

        Gathers `chunk` lines at a time, so the index arrays stay small next to the ids.
        """
        order = np.asarray(order, dtype=np.int64)
        lengths = self.lengths[order]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        shift = self.offsets[order] - offsets[:-1]  # source start minus destination start
        ids = np.empty(offsets[-1], dtype=self.ids.dtype)
        for lo in range(0, len(order), chunk):
            hi = min(lo + chunk, len(order))
            a, b = offsets[lo], offsets[hi]
            ids[a:b] = self.ids[np.arange(a, b) + np.repeat(shift[lo:hi], lengths[lo:hi])]
        return Lines(ids, offsets)

    def slice(self, start, stop):
        """Lines start..stop-1 as a new Lines (a view on the same ids)."""
        a, b = self.offsets[start], self.offsets[stop]
        return Lines(self.ids[a:b], self.offsets[start:stop + 1] - a)


def split_ids(ids, val_frac=0.1):
    """(train, val) views: the last `val_frac` of the token stream is validation.

    Train gets int(n * (1 - val_frac)) tokens, as nanoGPT's split does.
    """
    check_val_frac(val_frac)
    n = len(ids)
    n_train = int(n * (1 - val_frac))
    if n_train < MIN_SPLIT_TOKENS or n - n_train < MIN_SPLIT_TOKENS:
        raise ValueError(_too_short(n, n_train, "tokens", val_frac, MIN_SPLIT_TOKENS))
    return ids[:n_train], ids[n_train:]


def _too_short(n, n_train, what, val_frac, least):
    """The message for a split with fewer than `least` items on one side."""
    need = next((m for m in range(n + 1, 10 ** 6) if int(m * (1 - val_frac)) >= least
                 and m - int(m * (1 - val_frac)) >= least), None)
    need = f"need at least {need:,} {what}" if need else "raise --val_frac"
    return (f"corpus too short to train: {n:,} {what} leave {n_train:,} for training and "
            f"{n - n_train:,} for validation (--val_frac {val_frac}); {need}")


def split_lines(lines, val_frac=0.1, shuffle_seed=None):
    """(train, val) Lines: the last `val_frac` of the lines are validation.

    With `shuffle_seed` (an int) the lines are first put in the order of
    `np.random.default_rng(shuffle_seed).permutation`, as makemore does: files of samples
    are often sorted (names.txt by popularity), and the last lines of a sorted file are
    not like the rest.
    """
    check_val_frac(val_frac)
    lines = lines if isinstance(lines, Lines) else Lines.from_list(lines)
    n = len(lines)
    n_train = int(n * (1 - val_frac))
    if n_train < 1 or n - n_train < 1:
        raise ValueError(_too_short(n, n_train, "lines", val_frac, 1))
    if shuffle_seed is not None:
        lines = lines.take(np.random.default_rng(shuffle_seed).permutation(n))
    return lines.slice(0, n_train), lines.slice(n_train, n)


def split_corpus(corpus, val_frac=0.1, shuffle_seed=None):
    """(train, val): id arrays, or Lines in line mode (shuffled first with `shuffle_seed`)."""
    if corpus.line_mode:
        return split_lines(Lines(corpus.ids, corpus.offsets), val_frac, shuffle_seed)
    return split_ids(corpus.ids, val_frac)


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"--{name} must be a positive integer, not {value!r}")


class _Resumable:
    """Shared epoch/position bookkeeping: `position` is the next batch in the epoch."""
    epoch = position = 0
    starts_epoch = False  # the batch just returned was the first of an epoch
    _shape_keys = ()

    def __iter__(self):
        """Yield the rest of the current epoch's batches, then move to the next epoch."""
        while self.position < len(self):
            k = self.position
            self.position += 1  # state_dict() taken after a yield resumes after it
            self.starts_epoch = k == 0
            yield self.batch(k)
        self.epoch += 1
        self.position = 0
        self._new_epoch()

    def next_batch(self):
        """The next batch, across epochs without end (for step-counted training)."""
        if self.position >= len(self):
            self.epoch += 1
            self.position = 0
            self._new_epoch()
        k = self.position
        self.position += 1
        self.starts_epoch = k == 0
        return self.batch(k)

    def _new_epoch(self):
        pass

    def state_dict(self):
        """Plain ints: where the next batch comes from, and the shape it was made for."""
        return {"epoch": int(self.epoch), "position": int(self.position),
                **{k: int(getattr(self, k)) for k in self._shape_keys}}

    def load_state_dict(self, state):
        for k in self._shape_keys:
            if int(state[k]) != int(getattr(self, k)):
                raise ValueError(f"cannot resume: the saved data position is for {k} "
                                 f"{int(state[k])}, this data has {getattr(self, k)}")
        if not 0 <= int(state["position"]) <= len(self) or int(state["epoch"]) < 0:
            raise ValueError("cannot resume: saved data position out of range")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._new_epoch()


class BPTTBatcher(_Resumable):
    """Truncated-BPTT windows over N parallel streams (see the module docstring).

    ids: (num_tokens,) ints. Yields Batch(inputs=x (N, T) int64, targets=y (N, T) int64),
    y[:, t] being the token after x[:, t]; the last window of an epoch may have fewer than T steps, so
    every token of the streams is a target once per epoch.
    If the corpus cannot fill one window of seq_length per row, batch_size (then
    seq_length) shrinks and `note` says so (None otherwise).
    """
    _shape_keys = ("batch_size", "seq_length", "num_tokens")

    def __init__(self, ids, batch_size, seq_length):
        _check_positive("batch_size", batch_size)
        _check_positive("seq_length", seq_length)
        ids = np.asarray(ids)
        n = self.num_tokens = len(ids)
        if n < MIN_SPLIT_TOKENS:
            raise ValueError(f"need at least {MIN_SPLIT_TOKENS} tokens to make a batch, "
                             f"got {n}")
        N, T = int(batch_size), int(seq_length)
        self.note = None
        if n < N * (T + 1):
            N = max(1, min(N, n // (T + 1)))
            T = min(T, n // N - 1)
            self.note = (f"corpus of {n:,} tokens is too small for batch_size {batch_size} "
                         f"x seq_length {seq_length}: using batch_size {N}, seq_length {T}")
        self.batch_size, self.seq_length = N, T
        L = n // N  # tokens per stream; the last n - N*L tokens are dropped
        self.data = ids[:N * L].reshape(N, L)  # a view, the stream is not copied
        self._len = -(-(L - 1) // T)

    def __len__(self):
        return self._len

    def batch(self, k):
        """Window k: x = data[:, kT:(k+1)T], y = data[:, kT+1:(k+1)T+1] (as int64)."""
        if not 0 <= k < self._len:
            raise IndexError(f"batch {k} out of range [0, {self._len})")
        a = k * self.seq_length
        b = min(a + self.seq_length, self.data.shape[1] - 1)
        return Batch(self.data[:, a:b].astype(np.int64), self.data[:, a + 1:b + 1].astype(np.int64))


class LengthBatcher(_Resumable):
    """Batches of whole sequences grouped by length, the one bucketing scheme for lines
    (line-mode language models), labelled texts (classifiers) and pairs (seq2seq).

    Each epoch: the indices are shuffled (if `shuffle`), sorted by length within pools of
    POOL_BATCHES batches, cut into batches whose order is shuffled again, so a batch holds
    sequences of nearly equal length (little padding) while the order stays random. The
    order of epoch e depends only on (seed, e), the seed drawn once from `rng`, so resuming
    needs only (seed, epoch, position). The last batch of an epoch may be smaller.
    Subclasses turn a batch of indices into a `Batch` with `make_batch(idx)`.
    """
    _shape_keys = ("batch_size", "num_items")
    what = "items"

    def __init__(self, lengths, batch_size, rng=None, shuffle=True):
        _check_positive("batch_size", batch_size)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        n = self.num_items = len(self.lengths)
        if n < 1:
            raise ValueError(f"need at least one of the {self.what} to make a batch")
        self.note = None
        N = int(batch_size)
        if N > n:
            self.note = f"only {n:,} {self.what} for batch_size {batch_size}: using batch_size {n}"
            N = n
        self.batch_size, self.shuffle = N, bool(shuffle)
        rng = rng if rng is not None else np.random.default_rng(0)
        self.seed = int(rng.integers(2 ** 62)) if shuffle else 0
        self._len = -(-n // N)
        self._new_epoch()

    def __len__(self):
        return self._len

    def state_dict(self):
        return {**super().state_dict(), "seed": int(self.seed)}

    def load_state_dict(self, state):
        self.seed = int(state["seed"])  # the saved run's order, whatever rng made this one
        super().load_state_dict(state)

    def _new_epoch(self):
        """Make this epoch's batches: arrays of indices."""
        n, N, lens = self.num_items, self.batch_size, self.lengths
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        pool = N * POOL_BATCHES
        for a in range(0, n, pool):  # sort by length within each pool (stable)
            chunk = order[a:a + pool]
            order[a:a + pool] = chunk[np.argsort(lens[chunk], kind="stable")]
        self._batches = [order[a:a + N] for a in range(0, n, N)]
        if self.shuffle:
            self._batches = [self._batches[i] for i in rng.permutation(len(self._batches))]

    def batch(self, k):
        """The `Batch` for batch k of the current epoch (and its indices in `last_indices`)."""
        self.last_indices = self._batches[k]
        return self.make_batch(self._batches[k])

    def make_batch(self, idx):
        raise NotImplementedError


class LineBatcher(LengthBatcher):
    """Batches of whole lines, padded and masked (see the module docstring).

    lines_ids: Lines, or a list of 1-D int arrays (tokens of each line, no markers).
    Batch: inputs (N, T) = <bos> + line, targets (N, T) = line + <eos>, mask (N, T),
    T = longest line in the batch + 1, padding id `pad_id` (0 = <unk>; masked out).
    """
    _shape_keys = ("batch_size", "num_lines")
    what = "lines"

    def __init__(self, lines_ids, batch_size, rng=None, shuffle=True, bos_id=1, eos_id=2,
                 pad_id=0):
        self.lines = lines_ids if isinstance(lines_ids, Lines) else Lines.from_list(lines_ids)
        if len(self.lines) < 1:
            raise ValueError("line mode needs at least one non-blank line")
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id
        super().__init__(self.lines.lengths, batch_size, rng, shuffle)

    @property
    def num_lines(self):
        return self.num_items

    def make_batch(self, idx):
        lens = self.lines.lengths[idx]
        T = int(lens.max()) + 1
        x = np.full((len(idx), T), self.pad_id, dtype=np.int64)
        y = np.full((len(idx), T), self.pad_id, dtype=np.int64)
        mask = np.arange(T)[None, :] <= lens[:, None]  # (N, T): line + 1 marker valid
        x[:, 0] = self.bos_id
        for r, i in enumerate(idx):
            line, m = self.lines[i], lens[r]
            x[r, 1:m + 1] = line
            y[r, :m] = line
            y[r, m] = self.eos_id
        return Batch(x, y, mask)


def make_batcher(data, vocab, batch_size, seq_length, rng=None, shuffle=True):
    """BPTTBatcher for an id array, LineBatcher (ids from `vocab`) for Lines."""
    if isinstance(data, Lines):
        return LineBatcher(data, batch_size, rng, shuffle, vocab.bos_id, vocab.eos_id)
    return BPTTBatcher(data, batch_size, seq_length)
