"""PyTorch modules for lm's exported models; torch is imported only when one is used.

    from lm.interop import torch_model
    model = torch_model.from_file("model.safetensors")   # built from its metadata, in eval mode
or, by hand, with the config and state dict of an exported file:
    model = torch_model.LanguageModel(**config)
    model.load_state_dict(state)

`LanguageModel` (lm.models.LanguageModelRNN): embedding (nn.Embedding) -> dropout ->
rnn (nn.RNN/GRU/LSTM, batch_first, dropout between layers) -> dropout -> decoder
(nn.Linear, its weight the embedding's when tied; or nn.AdaptiveLogSoftmaxWithLoss).
`Classifier` (lm.models.SentimentClassifier): embedding -> dropout -> rnn (optionally
bidirectional; variable lengths packed), or conv (nn.Conv1d, ReLU; "cnn-lstm": max-pooled,
then the rnn) -> pooling over valid steps (mean, max, last) -> dropout -> classifier
(nn.Linear). `Seq2Seq` (lm.models.Seq2Seq): encoder (embedding,
rnn; the source reversed, lengths packed) -> its final state starts the decoder (embedding
when "teacher", one-layer rnn, out). Each gives lm's outputs for the same weights.
"""
import os

from lm.interop.files import read_checked, save_torch_layout

_CLASSES = {}


def __getattr__(name):
    """`torch_model.LanguageModel` / `.Classifier` / `.Seq2Seq`: defined on first use."""
    if name in ("LanguageModel", "Classifier", "Seq2Seq"):
        if not _CLASSES:
            _CLASSES.update(_define())
        return _CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


KINDS = {"language_model": "LanguageModel", "sentiment": "Classifier", "recall": "Classifier",
         "seq2seq": "Seq2Seq"}


def module_class(kind):
    """The PyTorch module class of a model kind (config.json's "kind")."""
    if kind not in KINDS:
        raise ValueError(f"no PyTorch module for model kind {kind!r}")
    return __getattr__(KINDS[kind])


