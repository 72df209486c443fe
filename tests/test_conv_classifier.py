"""The convolutional classifier encoders, cnn and cnn-lstm: whole-model gradient checks in
float64, padding invariance, agreement with the equations written out, names and config,
the CLI (learning, predicting, bad flags) and an exact resume after Ctrl-C."""
import numpy as np
import pytest

from conftest import assert_clean_error, metrics, replayed_loss, run_module, tiny_file
from lm.data.batch import Batch, pad_batch
from lm.layers.gradcheck import eval_numerical_gradient, rel_error
from lm.models.classifier import SentimentClassifier
from lm.models.encoder import Encoder

V, E, H, C = 7, 3, 4, 3


def make(cell="cnn", pool="max", bidirectional=False, num_layers=1, dropout=0.0, seed=0,
         filters=5, kernel_size=3, pool_size=2):
    return SentimentClassifier.build(V, E, H, cell=cell, num_layers=num_layers,
                                     bidirectional=bidirectional, pool=pool, dropout=dropout,
                                     num_classes=C, dtype=np.float64,
                                     rng=np.random.default_rng(seed), filters=filters,
                                     kernel_size=kernel_size, pool_size=pool_size)


def batch(seed=1, lengths=(5, 3, 1)):
    """ids (3, 5) with garbage ids on the padded steps, its mask and labels."""
    ids = np.random.default_rng(seed).integers(0, V, (len(lengths), max(lengths)))
    mask = np.arange(ids.shape[1])[None, :] < np.array(lengths)[:, None]
    return ids, mask, np.arange(len(lengths)) % C


def assert_gradient(analytic, numeric, name):
    """Relative error < 1e-5 on every entry above 1e-5; centred differences of a float64
    loss near 1 carry ~1e-11 of round-off, too much for a relative error on smaller
    entries, so those must be within 1e-9 absolutely (a wrong backward is far off)."""
    big = np.abs(numeric) > 1e-5
    assert big.any() and rel_error(analytic[big], numeric[big]) < 1e-5, name
    assert np.abs(analytic - numeric).max() < 1e-9, name


GRAD_CASES = [  # (cell, pool, bidirectional, num_layers, kernel_size, pool_size)
    ("cnn", "max", False, 1, 3, 2), ("cnn", "mean", False, 1, 2, 2),
    ("cnn", "last", False, 1, 4, 2),
    ("cnn-lstm", "max", False, 1, 3, 2), ("cnn-lstm", "mean", False, 1, 2, 3),
    ("cnn-lstm", "last", True, 1, 3, 2), ("cnn-lstm", "max", False, 2, 1, 4),
]


@pytest.mark.parametrize("cell,pool,bi,layers,K,P", GRAD_CASES)
def test_gradient_check_whole_classifier(cell, pool, bi, layers, K, P):
    model = make(cell, pool, bi, layers, seed=3, kernel_size=K, pool_size=P)
    ids, mask, y = batch()
    model.loss(Batch(ids, y, mask))
    analytic = {k: g.copy() for k, g in model.grads.items()}
    assert set(analytic) == set(model.params)

    def f(_):
        return model.loss(Batch(ids, y, mask))[0]

    for name, p in model.params.items():
        assert_gradient(analytic[name], eval_numerical_gradient(f, p, h=1e-5), name)
    assert np.abs(analytic["conv.W"]).max() > 0
    unused = np.setdiff1d(np.arange(V), np.unique(ids[mask]))  # seen on padded steps only
    assert not analytic["embed.W"][unused].any()


def test_gradient_check_with_dropout():
    model = make("cnn-lstm", "max", dropout=0.3, num_layers=2, seed=4)
    ids, mask, y = batch(2)
    f, analytic = replayed_loss(model, Batch(ids, y, mask))
    for name, p in model.params.items():
        assert_gradient(analytic[name], eval_numerical_gradient(f, p, h=1e-5), name)


PAD_CASES = [("cnn", pool, False, K, 2) for pool in ("mean", "max", "last") for K in (2, 3)] \
    + [("cnn-lstm", pool, bi, K, P) for pool in ("mean", "max", "last")
       for bi, K, P in ((False, 3, 2), (True, 2, 3), (False, 4, 4))]


