"""Pairs for seq2seq: the addition generator (distribution, swapped twins, padding), the
held-out split (no leakage), question formatting, pairs files (errors with file:line),
length-bucketed batches."""
import numpy as np
import pytest

from lm.data.pairs import (PairBatcher, addition_pairs, addition_size, build_vocab,
                           draw_numbers, encode_pairs, format_question, split_pairs)
from lm.text.pairs import MAX_SIDE_CHARS, read_pairs


def test_addition_questions_are_right_padded_and_distinct():
    pairs = addition_pairs(3000, 3, seed=1)
    assert len(pairs) == 3000
    keys = set()
    for q, a in pairs:
        assert len(q) == 7 and len(a) == 4
        assert q == q.rstrip().ljust(7) and a == a.lstrip().rjust(4)
        x, y = map(int, q.split("+"))
        assert int(a) == x + y
        assert 0 <= x < 1000 and 0 <= y < 1000
        keys.add(tuple(sorted((x, y))))
    assert len(keys) == 3000            # a question and its swapped twin count once
    assert addition_pairs(3000, 3, seed=1) == pairs
    assert addition_pairs(3000, 3, seed=2) != pairs


def test_numbers_are_drawn_digit_count_first():
    nums = draw_numbers(np.random.default_rng(0), 3, 60000)
    # k uniform in 1..3, then k uniform digits: below 10 with probability
    # 1/3 + 1/3 * 1/10 + 1/3 * 1/100, below 100 with 1/3 + 1/3 + 1/3 * 1/10
    assert np.mean(nums < 10) == pytest.approx(0.37, abs=0.01)
    assert np.mean(nums < 100) == pytest.approx(0.70, abs=0.01)
    assert nums.min() >= 0 and nums.max() < 1000


def test_addition_refuses_more_questions_than_exist():
    assert addition_size(1) == 55
    assert len(addition_pairs(55, 1, seed=0)) == 55
    with pytest.raises(ValueError, match="only 55 distinct"):
        addition_pairs(56, 1)


def test_split_holds_out_whole_sources_and_twins():
    pairs = addition_pairs(2000, 2, seed=3)
    sources = [q for q, _ in pairs]
    tr, va = split_pairs(sources, 0.1, seed=0)
    assert len(va) == 200 and len(tr) == 1800 and not set(tr) & set(va)
    train_keys = {tuple(sorted(map(int, sources[i].split("+")))) for i in tr}
    for i in va:
        assert tuple(sorted(map(int, sources[i].split("+")))) not in train_keys
    assert [a.tolist() for a in split_pairs(sources, 0.1, 0)] == [tr.tolist(), va.tolist()]
    # a pairs file may repeat a source: all its pairs fall on one side
    dup = ["a", "b", "a", "c", "a", "b", "d", "e", "f", "g"]
    tr, va = split_pairs(dup, 0.3, seed=1)
    held = {dup[i] for i in va}
    assert not held & {dup[i] for i in tr} and len(held) == 2


def test_format_question():
    assert format_question("231+432", 3) == "231+432"
    assert format_question(" 5 + 7", 3) == "5+7    "
    assert format_question("007+1", 3) == "7+1    "
    for bad in ("231-432", "abc", "1+2+3", ""):
        with pytest.raises(ValueError, match="not an addition question"):
            format_question(bad, 3)
    with pytest.raises(ValueError, match="at most 3 digits"):
        format_question("1000+1", 3)


def test_vocab_ids_and_batches():
    pairs = [("abc", "x"), ("ab", "xyz"), ("a", "yy"), ("abcd", "z")]
    vocab = build_vocab(pairs)
    assert vocab.itos[:3] == ["<unk>", "<bos>", "<eos>"]
    data = encode_pairs(pairs, vocab)
    assert all(t[-1] == vocab.eos_id for t in data.tgt_ids)
    b = PairBatcher(data, 2, np.random.default_rng(0))
    seen = []
    for k in range(len(b)):
        batch = b.batch(k)
        for r, i in enumerate(b.last_indices):
            S, T = len(data.src_ids[i]), len(data.tgt_ids[i])
            assert batch.mask[r].sum() == S and batch.target_mask[r].sum() == T
            assert batch.inputs[r, :S].tolist() == data.src_ids[i].tolist()
            assert batch.targets[r, :T].tolist() == data.tgt_ids[i].tolist()
            seen.append(int(i))
        assert batch.num_targets() == int(batch.target_mask.sum())
    assert sorted(seen) == [0, 1, 2, 3]
    # sorted by length within a pool: the two short and the two long sources pair up
    assert sorted(sorted(len(pairs[i][0]) for i in b._batches[k]) for k in range(2)) == \
        [[1, 2], [3, 4]]


def _write(tmp_path, text, name="p.tsv"):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8"))
    return str(p)


def test_pairs_file_reads_and_keeps_spaces(tmp_path):
    path = _write(tmp_path, "2024-01-05\t5 Jan 2024\r\n\n  x \t y\n")
    assert read_pairs(path) == [("2024-01-05", "5 Jan 2024"), ("  x ", " y")]


@pytest.mark.parametrize("text,match", [
    ("a\tb\nno tab here\n", ":2: no TAB"),
    ("a\tb\tc\n", ":1: 2 TABs"),
    ("a\tb\n\t b\n", ":2: empty source"),
    ("a\t  \n", ":1: empty target"),
    ("\n\n  \n", "has no pairs"),
    ("a\t" + "b" * (MAX_SIDE_CHARS + 1) + "\n", ":1: the target has 1,001 characters"),
])
def test_pairs_file_errors_name_the_line(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        read_pairs(_write(tmp_path, text))


def test_pairs_file_refuses_binary_and_missing(tmp_path):
    p = tmp_path / "bin.tsv"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError):
        read_pairs(str(p))
    with pytest.raises(FileNotFoundError):
        read_pairs(str(tmp_path / "none.tsv"))