def _define():
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    RNNS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}

    def make_rnn(cell, E, H, num_layers, dropout, bidirectional=False):
        return RNNS[cell](E, H, num_layers, batch_first=True, bidirectional=bidirectional,
                          dropout=dropout if num_layers > 1 else 0.0)

    class LanguageModel(nn.Module):
        """ids (N, T) -> (scores (N, T, V), state); scores are logits (full softmax) or
        log-probabilities (adaptive softmax): either way softmax(scores) = p. The network
        alone: lm's continuous cache (cache_* in config.json, no weights) is applied where
        lm scores or samples text, and is not part of this module."""

        def __init__(self, vocab_size, embed_size, hidden_size, cell="lstm", num_layers=1,
                     dropout=0.0, tie_weights=False, softmax="full", cutoffs=None,
                     div_value=4.0, head_bias=False, cache_size=0, cache_theta=0.0,
                     cache_lambda=0.0):
            super().__init__()
            self.config = dict(vocab_size=vocab_size, embed_size=embed_size,
                               hidden_size=hidden_size, cell=cell, num_layers=num_layers,
                               dropout=dropout, tie_weights=tie_weights)
            self.embedding = nn.Embedding(vocab_size, embed_size)
            self.drop = nn.Dropout(dropout)
            self.rnn = make_rnn(cell, embed_size, hidden_size, num_layers, dropout)
            self.adaptive = softmax == "adaptive"
            if self.adaptive:
                self.decoder = nn.AdaptiveLogSoftmaxWithLoss(
                    hidden_size, vocab_size, list(cutoffs), div_value=div_value,
                    head_bias=head_bias)
            else:
                self.decoder = nn.Linear(hidden_size, vocab_size)
                if tie_weights:
                    self.decoder.weight = self.embedding.weight

        def hidden(self, ids, state=None):
            """ids (N, T) -> last layer's states (N, T, H) after dropout, and the state."""
            h, state = self.rnn(self.drop(self.embedding(ids)), state)
            return self.drop(h), state

        def forward(self, ids, state=None):
            h, state = self.hidden(ids, state)
            if self.adaptive:
                return self.decoder.log_prob(h.reshape(-1, h.shape[-1])).reshape(
                    *h.shape[:-1], -1), state
            return self.decoder(h), state

        def loss(self, ids, targets, state=None):
            """Mean negative log-likelihood per token (nats), and the state."""
            h, state = self.hidden(ids, state)
            if self.adaptive:
                return self.decoder(h.reshape(-1, h.shape[-1]), targets.reshape(-1)).loss, state
            logits = self.decoder(h)
            return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                               targets.reshape(-1)), state

    class Classifier(nn.Module):
        """ids (N, T), lengths (N,) or None (all T) -> class scores (N, C).

        Recurrent cells: embedding -> dropout -> rnn (lengths packed) -> pool.
        "cnn":      h = relu(conv(e)) at valid steps, 0 at padded ones    (N, T, F)
        "cnn-lstm": the same, max-pooled over windows of pool_size steps (time padded to
                    whole windows; padded steps never win, a window of padding only is
                    0 and masked) -> dropout -> rnn (an LSTM stack) over the pooled
                    lengths ceil(L / pool_size)                            (N, ceil(T/P), H)
        The conv (nn.Conv1d, padding "same") reads padded steps as zeros, as lm does.
        """

        def __init__(self, vocab_size, embed_size, hidden_size, cell="lstm", num_layers=1,
                     bidirectional=False, pool="mean", dropout=0.0, num_classes=2,
                     filters=200, kernel_size=3, pool_size=3):
            super().__init__()
            self.cell, self.pool, self.bidirectional = cell, pool, bidirectional
            self.pool_size = pool_size
            self.embedding = nn.Embedding(vocab_size, embed_size)
            self.drop = nn.Dropout(dropout)
            out = embed_size
            if cell in ("cnn", "cnn-lstm"):
                self.conv = nn.Conv1d(embed_size, filters, kernel_size, padding="same")
                out = filters
            if cell not in ("bag", "cnn"):
                rnn_cell = "lstm" if cell == "cnn-lstm" else cell
                self.rnn = make_rnn(rnn_cell, out, hidden_size, num_layers, dropout,
                                    bidirectional)
                out = hidden_size * (2 if bidirectional else 1)
            self.classifier = nn.Linear(out, num_classes)

        def _conv(self, x, mask):
            """x (N, T, E), mask (N, T) -> relu(conv(x)) (N, T, F), 0 at padded steps."""
            x = x * mask[:, :, None]                                     # padding reads 0
            return torch.relu(self.conv(x.transpose(1, 2)).transpose(1, 2)) * mask[:, :, None]

        def _maxpool(self, r, lengths):
            """r (N, T, F) -> (N, ceil(T/P), F) and the pooled lengths ceil(L / P)."""
            N, T, _ = r.shape
            P = self.pool_size
            Tp = -(-T // P) * P
            r = nn.functional.pad(r, (0, 0, 0, Tp - T))                  # filler steps
            mask = torch.arange(Tp)[None, :] < lengths[:, None]
            r = r.masked_fill(~mask[:, :, None], float("-inf"))          # padding never wins
            pooled = nn.functional.max_pool1d(r.transpose(1, 2), P).transpose(1, 2)
            lengths = torch.div(lengths + P - 1, P, rounding_mode="floor")
            valid = torch.arange(Tp // P)[None, :] < lengths[:, None]
            return pooled.masked_fill(~valid[:, :, None], 0.0), lengths

        def forward(self, ids, lengths=None):
            N, T = ids.shape
            lengths = torch.full((N,), T) if lengths is None else torch.as_tensor(lengths)
            mask = torch.arange(T)[None, :] < lengths[:, None]             # (N, T)
            h = self.drop(self.embedding(ids))
            if self.cell == "bag":
                h = h * mask[:, :, None]
            elif self.cell == "cnn":
                h = self._conv(h, mask)
            else:
                if self.cell == "cnn-lstm":
                    h, lengths = self._maxpool(self._conv(h, mask), lengths)
                    h, T = self.drop(h), h.shape[1]
                    mask = torch.arange(T)[None, :] < lengths[:, None]
                packed = pack_padded_sequence(h, lengths.cpu(), batch_first=True,
                                              enforce_sorted=False)
                h, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True,
                                           total_length=T)                # zero when padded
            m = mask[:, :, None]
            if self.pool == "mean":
                feats = h.sum(1) / lengths[:, None].clamp(min=1).to(h.dtype)
            elif self.pool == "max":
                feats = h.masked_fill(~m, float("-inf")).max(1).values
            else:  # last valid step; a bidirectional rnn's backward half at step 0
                feats = h[torch.arange(N), lengths - 1]
                if self.bidirectional and self.cell not in ("bag", "cnn"):
                    Hf = h.shape[2] // 2
                    feats = torch.cat([feats[:, :Hf], h[:, 0, Hf:]], 1)
            return self.classifier(self.drop(feats))

    class Seq2Seq(nn.Module):
        """src ids (N, S), src lengths (N,) or None (all S), targets (N, T) -> logits
        (N, T, V), as lm.models.Seq2Seq computes them:

            s_0    = the encoder's top layer at each row's last valid step (the source
                     reversed within its length first when `reverse`; bidirectional:
                     [forward; backward after reading back to step 0], (N, 2H))
            z_t    = h of s_0 ("repeat") | decoder.embedding(y_{t-1}), y_{-1} = bos_id
                     ("teacher") | [that; h of s_0] ("teacher" with `feed_state`)
            logits = decoder.out(dropout(decoder.rnn(z, initial state s_0)))
        Outputs at padded target steps (t >= target_lengths) are zero before decoder.out,
        as in lm (so their logits are decoder.out.bias). Keys: encoder.embedding,
        encoder.rnn, decoder.embedding ("teacher" only), decoder.rnn (one layer of Hd =
        hidden_size, or 2 * hidden_size when bidirectional, units), decoder.out.
        """

        def __init__(self, vocab_size, embed_size=32, hidden_size=128, cell="lstm",
                     num_layers=1, bidirectional=False, decoder_input="teacher",
                     reverse=True, dropout=0.0, max_target_len=8, bos_id=1, eos_id=2,
                     feed_state=False):
            super().__init__()
            self.cell, self.decoder_input, self.reverse = cell, decoder_input, bool(reverse)
            self.bidirectional = bool(bidirectional)
            self.feed_state = bool(feed_state) and decoder_input == "teacher"
            self.max_target_len, self.bos_id, self.eos_id = max_target_len, bos_id, eos_id
            Hd = hidden_size * (2 if bidirectional else 1)
            self.encoder = nn.ModuleDict({
                "embedding": nn.Embedding(vocab_size, embed_size),
                "rnn": make_rnn(cell, embed_size, hidden_size, num_layers, dropout,
                                bidirectional)})
            dec = {}
            if decoder_input == "teacher":
                dec["embedding"] = nn.Embedding(vocab_size, embed_size)
                dec_in = embed_size + (Hd if self.feed_state else 0)
            else:
                dec_in = Hd
            dec["rnn"] = make_rnn(cell, dec_in, Hd, 1, 0.0)
            dec["out"] = nn.Linear(Hd, vocab_size)
            self.decoder = nn.ModuleDict(dec)
            self.drop = nn.Dropout(dropout)

        def encode(self, src, lengths=None):
            """src (N, S), lengths (N,) or None -> s_0: (h,) or (h, c), each (1, N, Hd)."""
            N, S = src.shape
            lengths = torch.full((N,), S) if lengths is None else torch.as_tensor(lengths)
            if self.reverse:  # each row's valid steps reversed, padding left in place
                t, L = torch.arange(S)[None, :], lengths[:, None]
                src = src.gather(1, torch.where(t < L, L - 1 - t, t))
            x = self.drop(self.encoder["embedding"](src))
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                          enforce_sorted=False)
            _, state = self.encoder["rnn"](packed)
            state = state if isinstance(state, tuple) else (state,)
            if self.bidirectional:   # top layer: [forward; backward] side by side
                return tuple(torch.cat([s[-2], s[-1]], 1)[None] for s in state)
            return tuple(s[-1:] for s in state)

        def _init(self, s0):
            return s0 if self.cell == "lstm" else s0[0]

        def forward(self, src, src_lengths, targets, target_lengths=None):
            s0 = self.encode(src, src_lengths)
            N, T = targets.shape
            h0 = s0[0][0][:, None, :].expand(N, T, -1)                   # (N, T, Hd)
            if self.decoder_input == "teacher":
                prev = torch.cat([torch.full((N, 1), self.bos_id, dtype=targets.dtype),
                                  targets[:, :-1]], 1)
                z = self.decoder["embedding"](prev)
                if self.feed_state:
                    z = torch.cat([z, h0], 2)
            else:
                z = h0.contiguous()
            d, _ = self.decoder["rnn"](z, self._init(s0))
            if target_lengths is not None:   # padded steps output zero, as in lm
                mask = torch.arange(T)[None, :] < torch.as_tensor(target_lengths)[:, None]
                d = d * mask[:, :, None]
            return self.decoder["out"](self.drop(d))

        def loss(self, src, src_lengths, targets, target_lengths=None):
            """Mean cross-entropy per valid target step (nats)."""
            logits = self.forward(src, src_lengths, targets, target_lengths)
            ce = nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
            if target_lengths is None:
                return ce.mean()
            mask = torch.arange(targets.shape[1])[None, :] < torch.as_tensor(
                target_lengths)[:, None]
            return (ce * mask).sum() / mask.sum()

        @torch.no_grad()
        def generate(self, src, src_lengths=None, max_len=None):
            """Greedy decoding: (N, L) ids, L <= max_len (default max_target_len); each
            row's tokens up to its eos, then eos again (lm's `generate` with top_k 1)."""
            L = self.max_target_len if max_len is None else int(max_len)
            s0 = self.encode(src, src_lengths)
            N = s0[0].shape[1]
            out = torch.full((N, L), self.eos_id, dtype=torch.long)
            done = torch.zeros(N, dtype=torch.bool)
            state, prev = self._init(s0), torch.full((N,), self.bos_id, dtype=torch.long)
            if self.decoder_input == "repeat":   # no feedback: all L steps at once
                d, _ = self.decoder["rnn"](s0[0][0][:, None, :].expand(N, L, -1).contiguous(),
                                           state)
            for t in range(L):
                if self.decoder_input == "repeat":
                    scores = self.decoder["out"](d[:, t])
                else:
                    z = self.decoder["embedding"](prev)
                    if self.feed_state:
                        z = torch.cat([z, s0[0][0]], 1)
                    h, state = self.decoder["rnn"](z[:, None, :], state)
                    scores = self.decoder["out"](h[:, 0])
                out[:, t] = torch.where(done, self.eos_id, scores.argmax(1))
                done |= out[:, t] == self.eos_id
                prev = out[:, t]
                if done.all():
                    return out[:, :t + 1]
            return out

    return {"LanguageModel": LanguageModel, "Classifier": Classifier, "Seq2Seq": Seq2Seq}


