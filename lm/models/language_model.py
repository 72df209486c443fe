"""LanguageModelRNN: encoder + dropout + vocabulary head, its loss, and token-by-token sampling."""
import numpy as np

from lm.config.training import CACHE_LAMBDA, CACHE_THETA
from lm.layers.adaptive_softmax import AdaptiveSoftmax, default_cutoffs
from lm.layers.base import Layer, as_rng
from lm.layers.dropout import Dropout
from lm.layers.linear import TemporalLinear
from lm.layers.losses import log_softmax_at, temporal_softmax_loss
from lm.models.cache import CachedState, ContinuousCache
from lm.models.encoder import Encoder
from lm.models.sampling import sample_from_logits

CONFIG_KEYS = ("vocab_size", "embed_size", "hidden_size", "cell", "num_layers", "dropout",
               "tie_weights", "softmax", "cutoffs", "cache_size", "cache_theta", "cache_lambda")


class TiedHead(Layer):
    """scores = h @ E^T + b with E the embedding matrix (V, D); params: b (V,) only.

    The gradient of E, dE = dscores^T h, is added into the embedding's own gradient.
    """

    def __init__(self, embedding):
        super().__init__()
        self.embedding = embedding
        V = embedding.params["W"].shape[0]
        self.add_param("b", np.zeros(V, dtype=embedding.params["W"].dtype))
        self._h2 = None

    def forward(self, h):
        """h: (N, T, D) or (N, D) -> scores (N, T, V) or (N, V)."""
        E = self.embedding.params["W"]
        self._shape = h.shape
        self._h2 = h.reshape(-1, E.shape[1])  # (N*T, D)
        out = self._h2 @ E.T
        out += self.params["b"]
        return out.reshape(h.shape[:-1] + (E.shape[0],))

    def backward(self, dscores):
        """dscores: (..., V) -> dh (..., D); grads: embedding W += dscores^T h, b += sum."""
        E = self.embedding.params["W"]
        d2 = dscores.reshape(-1, E.shape[0])  # (N*T, V)
        self.embedding.grads["W"] += d2.T @ self._h2
        self.grads["b"] += d2.sum(axis=0)
        return (d2 @ E).reshape(self._shape)


