"""Corpus loading (streaming equals whole-text tokenising), splits, BPTT and line batches."""
import codecs
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lm.text.stream import load_corpus
from lm.data.batchers import (BPTTBatcher, LineBatcher, Lines, make_batcher, split_corpus,
                     split_ids, split_lines)
from lm.text.files import read_text
from lm.text.vocab import LINE_SPECIALS, Vocab, tokenize

SAMPLE = ("First Citizen:\r\nBefore we proceed any further, hear me speak.\r\n\r\n"
          "Ünïcödé wörds, 3.14 numbers; ΣΟΦΙΑ ΟΔΟΣ — 日本語のテキスト 😀!\n  indented\tline\n")


def write(tmp_path, data, name="c.txt"):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return str(p)


@pytest.mark.parametrize("level,tokenizer", [("char", None), ("word", "split"),
                                             ("word", "words"), ("word", "runs"),
                                             ("word", "lines")])
@pytest.mark.parametrize("lowercase", [False, True])
@pytest.mark.parametrize("chunk", [3, 17, 1 << 20])
def test_streaming_equals_whole_text(tmp_path, level, tokenizer, lowercase, chunk):
    p = write(tmp_path, codecs.BOM_UTF8 + (SAMPLE * 7).encode())
    c = load_corpus(p, level=level, lowercase=lowercase, chunk_bytes=chunk, tokenizer=tokenizer)
    tokens = tokenize(read_text(p), level, lowercase, tokenizer)
    assert c.ids.tolist() == c.vocab.encode(tokens).tolist()
    assert c.vocab.decode_text(c.ids) == read_text(p).lower() if lowercase else read_text(p)
    assert c.ids.dtype == np.uint8 and c.vocab.level == level


@pytest.mark.parametrize("lowercase", [False, True])
@pytest.mark.parametrize("tokenizer", ["words", "runs"])
def test_streaming_without_spaces_cuts_at_class_edges(tmp_path, lowercase, tokenizer):
    text = "Abc12,Déf345ghIJ!" * 50  # no whitespace at all: the fallback cut
    p = write(tmp_path, text)
    c = load_corpus(p, level="word", lowercase=lowercase, chunk_bytes=3, tokenizer=tokenizer)
    assert c.ids.tolist() == c.vocab.encode(tokenize(text, "word", lowercase, tokenizer)).tolist()


def test_split_streaming_without_spaces_keeps_the_text(tmp_path):
    """A "split" word longer than 4 chunks is cut (into two tokens); the text comes back."""
    text = "Abc12,Déf345ghIJ!" * 50
    c = load_corpus(write(tmp_path, text + " x" * 3), level="word", chunk_bytes=3)
    assert c.vocab.decode_text(c.ids) == text + " x" * 3
    short = load_corpus(write(tmp_path, text[:20] + " x " + text[:20]), level="word",
                        chunk_bytes=8)
    assert [short.vocab.itos[i] for i in short.ids] == [text[:20], " x", " " + text[:20]]


def test_crlf_and_lf_files_give_same_ids(tmp_path):
    a = load_corpus(write(tmp_path, SAMPLE.replace("\r\n", "\n"), "lf.txt"), level="word")
    b = load_corpus(write(tmp_path, SAMPLE.replace("\r\n", "\n").replace("\n", "\r\n"),
                          "crlf.txt"), level="word")
    assert a.ids.tolist() == b.ids.tolist() and a.vocab == b.vocab


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1,
                   max_size=30),
       level=st.sampled_from(["char", "word", "words", "runs"]), lowercase=st.booleans(),
       chunk=st.integers(8, 16))
