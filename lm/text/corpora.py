"""Named corpora: resolve a CORPUS argument to a file, fetching and verifying if needed.

A CORPUS argument is, in this order:
1. nothing: the default corpus `pydoc`, the English documentation text CPython ships in
   `pydoc_data.topics` (on every machine, no download), written once to the cache;
2. an existing path: used as is;
3. a registered name (corpora/registry.json: `tinyshakespeare`, `names`, `pydoc`):
   looked up as `$LM_DATA_DIR/<file>`, then `<cache>/<file>`, else downloaded from its
   canonical URL into the cache; a file found or fetched must match the recorded sha256.
The cache is `$LM_CACHE_DIR`, else `$XDG_CACHE_HOME/lm`, else `~/.cache/lm`.
Offline, the error says where to put the file.
"""
import difflib
import hashlib
import json
import os
import sys
import tempfile
import urllib.error
import urllib.request

REGISTRY_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                             "corpora", "registry.json")
DEFAULT_CORPUS = "pydoc"
FETCH_TIMEOUT = 30  # seconds


def load_registry(path=REGISTRY_PATH):
    """The registry: {name: {"filename", "url", "sha256", "bytes", ...}}."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"corpus registry {path} not found (install lm with "
                                "`pip install -e .` from its repository)") from None


def cache_dir():
    """Where downloaded and generated corpora are kept."""
    if os.environ.get("LM_CACHE_DIR"):
        return os.environ["LM_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "lm")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pydoc_text():
    """The default corpus: pydoc_data.topics.topics values joined in sorted key order."""
    from pydoc_data.topics import topics
    return "\n".join(topics[k] for k in sorted(topics))


def _write_atomic(path, data):
    """Write bytes to `path` through a temporary file in the same directory."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _holds_exactly(path, data):
    """True if `path` is a regular file (not a link) whose bytes are `data`."""
    if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) != len(data):
        return False
    with open(path, "rb") as f:
        return f.read(len(data) + 1) == data


def _pydoc_file():
    """Write the pydoc text once (per Python version) and return its path."""
    name = f"pydoc-{sys.version_info[0]}.{sys.version_info[1]}.txt"
    data = pydoc_text().encode("utf-8")
    # The shared temporary folder gets a per-user name, and a file found there or in the
    # cache is used only when its bytes are exactly the text: anyone could have put one.
    uid = os.getuid() if hasattr(os, "getuid") else 0
    for d, fname in ((cache_dir(), name), (tempfile.gettempdir(), f"lm-{uid}-{name}")):
        path = os.path.join(d, fname)
        try:
            if not _holds_exactly(path, data):
                _write_atomic(path, data)
            return path
        except OSError:
            continue
    raise ValueError(f"cannot write the default corpus to {cache_dir()} nor to "
                     f"{tempfile.gettempdir()}; pass a CORPUS file")


def _verify(path, entry, name):
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ValueError(f"{path} does not match the registered {name} corpus (sha256 "
                         f"{digest[:12]}..., expected {entry['sha256'][:12]}...); delete it "
                         "to download it again, or pass the file's path instead of the name")
    return path


def fetch(url, dest, sha256, max_bytes=None, timeout=FETCH_TIMEOUT):
    """Download `url` to `dest` atomically if its sha256 matches; return dest."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        data = r.read() if max_bytes is None else r.read(max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError(f"{url} is larger than the {max_bytes:,} bytes registered")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ValueError(f"{url} did not match its recorded sha256 (got {digest[:12]}..., "
                         f"expected {sha256[:12]}...); not saved")
    _write_atomic(dest, data)
    return dest


def _registered(name, entry):
    if entry.get("builtin"):
        return _pydoc_file()
    fname = entry["filename"]
    data_dir = os.environ.get("LM_DATA_DIR")
    places = ([os.path.join(data_dir, fname)] if data_dir else []) + \
        [os.path.join(cache_dir(), fname)]
    for path in places:
        if os.path.isfile(path):
            return _verify(path, entry, name)
    dest = places[-1]
    try:
        return fetch(entry["url"], dest, entry["sha256"], entry.get("bytes"))
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", None) or e
        where = f"$LM_DATA_DIR ({data_dir}) or {dest}" if data_dir else \
            f"{dest} (or set LM_DATA_DIR to a directory holding {fname})"
        raise ValueError(f"cannot download the {name} corpus from {entry['url']} "
                         f"({reason}); download it yourself and put it at {where}") from None


def resolve_corpus(corpus=None, registry=None):
    """CORPUS argument -> (path, name). See the module docstring for the order.

    Raises FileNotFoundError for an unknown name or path, ValueError for a download or
    checksum failure.
    """
    registry = load_registry() if registry is None else registry
    if corpus is None or corpus == "":
        corpus = DEFAULT_CORPUS
    corpus = os.fspath(corpus) if hasattr(corpus, "__fspath__") else str(corpus)
    if os.path.exists(corpus):
        return corpus, os.path.splitext(os.path.basename(os.path.normpath(corpus)))[0]
    if corpus in registry:
        return _registered(corpus, registry[corpus]), corpus
    close = difflib.get_close_matches(corpus, list(registry), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise FileNotFoundError(f"{corpus}: no such file, and not a registered corpus "
                            f"({', '.join(sorted(registry))}){hint}")


def corpus_info(name, registry=None):
    """The registry entry of a name (e.g. `line_mode` hint), or {} for a plain path."""
    registry = load_registry() if registry is None else registry
    return dict(registry.get(name, {}))
