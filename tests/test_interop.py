"""The PyTorch bridge: state-dict layout, committed PyTorch-made fixtures (no torch needed),
lm.export / lm.import_torch and what the imported runs can do; torch-only tests skip.

Fixtures: tests/fixtures/interop, written by `python scripts/make_torch_fixtures.py --only
interop` (see its docstring): PyTorch modules' state dicts, saved as PyTorch saves them,
and their eval-mode outputs for fixed ids.
"""
import json
import os

import numpy as np
import pytest

from conftest import REPO, assert_clean_error, run_module
from lm.interop import torch_layout
from lm.interop.files import make_metadata, read_checked
from lm.layers.adaptive_softmax import AdaptiveSoftmax
from lm.models import LanguageModelRNN
from lm.models.classifier import SentimentClassifier
from lm.storage.safe_tensors import load_tensors

FIX = os.path.join(REPO, "tests", "fixtures", "interop")
LM_FIXTURES = [f"lm_{c}_l{L}" for c in ("rnn", "gru", "lstm") for L in (1, 2)] + ["lm_gru_l1_tied"]
CNN_FIXTURES = ["clf_cnn_max", "clf_cnn_lstm_bi_last", "clf_cnn_lstm_l2_mean"]
CLF_FIXTURES = ["clf_lstm_bi_last", "clf_gru_bi_l2_mean", "clf_rnn_max",
                "clf_bag_mean"] + CNN_FIXTURES
S2S_FIXTURES = ["s2s_lstm_bi_l2_teacher", "s2s_lstm_repeat", "s2s_gru_teacher_noreverse"]


def fixture(name):
    return os.path.join(FIX, name + ".safetensors"), dict(np.load(os.path.join(FIX, name + ".npz")))


def lm_model(cell, layers, tie=False, dtype=np.float32, seed=0):
    H = 6 if tie else 5
    m = LanguageModelRNN(11, 6, H, cell=cell, num_layers=layers, tie_weights=tie, dtype=dtype,
                         rng=np.random.default_rng(seed))
    for p in m.params.values():  # biases too: no zero may hide a wrong mapping
        p[...] = np.random.default_rng(seed + p.size).uniform(-0.5, 0.5, p.shape)
    return m.eval()


# ---- PyTorch -> lm, against PyTorch's own outputs (no torch needed) ---------------