def test_streaming_equals_whole_text_hypothesis(tmp_path, text, level, lowercase, chunk):
    """Exact for any text whose tokens are shorter than 4 chunks (chunks are 256 KB)."""
    if lowercase:  # a final sigma lowercases by context, which a cut without spaces can hide
        text = text.replace("Σ", "")
    p = write(tmp_path, text)
    try:
        whole = read_text(p)
        tokenizer, level = ((level, "word") if level in ("words", "runs")
                            else (None, level))
        c = load_corpus(p, level=level, lowercase=lowercase, chunk_bytes=chunk,
                        tokenizer=tokenizer)
    except ValueError as e:
        assert any(w in str(e) for w in ("whitespace", "one distinct", "no text", "empty"))
        return
    assert c.ids.tolist() == c.vocab.encode(tokenize(whole, level, lowercase, tokenizer)).tolist()


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.lists(st.sampled_from(["a", "bc", "é", " ", " ", "  ", "\n", "\n", "\t",
                                      "\u00a0", "\r\n", "\u3000"]), min_size=1, max_size=20)
       .map(lambda parts: "".join(parts)[:30]),
       tokenizer=st.sampled_from(["split", "words", "runs", "lines"]), chunk=st.integers(16, 24))
def test_streaming_equals_whole_text_on_whitespace(tmp_path, text, tokenizer, chunk):
    """Indentation, blank lines, tabs, CRLF: wherever the chunks end, the streamed ids are
    the whole text's ("lines" line breaks run on through the next line's whitespace)."""
    p = write(tmp_path, text)
    try:
        c = load_corpus(p, level="word", chunk_bytes=chunk, tokenizer=tokenizer)
    except ValueError as e:
        assert any(w in str(e) for w in ("whitespace", "one distinct", "no text", "empty"))
        return
    whole = read_text(p)
    assert c.ids.tolist() == c.vocab.encode(tokenize(whole, "word", tokenizer=tokenizer)).tolist()


def test_lines_streaming_of_indented_code(tmp_path):
    code = "".join(f"def f{i}(x):\n    if x:\n        return {i}\n\n    return x\n\t\ty\n"
                   for i in range(40))
    c = load_corpus(write(tmp_path, code), level="word", tokenizer="lines", chunk_bytes=5)
    assert c.ids.tolist() == c.vocab.encode(tokenize(code, "word", tokenizer="lines")).tolist()
    assert "\n       " in c.vocab.stoi and "\n\t\t" in c.vocab.stoi


def test_line_mode(tmp_path):
    p = write(tmp_path, "emma\r\nolivia\n\n   \nava\nÉlise\n")
    c = load_corpus(p, line_mode=True, chunk_bytes=4)
    assert c.vocab.itos[:3] == list(LINE_SPECIALS)
    assert c.num_lines == 4 and c.offsets.tolist() == [0, 4, 10, 13, 18]
    assert c.vocab.decode_text(c.ids[c.offsets[3]:c.offsets[4]]) == "Élise"
    w = load_corpus(p, level="word", line_mode=True, lowercase=True, chunk_bytes=5)
    assert [w.vocab.itos[i] for i in w.ids] == ["emma", "olivia", "ava", "élise"]


def test_given_vocab_is_used_and_unknowns_map_to_unk(tmp_path):
    v = Vocab.build("abc", level="char")
    c = load_corpus(write(tmp_path, "abzzc"), vocab=v)
    assert c.vocab is v and c.ids.tolist() == [v["a"], v["b"], 0, 0, v["c"]]
    with pytest.raises(ValueError, match="--line_mode needs a vocabulary with <bos>"):
        load_corpus(write(tmp_path, "ab\n"), vocab=v, line_mode=True)


@pytest.mark.parametrize("data,kw,msg", [
    (b"", {}, r"is empty \(0 bytes\)"),
    (codecs.BOM_UTF8, {}, "contains no text"),
    (b" \n\t\r\n  ", {}, r"contains only whitespace \(6 symbols\)"),
    (b"aaaaaaa", {}, "only one distinct symbol \\('a', 7 times\\)"),
    (b"hello", {"level": "word"}, "only one distinct token"),
    (b"Aa", {"lowercase": True}, "only one distinct symbol"),
    (b"\n \n\n", {"line_mode": True}, "no non-blank lines"),
    (b"ab\xffcd", {}, "offset 2"),
    (b"abab", {"min_count": 5}, "--min_count 5 leaves no tokens"),
])
def test_unusable_corpora_fail_fast_with_a_message(tmp_path, data, kw, msg):
    p = write(tmp_path, data)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=msg):
        load_corpus(p, **kw)
    assert time.perf_counter() - t0 < 1.0


