"""Strict, bounded reading of JSON metadata (config.json, vocab.json, metrics.jsonl).

Refused, each with a CheckpointError naming the file: more than `max_bytes`, invalid
UTF-8, duplicate keys, NaN/Infinity literals, numbers that overflow a float, integers
beyond +-2**64, nesting deeper than `max_depth`, lone surrogates in strings, and (for
read_json) a top level that is not an object. A missing file raises FileNotFoundError.
"""
import json
import os

from lm.storage.safe_zip import CheckpointError, open_regular_file

MAX_JSON_BYTES = 64 << 20  # vocab.json of a big word vocabulary stays far below this
MAX_DEPTH = 32
MAX_INT = 2**64


class _Reject(Exception):
    """Raised inside json hooks; turned into CheckpointError by parse_json."""


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise _Reject(f"duplicate key {k[:80]!r}")
        d[k] = v
    return d


def _no_constant(name):
    raise _Reject(f"{name} is not allowed in JSON")


def _parse_int(text):
    if len(text) > 21:  # digits of 2**64 plus a sign
        raise _Reject(f"integer {text[:20]}... is too large")
    v = int(text)
    if abs(v) > MAX_INT:
        raise _Reject(f"integer {text} is too large")
    return v


def _parse_float(text):
    v = float(text)
    if v in (float("inf"), float("-inf")):
        raise _Reject(f"number {text[:40]} overflows a float")
    return v


def _check_tree(obj, max_depth):
    """Depth and strings of a parsed value, without recursion."""
    stack = [(obj, 1)]
    while stack:
        x, depth = stack.pop()
        if isinstance(x, (dict, list)):
            if depth > max_depth:
                raise _Reject(f"nesting deeper than {max_depth}")
            items = x.items() if isinstance(x, dict) else enumerate(x)
            for k, v in items:
                if isinstance(k, str):
                    stack.append((k, depth))
                stack.append((v, depth + 1))
        elif isinstance(x, str):
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                raise _Reject("string holds a lone surrogate escape") from None


def parse_json(data, label="<json>", max_depth=MAX_DEPTH, require_object=True):
    """Parse `data` (bytes or str) strictly; see the module docstring for what is refused."""
    if isinstance(data, (bytes, bytearray)):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError as e:
            raise CheckpointError(label, f"not UTF-8 (byte offset {e.start})") from None
    if data.startswith("\ufeff"):
        data = data[1:]
    try:
        obj = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant,
                         parse_int=_parse_int, parse_float=_parse_float)
        _check_tree(obj, max_depth)
    except _Reject as e:
        raise CheckpointError(label, str(e)) from None
    except json.JSONDecodeError as e:
        raise CheckpointError(label, f"invalid JSON: {e.msg} at line {e.lineno} "
                              f"column {e.colno}") from None
    except RecursionError:
        raise CheckpointError(label, f"nesting deeper than {max_depth}") from None
    except (ValueError, MemoryError) as e:
        raise CheckpointError(label, f"invalid JSON: {str(e)[:100]}") from None
    if require_object and not isinstance(obj, dict):
        raise CheckpointError(label, f"top level must be a JSON object, not "
                              f"{type(obj).__name__}")
    return obj


def read_bytes_bounded(path, max_bytes):
    """The bytes of regular file `path` if it holds at most `max_bytes`."""
    path = os.fspath(path)
    f, _ = open_regular_file(path)
    with f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise CheckpointError(path, f"read error: {e}") from e
    if len(data) > max_bytes:
        raise CheckpointError(path, f"larger than the {max_bytes}-byte limit")
    return data


def read_json(path, max_bytes=MAX_JSON_BYTES, max_depth=MAX_DEPTH):
    """A dict from the strict JSON file `path` (CheckpointError for anything wrong)."""
    return parse_json(read_bytes_bounded(path, max_bytes), os.fspath(path), max_depth)


def read_jsonl(path, max_bytes=MAX_JSON_BYTES, max_depth=MAX_DEPTH):
    """The list of objects in a JSON-lines file written by append_jsonl.

    A last line without its newline is a write torn by a crash and is ignored (the next
    append_jsonl cuts it off); every complete line must be a strict JSON object.
    """
    data = read_bytes_bounded(path, max_bytes)
    lines = data.split(b"\n")[:-1]  # the part after the last newline is torn or empty
    label = os.fspath(path)
    out = []
    for i, line in enumerate(lines, 1):
        if line.strip():
            out.append(parse_json(line, f"{label} line {i}", max_depth))
    return out
