"""The PyTorch bridge for the seq2seq model: its state-dict layout, PyTorch-made fixtures
(no torch needed), export -> import -> predict; torch-only tests skip.

Fixtures: tests/fixtures/interop/s2s_*, written by `python scripts/make_torch_fixtures.py
--only interop`: torch_model.Seq2Seq state dicts, their logits for padded sources and
targets, and their greedy answers.
"""
import numpy as np
import pytest

from lm.data.batch import Batch
from lm.interop import torch_layout
from lm.interop.files import read_checked
from lm.models.seq2seq import Seq2Seq
from lm.storage.safe_tensors import load_tensors
from test_interop import (S2S_FIXTURES, _damaged, _torch, clean_error, cli, fixture,
                          torch_from_state)


def _lengths_mask(lengths, T):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


@pytest.mark.parametrize("name", S2S_FIXTURES)
def test_pytorch_seq2seq_gives_pytorchs_logits_and_answers_in_lm(name):
    """Logits with padded sources and targets, and greedy decoding, as PyTorch gave them."""
    path, ref = fixture(name)
    _, _, _, model = read_checked(path)
    src, tgt = ref["src"], ref["targets"]
    mask, tmask = _lengths_mask(ref["src_lengths"], src.shape[1]), _lengths_mask(
        ref["target_lengths"], tgt.shape[1])
    np.testing.assert_allclose(model.eval().forward(src, tgt, mask, tmask), ref["logits"],
                               atol=1e-5, rtol=0)
    np.testing.assert_array_equal(model.generate(src, mask), ref["generated"])


def s2s_model(cell, bidirectional=False, decoder_input="teacher", feed_state=True,
              layers=1, seed=0):
    m = Seq2Seq(15, 4, 5, cell=cell, num_layers=layers, bidirectional=bidirectional,
                decoder_input=decoder_input, feed_state=feed_state, max_target_len=5,
                rng=np.random.default_rng(seed))
    for p in m.params.values():  # biases too: no zero may hide a wrong mapping
        p[...] = np.random.default_rng(seed + p.size).uniform(-0.6, 0.6, p.shape)
    return m.eval()


S2S_VARIANTS = [dict(bidirectional=True, decoder_input="teacher", feed_state=True, layers=2),
                dict(bidirectional=False, decoder_input="repeat"),
                dict(bidirectional=True, decoder_input="repeat"),
                dict(bidirectional=False, decoder_input="teacher", feed_state=False)]


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_seq2seq_to_pytorch_to_lm_is_identical(cell):
    for variant in S2S_VARIANTS:
        m = s2s_model(cell, **variant)
        state = torch_layout.to_torch("seq2seq", m)
        back = torch_layout.from_torch("seq2seq", m.config(), state)
        assert sorted(back) == sorted(m.params)
        for k, p in m.params.items():
            assert back[k].dtype == p.dtype
            np.testing.assert_array_equal(back[k], p)


def test_seq2seq_keys_follow_pytorch_naming():
    m = s2s_model("lstm", bidirectional=True, layers=2)   # H 5, Hd 10, E 4, V 15
    state = torch_layout.to_torch("seq2seq", m)
    enc = ["encoder.rnn." + f"{w}_{x}_l{k}{r}" for k in (0, 1) for r in ("", "_reverse")
           for w in ("weight", "bias") for x in ("ih", "hh")]
    dec = [f"decoder.rnn.{w}_{x}_l0" for w in ("weight", "bias") for x in ("ih", "hh")]
    assert sorted(state) == sorted(enc + dec + [
        "encoder.embedding.weight", "decoder.embedding.weight", "decoder.out.weight",
        "decoder.out.bias"])
    assert state["encoder.rnn.weight_ih_l1_reverse"].shape == (20, 10)
    assert state["decoder.rnn.weight_ih_l0"].shape == (40, 4 + 10)   # [embedding; s_0 h]
    assert state["decoder.rnn.weight_hh_l0"].shape == (40, 10)
    assert state["decoder.out.weight"].shape == (15, 10)
    repeat = torch_layout.to_torch("seq2seq", s2s_model("gru", decoder_input="repeat"))
    assert "decoder.embedding.weight" not in repeat
    assert repeat["decoder.rnn.weight_ih_l0"].shape == (15, 5)