@pytest.mark.parametrize("cell,pool,bi,K,P", PAD_CASES)
def test_padding_never_changes_a_prediction(cell, pool, bi, K, P):
    model = make(cell, pool, bi, seed=5, kernel_size=K, pool_size=P)
    model.params["embed.W"][...] *= 3  # larger activations make a leak visible
    for sentence in (np.array([3, 1, 4]), np.array([6]), np.array([2, 0, 5, 1, 3])):
        alone = model.predict_proba(sentence[None], np.ones((1, len(sentence)), bool))
        others = [np.array([2, 5, 4, 1, 0, 3, 6, 2]), sentence, np.array([4, 4, 5, 2, 1, 6])]
        ids, mask = pad_batch(others, pad_id=5)  # a real token id as padding: must not matter
        probs = model.predict_proba(ids, mask)
        np.testing.assert_allclose(probs[1], alone[0], rtol=1e-12, atol=1e-12)
        no_mask = model.predict_proba(sentence[None])  # no mask: every step valid
        np.testing.assert_allclose(no_mask, alone, rtol=1e-12, atol=1e-12)


def conv_relu(model, ids):
    """relu(conv(embed(ids))) for one text, written out: 'same' zero padding, loops."""
    W, b = model.params["conv.W"], model.params["conv.b"]     # (K, E, F), (F,)
    K = W.shape[0]
    e = model.params["embed.W"][ids]                          # (T, E)
    left = (K - 1) // 2
    xp = np.concatenate([np.zeros((left, E)), e, np.zeros((K - 1 - left, E))])
    out = np.array([sum(xp[t + k] @ W[k] for k in range(K)) + b for t in range(len(ids))])
    return np.maximum(out, 0)                                 # (T, F)


def test_cnn_is_relu_conv_then_max_over_time():
    model = make("cnn", "max", seed=7, kernel_size=4).eval()
    ids = np.array([1, 6, 2, 2, 0])
    feats = conv_relu(model, ids).max(axis=0)
    want = feats @ model.params["head.W"] + model.params["head.b"]
    np.testing.assert_allclose(model.forward(ids[None])[0], want, rtol=1e-12, atol=1e-12)


def test_cnn_lstm_is_an_lstm_over_max_pooled_windows():
    from lm.layers.lstm import LSTM

    model = make("cnn-lstm", "last", seed=8, pool_size=3).eval()
    ids = np.array([1, 6, 2, 2, 0, 4, 3])                     # 7 steps: windows 3, 3, 1
    r = conv_relu(model, ids)
    pooled = np.stack([r[0:3].max(0), r[3:6].max(0), r[6:7].max(0)])
    lstm = LSTM(5, H, dtype=np.float64)
    for k in lstm.params:
        lstm.params[k][...] = model.params[f"rnn0.{k}"]
    h = lstm.forward(pooled[None])[0, -1]
    want = h @ model.params["head.W"] + model.params["head.b"]
    np.testing.assert_allclose(model.forward(ids[None])[0], want, rtol=1e-12, atol=1e-12)
    assert model.encoder.out_mask is not None and model.encoder.out_mask.shape == (1, 3)


def test_names_config_and_bad_arguments():
    assert set(make("cnn").params) == {"embed.W", "conv.W", "conv.b", "head.W", "head.b"}
    m = make("cnn-lstm", bidirectional=True, filters=6, kernel_size=2)
    assert m.params["conv.W"].shape == (2, E, 6) and m.params["rnn0.fwd.Wx"].shape[0] == 6
    assert m.params["head.W"].shape == (2 * H, C)
    for model in (m, make("cnn", "mean", kernel_size=5)):
        again = SentimentClassifier.from_config(model.config(), dtype=np.float64)
        assert again.config() == model.config()
    assert "filters" not in make("lstm").config()  # recurrent runs keep their config.json
    assert make("cnn").config()["filters"] == 5 and "pool_size" not in make("cnn").config()
    with pytest.raises(ValueError, match="num_layers must be 1"):
        Encoder(V, E, H, cell="cnn", num_layers=2)
    with pytest.raises(ValueError, match="bidirectional"):
        Encoder(V, E, H, cell="cnn", bidirectional=True)
    for kw in (dict(filters=0), dict(kernel_size=2.5), dict(pool_size=True)):
        with pytest.raises(ValueError, match=next(iter(kw))):
            Encoder(V, E, H, cell="cnn-lstm", **kw)
    enc = Encoder(V, E, H, cell="cnn-lstm")
    with pytest.raises(ValueError, match="one step"):
        enc.step(np.array([1]))
    with pytest.raises(ValueError, match="carries no state"):
        enc.forward(np.array([[1, 2]]), state=[None])


