"""Tokenisers and Vocab: exact round trips, specials, dtypes, JSON, suggestions."""
import json
import os
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lm.text.vocab import LINE_SPECIALS, UNK, Vocab, detokenize, id_dtype, tokenize


def test_char_tokens_are_code_points():
    assert tokenize("héllo 😀\n") == ["h", "é", "l", "l", "o", " ", "😀", "\n"]


def test_word_tokens_keep_whitespace_numbers_punctuation():
    text = "Hello,  wörld!\n\tIt's 2024: 3.14 naïve café—日本語 x²"
    toks = tokenize(text, "word", tokenizer="runs")
    assert toks == ["Hello", ",", "  ", "wörld", "!", "\n\t", "It", "'", "s", " ", "2024",
                    ":", " ", "3", ".", "14", " ", "naïve", " ", "café", "—", "日本語", " ",
                    "x", "²"]
    assert "".join(toks) == text


def test_combining_marks_stay_in_words():
    assert tokenize("cafe\u0301 ok", "word", tokenizer="runs") == ["cafe\u0301", " ", "ok"]
    assert tokenize("cafe\u0301 ok", "word") == ["cafe\u0301", " ok"]


def test_lowercase():
    assert tokenize("ABC Déjà", "word", lowercase=True, tokenizer="runs") == ["abc", " ", "déjà"]
    assert tokenize("ABC Déjà", "word", lowercase=True) == ["abc", " déjà"]
    assert tokenize("AbΣ", "char", lowercase=True) == list("abς")


def test_bad_level():
    with pytest.raises(ValueError, match="--level must be one of char, word"):
        tokenize("x", "byte")


TOKENIZERS = [("char", "char"), ("word", "runs"), ("word", "words"), ("word", "split"),
              ("word", "lines")]


def test_split_words_carry_the_space_before_them():
    """"split": str.split()'s words, each with the space before it."""
    text = "Hello,  wörld!\n\tIt's 2024: 3.14 naïve café—日本語 x² \n\n"
    toks = tokenize(text, "word", tokenizer="split")
    assert toks == ["Hello,", " ", " wörld!", "\n", "\t", "It's", " 2024:", " 3.14",
                    " naïve", " café—日本語", " x²", " \n", "\n"]
    assert "".join(toks) == text
    assert [t.strip() for t in toks if t.strip()] == text.split()


def test_split_line_breaks_and_indentation():
    def split(text):
        return tokenize(text, "word", tokenizer="split")
    assert split(" no it was n't <unk> \n") == [" no", " it", " was", " n't", " <unk>", " \n"]
    assert split("a\n    b  \t c") == ["a", "\n", "   ", " b", "  \t", " c"]
    assert split("   ") == ["   "]
    assert split("x \u3000y") == ["x", " \u3000", "y"]  # only U+0020 attaches
    assert split("é\u00a0b") == ["é", "\u00a0", "b"]  # str.split's whitespace


def test_words_carry_the_space_before_them():
    text = "Hello,  wörld!\n\tIt's 2024: 3.14 naïve café—日本語 x² \n\n"
    toks = tokenize(text, "word", tokenizer="words")
    assert toks == ["Hello", ",", " ", " wörld", "!", "\n", "\t", "It", "'", "s", " 2024",
                    ":", " 3", ".", "14", " naïve", " café", "—", "日本語", " x", "²", " \n",
                    "\n"]
    assert "".join(toks) == text


def test_lines_a_line_break_carries_the_next_lines_indentation():
    """The default word tokeniser: "split", but a line break takes the next line's
    indentation with it."""
    def lines(text):
        return tokenize(text, "word")
    code = "def f(x):\n    if x:\n        return 1\n\n    return 2\n"
    assert lines(code) == ["def", " f(x):", "\n   ", " if", " x:", "\n       ", " return",
                           " 1", "\n", "\n   ", " return", " 2", "\n"]
    # one token per word and line break, as str.split() + a line end each
    assert len(lines(code)) == len(code.split()) + code.count("\n")
    assert lines(" no it was n't <unk> \n a\n") == tokenize(" no it was n't <unk> \n a\n", "word",
                                                          tokenizer="split")
    assert lines("a\n\tb\n \tc\n   \n") == ["a", "\n\t", "b", "\n \t", "c", "\n   ", "\n"]
    assert lines("x  \n  y\r\n z") == ["x", " ", " \n ", " y", "\r", "\n", " z"]
    assert lines("é\n\u00a0 ü") == ["é", "\n\u00a0", " ü"]
    assert lines("\n") == ["\n"] and lines("   ") == ["   "]


