"""Named corpora: default pydoc text, LM_DATA_DIR / cache lookup, checked fetch, offline error."""
import hashlib
import os
import urllib.error
import urllib.request

import pytest

from lm.text import corpora
from lm.text.corpora import load_registry, pydoc_text, resolve_corpus, sha256_file
from lm.text.stream import load_corpus

DATA = os.environ.get("LM_DATA_DIR")
URLOPEN = urllib.request.urlopen  # the real one, for file:// URLs only


@pytest.fixture
def env(tmp_path, monkeypatch):
    """No LM_DATA_DIR, an empty cache in tmp_path, and no real network."""
    monkeypatch.delenv("LM_DATA_DIR", raising=False)
    monkeypatch.setenv("LM_CACHE_DIR", str(tmp_path / "cache"))

    def no_network(url, *a, **k):
        raise AssertionError(f"test tried the network: {url}")
    monkeypatch.setattr(corpora.urllib.request, "urlopen", no_network)
    return tmp_path


def _registry(tmp_path, content=b"to be or not to be\n"):
    """A registry with one corpus whose 'canonical URL' is a local file:// URL."""
    src = tmp_path / "source.txt"
    src.write_bytes(content)
    return {"tiny": {"filename": "tiny.txt", "url": src.as_uri(), "bytes": len(content),
                     "sha256": hashlib.sha256(content).hexdigest()}}


def test_registry_matches_shared_data():
    reg = load_registry()
    assert {"pydoc", "tinyshakespeare", "names"} <= set(reg)
    assert reg["tinyshakespeare"]["url"].startswith(
        "https://raw.githubusercontent.com/karpathy/char-rnn/")
    assert reg["names"]["url"].endswith("karpathy/makemore/master/names.txt")
    if not DATA:
        pytest.skip("LM_DATA_DIR not set: cannot check the recorded sha256 sums")
    for name in ("tinyshakespeare", "names"):
        path = os.path.join(DATA, reg[name]["filename"])
        assert sha256_file(path) == reg[name]["sha256"]
        assert os.path.getsize(path) == reg[name]["bytes"]


def test_default_corpus_is_pydoc_without_download(env):
    path, name = resolve_corpus()
    assert name == "pydoc" and path.startswith(str(env / "cache"))
    with open(path, encoding="utf-8") as f:
        assert f.read() == pydoc_text()
    assert len(pydoc_text()) > 100_000
    assert resolve_corpus("pydoc") == (path, "pydoc")  # written once, found again
    c = load_corpus(path)
    assert len(c.vocab) > 60 and len(c.ids) == len(pydoc_text())


def test_a_planted_default_corpus_of_the_same_size_is_replaced(env):
    path, _ = resolve_corpus()
    data = open(path, "rb").read()
    with open(path, "wb") as f:                 # same size, other bytes
        f.write(b"x" * len(data))
    assert resolve_corpus() == (path, "pydoc")
    with open(path, "rb") as f:
        assert f.read() == data
    os.unlink(path)
    os.symlink(os.devnull, path)                # a link is never used as the corpus
    path2, _ = resolve_corpus()
    assert path2 == path and not os.path.islink(path)


def test_existing_path_wins(env, tmp_path):
    p = tmp_path / "names"  # a file that shadows a registered name
    p.write_text("x y\n")
    assert resolve_corpus(str(p)) == (str(p), "names")
    assert resolve_corpus(p) == (str(p), "names")


def test_unknown_name_suggests(env):
    with pytest.raises(FileNotFoundError, match="not a registered corpus.*did you mean "
                                                "'tinyshakespeare'"):
        resolve_corpus("tinyshakespear")


def test_data_dir_then_cache(env, tmp_path, monkeypatch):
    reg = _registry(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "tiny.txt").write_bytes(b"to be or not to be\n")
    monkeypatch.setenv("LM_DATA_DIR", str(data))
    assert resolve_corpus("tiny", reg) == (str(data / "tiny.txt"), "tiny")
    monkeypatch.delenv("LM_DATA_DIR")
    cached = env / "cache" / "tiny.txt"
    cached.parent.mkdir()
    cached.write_bytes(b"to be or not to be\n")
    assert resolve_corpus("tiny", reg) == (str(cached), "tiny")


def test_checksum_mismatch_refused(env, tmp_path, monkeypatch):
    reg = _registry(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (data / "tiny.txt").write_bytes(b"something else\n")
    monkeypatch.setenv("LM_DATA_DIR", str(data))
    with pytest.raises(ValueError, match="does not match the registered tiny corpus"):
        resolve_corpus("tiny", reg)


def test_fetch_verifies_and_caches(env, tmp_path, monkeypatch):
    monkeypatch.setattr(corpora.urllib.request, "urlopen", URLOPEN)
    reg = _registry(tmp_path)
    path, name = resolve_corpus("tiny", reg)
    assert path == str(env / "cache" / "tiny.txt") and name == "tiny"
    assert open(path, "rb").read() == b"to be or not to be\n"
    # a corrupted download is not saved
    reg["tiny"]["sha256"] = "0" * 64
    os.remove(path)
    with pytest.raises(ValueError, match="did not match its recorded sha256"):
        resolve_corpus("tiny", reg)
    assert not os.path.exists(path) and not os.listdir(env / "cache")


def test_offline_error_says_where_to_put_the_file(env, tmp_path, monkeypatch):
    def offline(url, *a, **k):
        raise urllib.error.URLError("no network")
    monkeypatch.setattr(corpora.urllib.request, "urlopen", offline)
    with pytest.raises(ValueError) as e:
        resolve_corpus("tinyshakespeare")
    msg = str(e.value)
    assert "cannot download the tinyshakespeare corpus" in msg and "no network" in msg
    assert str(env / "cache" / "tinyshakespeare.txt") in msg and "LM_DATA_DIR" in msg
    assert "\n" not in msg


def test_named_corpora_from_data_dir(monkeypatch):
    if not DATA:
        pytest.skip("LM_DATA_DIR not set: the shared corpora are not available")
    monkeypatch.setenv("LM_DATA_DIR", DATA)
    path, name = resolve_corpus("tinyshakespeare")
    c = load_corpus(path)
    assert len(c.ids) == 1_115_394 and len(c.vocab) == 66  # 65 characters + <unk>
    path, _ = resolve_corpus("names")
    n = load_corpus(path, line_mode=True)
    assert n.num_lines == 32_033 and corpora.corpus_info("names")["line_mode"] is True
