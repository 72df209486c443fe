"""Labelled text for classification: `label<TAB>text` files and positive/negative pairs.

Formats:
- `label<TAB>text`, one example a line; blank lines skipped; a first line whose label
  is not a number while all others are (`label<TAB>text`) is a header and skipped.
- The CSV-quoted variant (a text field starting with `"`, `""` for a quote inside, a
  quoted field may span lines) is read with Python's csv module, delimiter TAB. It is
  chosen automatically when any line has a quote right after its first TAB.
- `read_pos_neg(pos, neg)`: two files with one sentence a line.
Labels are the distinct label strings found, 2 to MAX_CLASSES of them, each at most
MAX_LABEL_CHARS printable characters: names (`positive`, `neg`, ...) sorted, or
integers sorted by value; 0/1 are named `negative`/`positive` (the convention of every
sentiment set here: 1 = positive). A line with a third TAB-separated field is refused.
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


MAX_CLASSES = 100       # distinct labels a file may hold (the model's num_classes limit)
MAX_LABEL_CHARS = 64    # a label is a short name or number, printed by predict


def _rows(text, path):
    """Yield (line_number, label, text) from a label<TAB>text document; a line with more
    than two fields (a TAB inside the text) is refused, naming it."""
    if _QUOTED.search(text):
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
        start = 1
        for row in reader:
            if row and any(f.strip() for f in row):
                if len(row) < 2:
                    raise ValueError(f"{path}:{start}: no label: expected 'label<TAB>text'")
                if len(row) > 2:
                    raise _three_fields(path, start, len(row), row[0])
                yield start, row[0], row[1]
            start = reader.line_num + 1
        return
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"{path}:{number}: no label: expected 'label<TAB>text', "
                             f"got {line[:40]!r}")
        label, body = line.split("\t", 1)
        if "\t" in body:
            raise _three_fields(path, number, line.count("\t") + 1, label)
        yield number, label, body


def _three_fields(path, number, n, label):
    return ValueError(f"{path}:{number}: {n} TAB-separated fields (label {_show(label)}); "
                      "expected 'label<TAB>text' (quote a text that holds a TAB)")


def _show(value):
    """A label for an error message: repr, cut to a readable length."""
    return repr(value) if len(value) <= 40 else repr(value[:40]) + "..."


def _is_int(s):
    return re.fullmatch(r"[+-]?\d+", s) is not None


def check_label(label, path, number):
    """`label` stripped, if it is a usable class name: 1 to MAX_LABEL_CHARS printable
    characters; ValueError naming the file, line and value otherwise."""
    label = label.strip()
    if not label:
        raise ValueError(f"{path}:{number}: empty label")
    if len(label) > MAX_LABEL_CHARS:
        raise ValueError(f"{path}:{number}: label {_show(label)} is longer than "
                         f"{MAX_LABEL_CHARS} characters (a label names a class)")
    if not label.isprintable():
        raise ValueError(f"{path}:{number}: label {_show(label)} holds control characters")
    return label


def class_names(found, path, min_classes=2):
    """The sorted class names of the distinct labels `found` ({label: first line}).

    Integer labels are compared as numbers ("01" and "1" are one class) and sorted by
    value; 0/1 are named negative/positive. ValueError naming the file, line and value
    when there are fewer than `min_classes` classes or more than MAX_CLASSES.
    Returns (names, {label: class id}).
    """
    if all(_is_int(s) for s in found):
        value = {s: int(s) for s in found}
        distinct = sorted(set(value.values()))
        if set(distinct) <= {0, 1}:
            names, index = list(BINARY_NAMES), {s: v for s, v in value.items()}
        else:
            names = [str(v) for v in distinct]
            pos = {v: i for i, v in enumerate(distinct)}
            index = {s: pos[v] for s, v in value.items()}
        present = len(distinct)
    else:
        names = sorted(found)
        index = {s: i for i, s in enumerate(names)}
        present = len(names)
    if present > MAX_CLASSES:
        line, label = sorted((n, s) for s, n in found.items())[MAX_CLASSES]
        raise ValueError(f"{path}:{line}: label {_show(label)} makes more than {MAX_CLASSES} "
                         f"classes ({present} distinct labels); a label names a class")
    if present < min_classes:
        label, line = min(found.items(), key=lambda kv: kv[1])
        raise ValueError(f"{path}:{line}: every example has the label {label!r}; "
                         "a classifier needs at least two classes")
    return names, index


def read_labeled(path, encoding="utf-8", errors="strict", min_classes=2):
    """Read a `label<TAB>text` file (plain or CSV-quoted) into LabeledData.

    Labels are the distinct label strings found (check_label, class_names). ValueError
    (one line naming the file and line) for an empty file, a line without a label or text
    or with a third field, a bad label, or fewer than `min_classes` (evaluation files may
    pass 1) or more than MAX_CLASSES classes.
    """
    rows = list(_rows(read_text(path, encoding, errors), path))
    if len(rows) > 1 and not _is_int(rows[0][1].strip()) and \
            all(_is_int(r[1].strip()) for r in rows[1:]):
        rows = rows[1:]  # a header line
    if not rows:
        raise ValueError(f"{path} has no examples (expected 'label<TAB>text' lines)")
    texts, raw, found = [], [], {}
    for number, label, body in rows:
        label = check_label(label, path, number)
        if not body.strip():
            raise ValueError(f"{path}:{number}: label {label!r} has no text")
        texts.append(body.strip())
        raw.append(label)
        found.setdefault(label, number)
    names, index = class_names(found, path, min_classes)
    labels = np.array([index[s] for s in raw], dtype=np.int64)
    return LabeledData(texts, labels, names)


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
