"""Reading text files safely: decoding, BOM and newline handling, refusing binary input.

Every text file `lm` reads (corpora, labelled data, prompts) comes through here, so a
bad file fails in one place with one clear, one-line `ValueError`:

- a UTF-8 byte order mark is dropped; CRLF and lone CR become LF, so a file saved on
  Windows gives exactly the same tokens as the same file saved on Linux;
- UTF-16/UTF-32 files (byte order mark, or NUL bytes in every other position) are named
  as such and decoded when `encoding="utf-16"` is passed;
- a file with more than a few NUL or control bytes is refused as binary;
- invalid UTF-8 fails with the byte offset of the first bad byte, or becomes U+FFFD
  with `errors="replace"` (the CLIs' `--encoding_errors replace`).

`iter_text` yields the decoded text in chunks, so a 200 MB single-line file never has to
be in memory as one string.
"""
import codecs
import os
import stat

from lm.config.checks import check_encoding as _check_codec

CHUNK_BYTES = 1 << 20  # bytes read per chunk by iter_text
SNIFF_BYTES = 1 << 16  # bytes inspected to recognise UTF-16 and binary files
BINARY_FRACTION = 0.05  # share of NUL/control bytes above which a file is binary
NUL_FRACTION = 0.01  # share of NUL bytes above which a file is binary
ERRORS = ("strict", "replace", "ignore", "backslashreplace")
_UTF8 = {"utf-8", "utf-8-sig", "ascii"}  # codecs.lookup() names of the 8-bit UTF-8 family
# NUL and control bytes that do not occur in real text (tab, LF, CR, FF, VT, ESC do)
_BINARY_BYTES = bytes(b for b in range(32) if b not in b"\t\n\r\f\v\x1b") + b"\x7f"


def check_encoding(encoding, errors="strict"):
    """Validate `encoding` and `errors`; return the codec's canonical name."""
    name = _check_codec("encoding", encoding)
    if errors not in ERRORS:
        raise ValueError(f"--encoding_errors must be one of {', '.join(ERRORS)}, "
                         f"not {errors!r}")
    return name


_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def check_mode(path, mode):
    """ValueError unless `mode` (st_mode) is a regular file's: /dev/zero, a FIFO or a
    socket never end or block, so they are refused before anything reads them."""
    if stat.S_ISDIR(mode):
        raise ValueError(f"{path} is a directory, not a text file")
    if not stat.S_ISREG(mode):
        kind = next((k for test, k in _KINDS if test(mode)), "not a file")
        raise ValueError(f"{path} is not a regular file ({kind}); give a text file")


def check_file(path):
    """Raise FileNotFoundError / ValueError unless `path` is a readable, non-empty regular
    file (never opened here, so a FIFO cannot block). Returns the size in bytes."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    check_mode(path, st.st_mode)
    if not os.access(path, os.R_OK):
        raise ValueError(f"{path}: permission denied")
    if st.st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes)")
    return st.st_size


def open_regular(path):
    """`path` opened for reading in binary, refused (ValueError) unless it is a regular
    file: opened without blocking, then checked on the open descriptor, so a file swapped
    for a FIFO after check_file cannot hang the reader."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        check_mode(path, os.fstat(fd).st_mode)
    except ValueError:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def sniff(sample, path, encoding_name):
    """Refuse UTF-16/UTF-32 (unless asked for) and binary data, from the file's first bytes.

    sample: bytes, the first SNIFF_BYTES of the file.
    """
    if encoding_name.startswith(("utf-16", "utf-32")):
        return  # NUL bytes are expected there
    if encoding_name in _UTF8:
        if sample.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
            raise ValueError(f"{path} is UTF-32 text (byte order mark); "
                             "pass --encoding utf-32")
        if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            raise ValueError(f"{path} is UTF-16 text (byte order mark); "
                             "pass --encoding utf-16")
        half = len(sample) // 2
        if half >= 2:
            nul_even = sample[0:2 * half:2].count(0) / half
            nul_odd = sample[1:2 * half:2].count(0) / half
            if max(nul_even, nul_odd) > 0.5 and min(nul_even, nul_odd) < 0.05:
                order = "little" if nul_odd > nul_even else "big"
                raise ValueError(f"{path} looks like UTF-16 text ({order}-endian, no byte "
                                 f"order mark); pass --encoding utf-16-{order[0]}e")
    # Text in any 8-bit encoding has no NUL and next to no other control bytes; compressed
    # or random data has about 10% of them. Undecodable bytes are no evidence (cp1251).
    nul = sample.count(0)
    ctrl = len(sample) - len(sample.translate(None, _BINARY_BYTES))
    if sample and (nul > NUL_FRACTION * len(sample) or ctrl > BINARY_FRACTION * len(sample)):
        raise ValueError(f"{path} looks like a binary file, not text "
                         f"({100 * ctrl / len(sample):.0f}% of its first {len(sample):,} "
                         f"bytes are NUL or control bytes)")


def iter_text(path, encoding="utf-8", errors="strict", chunk_bytes=CHUNK_BYTES):
    """Yield the decoded text of `path` in chunks (str), BOM dropped, newlines made LF.

    The chunks joined are the whole normalised text. A chunk never ends inside a
    multi-byte character nor between the CR and LF of a CRLF pair; it may end inside a
    word (tokenisers that care must carry the tail over, see lm.text.stream).
    Raises FileNotFoundError / ValueError with a one-line message for bad files.
    """
    path = os.fspath(path)
    name = check_encoding(encoding, errors)
    check_file(path)
    decoder = codecs.getincrementaldecoder(name)(errors=errors)
    consumed = 0  # bytes handed to the decoder so far
    first, pending_cr = True, ""
    with open_regular(path) as f:
        sniff(f.read(SNIFF_BYTES), path, name)
        f.seek(0)
        while True:
            data = f.read(chunk_bytes)
            final = not data
            try:
                buffered = len(decoder.getstate()[0])
                text = decoder.decode(data, final=final)
            except UnicodeDecodeError as e:
                offset = consumed - buffered + e.start
                bad = e.object[e.start:e.start + 1].hex()
                raise ValueError(
                    f"{path} is not valid {encoding} text: byte 0x{bad} at offset {offset:,}; "
                    "pass --encoding (e.g. latin-1, cp1252) or --encoding_errors replace"
                ) from None
            consumed += len(data)
            if first and text:
                text = text[1:] if text[0] == "\ufeff" else text
                first = False
            text = pending_cr + text
            pending_cr = ""
            if text.endswith("\r") and not final:
                text, pending_cr = text[:-1], "\r"  # its LF may start the next chunk
            if "\r" in text:
                text = text.replace("\r\n", "\n").replace("\r", "\n")
            if text:
                yield text
            if final:
                return


def read_text(path, encoding="utf-8", errors="strict"):
    """Return the whole normalised text of `path` (see the module docstring).

    Raises FileNotFoundError for a missing file and ValueError (one line, naming the
    file) for a directory, an empty file, UTF-16/UTF-32 without `encoding`, binary data
    or undecodable bytes (with their offset).
    """
    return "".join(iter_text(path, encoding, errors))
