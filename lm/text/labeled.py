"""Labelled text for classification: `label<TAB>text` files and positive/negative pairs.

Formats:
- `label<TAB>text`, one example a line; blank lines skipped; a first line whose label
  is not a number while all others are (`label<TAB>text`) is a header and skipped.
- The CSV-quoted variant (a text field starting with `"`, `""` for a quote inside, a
  quoted field may span lines) is read with Python's csv module, delimiter TAB. It is
  chosen automatically when any line has a quote right after its first TAB.
- `read_pos_neg(pos, neg)`: two files with one sentence a line.
Labels are integers (`0`/`1`) or names (`positive`, `neg`, ...). Integer labels keep
their value; 0/1 are named `negative`/`positive` (the convention of every sentiment set
here: 1 = positive); other names get ids in sorted order.
Files are read through lm.text.files.read_text (BOM, CRLF, encodings, binary refused).
"""
import csv
import io
import re
from dataclasses import dataclass, field

import numpy as np

from .files import read_text

_QUOTED = re.compile(r'^[^\t\n]*\t"', re.MULTILINE)
BINARY_NAMES = ["negative", "positive"]


@dataclass
class LabeledData:
    """texts: list of str; labels: (n,) int64 class ids; label_names[id] -> name."""
    texts: list
    labels: np.ndarray
    label_names: list = field(default_factory=list)

    def __len__(self):
        return len(self.texts)

    @property
    def num_classes(self):
        return len(self.label_names)


def _rows(text, path):
    """Yield (line_number, label, text) from a label<TAB>text document."""
    if _QUOTED.search(text):
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
        start = 1
        for row in reader:
            if row and any(f.strip() for f in row):
                if len(row) < 2:
                    raise ValueError(f"{path}:{start}: no label: expected 'label<TAB>text'")
                yield start, row[0], "\t".join(row[1:])
            start = reader.line_num + 1
        return
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{number}: no label: expected 'label<TAB>text', "
                             f"got {line[:40]!r}")
        label, body = line.split("\t", 1)
        yield number, label, body


def _is_int(s):
    return re.fullmatch(r"[+-]?\d+", s) is not None


def read_labeled(path, encoding="utf-8", errors="strict", min_classes=2):
    """Read a `label<TAB>text` file (plain or CSV-quoted) into LabeledData.

    ValueError (one line) for an empty file, a line without a label or text (naming its
    line number), or fewer than `min_classes` classes (evaluation files may pass 1).
    """
    rows = list(_rows(read_text(path, encoding, errors), path))
    if len(rows) > 1 and not _is_int(rows[0][1].strip()) and \
            all(_is_int(r[1].strip()) for r in rows[1:]):
        rows = rows[1:]  # a header line
    if not rows:
        raise ValueError(f"{path} has no examples (expected 'label<TAB>text' lines)")
    texts, raw = [], []
    for number, label, body in rows:
        label = label.strip()
        if not label:
            raise ValueError(f"{path}:{number}: empty label")
        if not body.strip():
            raise ValueError(f"{path}:{number}: label {label!r} has no text")
        texts.append(body.strip())
        raw.append(label)
    if all(_is_int(s) for s in raw):
        values = [int(s) for s in raw]
        if min(values) < 0:
            raise ValueError(f"{path}: integer labels must be >= 0, got {min(values)}")
        top = max(values)
        names = BINARY_NAMES if top <= 1 else [str(i) for i in range(top + 1)]
        labels = np.array(values, dtype=np.int64)
    else:
        names = sorted(set(raw))
        index = {n: i for i, n in enumerate(names)}
        labels = np.array([index[s] for s in raw], dtype=np.int64)
    present = sorted(set(raw))
    if len(present) < min_classes:
        raise ValueError(f"{path}: every example has the label {present[0]!r}; "
                         "a classifier needs at least two classes")
    return LabeledData(texts, labels, list(names))


def _sentences(path, encoding, errors):
    lines = [s.strip() for s in read_text(path, encoding, errors).split("\n")]
    lines = [s for s in lines if s]
    if not lines:
        raise ValueError(f"{path} has no sentences")
    return lines


def read_pos_neg(pos_path, neg_path, encoding="utf-8", errors="strict"):
    """Positive sentences (label 1) then negative ones (label 0), one per line each."""
    pos = _sentences(pos_path, encoding, errors)
    neg = _sentences(neg_path, encoding, errors)
    labels = np.array([1] * len(pos) + [0] * len(neg), dtype=np.int64)
    return LabeledData(pos + neg, labels, list(BINARY_NAMES))
