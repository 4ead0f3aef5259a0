"""The result store: long computations are kept on disk, keyed by everything that determines them.

A result is a flat mapping of names to numpy arrays (scalars as 0-d arrays) plus a small JSON
`meta` (when, how and by what command it was computed). Keys come from `result_key(kind, version,
params)`: a hash of the canonical JSON of the parameters (numpy arrays hashed by content), so two
sessions asking for the same computation share one entry.

Lookup order: the writable store (`NTK_EXPLORER_STORE`, default `~/.cache/ntk_explorer/results`),
then the read-only entries shipped with the repository (`assets/results/`, written by
`python -m benchmarks.presets`).

    store = default_store()
    store.get(key)                -> dict[str, np.ndarray] | None
    store.meta(key)               -> dict | None
    store.put(key, arrays, meta)  atomic
    pack(obj) / unpack(cls, arrays)  a flat dataclass of arrays/scalars <-> arrays
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import threading
from typing import Any, Mapping, Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_DIR = os.path.join(ROOT, "assets", "results")
STORE_ENV = "NTK_EXPLORER_STORE"


def _canonical(value: Any) -> Any:
    """JSON-able canonical form of a parameter value (arrays by content hash)."""
    if isinstance(value, np.ndarray) or (hasattr(value, "shape") and hasattr(value, "dtype")):
        a = np.ascontiguousarray(np.asarray(value))
        digest = hashlib.sha256(a.tobytes()).hexdigest()[:24]
        return {"__array__": digest, "shape": list(a.shape), "dtype": str(a.dtype)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__dataclass__": type(value).__name__,
                **{f.name: _canonical(getattr(value, f.name)) for f in dataclasses.fields(value)}}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, range)):
        return [_canonical(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return repr(v) if (math.isinf(v) or math.isnan(v)) else v
    return value


def result_key(kind: str, version: str, params: Mapping[str, Any]) -> str:
    """A stable key for the result of computation `kind` (code `version`) with `params`."""
    text = json.dumps({"kind": kind, "version": version, "params": _canonical(params)},
                      sort_keys=True, separators=(",", ":"))
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def pack(obj: Any) -> dict[str, np.ndarray]:
    """A flat dataclass (fields: arrays, numbers, strings, None) as a dict of arrays."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        out[f.name] = np.asarray(value)
    return out


def unpack(cls, arrays: Mapping[str, np.ndarray]):
    """Inverse of `pack`: 0-d arrays become Python scalars, missing fields None."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in arrays:
            kwargs[f.name] = None
            continue
        a = np.asarray(arrays[f.name])
        kwargs[f.name] = a.item() if a.ndim == 0 else a
    return cls(**kwargs)


class ResultStore:
    """Results as one `.npz` per key (arrays + meta), written atomically (temp file + rename)."""

    def __init__(self, path: str, *, read_only_dirs: tuple[str, ...] = ()):
        self.path = path
        self.read_only_dirs = read_only_dirs
        self._lock = threading.Lock()

    def _file(self, directory: str, key: str) -> str:
        return os.path.join(directory, f"{key}.npz")

    def _load(self, key: str) -> Optional[tuple[dict, dict]]:
        for directory in (self.path, *self.read_only_dirs):
            path = self._file(directory, key)
            if not os.path.exists(path):
                continue
            try:
                with np.load(path, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files if k != "__meta__"}
                    meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
                return arrays, meta
            except Exception:  # noqa: BLE001 - a corrupt entry is a miss, never shown
                if directory == self.path:
                    try:
                        os.remove(path)
                    except OSError:
                        pass
        return None

    def get(self, key: str) -> Optional[dict[str, np.ndarray]]:
        found = self._load(key)
        return None if found is None else found[0]

    def meta(self, key: str) -> Optional[dict]:
        found = self._load(key)
        return None if found is None else found[1]

    def put(self, key: str, arrays: Mapping[str, np.ndarray], meta: Optional[Mapping] = None) -> None:
        os.makedirs(self.path, exist_ok=True)
        payload = {k: np.asarray(v) for k, v in arrays.items()}
        payload["__meta__"] = np.asarray(json.dumps(dict(meta or {})))
        fd, tmp = tempfile.mkstemp(dir=self.path, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, **payload)
            os.replace(tmp, self._file(self.path, key))
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


_DEFAULT: Optional[ResultStore] = None


def default_store() -> ResultStore:
    """The server's store: `$NTK_EXPLORER_STORE` or the user's cache directory, then shipped results."""
    global _DEFAULT
    path = os.environ.get(STORE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "ntk_explorer", "results")
    if _DEFAULT is None or _DEFAULT.path != path:
        _DEFAULT = ResultStore(path, read_only_dirs=(SHIPPED_DIR,))
    return _DEFAULT