def module_config(kind, model_config, state):
    """The constructor arguments of the PyTorch module for lm's model config: the same
    keys, and for an adaptive softmax its cutoffs read from the state dict's shapes."""
    config = dict(model_config)
    if kind == "language_model" and "decoder.head.weight" in state:
        sizes, i = [], 0
        while f"decoder.tail.{i}.1.weight" in state:
            sizes.append(int(state[f"decoder.tail.{i}.1.weight"].shape[0]))
            i += 1
        shortlist = int(state["decoder.head.weight"].shape[0]) - len(sizes)
        config.update(softmax="adaptive", head_bias="decoder.head.bias" in state,
                      cutoffs=[shortlist + sum(sizes[:k]) for k in range(len(sizes))])
        config.setdefault("div_value", 4.0)
    return config


def read_file(path):
    """(module in eval mode, config.json dict, vocab.json dict) of an exported file; every
    check of lm.interop.files.read_checked first."""
    import torch

    config, vocab, state, _ = read_checked(path)
    kind = config["kind"]
    model = module_class(kind)(**module_config(kind, config["model"], state))
    dtype = next(iter(state.values())).dtype
    model.to(torch.float64 if dtype.itemsize == 8 else torch.float32)
    model.load_state_dict({k: torch.from_numpy(a) for k, a in state.items()})
    return model.eval(), config, vocab


def from_file(path):
    """The PyTorch module stored in an exported file, weights loaded, in eval mode."""
    return read_file(path)[0]


def save_file(model, path, config, vocab, overwrite=False):
    """Write `model`'s state dict (PyTorch layout, contiguous copies: tied weights are
    stored twice) with lm's metadata (config.json and vocab.json dicts), atomically,
    through the safetensors package's own torch writer, as any PyTorch program would."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    save_torch_layout(path, lambda meta: save(state, metadata=meta), config, vocab, overwrite)
    return os.fspath(path)

