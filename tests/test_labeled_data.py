"""Labelled text: label<TAB>text (plain and CSV-quoted), pos/neg pairs, clear errors."""
import os

import numpy as np
import pytest

from lm.text.labeled import read_labeled, read_pos_neg

DATA = os.environ.get("LM_DATA_DIR")


def write(tmp_path, text, name="d.tsv"):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8"))
    return str(p)


def test_plain_tsv_with_crlf_bom_and_blank_lines(tmp_path):
    p = write(tmp_path, "\ufeff1\tgood movie\r\n0\tnot good\r\n\r\n1\tvery  happy !\n")
    d = read_labeled(p)
    assert d.texts == ["good movie", "not good", "very  happy !"]
    assert d.labels.tolist() == [1, 0, 1] and d.labels.dtype == np.int64
    assert d.label_names == ["negative", "positive"] and d.num_classes == 2 and len(d) == 3


def test_named_labels_and_header(tmp_path):
    d = read_labeled(write(tmp_path, "pos\tyes\nneg\tno\nneutral\tmeh\n"))
    assert d.label_names == ["neg", "neutral", "pos"] and d.labels.tolist() == [2, 0, 1]
    h = read_labeled(write(tmp_path, "label\ttext\n1\ta\n0\tb\n"))
    assert h.texts == ["a", "b"] and h.labels.tolist() == [1, 0]
    m = read_labeled(write(tmp_path, "0\ta\n2\tb\n1\tc\n"))
    assert m.label_names == ["0", "1", "2"]


def test_csv_quoted_fields(tmp_path):
    text = ('1\t"He said ""great"" twice"\n0\t"a quoted\nfield over two lines"\n'
            '1\tplain text\n')
    d = read_labeled(write(tmp_path, text))
    assert d.texts == ['He said "great" twice', "a quoted\nfield over two lines",
                       "plain text"]
    assert d.labels.tolist() == [1, 0, 1]


@pytest.mark.parametrize("text,msg", [
    ("", r"is empty \(0 bytes\)"),
    ("\n\n  \n", "has no examples"),
    ("1\tgood\nthis line has no label\n0\tbad\n", r"d\.tsv:2: no label: expected 'label<TAB>text'"),
    ("1\tgood\n0\t   \n", r":2: label '0' has no text"),
    ("1\tgood\n\tbad\n", ":2: empty label"),
    ("1\tgood\n1\tfine\n", "every example has the label '1'.*at least two classes"),
    ('1\t"good"\nno label here\n', r":2: no label"),
    ("1\tok\n0\tbad\tworse\n", r":2: 3 TAB-separated fields"),
])
def test_errors_name_the_line(tmp_path, text, msg):
    with pytest.raises(ValueError, match=msg):
        read_labeled(write(tmp_path, text))


def test_one_class_allowed_for_evaluation_files(tmp_path):
    d = read_labeled(write(tmp_path, "1\tgood\n1\tfine\n"), min_classes=1)
    assert d.labels.tolist() == [1, 1] and d.label_names == ["negative", "positive"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_labeled(str(tmp_path / "none.tsv"))


def test_pos_neg_pair(tmp_path):
    pos = write(tmp_path, "great\nloved it\n\n", "pos.txt")
    neg = write(tmp_path, "awful\r\n", "neg.txt")
    d = read_pos_neg(pos, neg)
    assert d.texts == ["great", "loved it", "awful"] and d.labels.tolist() == [1, 1, 0]
    assert d.label_names == ["negative", "positive"]
    with pytest.raises(ValueError, match="has no sentences"):
        read_pos_neg(pos, write(tmp_path, "\n \n", "empty.txt"))


def test_shared_sentiment_sets():
    if not DATA:
        pytest.skip("LM_DATA_DIR not set: the sentiment sets are not available")
    d = read_labeled(os.path.join(DATA, "sentiment", "cs5242_corpus.tsv"))
    assert len(d) == 800 and np.bincount(d.labels).tolist() == [328, 472]
    assert any('"' in t for t in d.texts) and all(t == t.strip() for t in d.texts)
    tr = read_labeled(os.path.join(DATA, "sentiment", "phrases_train.tsv"))
    te = read_labeled(os.path.join(DATA, "sentiment", "phrases_test.tsv"))
    assert (len(tr), len(te)) == (58, 20) and "not good" in tr.texts
