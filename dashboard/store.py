"""The result store: long computations are kept on disk, keyed by everything that determines them.

A result is a flat mapping of names to numpy arrays (scalars as 0-d arrays) plus a small JSON
`meta` (when, how and by what command it was computed). Keys come from `result_key(kind, version,
params)`: a hash of the canonical JSON of the parameters (numpy arrays hashed by content), so two
sessions asking for the same computation share one entry.

Lookup order: results in this process's memory (recently read), the writable store
(`$NTK_EXPLORER_STORE`, default `~/.cache/ntk_explorer/results`), then the read-only entries shipped
with the repository (`assets/results/`, written by `python -m benchmarks.presets`).

    store = default_store()
    store.get(key)                -> dict[str, np.ndarray] | None
    store.meta(key)               -> dict | None
    store.lookup(key)             -> Entry(arrays, meta, origin "local" | "shipped") | None
    store.put(key, arrays, meta)  atomic; evicts the least recently used beyond the size bound
    pack(obj) / unpack(cls, arrays)  a flat dataclass of arrays/scalars <-> arrays

Format and why:
- one `.npz` per entry (numpy's own container: dtype and shape kept exactly, loaded with
  `allow_pickle=False` so a file cannot run code, compressed with zlib);
- a SQLite index `index.sqlite` beside them (key, size, sha256, last access, meta): transactions
  make the bookkeeping safe when several threads or server processes share the directory, and it
  answers "least recently used" and "total size" with one query;
- shipped entries are listed in `assets/results/manifest.json` (key -> sha256, size, meta): plain
  text that diffs in git, read only at run time.
A write goes to a temporary file in the same directory, is fsynced and renamed over the entry, and
only then indexed: a crash leaves either the old entry or none, never half of one. Every read checks
the sha256 of the file against the index/manifest; a mismatch is removed (or, when shipped, skipped)
and reported as missing, so it is recomputed and never shown.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import sqlite3
import tempfile
import threading
import time
from typing import Any, Mapping, NamedTuple, Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_DIR = os.path.join(ROOT, "assets", "results")
MANIFEST = "manifest.json"
INDEX = "index.sqlite"
STORE_ENV = "NTK_EXPLORER_STORE"
MAX_MB_ENV = "NTK_EXPLORER_STORE_MAX_MB"
DEFAULT_MAX_MB = 500
MEMORY_BYTES = 64 * 2**20       # recently read results kept in memory (per server process)
TOUCH_EVERY_SECONDS = 60.0      # how often a result read from memory refreshes its last access

log = logging.getLogger("ntk_explorer.store")


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
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
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


class Entry(NamedTuple):
    arrays: dict
    meta: dict
    origin: str  # "local" (this machine's store) or "shipped" (assets/results)


def encode(arrays: Mapping[str, np.ndarray], meta: Optional[Mapping] = None) -> bytes:
    """The bytes of one entry: a compressed .npz of the arrays plus `__meta__` (JSON text)."""
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    if any(a.dtype == object for a in payload.values()):
        raise TypeError("results hold numeric or string arrays, not Python objects")
    payload["__meta__"] = np.asarray(json.dumps(dict(meta or {}), sort_keys=True))
    buf = io.BytesIO()
    np.savez_compressed(buf, **payload)
    return buf.getvalue()


def decode(data: bytes) -> tuple[dict, dict]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
        meta = json.loads(str(z["__meta__"])) if "__meta__" in z.files else {}
    return arrays, meta


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(path: str, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory, fsync, rename."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _nbytes(arrays: Mapping[str, np.ndarray]) -> int:
    return sum(int(np.asarray(a).nbytes) for a in arrays.values())


class ShippedResults:
    """Read-only entries in a directory with `manifest.json` (key -> sha256, size, meta)."""

    def __init__(self, directory: str):
        self.directory = directory
        self._manifest: Optional[dict] = None
        self._mtime = None

    def manifest(self) -> dict:
        path = os.path.join(self.directory, MANIFEST)
        try:
            mtime = os.path.getmtime(path)
        except OSError:
            return {}
        if self._manifest is None or mtime != self._mtime:
            try:
                with open(path, encoding="utf-8") as fh:
                    self._manifest = json.load(fh)
            except (OSError, ValueError):
                log.warning("unreadable manifest %s", path)
                self._manifest = {}
            self._mtime = mtime
        return self._manifest

    def __contains__(self, key: str) -> bool:
        return key in self.manifest()

    def read(self, key: str) -> Optional[tuple[dict, dict]]:
        info = self.manifest().get(key)
        if info is None:
            return None
        try:
            with open(os.path.join(self.directory, f"{key}.npz"), "rb") as fh:
                data = fh.read()
        except OSError:
            return None
        if sha256(data) != info.get("sha256"):
            log.warning("shipped result %s fails its checksum: ignored (recomputed)", key)
            return None
        try:
            return decode(data)
        except Exception:  # noqa: BLE001 - a damaged file is a miss, never shown
            return None

    def write(self, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping) -> int:
        """Add or replace one entry (used by `python -m benchmarks.presets` only)."""
        data = encode(arrays, meta)
        write_atomic(os.path.join(self.directory, f"{key}.npz"), data)
        with self._manifest_lock():
            manifest = dict(self.manifest())
            manifest[key] = {"sha256": sha256(data), "size": len(data), "meta": dict(meta)}
            self._save(manifest)
        return len(data)

    def remove(self, keys) -> None:
        with self._manifest_lock():
            manifest = dict(self.manifest())
            for key in keys:
                manifest.pop(key, None)
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(self.directory, f"{key}.npz"))
            self._save(manifest)

    @contextlib.contextmanager
    def _manifest_lock(self):
        """Several `benchmarks.presets` processes may add entries at once (POSIX file lock)."""
        import fcntl

        os.makedirs(self.directory, exist_ok=True)
        with open(os.path.join(self.directory, ".manifest.lock"), "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            self._manifest, self._mtime = None, None     # re-read under the lock
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _save(self, manifest: dict) -> None:
        text = json.dumps(dict(sorted(manifest.items())), indent=1, sort_keys=True) + "\n"
        write_atomic(os.path.join(self.directory, MANIFEST), text.encode())
        self._manifest, self._mtime = None, None


class ResultStore:
    """A size-bounded, checksummed store of results (see the module docstring)."""

    def __init__(self, path: str, *, read_only_dirs: tuple[str, ...] = (),
                 max_bytes: Optional[int] = None):
        self.path = path
        self.read_only_dirs = read_only_dirs
        self.shipped = [ShippedResults(d) for d in read_only_dirs]
        self.max_bytes = int(max_bytes if max_bytes is not None else DEFAULT_MAX_MB * 2**20)
        self._lock = threading.RLock()
        self._local = threading.local()
        self._memory: "dict[str, tuple[Entry, int, float]]" = {}   # key -> entry, bytes, touched
        self._memory_bytes = 0

    # ---- the SQLite index ----------------------------------------------------------------------
    @contextlib.contextmanager
    def _db(self):
        """A transaction on the index (one connection per thread, opened once)."""
        con = getattr(self._local, "con", None)
        if con is None or not os.path.exists(os.path.join(self.path, INDEX)):
            os.makedirs(self.path, exist_ok=True)
            con = sqlite3.connect(os.path.join(self.path, INDEX), timeout=30)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, size INTEGER "
                        "NOT NULL, sha256 TEXT NOT NULL, last_access REAL NOT NULL, meta TEXT)")
            self._local.con = con
        with con:
            yield con

    def _file(self, key: str) -> str:
        return os.path.join(self.path, f"{key}.npz")

    # ---- memory ----------------------------------------------------------------------------------
    def _remember(self, key: str, entry: Entry) -> None:
        size = _nbytes(entry.arrays)
        if size > MEMORY_BYTES // 4:
            return
        with self._lock:
            self._forget(key)
            self._memory[key] = (entry, size, time.time())
            self._memory_bytes += size
            while self._memory_bytes > MEMORY_BYTES and self._memory:
                self._forget(next(iter(self._memory)))

    def _forget(self, key: str) -> None:
        old = self._memory.pop(key, None)
        if old is not None:
            self._memory_bytes -= old[1]

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
            self._memory_bytes = 0

    # ---- reading ---------------------------------------------------------------------------------
    def lookup(self, key: str) -> Optional[Entry]:
        """The entry of `key` with its origin, or None (missing or failing its checksum)."""
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None:
                entry, size, touched = hit
                del self._memory[key]
                self._memory[key] = (entry, size, touched)   # most recently used last
        if hit is not None:
            if entry.origin == "local" and time.time() - touched > TOUCH_EVERY_SECONDS:
                self._touch(key)
                with self._lock:
                    if key in self._memory:
                        self._memory[key] = (entry, size, time.time())
            return Entry({k: v for k, v in entry.arrays.items()}, dict(entry.meta), entry.origin)
        entry = self._read_local(key)
        if entry is None:
            for shipped in self.shipped:
                found = shipped.read(key)
                if found is not None:
                    entry = Entry(found[0], found[1], "shipped")
                    break
        if entry is not None:
            self._remember(key, entry)
        return entry

    def _read_local(self, key: str) -> Optional[Entry]:
        path = self._file(key)
        if not os.path.exists(path):
            return None
        with self._lock:   # not between another thread's rename and its index row
            return self._read_local_locked(key, path)

    def _read_local_locked(self, key: str, path: str) -> Optional[Entry]:
        with self._db() as con:
            row = con.execute("SELECT sha256 FROM entries WHERE key = ?", (key,)).fetchone()
        try:
            with open(path, "rb") as fh:
                data = fh.read()
        except OSError:
            return None
        ok = row is not None and sha256(data) == row[0]
        if ok:
            try:
                arrays, meta = decode(data)
            except Exception:  # noqa: BLE001
                ok = False
        if not ok:
            log.warning("result %s is corrupt or unindexed: removed, it will be recomputed", key)
            self.remove(key)
            return None
        self._touch(key)
        return Entry(arrays, meta, "local")

    def _touch(self, key: str) -> None:
        with contextlib.suppress(sqlite3.Error), self._db() as con:
            con.execute("UPDATE entries SET last_access = ? WHERE key = ?", (time.time(), key))

    def get(self, key: str) -> Optional[dict[str, np.ndarray]]:
        found = self.lookup(key)
        return None if found is None else found.arrays

    def meta(self, key: str) -> Optional[dict]:
        found = self.lookup(key)
        return None if found is None else found.meta

    def __contains__(self, key: str) -> bool:
        return self.lookup(key) is not None

    # ---- writing ---------------------------------------------------------------------------------
    def put(self, key: str, arrays: Mapping[str, np.ndarray], meta: Optional[Mapping] = None) -> None:
        """Store `arrays` under `key` (replacing a local entry; shipped ones are never written)."""
        data = encode(arrays, meta)
        with self._lock:
            write_atomic(self._file(key), data)
            with self._db() as con:
                con.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)",
                            (key, len(data), sha256(data), time.time(),
                             json.dumps(dict(meta or {}))))
            self._remember(key, Entry({k: np.asarray(v) for k, v in arrays.items()},
                                      dict(meta or {}), "local"))
            self.evict(keep=key)

    def remove(self, key: str) -> None:
        with self._lock:
            self._forget(key)
            with contextlib.suppress(OSError):
                os.remove(self._file(key))
            with contextlib.suppress(sqlite3.Error), self._db() as con:
                con.execute("DELETE FROM entries WHERE key = ?", (key,))

    def total_bytes(self) -> int:
        with self._db() as con:
            return int(con.execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()[0])

    def keys(self) -> list[str]:
        with self._db() as con:
            return [r[0] for r in con.execute("SELECT key FROM entries ORDER BY last_access")]

    def evict(self, keep: Optional[str] = None) -> list[str]:
        """Remove least recently used entries until the total is within `max_bytes`."""
        removed = []
        with self._lock:
            with self._db() as con:
                rows = con.execute("SELECT key, size FROM entries ORDER BY last_access").fetchall()
            total = sum(size for _, size in rows)
            for key, size in rows:
                if total <= self.max_bytes:
                    break
                if key == keep:
                    continue
                self.remove(key)
                removed.append(key)
                total -= size
        return removed


_DEFAULT: Optional[ResultStore] = None
_DEFAULT_LOCK = threading.Lock()


def user_cache_dir(name: str) -> str:
    """`$XDG_CACHE_HOME/ntk_explorer/<name>` (`~/.cache/...` without XDG_CACHE_HOME)."""
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
                        "ntk_explorer", name)


def store_path() -> str:
    """`$NTK_EXPLORER_STORE`, else `$XDG_CACHE_HOME/ntk_explorer/results` (`~/.cache/...`)."""
    return os.environ.get(STORE_ENV) or user_cache_dir("results")


def max_bytes() -> int:
    try:
        mb = float(os.environ.get(MAX_MB_ENV, DEFAULT_MAX_MB))
    except ValueError:
        mb = DEFAULT_MAX_MB
    return int(max(mb, 1.0) * 2**20)


def default_store() -> ResultStore:
    """The server's store: `$NTK_EXPLORER_STORE` or the user's cache directory, then shipped results."""
    global _DEFAULT
    path, bound = store_path(), max_bytes()
    with _DEFAULT_LOCK:
        if _DEFAULT is None or _DEFAULT.path != path or _DEFAULT.max_bytes != bound:
            _DEFAULT = ResultStore(path, read_only_dirs=(SHIPPED_DIR,), max_bytes=bound)
        return _DEFAULT