def test_missing_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_corpus(str(tmp_path / "nope.txt"))
    with pytest.raises(ValueError, match="is a directory"):
        load_corpus(str(tmp_path))


def test_split_ids():
    ids = np.arange(100)
    train, val = split_ids(ids, 0.1)
    assert train.tolist() == list(range(90)) and val.tolist() == list(range(90, 100))
    assert len(split_ids(np.arange(1115394), 0.1)[0]) == 1003854  # as nanoGPT
    with pytest.raises(ValueError, match=r"too short to train: 10 tokens leave 9 for training "
                       r"and 1 for validation \(--val_frac 0.1\); need at least 11 tokens"):
        split_ids(np.arange(10), 0.1)
    assert [len(s) for s in split_ids(np.arange(11), 0.1)] == [9, 2]
    for bad in (0, 1, 1.5, -0.1, "0.1"):
        with pytest.raises(ValueError, match="--val_frac must be a fraction in"):
            split_ids(ids, bad)


def test_split_lines_and_corpus(tmp_path):
    lines = [np.array([i, i]) for i in range(10)]
    train, val = split_lines(lines, 0.2)
    assert len(train) == 8 and [val[k].tolist() for k in range(2)] == [[8, 8], [9, 9]]
    with pytest.raises(ValueError, match="too short to train: 1 lines.*need at least 2 lines"):
        split_lines(lines[:1], 0.1)
    c = load_corpus(write(tmp_path, "".join(f"line {i}\n" for i in range(20))), line_mode=True)
    tr, va = split_corpus(c, 0.1)
    assert isinstance(tr, Lines) and (len(tr), len(va)) == (18, 2)
    assert c.vocab.decode_text(va[1]) == "line 19"


def test_split_lines_shuffled_with_the_seed(tmp_path):
    """A seeded shuffle before the split: every line lands on exactly one side, lines keep
    their tokens, the order depends only on the seed, and file order differs from it."""
    lines = [np.arange(i % 5 + 1) + 10 * i for i in range(50)]
    train, val = split_lines(lines, 0.2, shuffle_seed=3)
    got = [tuple(x[k].tolist()) for x in (train, val) for k in range(len(x))]
    assert (len(train), len(val)) == (40, 10)
    assert sorted(got) == sorted(tuple(x.tolist()) for x in lines)
    order = np.random.default_rng(3).permutation(50)
    assert got == [tuple(lines[k].tolist()) for k in order]
    again = split_lines(lines, 0.2, shuffle_seed=3)[1]
    assert [val[k].tolist() for k in range(10)] == [again[k].tolist() for k in range(10)]
    other = split_lines(lines, 0.2, shuffle_seed=4)[1]
    assert [val[k].tolist() for k in range(10)] != [other[k].tolist() for k in range(10)]
    assert np.array_equal(val.offsets, np.concatenate([[0], np.cumsum(val.lengths)]))
    c = load_corpus(write(tmp_path, "".join(f"line {i}\n" for i in range(20))), line_mode=True)
    tr, va = split_corpus(c, 0.1, shuffle_seed=0)
    texts = {c.vocab.decode_text(x[k]) for x in (tr, va) for k in range(len(x))}
    assert texts == {f"line {i}" for i in range(20)}


# ---- BPTT -----------------------------------------------------------------------------

