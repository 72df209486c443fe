"""Reading text safely: BOM, newlines, UTF-16, binary, invalid UTF-8, bad paths."""
import codecs
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lm.text.files import check_encoding, iter_text, read_text


def write(tmp_path, data, name="t.txt"):
    p = tmp_path / name
    p.write_bytes(data)
    return str(p)


def test_bom_dropped_and_newlines_normalised(tmp_path):
    p = write(tmp_path, codecs.BOM_UTF8 + "héllo\r\nwörld\rend\r\n".encode())
    assert read_text(p) == "héllo\nwörld\nend\n"


def test_crlf_and_lf_files_read_the_same(tmp_path):
    text = "one\ntwo\n\nthree ünïcode\n"
    lf = write(tmp_path, text.encode(), "lf.txt")
    crlf = write(tmp_path, text.replace("\n", "\r\n").encode(), "crlf.txt")
    assert read_text(lf) == read_text(crlf) == text


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7])
def test_chunks_never_split_crlf_or_characters(tmp_path, chunk):
    text = "a\r\nb\r\n€\r\r\n😀\r"
    p = write(tmp_path, codecs.BOM_UTF8 + text.encode())
    chunks = list(iter_text(p, chunk_bytes=chunk))
    assert "".join(chunks) == "a\nb\n€\n\n😀\n"
    assert all("\r" not in c for c in chunks)


def test_utf16_with_bom_is_named_or_decoded(tmp_path):
    p = write(tmp_path, "héllo\r\nwörld\n".encode("utf-16"))
    with pytest.raises(ValueError, match="UTF-16.*--encoding utf-16"):
        read_text(p)
    assert read_text(p, encoding="utf-16") == "héllo\nwörld\n"


@pytest.mark.parametrize("codec,order", [("utf-16-le", "little"), ("utf-16-be", "big")])
def test_utf16_without_bom_recognised_by_nul_pattern(tmp_path, codec, order):
    p = write(tmp_path, ("some plain text\n" * 20).encode(codec))
    with pytest.raises(ValueError, match=f"UTF-16.*{order}-endian.*{codec}"):
        read_text(p)
    assert read_text(p, encoding=codec) == "some plain text\n" * 20


def test_utf32_bom_named(tmp_path):
    p = write(tmp_path, "text\n".encode("utf-32"))
    with pytest.raises(ValueError, match="UTF-32"):
        read_text(p)


@pytest.mark.parametrize("data", [b"\0" * 4096, b"\0\1\2\3\x04" * 1000,
                                  bytes(range(256)) * 40])
def test_binary_refused(tmp_path, data):
    p = write(tmp_path, data)
    with pytest.raises(ValueError, match="binary file"):
        read_text(p)


def test_invalid_utf8_names_byte_offset(tmp_path):
    p = write(tmp_path, b"abc\xc3\xa9def\xffxyz")
    with pytest.raises(ValueError) as e:
        read_text(p)
    msg = str(e.value)
    assert "offset 8" in msg and "0xff" in msg and "--encoding" in msg
    assert "--encoding_errors replace" in msg and "\n" not in msg


@pytest.mark.parametrize("chunk", [1, 2, 3, 4, 9, 100])
def test_invalid_utf8_offset_independent_of_chunking(tmp_path, chunk):
    # an é cut by a chunk boundary, then a truncated sequence at offset 5
    p = write(tmp_path, b"ab\xc3\xa9c\xe2\x82zz")
    with pytest.raises(ValueError, match="offset 5[;,]"):
        "".join(iter_text(p, chunk_bytes=chunk))


def test_offset_counts_bom_and_uses_thousands(tmp_path):
    p = write(tmp_path, codecs.BOM_UTF8 + b"x" * 5000 + b"\xfe")
    with pytest.raises(ValueError, match="offset 5,003"):
        read_text(p)


def test_errors_replace_gives_replacement_character(tmp_path):
    p = write(tmp_path, b"abc\xffdef")
    assert read_text(p, errors="replace") == "abc\ufffddef"


def test_other_encoding_decodes(tmp_path):
    p = write(tmp_path, "café naïve\r\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin-1"):
        read_text(p)
    assert read_text(p, encoding="latin-1") == "café naïve\n"


def test_bad_encoding_flags():
    with pytest.raises(ValueError, match="--encoding: unknown"):
        check_encoding("no-such-codec")
    with pytest.raises(ValueError, match="--encoding_errors"):
        check_encoding("utf-8", "surrogateescape")


def test_missing_directory_empty(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_text(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="is a directory"):
        read_text(str(tmp_path))
    with pytest.raises(ValueError, match=r"is empty \(0 bytes\)"):
        read_text(write(tmp_path, b""))
    assert time.perf_counter() - t0 < 1.0


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path):
    p = write(tmp_path, b"text")
    os.chmod(p, 0)
    with pytest.raises(ValueError, match="permission denied"):
        read_text(p)


def test_only_bom_is_empty_text(tmp_path):
    assert read_text(write(tmp_path, codecs.BOM_UTF8)) == ""


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(blacklist_categories=("Cs",))), bom=st.booleans(),
       crlf=st.booleans(), chunk=st.integers(1, 9))
def test_roundtrip_arbitrary_text(tmp_path, text, bom, crlf, chunk):
    text = text.lstrip("\ufeff").replace("\r", "")  # a second BOM would be dropped too
    data = text.replace("\n", "\r\n" if crlf else "\n").encode("utf-8")
    p = write(tmp_path, (codecs.BOM_UTF8 if bom else b"") + data)
    try:
        got = "".join(iter_text(p, chunk_bytes=chunk))
    except ValueError as e:  # empty, or so many control characters that it is binary
        assert "binary" in str(e) or "empty" in str(e)
        return
    assert got == text


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300), chunk=st.integers(1, 64),
       errors=st.sampled_from(["strict", "replace"]))
def test_arbitrary_bytes_give_text_or_clean_error(tmp_path, data, chunk, errors):
    p = write(tmp_path, data)
    try:
        got = "".join(iter_text(p, errors=errors, chunk_bytes=chunk))
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert "\r" not in got and not got.startswith("\ufeff")
    assert got == read_text(p, errors=errors)  # chunking changes nothing
    ref = data.decode("utf-8", errors=errors)
    ref = ref[1:] if ref.startswith("\ufeff") else ref
    assert got == ref.replace("\r\n", "\n").replace("\r", "\n")
