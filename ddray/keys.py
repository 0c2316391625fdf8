"""Content keys: the identity of a trial is the hash of its fully resolved config.

Resume, deduplication across methods and cross-run reuse all rest on one property: the same
config always gives the same key, in any process, on any machine. So the hash is taken over a
canonical JSON text (sorted keys, no whitespace, tuples as lists), never over Python reprs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

KEY_LENGTH = 16


def _default(obj: Any) -> Any:
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"not JSON-serializable in a trial config: {type(obj).__name__}")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON text of a config (the input of `config_key`)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=_default)


def text_key(text: str) -> str:
    """The key of a config's canonical JSON text: the one hash every key is."""
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def config_key(config: Any) -> str:
    """Stable hex key of a resolved config."""
    return text_key(canonical_json(config))


def canonical_numbers(value: Any) -> Any:
    """`value` with integral floats written as ints, in nested dicts and lists (bools untouched).

    Why: YAML reads `100` and `100.0` as different types, and a key hashes JSON text; method
    params and dataset options are free-form, so the same value spelled two ways must hash one way.
    """
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: canonical_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical_numbers(v) for v in value]
    return value