def test_bptt_targets_shifted_and_windows_continue():
    ids = np.arange(103, dtype=np.uint16)
    b = BPTTBatcher(ids, batch_size=3, seq_length=5)
    assert b.note is None and len(b) == 7  # streams of 34 tokens: 33 targets, ceil(33/5)
    batches = list(b)
    data = ids[:102].reshape(3, 34)
    for k, (x, y, _, _) in enumerate(batches):
        assert x.dtype == np.int64 and x.shape == y.shape
        assert (y[:, :-1] == x[:, 1:]).all() and (y == x + 1).all()
        assert (x == data[:, 5 * k:5 * k + x.shape[1]]).all()
        if k:
            assert (x[:, 0] == batches[k - 1][1][:, -1]).all()  # carry the state over
    assert batches[-1][0].shape == (3, 3)  # the short last window
    targets = np.concatenate([b.targets for b in batches], axis=1)
    assert (targets == data[:, 1:]).all()  # every token a target once
    assert b.epoch == 1 and b.position == 0


def test_bptt_resume_mid_epoch_is_exact():
    ids = np.random.default_rng(0).integers(0, 50, 1000)
    a = BPTTBatcher(ids, 4, 7)
    for _ in range(len(a) + 5):  # into the second epoch
        a.next_batch()
    state = a.state_dict()
    assert state == {"epoch": 1, "position": 5, "batch_size": 4, "seq_length": 7,
                     "num_tokens": 1000}
    b = BPTTBatcher(ids, 4, 7)
    b.load_state_dict(state)
    for _ in range(2 * len(a)):
        xa, ya, _, _ = a.next_batch()
        xb, yb, _, _ = b.next_batch()
        assert (xa == xb).all() and (ya == yb).all() and a.starts_epoch == b.starts_epoch
    with pytest.raises(ValueError, match="cannot resume.*batch_size 4"):
        BPTTBatcher(ids, 8, 7).load_state_dict(state)


def test_bptt_iteration_resumes_after_last_yield():
    b = BPTTBatcher(np.arange(50), 2, 4)
    it = iter(b)
    first = [next(it)[0] for _ in range(3)]
    assert b.position == 3 and b.starts_epoch is False
    c = BPTTBatcher(np.arange(50), 2, 4)
    c.load_state_dict(b.state_dict())
    rest = [b.inputs for b in c]
    assert len(first) + len(rest) == len(b)
    assert (rest[0] == first[-1] + 4).all()


def test_bptt_starts_epoch_flag():
    b = BPTTBatcher(np.arange(20), 2, 3)
    flags = [(b.next_batch(), b.starts_epoch)[1] for _ in range(2 * len(b))]
    assert flags == ([True] + [False] * (len(b) - 1)) * 2


@pytest.mark.parametrize("n,N,T,expect", [(50, 64, 128, (1, 49)), (1000, 64, 128, (7, 128)),
                                          (2, 8, 8, (1, 1))])
def test_bptt_shrinks_small_corpus_with_note(n, N, T, expect):
    b = BPTTBatcher(np.arange(n), N, T)
    assert (b.batch_size, b.seq_length) == expect
    assert f"too small for batch_size {N} x seq_length {T}" in b.note
    x, y, _, _ = b.batch(0)
    assert x.shape == expect and (y == x + 1).all()


def test_bptt_bad_arguments():
    with pytest.raises(ValueError, match="--batch_size must be a positive integer"):
        BPTTBatcher(np.arange(10), 0, 4)
    with pytest.raises(ValueError, match="--seq_length must be a positive integer"):
        BPTTBatcher(np.arange(10), 2, 2.5)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        BPTTBatcher(np.arange(1), 1, 1)


# ---- line mode ------------------------------------------------------------------------

def _lines(n, rng):
    return [rng.integers(3, 20, rng.integers(1, 12)) for _ in range(n)]


def test_line_batches_frame_pad_and_mask():
    lines = [np.array([5, 6, 7]), np.array([8]), np.array([9, 10])]
    b = LineBatcher(lines, 3, shuffle=False)
    (x, y, mask, _), = list(b)
    order = [1, 2, 0]  # sorted by length
    assert x.tolist() == [[1, 8, 0, 0], [1, 9, 10, 0], [1, 5, 6, 7]]
    assert y.tolist() == [[8, 2, 0, 0], [9, 10, 2, 0], [5, 6, 7, 2]]
    assert mask.tolist() == [[True, True, False, False], [True, True, True, False],
                             [True] * 4]
    assert [len(lines[i]) for i in order] == [1, 2, 3]


