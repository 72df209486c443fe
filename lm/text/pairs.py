"""`source<TAB>target` files: one pair a line, for sequence-to-sequence models.

Each non-blank line holds a source, one TAB and a target (date formats, transliteration,
spelling correction, ...). Both sides are kept exactly (spaces count: they are
characters the model reads and writes). The file is untrusted: it is read through
lm.text.files.read_text (encodings, binary refused), every line is checked and the first
bad one is named as `path:line`, and sizes are bounded (MAX_SIDE_CHARS per side,
MAX_FILE_BYTES in all) so that a stray file cannot exhaust memory.
"""
import os

from .files import check_file, read_text

MAX_SIDE_CHARS = 1000          # characters in a source or a target
MAX_FILE_BYTES = 256 << 20     # a pairs file above this is refused before it is read


def read_pairs(path, encoding="utf-8", errors="strict"):
    """[(source, target), ...] of a `source<TAB>target` file, in file order.

    ValueError (one line) for an empty or oversized file, or a line with no TAB, more
    than one TAB, an empty side or a side over MAX_SIDE_CHARS (naming `path:line`).
    """
    size = check_file(path)
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: {size:,} bytes; a pairs file may hold at most "
                         f"{MAX_FILE_BYTES:,}")
    pairs = []
    for number, line in enumerate(read_text(path, encoding, errors).split("\n"), 1):
        if not line.strip():
            continue
        where = f"{os.fspath(path)}:{number}"
        tabs = line.count("\t")
        if tabs != 1:
            what = "no TAB" if tabs == 0 else f"{tabs} TABs"
            raise ValueError(f"{where}: {what}: expected 'source<TAB>target', got {line[:40]!r}")
        source, target = line.split("\t")
        for name, side in (("source", source), ("target", target)):
            if not side.strip():
                raise ValueError(f"{where}: empty {name}")
            if len(side) > MAX_SIDE_CHARS:
                raise ValueError(f"{where}: the {name} has {len(side):,} characters; at most "
                                 f"{MAX_SIDE_CHARS:,} are allowed")
        pairs.append((source, target))
    if not pairs:
        raise ValueError(f"{path} has no pairs (expected 'source<TAB>target' lines)")
    return pairs