# ---- through the CLI and the one trainer ----

TINY = ["--embed_size", "6", "--hidden_size", "5", "--filters", "8", "--max_epochs", "12",
        "--batch_size", "4", "--min_count", "1", "--learning_rate", "0.03", "--dropout", "0"]


@pytest.mark.parametrize("cell", ["cnn", "cnn-lstm"])
def test_cli_learns_and_predicts(tmp_path, cell):
    data = tiny_file(tmp_path / "tiny.tsv")
    p = run_module("lm.sentiment", ["train", data, "--cell", cell, "--val_frac", "0",
                                    "--test_frac", "0", "--out_dir", "run", *TINY], tmp_path)
    assert p.returncode == 0, p.stderr
    assert f"model   {cell} filters 8 kernel_size 3" in p.stdout
    assert metrics(tmp_path / "run", "eval")[-1]["train_acc"] == 1.0
    p = run_module("lm.sentiment", ["predict", "--checkpoint", "run", "i love it", "so awful"],
                   tmp_path)
    assert p.returncode == 0, p.stderr
    assert [line.split("\t")[0] for line in p.stdout.splitlines()] == ["positive", "negative"]


def test_bad_flags(tmp_path):
    from lm.config.sentiment import SentimentConfig

    for flags, words in ((dict(filters=0), ("--filters",)),
                         (dict(kernel_size="x"), ("--kernel_size",)),
                         (dict(pool_size=1.5), ("--pool_size",)),
                         (dict(cell="cnn", bidirectional=True), ("--bidirectional", "cnn")),
                         (dict(cell="cnn", num_layers=2), ("--num_layers",))):
        with pytest.raises(ValueError) as e:
            SentimentConfig(data="x.tsv", **flags).validate()
        assert all(w in str(e.value) for w in words), e.value
    data = tiny_file(tmp_path / "tiny.tsv")  # the CLI: one error line, exit 2, nothing started
    assert_clean_error(run_module("lm.sentiment", ["train", data, "--cell", "cnnlstm"], tmp_path),
                       "--cell", "cnn-lstm")
    assert_clean_error(run_module("lm.sentiment", ["train", data, "--cell", "cnn",
                                                   "--kernel_size", "0"], tmp_path),
                       "--kernel_size")
    assert not (tmp_path / "checkpoints").exists()


def test_interrupted_cnn_lstm_run_resumes_exactly(tmp_path, monkeypatch):
    import lm.training.trainer as trainer
    from lm.config.sentiment import SentimentConfig
    from lm.storage.checkpoint import load_arrays
    from lm.training.classifier_task import train

    data = str(tiny_file(tmp_path / "tiny.tsv"))
    common = dict(data=data, cell="cnn-lstm", embed_size=5, hidden_size=4, filters=6,
                  kernel_size=2, pool_size=2, min_count=1, batch_size=4, dropout=0.2,
                  eval_every=4, dtype="float64")
    quiet = lambda s: None  # noqa: E731
    monkeypatch.setattr(trainer, "redraw_curves", lambda run_dir, log: None)  # ~1 s a figure
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train(SentimentConfig(**common, out_dir=a, max_steps=12), log=quiet, progress=False)
    stop = trainer.StopFlag()
    real_step = trainer.Trainer.train_step
    calls = {"n": 0}

    def step_then_stop(self):  # Ctrl-C during step 6, between two evaluations
        calls["n"] += 1
        stop.requested = stop.requested or calls["n"] == 6
        return real_step(self)

    trainer.Trainer.train_step = step_then_stop
    try:
        r = train(SentimentConfig(**common, out_dir=b, max_steps=12), log=quiet,
                  progress=False, stop=stop)[0]
    finally:
        trainer.Trainer.train_step = real_step
    assert (r.reason, r.step) == ("interrupted", 6)
    train(SentimentConfig(out_dir=b, resume=True, max_steps=12), {"resume", "max_steps"},
          log=quiet, progress=False)
    keys = ("step", "train_loss", "val_loss", "val_acc", "test_loss")
    assert [[row.get(k) for k in keys] for row in metrics(a, "eval")] == \
        [[row.get(k) for k in keys] for row in metrics(b, "eval")]
    la, lb = (load_arrays(f"{d}/last.safetensors") for d in (a, b))
    for k in la:
        if k != "state/elapsed":
            np.testing.assert_array_equal(la[k], lb[k], err_msg=k)