def test_line_epoch_covers_every_line_once_with_little_padding():
    rng = np.random.default_rng(1)
    lines = _lines(500, rng)
    b = LineBatcher(lines, 16, rng)
    seen, valid, total = [], 0, 0
    for x, y, mask, _ in b:
        for r in range(len(x)):
            seen.append(tuple(y[r, mask[r]][:-1]))
        valid, total = valid + mask.sum(), total + mask.size
    assert sorted(seen) == sorted(tuple(s) for s in lines)
    assert valid / total > 0.9  # bucketing keeps padding small (random order: ~0.55)


def test_line_resume_and_seeded_order():
    lines = _lines(100, np.random.default_rng(2))
    a = LineBatcher(lines, 8, np.random.default_rng(7))
    for _ in range(len(a) + 3):
        a.next_batch()
    state = a.state_dict()
    b = LineBatcher(lines, 8, np.random.default_rng(999))  # another rng: state decides
    b.load_state_dict(state)
    for _ in range(len(a) + 2):
        for u, v in zip(a.next_batch()[:3], b.next_batch()[:3]):
            assert (u == v).all()
    e0 = [x.tolist() for x, _, _, _ in LineBatcher(lines, 8, np.random.default_rng(7))]
    e0b = [x.tolist() for x, _, _, _ in LineBatcher(lines, 8, np.random.default_rng(7))]
    e1 = [x.tolist() for x, _, _, _ in LineBatcher(lines, 8, np.random.default_rng(8))]
    assert e0 == e0b and e0 != e1


def test_line_batch_shrinks_and_make_batcher():
    v = Vocab.build("abc", specials=LINE_SPECIALS)
    lines = Lines.from_list([v.encode(list("ab")), v.encode(list("c"))])
    b = make_batcher(lines, v, batch_size=8, seq_length=4)
    assert isinstance(b, LineBatcher) and b.batch_size == 2 and "only 2 lines" in b.note
    assert isinstance(make_batcher(np.arange(40), v, 2, 4), BPTTBatcher)


# ---- memory ---------------------------------------------------------------------------

def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_single_line_file_tokenises_under_three_times_its_size(tmp_path):
    rng = np.random.default_rng(0)
    alphabet = np.frombuffer("abcdefghij klmnopqrs tuvwxyz,.AB".encode(), np.uint8)
    n = 20_000_000
    p = tmp_path / "big.txt"
    alphabet[rng.integers(0, len(alphabet), n, dtype=np.uint8)].tofile(p)  # one 20 MB line
    c, peak = _peak(lambda: load_corpus(str(p)))
    assert len(c.ids) == n and c.ids.dtype == np.uint8
    assert peak < 3 * n, f"peak {peak / 1e6:.1f} MB for a {n / 1e6:.0f} MB file"


def test_word_level_memory_is_the_ids_plus_a_chunk(tmp_path):
    rng = np.random.default_rng(0)
    words = np.array("the of and to in a is that it was for on with as his he by "
                     "at but not be this from they".split())
    text = " ".join(words[rng.integers(0, len(words), 80_000)])  # ~0.3 MB, one line
    p = write(tmp_path, text)
    c, peak = _peak(lambda: load_corpus(p, level="word", chunk_bytes=1 << 14))
    assert len(c.ids) == 80_000 and c.ids.dtype == np.uint8  # " the": a token per word
    assert peak < 3 * len(text), f"peak {peak / 1e6:.2f} MB for {len(text) / 1e6:.2f} MB"


def test_lines_take_gathers_in_chunks():
    rng = np.random.default_rng(0)
    lines = [rng.integers(0, 50, rng.integers(0, 7)).astype(np.uint8) for _ in range(100)]
    order = rng.permutation(100)
    for chunk in (1, 7, 1 << 16):
        taken = Lines.from_list(lines).take(order, chunk=chunk)
        assert taken.ids.dtype == np.uint8 and len(taken) == 100
        assert all(np.array_equal(taken[k], lines[order[k]]) for k in range(100))