def test_words_line_breaks_and_indentation():
    def words(text):
        return tokenize(text, "word", tokenizer="words")
    assert words(" no it was n't\n") == [" no", " it", " was", " n", "'", "t", "\n"]
    assert words("a\n    b  \t c") == ["a", "\n", "   ", " b", "  \t", " c"]
    assert words("   ") == ["   "]
    assert words("x \u3000y") == ["x", " \u3000", "y"]  # only U+0020 attaches


def test_tokenizer_choices():
    with pytest.raises(ValueError, match="--tokenizer must be one of lines, split, words, runs"):
        tokenize("x", "word", tokenizer="char")
    assert Vocab.build(["a", "b"], level="word").tokenizer == "lines"
    old = Vocab(["<unk>", "a"], level="word").to_json()
    del old["tokenizer"]  # a vocabulary saved by lm 0.1
    assert Vocab.from_json(old).tokenizer == "runs"


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from(TOKENIZERS))
def test_roundtrip_arbitrary_text(text, tok):
    level, tokenizer = tok
    toks = tokenize(text, level, tokenizer=tokenizer)
    assert detokenize(toks, level) == text
    assert all(toks)  # no empty tokens


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)),
       st.sampled_from(["words", "split", "lines"]))
def test_ascii_fast_paths_equal_the_unicode_patterns(text, tokenizer):
    from lm.text import vocab
    pattern = {"words": vocab.WORDS_RE, "split": vocab.SPLIT_RE, "lines": vocab.LINES_RE}
    assert vocab.TOKENIZE[tokenizer](text) == pattern[tokenizer].findall(text)


@settings(max_examples=200, deadline=None)
@given(st.text(), st.sampled_from(TOKENIZERS))
def test_vocab_roundtrip_arbitrary_text(text, tok):
    level, tokenizer = tok
    toks = tokenize(text, level, tokenizer=tokenizer)
    v = Vocab.build(toks or ["a"], level=level, tokenizer=tokenizer)
    ids = v.encode(toks)
    assert v.decode(ids) == toks
    assert v.decode_text(ids) == text


def test_build_order_min_count_max_vocab():
    counts = Counter({"a": 5, "b": 3, "c": 3, "d": 1})
    v = Vocab.build(counts)
    assert v.itos == ["<unk>", "a", "b", "c", "d"]
    assert v.unk_id == 0 and v.stoi["a"] == 1
    assert Vocab.build(counts, min_count=2).itos == ["<unk>", "a", "b", "c"]
    assert Vocab.build(counts, max_vocab=3).itos == ["<unk>", "a", "b"]
    line = Vocab.build(counts, specials=LINE_SPECIALS)
    assert line.itos[:3] == ["<unk>", "<bos>", "<eos>"]
    assert (line.bos_id, line.eos_id) == (1, 2)
    assert Vocab.build("abracadabra").itos == ["<unk>", "a", "b", "r", "c", "d"]


def test_marker_ids_only_from_specials():
    v = Vocab.build(["<bos>", "a"], level="word")  # a token that looks like a marker
    assert v.bos_id is None and v.eos_id is None and v["<bos>"] != 0


def test_build_errors():
    with pytest.raises(ValueError, match="--min_count 9 leaves no tokens.*occurs 2 times"):
        Vocab.build("aab", min_count=9)
    with pytest.raises(ValueError, match="--min_count must be a positive integer"):
        Vocab.build("ab", min_count=0)
    with pytest.raises(ValueError, match="--max_vocab must be an integer above 1"):
        Vocab.build("ab", max_vocab=1)


def test_unknown_never_raises():
    v = Vocab.build("hello")
    assert v["z"] == 0 and "z" not in v
    assert v.encode(list("hez")).tolist() == [v["h"], v["e"], 0]
    assert v.decode_text(v.encode(list("hez"))) == "he<unk>"


@pytest.mark.parametrize("size,dtype", [(2, np.uint8), (256, np.uint8), (257, np.uint16),
                                        (65536, np.uint16), (65537, np.int32)])
def test_narrowest_dtype(size, dtype):
    assert id_dtype(size) == dtype
    v = Vocab.build([str(i) for i in range(size - 1)], level="word")
    assert len(v) == size and v.encode(["0", "1"]).dtype == dtype


def test_decode_rejects_out_of_range():
    v = Vocab.build("ab")
    with pytest.raises(ValueError, match="out of range"):
        v.decode([5])