class LanguageModelRNN(Layer):
    """Next-token model: scores[n, t] = head(dropout(encoder(ids)[n, t])), (N, T, V).

    Flat params `embed.W`, `rnn0.Wx`, `rnn0.Wh`, ..., `head.W`, `head.b` (with
    tie_weights the head reuses `embed.W` transposed, so there is no `head.W`).
    softmax="adaptive": the head is an AdaptiveSoftmax over the frequency-sorted
    vocabulary (`cutoffs`, default `default_cutoffs(V)`), params `head.W`, `head.proj0`,
    `head.out0`, ...; its distribution is exact, so `forward` returns log-probabilities
    (valid scores for the same softmax) and loss, evaluation and sampling stay exact.
    Dropout (rate `dropout`) is applied to the embeddings, between recurrent layers and
    to the last layer's output; it is off in eval mode and while sampling.
    cache_size > 0: scoring (`nll`) and sampling mix in a continuous cache of the last
    `cache_size` positions (`lm.models.cache`, weight `cache_lambda`, sharpness
    `cache_theta`); training (`loss`, `forward`) is the network alone.
    """

    def __init__(self, vocab_size, embed_size, hidden_size, cell="lstm", num_layers=1,
                 dropout=0.0, tie_weights=False, softmax="full", cutoffs=None,
                 cache_size=0, cache_theta=CACHE_THETA, cache_lambda=CACHE_LAMBDA,
                 dtype=np.float32, rng=None):
        super().__init__()
        if cell == "bag":
            raise ValueError("a language model needs a recurrent cell: rnn, lstm or gru")
        rng = as_rng(rng)
        self.encoder = Encoder(vocab_size, embed_size, hidden_size, cell=cell,
                               num_layers=num_layers, dropout=dropout, dtype=dtype, rng=rng)
        self.tie_weights = bool(tie_weights)
        if self.tie_weights and embed_size != hidden_size:
            raise ValueError(f"tie_weights needs embed_size == hidden_size, "
                             f"got {embed_size} and {hidden_size}")
        self._dtype = dtype
        self.add_child("", self.encoder)
        self.drop = self.add_child("drop", Dropout(self.encoder.dropout, rng=rng))
        if softmax not in ("full", "adaptive"):
            raise ValueError(f"softmax must be one of full, adaptive; got {softmax!r}")
        self.softmax, self.cutoffs = softmax, None
        if softmax == "adaptive":
            if self.tie_weights:
                raise ValueError("tie_weights needs softmax='full' (the adaptive softmax has "
                                 "its own output weights)")
            V = self.encoder.vocab_size
            cutoffs = default_cutoffs(V) if cutoffs is None else cutoffs
            if not isinstance(cutoffs, (list, tuple)) or not all(
                    isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in cutoffs):
                raise ValueError(f"cutoffs must be a list of integers, got {cutoffs!r}")
            self.cutoffs = [int(c) for c in cutoffs]
            head = AdaptiveSoftmax(self.encoder.output_size, V, self.cutoffs, dtype=dtype,
                                   rng=rng)
        elif cutoffs is not None:
            raise ValueError("cutoffs are for softmax='adaptive'")
        elif self.tie_weights:
            k = 1.0 / np.sqrt(hidden_size)
            embed_w = self.encoder.embed.params["W"]
            embed_w[...] = rng.uniform(-k, k, embed_w.shape)
            head = TiedHead(self.encoder.embed)
        else:
            head = TemporalLinear(self.encoder.output_size, self.encoder.vocab_size,
                                  dtype=dtype, rng=rng)
        self.head = self.add_child("head", head)
        self.vocab_size = self.encoder.vocab_size
        self.set_cache(cache_size, cache_theta, cache_lambda)

    def set_cache(self, size, theta=CACHE_THETA, lam=CACHE_LAMBDA):
        """Score and sample with a continuous cache of the last `size` positions from now
        on (0: the network alone); `config()` follows. ValueError for a bad value."""
        cache = ContinuousCache(size, theta, lam)
        self.cache = cache if cache.size else None

    # ---- configuration ----
    def config(self):
        """The constructor arguments as a JSON-able dict (dtype and rng are not included)."""
        e = self.encoder
        return {"vocab_size": e.vocab_size, "embed_size": e.embed_size,
                "hidden_size": e.hidden_size, "cell": e.cell, "num_layers": e.num_layers,
                "dropout": e.dropout, "tie_weights": self.tie_weights, "softmax": self.softmax,
                **({"cutoffs": list(self.cutoffs)} if self.cutoffs is not None else {}),
                **({"cache_size": self.cache.size, "cache_theta": self.cache.theta,
                    "cache_lambda": self.cache.lam} if self.cache is not None else {})}

    @classmethod
    def from_config(cls, d, dtype=np.float32, rng=None):
        """Build a model from `config()`'s dict (unknown or missing keys: ValueError)."""
        if not isinstance(d, dict):
            raise ValueError(f"model config must be a dict, got {type(d).__name__}")
        unknown = sorted(set(d) - set(CONFIG_KEYS))
        missing = sorted({"vocab_size", "embed_size", "hidden_size"} - set(d))
        if unknown or missing:
            raise ValueError(f"bad language model config: unknown keys {unknown}, "
                             f"missing keys {missing}")
        return cls(**d, dtype=dtype, rng=rng)

    # ---- training ----
    def forward(self, ids, state=None, mask=None):
        """ids: (N, T) ints -> (scores (N, T, V), state: list of per-layer final states).
        Adaptive softmax: the scores are the exact log-probabilities."""
        h, state = self.encoder.forward(ids, state, mask)
        return self.head.forward(self.drop.forward(h)), state

    def backward(self, dscores):
        """dscores: (N, T, V) -> None; adds into every gradient (full softmax only: the
        adaptive one is trained through `loss`)."""
        if self.softmax == "adaptive":
            raise ValueError("the adaptive softmax has no backward for scores; use loss()")
        self.encoder.backward(self.drop.backward(self.head.backward(dscores)))

    def _nll(self, ids, targets, state, mask, grad):
        """(mean NLL per valid target, new state); with grad, every gradient is added."""
        h, state = self.encoder.forward(ids, state, mask)
        h = self.drop.forward(h)
        if self.softmax == "adaptive":  # only the clusters of the targets are evaluated
            loss, dh = self.head.loss(h, targets, mask, per_token=True, grad=grad)
            if grad:
                self.encoder.backward(self.drop.backward(dh))
            return float(loss), state
        # per_token: the mean over valid tokens, scaled inside the loss (no extra pass)
        loss, dscores = temporal_softmax_loss(self.head.forward(h), targets, mask,
                                              overwrite_scores=True, per_token=True)
        if grad:
            self.encoder.backward(self.drop.backward(self.head.backward(dscores)))
        return float(loss), state

    def nll(self, ids, targets, state=None, mask=None):
        """Without gradients: (sum of -log p(targets) over valid targets in nats, count,
        new state). The evaluation's score; exact with either softmax, and with the
        cache (then the state carries its memory too: pass back what this returns)."""
        ids, targets = np.asarray(ids), np.asarray(targets)
        count = ids.size if mask is None else int(np.count_nonzero(mask))
        if self.cache is not None:
            return self._cached_nll(ids, targets, state, mask, count)
        if count == 0:
            return 0.0, 0, self.encoder.forward(ids, state, mask)[1]
        if self.softmax == "adaptive":
            loss, state = self._nll(ids, targets, state, mask, grad=False)
            return loss * count, count, state
        scores, state = self.forward(ids, state, mask)
        loss, _ = temporal_softmax_loss(scores, targets, mask, overwrite_scores=True)
        return float(loss) * ids.shape[0], count, state  # summed over T, averaged over N

    def log_prob(self, h):
        """Exact log-probabilities of the network (no cache) from last-layer outputs:
        h (..., H) -> (..., V)."""
        scores = self.head.forward(h)
        if self.softmax == "adaptive":
            return scores                  # already log-probabilities
        scores = scores.astype(np.float64)
        scores -= scores.max(axis=-1, keepdims=True)
        scores -= np.log(np.exp(scores).sum(axis=-1, keepdims=True))
        return scores

    def _target_log_prob(self, h, targets):
        """log p_model(targets | h): (N, T) float64, the network alone."""
        if self.softmax == "adaptive":
            return self.head.target_log_prob(h, targets)
        return log_softmax_at(self.head.forward(h), targets)

    def _cached_nll(self, ids, targets, state, mask, count):
        """`nll` with the continuous cache: state is a CachedState (or None)."""
        rnn_state, memory = (None, None) if state is None else state
        h, rnn_state = self.encoder.forward(ids, rnn_state, mask)
        h = self.drop.forward(h)
        valid = np.ones(ids.shape, dtype=bool) if mask is None else np.asarray(mask, bool)
        targets = np.where(valid, targets, 0)            # padding may hold anything
        log_p, memory = self.cache.mix_targets(self._target_log_prob(h, targets), h, targets,
                                               memory, mask)
        return float(-log_p[valid].sum()), count, CachedState(rnn_state, memory)

    def loss(self, batch, state=None):
        """Mean negative log-likelihood per valid target token; zeroes then fills `grads`.

        batch: Batch(inputs (N, T) ids, targets (N, T) ids, targets[n, t] being the token
        after inputs[n, t], mask (N, T) bool or None). state: the recurrent state carried
        from the previous window (None: zeros). Returns (loss, {"count", "state"}), the
        state to pass to the next window (cut from the gradient there).
            loss = -sum_{valid n,t} log softmax(scores[n, t])[targets[n, t]] / #valid
        """
        ids, targets, mask = np.asarray(batch.inputs), np.asarray(batch.targets), batch.mask
        if targets.shape != ids.shape:
            raise ValueError(f"targets shape {targets.shape} does not match ids {ids.shape}")
        count = ids.size if mask is None else int(np.count_nonzero(mask))
        if count == 0:
            raise ValueError("loss needs at least one valid target token")
        self.zero_grad()
        loss, state = self._nll(ids, targets, state, mask, grad=True)
        return loss, {"count": count, "state": state}

    # ---- sampling ----
    def generate(self, prompt_ids, length, temperature=1.0, top_k=None, top_p=None, rng=None,
                 stop_id=None):
        """Yield up to `length` token ids that follow `prompt_ids`, one at a time.

        The prompt is run through once; then each new token is fed back through
        `Encoder.step` with the carried recurrent state (O(1) work per token; with the cache,
        O(cache_size) more, drawing from the mixture). Dropout is off while sampling
        and the previous train/eval mode is restored afterwards. Generation stops early
        after drawing `stop_id`, which is not yielded. See `lm.models.sampling` for temperature,
        top_k and top_p; rng: np.random.Generator or seed (None = seed 0).
        """
        prompt = np.asarray(prompt_ids).reshape(-1)
        if prompt.size == 0:
            raise ValueError("the prompt must contain at least one token")
        if not np.issubdtype(prompt.dtype, np.integer):
            raise ValueError(f"prompt ids must be integers, got dtype {prompt.dtype}")
        length = int(length)
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        rng = as_rng(rng)
        was_training = self.training
        self.eval()
        try:
            h, state = self.encoder.forward(prompt[None, :].astype(np.int64))
            memory = None
            if self.cache is not None:  # the prompt's positions, each with the token after it
                memory = self.cache.remember(h[:, :-1], prompt[None, 1:])
            h = h[:, -1]  # the last step's output only, (1, H)
            x = np.empty(1, dtype=np.int64)
            for _ in range(length):
                if self.cache is None:
                    logits = self.head.forward(h)[0]  # (1, H) -> (V,)
                else:
                    logits = self.cache.mix_distribution(self.log_prob(h), h, memory)[0]
                tok = sample_from_logits(logits, temperature, top_k, top_p, rng)
                if stop_id is not None and tok == stop_id:
                    return
                yield tok
                x[0] = tok
                if self.cache is not None:
                    memory = self.cache.append(memory, h, x)
                h, state = self.encoder.step(x, state)  # (1, H): one step, state carried
        finally:
            self.train(was_training)

    def sample(self, prompt_ids, length, temperature=1.0, top_k=None, top_p=None, rng=None,
               stop_id=None):
        """The list of up to `length` ids generated after `prompt_ids` (see `generate`)."""
        return list(self.generate(prompt_ids, length, temperature, top_k, top_p, rng, stop_id))