@pytest.mark.parametrize("name", LM_FIXTURES)
def test_pytorch_language_models_give_pytorchs_logits_in_lm(name):
    path, ref = fixture(name)
    config, vocab, state, model = read_checked(path)
    assert model.params["embed.W"].dtype == np.float32
    logits, _ = model.eval().forward(ref["ids"])
    np.testing.assert_allclose(logits, ref["logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", CLF_FIXTURES)
def test_pytorch_classifiers_give_pytorchs_scores_in_lm(name):
    path, ref = fixture(name)
    _, _, _, model = read_checked(path)
    mask = np.arange(ref["ids"].shape[1])[None, :] < ref["lengths"][:, None]
    np.testing.assert_allclose(model.eval().forward(ref["ids"], mask), ref["scores"],
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["adaptive", "adaptive_bias"])
def test_adaptive_softmax_state_dict_maps_to_the_layer(name):
    """nn.AdaptiveLogSoftmaxWithLoss's state dict under decoder. -> lm's layer params under
    head. (the language model's names); log-probabilities agree, and back is identical."""
    path, ref = fixture(name)
    state = load_tensors(path, require_checksum=False)
    params = torch_layout.adaptive_from_torch(state)
    layer = AdaptiveSoftmax(5, 13, [4, 9], div_value=2.0, head_bias=name.endswith("bias"))
    assert sorted("head." + k for k in layer.params) == sorted(params)
    for k, p in layer.params.items():
        p[...] = params["head." + k]
    np.testing.assert_allclose(layer.log_prob(ref["x"]), ref["log_prob"], atol=1e-5, rtol=0)
    back = torch_layout.adaptive_to_torch(params)
    assert sorted(back) == sorted(state)
    for k in state:
        np.testing.assert_array_equal(back[k], state[k])


def test_adaptive_softmax_inside_the_language_model_layout():
    """A language model whose head is an AdaptiveSoftmax maps head.* <-> decoder.*."""
    m = lm_model("lstm", 1)
    params = {k: v for k, v in m.params.items() if not k.startswith("head.")}
    layer = AdaptiveSoftmax(5, 11, [3, 7], div_value=2.0, head_bias=True)
    params.update({"head." + k: v for k, v in layer.params.items()})
    state = torch_layout.lm_to_torch(m.config(), params)
    assert {k for k in state if k.startswith("decoder.")} == {
        "decoder.head.weight", "decoder.head.bias", "decoder.tail.0.0.weight",
        "decoder.tail.0.1.weight", "decoder.tail.1.0.weight", "decoder.tail.1.1.weight"}
    back = torch_layout.lm_from_torch(m.config(), state)
    assert sorted(back) == sorted(params)
    for k in params:
        np.testing.assert_array_equal(back[k], params[k])


def assert_same_params(back, params, state):
    """`back` (from a state dict) holds every parameter, bit-identical in its dtype, and
    the state dict shares no memory with the model."""
    assert sorted(back) == sorted(params)
    for k, p in params.items():
        assert back[k].dtype == p.dtype
        np.testing.assert_array_equal(back[k], p)
    assert not any(np.shares_memory(a, p) for a in state.values() for p in params.values())


# ---- exact round trips ----------------------------------------------------------

@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_lm_to_pytorch_to_lm_is_identical(cell, layers):
    for tie in (False, True):
        m = lm_model(cell, layers, tie)
        state = torch_layout.to_torch("language_model", m)
        keys = ["embedding.weight"] + [f"rnn.{w}_{x}_l{k}" for k in range(layers)
                                       for w in ("weight", "bias") for x in ("ih", "hh")]
        assert sorted(state) == sorted(keys + ["decoder.weight", "decoder.bias"])
        back = torch_layout.from_torch("language_model", m.config(), state)
        assert_same_params(back, m.params, state)


@pytest.mark.parametrize("name", LM_FIXTURES + CLF_FIXTURES + S2S_FIXTURES)
def test_pytorch_to_lm_to_pytorch(name):
    """Weights come back identical; lm keeps one bias for the RNN and LSTM, so their
    bias_ih + bias_hh comes back as bias_ih with bias_hh = 0 (the same outputs), and a
    state dict lm exported comes back identical."""
    path, _ = fixture(name)
    config, _, state, model = read_checked(path)
    kind = config["kind"]
    back = torch_layout.to_torch(kind, model)
    assert sorted(back) == sorted(state)
    for k, a in state.items():
        if "rnn.bias_" in k and config["model"]["cell"] in ("rnn", "lstm", "cnn-lstm"):
            want = a + state[k.replace("bias_ih", "bias_hh")] if "bias_ih" in k else 0 * a
            np.testing.assert_array_equal(back[k], want)
        else:
            np.testing.assert_array_equal(back[k], a)
    again = torch_layout.to_torch(kind, _model_from(kind, config, back))
    for k in back:
        np.testing.assert_array_equal(again[k], back[k])


def _model_from(kind, config, state):
    m = torch_layout.layout(kind).build(config["model"])
    for k, a in torch_layout.from_torch(kind, config["model"], state).items():
        m.params[k][...] = a
    return m


def cnn_classifier(cell, pool, kernel_size=3, pool_size=3, layers=1, bi=False,
                   dtype=np.float32):
    """A small cnn / cnn-lstm classifier (F = 4 filters != E = 6), every weight nonzero."""
    m = SentimentClassifier.build(11, 6, 5, cell=cell, num_layers=layers, bidirectional=bi,
                                  pool=pool, num_classes=3, filters=4, kernel_size=kernel_size,
                                  pool_size=pool_size, dtype=dtype, rng=np.random.default_rng(0))
    for p in m.params.values():
        p[...] = np.random.default_rng(p.size).uniform(-0.6, 0.6, p.shape)
    return m.eval()


@pytest.mark.parametrize("cell, layers, bi", [("cnn", 1, False), ("cnn-lstm", 2, True)])
def test_cnn_classifiers_to_pytorch_to_lm_are_identical(cell, layers, bi):
    m = cnn_classifier(cell, "max", kernel_size=4, layers=layers, bi=bi)
    state = torch_layout.to_torch("sentiment", m)
    assert state["conv.weight"].shape == (4, 6, 4) and state["conv.bias"].shape == (4,)
    np.testing.assert_array_equal(state["conv.weight"][:, :, 1], m.params["conv.W"][1].T)
    rnn = [k for k in state if k.startswith("rnn.")]
    assert len(rnn) == (0 if cell == "cnn" else 4 * layers * (2 if bi else 1))
    if cell == "cnn-lstm":   # the LSTM reads the F filters
        assert state["rnn.weight_ih_l0"].shape == (20, 4)
    assert state["classifier.weight"].shape == (3, 4 if cell == "cnn" else 10)
    back = torch_layout.from_torch("sentiment", m.config(), state)
    assert_same_params(back, m.params, state)


def test_a_cell_without_a_layout_is_a_value_error():
    m = cnn_classifier("cnn", "max")
    for kind, cell in (("sentiment", "transformer"), ("language_model", "cnn"),
                       ("seq2seq", "bag")):
        with pytest.raises(ValueError, match=f"no PyTorch layout for cell {cell!r}"):
            torch_layout.layout(kind).to_torch({**m.config(), "cell": cell}, m.params)


def test_classifier_keys_follow_pytorch_naming():
    m = SentimentClassifier.build(11, 4, 3, cell="gru", num_layers=2, bidirectional=True,
                                  num_classes=3, rng=np.random.default_rng(0))
    state = torch_layout.to_torch("sentiment", m)
    assert state["rnn.weight_ih_l1_reverse"].shape == (9, 6)
    assert state["classifier.weight"].shape == (3, 6)
    assert len(state) == 1 + 2 * 2 * 4 + 2
    with pytest.raises(ValueError, match="no PyTorch layout"):
        torch_layout.layout("seq2seq_unknown")


# ---- the command-line tools -----------------------------------------------------

def cli(main, args, cwd, capsys, monkeypatch):
    """Run a CLI's main through lm.cli.run_cli in this process (no interpreter start-up):
    (exit code, stdout, stderr)."""
    from lm.cli import run_cli

    monkeypatch.chdir(cwd)
    capsys.readouterr()
    try:
        run_cli(main, [str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def clean_error(result, *fragments):
    code, _, err = result
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result
    for f in fragments:
        assert f in lines[0], lines[0]


def test_import_then_sample_evaluate_train_and_export(tmp_path, capsys, monkeypatch):
    from lm import evaluate, export, import_torch, sample
    from lm.config.sentiment import SentimentConfig
    from lm.config.training import TrainConfig
    from lm.training.classifier_task import train as train_classifier
    from lm.training.lm_task import train as train_lm

    path, ref = fixture("lm_lstm_l2")
    p = run_module("lm.import_torch", [path, "--out_dir", "run"], tmp_path)  # the real CLI
    assert p.returncode == 0, p.stderr
    assert sorted(os.listdir(tmp_path / "run")) == ["best.safetensors", "config.json", "vocab.json"]
    code, out, err = cli(sample.main, ["--checkpoint", "run", "--start", "abc", "--length", "20"],
                         tmp_path, capsys, monkeypatch)
    assert code == 0 and len(out) >= 20, err
    from lm.models.load import load_language_model
    model, _, _ = load_language_model(tmp_path / "run")
    np.testing.assert_allclose(model.forward(ref["ids"])[0], ref["logits"], atol=1e-5, rtol=0)
    (tmp_path / "text.txt").write_text("abcdefghij" * 40 + "\n", encoding="utf-8")
    code, out, err = cli(evaluate.main, ["--checkpoint", "run", "text.txt"], tmp_path, capsys,
                         monkeypatch)
    assert code == 0 and "perplexity" in out, err
    # lm.train --init_from and lm.sentiment train --init_from, through their library calls
    cfg = TrainConfig(corpus="text.txt", init_from="run", max_steps=2, eval_every=2,
                      batch_size=2, seq_length=8, sample_length=0, out_dir="cont")
    result = train_lm(cfg, given={"init_from", "max_steps"}, log=lambda s: None, progress=False)
    assert result.best_step == 2
    rows = [f"pos\tabc {i}\n" if i % 2 else f"neg\thij {i}\n" for i in range(24)]
    (tmp_path / "s.tsv").write_text("".join(rows), encoding="utf-8")
    scfg = SentimentConfig(data="s.tsv", init_from="run", max_epochs=1, out_dir="cls")
    train_classifier(scfg, log=lambda s: None, progress=False)
    assert os.path.exists(tmp_path / "cls" / "best.safetensors")
    # export again: lm's file (with its checksum) holds the same state dict
    args = ["--checkpoint", "run", "out.safetensors", "--format", "pytorch"]
    code, out, err = cli(export.main, args, tmp_path, capsys, monkeypatch)
    assert code == 0 and "11 tensors" in out, err
    again, meta = load_tensors(tmp_path / "out.safetensors", with_metadata=True)
    original, meta0 = load_tensors(path, with_metadata=True, require_checksum=False)
    assert sorted(again) == sorted(original)
    assert json.loads(meta["itos"]) == json.loads(meta0["itos"])
    for k in ("embedding.weight", "rnn.weight_hh_l1", "decoder.weight"):
        np.testing.assert_array_equal(again[k], original[k])
    before = (tmp_path / "out.safetensors").read_bytes()
    clean_error(cli(export.main, args, tmp_path, capsys, monkeypatch), "already exists")
    assert (tmp_path / "out.safetensors").read_bytes() == before
    code, _, _ = cli(export.main, args + ["--overwrite"], tmp_path, capsys, monkeypatch)
    assert code == 0
    clean_error(cli(import_torch.main, [path, "--out_dir", "run"], tmp_path, capsys, monkeypatch),
                "not an empty directory")


def _damaged(tmp_path, name, edit_state=None, edit_meta=None):
    """A copy of a fixture with its state dict or metadata changed."""
    from safetensors.numpy import save_file
    state, meta = load_tensors(fixture(name)[0], with_metadata=True, require_checksum=False)
    if edit_state:
        edit_state(state)
    if edit_meta:
        edit_meta(meta)
    out = tmp_path / "bad.safetensors"
    save_file(state, str(out), metadata=meta)
    return str(out)


def _set(d, k, v):
    d[k] = v


BAD_FILES = {
    "missing key": (lambda s: s.pop("rnn.bias_hh_l1"), None, "missing key 'rnn.bias_hh_l1'"),
    "extra key": (lambda s: _set(s, "rnn.weight_ih_l2", s["rnn.weight_ih_l1"]), None,
                  "unexpected key 'rnn.weight_ih_l2'"),
    "wrong shape": (lambda s: _set(s, "rnn.weight_hh_l0", s["rnn.weight_hh_l0"][:, :4].copy()),
                    None, "'rnn.weight_hh_l0' has shape (20, 4)"),
    "integer weights": (lambda s: _set(s, "decoder.bias", s["decoder.bias"].astype(np.int32)),
                        None, "float32"),
    "nan": (lambda s: s["decoder.bias"].__setitem__(0, np.nan), None, "NaN"),
    "not lm metadata": (None, lambda m: m.pop("format"), "metadata lacks format"),
    "bad model json": (None, lambda m: _set(m, "model", "{"), "metadata 'model'"),
    "wrong cell": (None, lambda m: _set(m, "model", m["model"].replace('"lstm"', '"gru"')),
                   "has shape"),
    "vocab size": (None, lambda m: _set(m, "itos", json.dumps(json.loads(m["itos"])[:5])),
                   "vocabulary has 5 tokens"),
}


def test_import_refuses_every_bad_file_with_one_line(tmp_path, capsys, monkeypatch):
    from lm import import_torch

    for case, (edit_state, edit_meta, message) in sorted(BAD_FILES.items()):
        bad = _damaged(tmp_path, "lm_lstm_l2", edit_state, edit_meta)
        clean_error(cli(import_torch.main, [bad, "--out_dir", "run"], tmp_path, capsys,
                        monkeypatch), message)
        assert not (tmp_path / "run").exists(), case
    p = run_module("lm.import_torch", [bad, "--out_dir", "run"], tmp_path)  # the real CLI
    assert_clean_error(p, message)


def test_imported_classifier_predicts_pytorchs_probabilities(tmp_path, capsys, monkeypatch):
    from lm import export, import_torch
    from lm.models.classifier import softmax
    from lm.models.load import load_classifier

    path, ref = fixture("clf_lstm_bi_last")
    assert cli(import_torch.main, [path, "--out_dir", "cls"], tmp_path, capsys, monkeypatch)[0] == 0
    model, vocab, config = load_classifier(tmp_path / "cls")
    assert config["data"]["classes"] == ["neg", "pos", "neutral"] and len(vocab) == 11
    mask = np.arange(ref["ids"].shape[1])[None, :] < ref["lengths"][:, None]
    np.testing.assert_allclose(model.predict_proba(ref["ids"], mask), softmax(ref["scores"]),
                               atol=1e-5, rtol=0)
    args = ["--checkpoint", "cls", "c.safetensors", "--format", "pytorch"]
    assert cli(export.main, args, tmp_path, capsys, monkeypatch)[0] == 0
    again, meta = load_tensors(tmp_path / "c.safetensors", with_metadata=True)
    original = load_tensors(path, require_checksum=False)
    assert sorted(again) == sorted(original) and meta["kind"] == "sentiment"
    for k in ("rnn.weight_ih_l0_reverse", "classifier.weight", "embedding.weight"):
        np.testing.assert_array_equal(again[k], original[k])


def test_cnn_runs_import_and_export_and_a_cell_without_layout_is_one_line(
        tmp_path, capsys, monkeypatch):
    from lm import export, import_torch

    path, _ = fixture("clf_cnn_lstm_bi_last")
    assert cli(import_torch.main, [path, "--out_dir", "cls"], tmp_path, capsys, monkeypatch)[0] == 0
    args = ["--checkpoint", "cls", "c.safetensors"]
    assert cli(export.main, args, tmp_path, capsys, monkeypatch)[0] == 0
    again, original = (load_tensors(p, require_checksum=False)
                       for p in (tmp_path / "c.safetensors", path))
    for k in ("conv.weight", "conv.bias", "rnn.weight_hh_l0_reverse", "classifier.weight"):
        np.testing.assert_array_equal(again[k], original[k])
    monkeypatch.setattr(torch_layout, "ENCODER_CELLS", ("bag", "rnn", "gru", "lstm"))
    clean_error(cli(export.main, args[:2] + ["d.safetensors"], tmp_path, capsys, monkeypatch),
                "no PyTorch layout for cell 'cnn-lstm'")
    assert not os.path.exists(tmp_path / "d.safetensors")


def test_a_cnn_with_a_wide_unused_hidden_size_imports_and_exports(tmp_path, capsys,
                                                                  monkeypatch):
    """cnn has no recurrent layer: its hidden_size implies no weights (a size bound that
    counted E*H + H*H refused such runs); a config lying about its filters is refused."""
    from lm import export, import_torch

    def edit(key, value):
        return lambda m: _set(m, "model", json.dumps({**json.loads(m["model"]), key: value}))

    wide = _damaged(tmp_path, "clf_cnn_max", edit_meta=edit("hidden_size", 256))
    assert cli(import_torch.main, [wide, "--out_dir", "cls"], tmp_path, capsys,
               monkeypatch)[0] == 0
    assert cli(export.main, ["--checkpoint", "cls", "c.safetensors"], tmp_path, capsys,
               monkeypatch)[0] == 0
    lying = _damaged(tmp_path, "clf_cnn_max", edit_meta=edit("filters", 60000))
    clean_error(cli(import_torch.main, [lying, "--out_dir", "r"], tmp_path, capsys,
                    monkeypatch), "implies at least")


def test_tied_weights_must_agree_and_export_refuses_bad_input(tmp_path, capsys, monkeypatch):
    from lm import export, import_torch

    bad = _damaged(tmp_path, "lm_gru_l1_tied",
                   lambda s: s["decoder.weight"].__setitem__((0, 0), 9.0))
    clean_error(cli(import_torch.main, [bad, "--out_dir", "run"], tmp_path, capsys, monkeypatch),
                "decoder.weight differs from embedding.weight")
    clean_error(cli(export.main, ["--checkpoint", "nowhere", "o.safetensors"], tmp_path, capsys,
                    monkeypatch), "nowhere")
    clean_error(cli(import_torch.main, ["none.safetensors", "--out_dir", "r"], tmp_path, capsys,
                    monkeypatch), "none.safetensors")
    path, _ = fixture("lm_gru_l1_tied")
    assert cli(import_torch.main, [path, "--out_dir", "run"], tmp_path, capsys, monkeypatch)[0] == 0
    clean_error(cli(export.main, ["--checkpoint", "run", "o.safetensors", "--format", "onnx"],
                    tmp_path, capsys, monkeypatch), "--format")
    clean_error(cli(export.main, ["--checkpoint", "run", "o.npz"], tmp_path, capsys,
                    monkeypatch), ".safetensors")
    assert not os.path.exists(tmp_path / "o.safetensors")


def test_help_starts_with_the_tools_own_text(tmp_path):
    for module in ("lm.export", "lm.import_torch"):
        p = run_module(module, ["--help"], tmp_path)
        assert p.returncode == 0 and "INFO" not in p.stdout + p.stderr, p.stderr
        assert p.stdout.splitlines()[:2] == ["NAME", p.stdout.splitlines()[1]]
        assert p.stdout.splitlines()[1].strip().startswith(f"python -m {module} - ")


def test_metadata_holds_config_and_vocabulary():
    config = {"kind": "language_model", "model": {"vocab_size": 2}, "train": {}, "data": {}}
    meta = make_metadata(config, {"format": "lm.vocab", "itos": ["<unk>", "é"]})
    assert json.loads(meta["itos"]) == ["<unk>", "é"] and "itos" not in json.loads(meta["vocab"])
    assert json.loads(meta["model"]) == {"vocab_size": 2} and meta["format"] == "lm.pytorch"


# ---- with PyTorch: lm -> PyTorch logits --------------------------------------------

def _torch():
    return pytest.importorskip("torch", reason='torch is not installed: pip install -e ".[torch]"',
                               exc_type=ImportError)


def torch_from_state(path, state, config, vocab):
    """The torch_model module of a PyTorch-layout file written to `path` from `state`
    (numpy arrays) with lm's config and vocabulary."""
    from lm.interop import torch_model
    from lm.interop.files import save_torch_layout
    import safetensors.numpy

    save_torch_layout(path, lambda meta: safetensors.numpy.save(state, metadata=meta), config,
                      vocab)
    return torch_model.from_file(path)


def char_lm_in_torch(m, path, **train):
    """The PyTorch module of lm's char-level language model `m` (11 tokens), through a
    file at `path` whose config's "train" part is `train`."""
    config = {"kind": "language_model", "model": m.config(), "train": {"dropout": 0.0, **train},
              "data": {}}
    vocab = {"format": "lm.vocab", "version": 1, "level": "char", "lowercase": False,
             "specials": ["<unk>"], "itos": ["<unk>"] + list("abcdefghij")}
    return torch_from_state(path, torch_layout.to_torch("language_model", m), config, vocab)


def assert_same_logits(torch, model, m, shape):
    ids = np.random.default_rng(3).integers(0, 11, shape)
    with torch.no_grad():
        got = model(torch.from_numpy(ids))[0].numpy()
    np.testing.assert_allclose(got, m.forward(ids)[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 2])
def test_lm_exports_give_lms_logits_in_pytorch(cell, layers, tmp_path):
    torch = _torch()
    m = lm_model(cell, layers, tie=layers == 2)
    model = char_lm_in_torch(m, tmp_path / "m.safetensors", cell=cell, embed_size=6,
                             hidden_size=m.config()["hidden_size"], num_layers=layers,
                             tie_weights=layers == 2)
    assert_same_logits(torch, model, m, (3, 9))


def test_a_model_with_a_cache_exports_its_network_and_imports_with_its_cache(tmp_path):
    """The continuous cache has no weights: PyTorch gets the network (the same logits), and
    the file's config keeps the cache for lm to rebuild."""
    torch = _torch()
    from lm.interop.files import read_checked
    m = lm_model("lstm", 1)
    m.set_cache(20, 0.6, 0.2)
    model = char_lm_in_torch(m, tmp_path / "m.safetensors", cell="lstm", embed_size=6,
                             hidden_size=5, num_layers=1, cache_size=20, cache_theta=0.6,
                             cache_lambda=0.2)
    assert_same_logits(torch, model, m, (2, 7))
    config_read = read_checked(tmp_path / "m.safetensors")[0]
    again = LanguageModelRNN.from_config(config_read["model"])
    assert (again.cache.size, again.cache.theta, again.cache.lam) == (20, 0.6, 0.2)


def test_pytorch_adaptive_language_model_matches_lm_pieces():
    torch = _torch()
    from lm.interop import torch_model

    torch.manual_seed(0)
    tm = torch_model.LanguageModel(11, 6, 5, cell="gru", num_layers=2, softmax="adaptive",
                                   cutoffs=[3, 7], div_value=2.0, head_bias=True).eval()
    state = {k: v.detach().numpy() for k, v in tm.state_dict().items()}
    cfg = torch_model.module_config("language_model", {"vocab_size": 11}, state)
    assert cfg["cutoffs"] == [3, 7] and cfg["head_bias"] is True
    m = lm_model("gru", 2)
    params = torch_layout.lm_from_torch(m.config(), state)
    for k in m.params:
        if not k.startswith("head."):
            m.params[k][...] = params[k]
    layer = AdaptiveSoftmax(5, 11, [3, 7], div_value=2.0, head_bias=True)
    for k in layer.params:
        layer.params[k][...] = params["head." + k]
    ids = np.random.default_rng(4).integers(0, 11, (2, 6))
    h, _ = m.encoder.forward(ids)
    with torch.no_grad():
        want = tm(torch.from_numpy(ids))[0].numpy()
    np.testing.assert_allclose(layer.log_prob(h), want, atol=1e-5, rtol=0)


def test_recall_runs_export_as_classifiers(tmp_path):
    """The recall task's model is the classifier (last-step pooling): same keys, same scores."""
    torch = _torch()
    m = SentimentClassifier.build(17, 6, 5, cell="lstm", pool="last", num_classes=8,
                                  rng=np.random.default_rng(0)).eval()
    config = {"kind": "recall", "model": m.config(), "train": {},
              "data": {"classes": list("ABCDEFGH")}}
    vocab = {"format": "lm.vocab", "version": 1, "level": "char", "lowercase": False,
             "specials": ["<unk>"], "itos": ["<unk>"] + list("ABCDEFGHabcdefgh")}
    state = torch_layout.to_torch("recall", m)
    assert sorted(state) == sorted(torch_layout.to_torch("sentiment", m))
    model = torch_from_state(tmp_path / "r.safetensors", state, config, vocab)
    ids = np.random.default_rng(3).integers(0, 17, (4, 7))
    with torch.no_grad():
        got = model(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(got, m.forward(ids), atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # PyTorch's note
@pytest.mark.parametrize("cell, pool, K, P, layers, bi", [
    ("cnn", "max", 3, 3, 1, False), ("cnn", "mean", 4, 3, 1, False),
    ("cnn-lstm", "last", 4, 3, 2, True), ("cnn-lstm", "max", 3, 2, 1, False),
    ("cnn-lstm", "mean", 2, 4, 1, False)])
def test_lm_cnn_classifiers_give_lms_scores_in_pytorch(cell, pool, K, P, layers, bi):
    """Padded batches: padding is excluded from the conv, the max-pool windows and the pool."""
    torch = _torch()
    from lm.interop import torch_model

    m = cnn_classifier(cell, pool, K, P, layers, bi, dtype=np.float64)
    tm = torch_model.Classifier(**m.config()).double().eval()
    tm.load_state_dict({k: torch.from_numpy(a)
                        for k, a in torch_layout.to_torch("sentiment", m).items()})
    ids = np.random.default_rng(3).integers(0, 11, (4, 8))
    lengths = np.array([8, 5, 1, 3])
    mask = np.arange(8)[None, :] < lengths[:, None]
    with torch.no_grad():
        got = tm(torch.from_numpy(ids), torch.from_numpy(lengths)).numpy()
    np.testing.assert_allclose(got, m.forward(ids, mask), atol=1e-10, rtol=0)
    junk = np.where(mask, ids, 7)                    # what sits in the padding never matters
    np.testing.assert_allclose(m.forward(junk, mask), got, atol=1e-10, rtol=0)