def _seq2seq_predict(args, cwd, capsys, monkeypatch):
    """`python -m lm.seq2seq predict ARGS` in this process: (exit code, stdout, stderr)."""
    from lm import seq2seq

    monkeypatch.setattr(seq2seq, "_CLI_ARGV", None)   # main sets it; restored afterwards
    monkeypatch.chdir(cwd)
    capsys.readouterr()
    try:
        seq2seq.main(["predict", *args])
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def test_seq2seq_run_exports_imports_and_predicts(tmp_path, capsys, monkeypatch):
    """A trained adder -> lm.export -> lm.import_torch -> lm.seq2seq predict answers as the
    original run does; a PyTorch-made file imports and predicts too."""
    from lm import export, import_torch
    from lm.config.seq2seq import Seq2SeqConfig
    from lm.models.load import load_seq2seq
    from lm.training import trainer
    from lm.training.seq2seq_task import train as train_seq2seq

    monkeypatch.setattr(trainer, "redraw_curves", lambda run_dir, log: None)
    cfg = Seq2SeqConfig(task="addition", digits=1, num_questions=40, hidden_size=6,
                        embed_size=4, bidirectional=True, batch_size=16, max_steps=5,
                        eval_every=0, time_budget=0, target_acc=0, out_dir=str(tmp_path / "run"))
    train_seq2seq(cfg, log=lambda s: None, progress=False)
    args = ["--checkpoint", "run", "s.safetensors", "--format", "pytorch"]
    code, out, err = cli(export.main, args, tmp_path, capsys, monkeypatch)
    assert code == 0 and "seq2seq lstm, 16 tensors" in out, err
    state, meta = load_tensors(tmp_path / "s.safetensors", with_metadata=True)
    assert meta["kind"] == "seq2seq" and "encoder.rnn.weight_hh_l0_reverse" in state
    model, _, _ = load_seq2seq(tmp_path / "run")
    want = torch_layout.to_torch("seq2seq", model)
    assert sorted(state) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(state[k], want[k])
    code, out, err = cli(import_torch.main, ["s.safetensors", "--out_dir", "imp"], tmp_path,
                         capsys, monkeypatch)
    assert code == 0, err
    questions = ["1+2", "9+9", "0+7"]
    before = _seq2seq_predict(["--checkpoint", "run", *questions], tmp_path, capsys, monkeypatch)
    after = _seq2seq_predict(["--checkpoint", "imp", *questions], tmp_path, capsys, monkeypatch)
    assert before[0] == after[0] == 0 and before[1] == after[1], (before, after)
    assert [line.split("  ")[0] for line in after[1].splitlines()] == questions
    path, ref = fixture("s2s_lstm_repeat")
    code, _, err = cli(import_torch.main, [path, "--out_dir", "fix"], tmp_path, capsys,
                       monkeypatch)
    assert code == 0, err
    code, out, err = _seq2seq_predict(["--checkpoint", "fix", "3+4"], tmp_path, capsys,
                                      monkeypatch)
    assert code == 0 and out.startswith("3+4"), err


def test_import_refuses_a_seq2seq_file_that_does_not_fit_its_config(tmp_path, capsys,
                                                                   monkeypatch):
    from lm import import_torch

    cases = [(lambda s: s.pop("decoder.out.bias"), None, "missing key 'decoder.out.bias'"),
             (None, lambda m: m.__setitem__("model", m["model"].replace('"teacher"', '"repeat"')),
              "unexpected key 'decoder.embedding.weight'"),
             (None, lambda m: m.__setitem__("model", m["model"].replace(
                 '"bidirectional":true', '"bidirectional":false')),
              "unexpected key 'encoder.rnn.")]
    for edit_state, edit_meta, message in cases:
        bad = _damaged(tmp_path, "s2s_lstm_bi_l2_teacher", edit_state, edit_meta)
        clean_error(cli(import_torch.main, [bad, "--out_dir", "run"], tmp_path, capsys,
                        monkeypatch), message)
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_lm_seq2seq_exports_give_lms_logits_and_answers_in_pytorch(cell, tmp_path):
    torch = _torch()
    itos = ["<unk>", "<bos>", "<eos>", "+", " "] + [str(d) for d in range(10)]
    vocab = {"format": "lm.vocab", "version": 1, "level": "char", "lowercase": False,
             "specials": itos[:3], "itos": itos}
    rng = np.random.default_rng(5)
    src, tgt = rng.integers(0, 15, (4, 6)), rng.integers(0, 15, (4, 5))
    src_len, tgt_len = np.array([6, 2, 1, 4]), np.array([5, 1, 3, 2])
    mask, tmask = _lengths_mask(src_len, 6), _lengths_mask(tgt_len, 5)
    for i, variant in enumerate(S2S_VARIANTS):
        m = s2s_model(cell, **variant)
        config = {"kind": "seq2seq", "model": m.config(), "train": {},
                  "data": {"task": "addition", "digits": 1}}
        state = torch_layout.to_torch("seq2seq", m)
        model = torch_from_state(tmp_path / f"s{i}.safetensors", state, config, vocab)
        with torch.no_grad():
            got = model(*(torch.from_numpy(a) for a in (src, src_len, tgt, tgt_len))).numpy()
            answers = model.generate(torch.from_numpy(src), torch.from_numpy(src_len)).numpy()
        np.testing.assert_allclose(got, m.forward(src, tgt, mask, tmask), atol=1e-5, rtol=0)
        np.testing.assert_array_equal(answers, m.generate(src, mask))
        with torch.no_grad():
            loss = model.loss(*(torch.from_numpy(a) for a in (src, src_len, tgt, tgt_len)))
        want, _ = m.loss(Batch(src, tgt, mask, tmask))
        np.testing.assert_allclose(float(loss), want, atol=1e-5, rtol=0)