def test_line_specials_dropped_in_text():
    v = Vocab.build("ab", specials=LINE_SPECIALS)
    ids = [v.bos_id, v["a"], v["b"], v.eos_id]
    assert v.decode_text(ids) == "ab"
    assert v.decode_text(ids, keep_specials=True) == "<bos>ab<eos>"


def test_the_texts_own_unk_marker_is_the_unknown_token():
    """Penn Treebank writes rare words as "<unk>": they join lm's <unk>, as in the peer."""
    toks = tokenize(" the <unk> said the <unk>\n<unk> x", "word")
    v = Vocab.build(toks, level="word")
    assert " <unk>" not in v and "<unk>" == v.itos[0]
    ids = v.encode(toks).tolist()
    assert ids[1] == ids[4] == ids[6] == v.unk_id and v.unk_id not in (ids[0], ids[2])


def test_json_roundtrip():
    v = Vocab.build(tokenize("The cat sat on the Mat", "word", lowercase=True),
                    specials=LINE_SPECIALS, level="word", lowercase=True)
    d = json.loads(json.dumps(v.to_json()))
    w = Vocab.from_json(d)
    assert w == v and w.itos == v.itos and w.level == "word" and w.lowercase is True
    assert (w.bos_id, w.eos_id) == (1, 2)
    assert w.encode_text("THE MAT").tolist() == v.encode(["the", " mat"]).tolist()
    assert w.tokenizer == "lines" and d["tokenizer"] == "lines"


@pytest.mark.parametrize("bad", [
    [], {"itos": ["<unk>", "a"]}, {"format": "lm.vocab", "itos": "abc"},
    {"format": "lm.vocab", "itos": ["a", "<unk>"]},
    {"format": "lm.vocab", "itos": ["<unk>", "a", "a"]},
    {"format": "lm.vocab", "itos": ["<unk>", 3]},
    {"format": "lm.vocab", "itos": ["<unk>", "a"], "level": "byte"},
    {"format": "lm.vocab", "itos": ["<unk>", "a"], "lowercase": "yes"},
])
def test_from_json_rejects_malformed(bad):
    with pytest.raises(ValueError):
        Vocab.from_json(bad)


def test_closest_suggestions():
    v = Vocab.build(list("abcdeé") + ["A"])
    assert v.closest("É")[:2] == ["é", "e"]
    assert v.closest("a")[0] == "A"
    w = Vocab.build(["hello", "help", "world", "word"], level="word")
    assert w.closest("helo")[0] == "hello"
    assert w.closest("WRLD")[:1] == ["world"]
    assert set(w.closest("Wordl")[:2]) == {"word", "world"}
    assert w.closest("zzzz") == []


def shared_corpora():
    root = os.environ.get("LM_DATA_DIR")
    if not root or not os.path.isdir(root):
        return []
    return sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files
                  if f.endswith((".txt", ".tsv")))


@pytest.mark.skipif(not shared_corpora(), reason="LM_DATA_DIR is not set (the shared corpora)")
@pytest.mark.parametrize("path", shared_corpora(), ids=os.path.basename)
def test_words_are_lossless_on_every_shared_corpus(path):
    """Whole text and the streaming reader, every word tokeniser: the text comes back."""
    from lm.text.files import read_text
    from lm.text.stream import load_corpus

    text = read_text(path)
    counts = {}
    for tokenizer in ("split", "words", "runs", "lines"):
        toks = tokenize(text, "word", tokenizer=tokenizer)
        assert "".join(toks) == text
        counts[tokenizer] = len(toks)
        corpus = load_corpus(path, "word", tokenizer=tokenizer, chunk_bytes=1 << 16)
        # every token is known (min_count 1) but the text's own "<unk>" marker, which is
        # lm's <unk> (Penn Treebank's " <unk>" comes back without its space)
        known = "".join(UNK if t.lstrip(" ") == UNK else t for t in toks)
        assert corpus.vocab.decode_text(corpus.ids) == known
    # about a token per word: punctuation and line breaks add some, spaces none
    assert counts["words"] < 1.6 * len(text.split()) + text.count("\n")
    assert counts["words"] <= counts["runs"]
    # "split": exactly str.split()'s words, plus line breaks and extra whitespace
    words = [t for t in tokenize(text, "word", tokenizer="split") if not t.isspace()]
    assert [w.lstrip(" ") for w in words] == text.split()
    # "lines": the same words; whitespace tokens only where a line breaks or has 2+ spaces
    words = [t for t in tokenize(text, "word", tokenizer="lines") if not t.isspace()]
    assert [w.lstrip(" ") for w in words] == text.split()
    assert counts["lines"] <= counts["split"]
