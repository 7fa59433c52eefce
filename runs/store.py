"""The run store: one SQLite database per run directory, the single place a run's records live.

Layout of a run directory:
- run.sqlite (WAL mode): the manifest and the config hash (table `meta`), every start of a runner
  (`sessions`, written before any model loads, so a start that is killed is visible too), the
  budget spent per agent (`budget`), and the records: `episodes` (primary key: the episode key)
  and `decisions` (primary key: episode key and index). An episode and all its decisions are
  written in one transaction, with a SHA-256 digest over both, so an episode is either whole or
  absent, never duplicated.
- manifest.json, episodes.jsonl, decisions.jsonl, summary.*, plots: exports written from the
  database (atomically, in plan order, no timestamps), so people and tools that read JSONL keep
  working and a resumed run exports byte for byte what an uninterrupted one does.

Guarantees:
- Creating a run is atomic: the database is built and claimed in a hidden sibling folder that is
  then renamed into place. A run directory either does not exist or holds a claimed run.
- Exclusive access comes from an OS lock (flock) on the run directory itself, taken before the
  claim is checked and held until the process exits; there is no lock file to delete.
- The claim (config hash) is checked in the same transaction that starts a session: a runner with
  another config is refused.
- Damage is detected, never cut away: opening a run for writing runs SQLite's integrity check and
  verifies every episode's digest and decision count; anything it cannot prove whole stops with
  StoreDamaged (exit status 2). `python -m runs.store repair DIR` keeps every intact episode
  (the damaged database is kept beside it) so that a resume re-runs only what was lost.
- Runs written by the earlier JSONL store (manifest.json + episodes.jsonl, no run.sqlite) are
  converted with `python -m runs.store convert DIR`.

Values of environment variables that look like secrets (names with KEY, TOKEN, SECRET, PASSWORD)
are replaced by "<redacted>" in everything written here.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "DB",
    "DECISIONS",
    "EPISODES",
    "MANIFEST",
    "SCHEMA_VERSION",
    "RunStore",
    "StoreBusy",
    "StoreDamaged",
    "StoreError",
    "code_version",
    "config_hash",
    "environment",
    "is_run_dir",
    "package_versions",
    "read_jsonl",
    "redact",
]

DB = "run.sqlite"
MANIFEST = "manifest.json"
EPISODES = "episodes.jsonl"
DECISIONS = "decisions.jsonl"
#: 2: the SQLite store (1 was the JSONL store of earlier versions).
SCHEMA_VERSION = 2

PACKAGES = (
    "svo-eval",
    "numpy",
    "gymnasium",
    "pettingzoo",
    "pydantic",
    "langchain",
    "langchain-core",
    "langchain-openai",
    "torch",
    "transformers",
    "gguf",
    "accelerate",
    "stable-baselines3",
    "matplotlib",
    "networkx",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started TEXT NOT NULL,
    pid INTEGER NOT NULL,
    record TEXT NOT NULL,
    ended TEXT,
    outcome TEXT
);
CREATE TABLE IF NOT EXISTS episodes (
    key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    session INTEGER NOT NULL,
    n_decisions INTEGER NOT NULL,
    record TEXT NOT NULL,
    digest TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    episode TEXT NOT NULL,
    idx INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (episode, idx)
);
CREATE TABLE IF NOT EXISTS budget (
    agent TEXT PRIMARY KEY,
    calls INTEGER NOT NULL DEFAULT 0,
    tokens INTEGER NOT NULL DEFAULT 0
);
"""


class StoreError(RuntimeError):
    """The run directory cannot be used for this run (exit status 2); the message says why."""


class StoreBusy(StoreError):
    """Another runner holds the run directory."""


class StoreDamaged(StoreError):
    """The run's records cannot be proven whole; `python -m runs.store repair DIR` keeps the intact ones."""


# -- small helpers ------------------------------------------------------------------------------

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


def _secrets() -> list[str]:
    vals = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    return sorted(vals, key=len, reverse=True)


def redact(text: str, secrets: Sequence[str] | None = None) -> str:
    """`text` with every secret value (default: secret-looking environment variables) replaced."""
    for s in _secrets() if secrets is None else secrets:
        if s in text:
            text = text.replace(s, "<redacted>")
    return text


def _default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, (set, frozenset, tuple)):
        return list(o)
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    return repr(o)


def dumps(obj: Any) -> str:
    """Canonical compact JSON (key order kept, no ASCII escaping): what the store and exports hold."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_default, allow_nan=False)


def config_hash(resume_view: Mapping[str, Any]) -> str:
    """Hash of the part of a config a resumed run must share (RunConfig.resume_view)."""
    return hashlib.sha256(json.dumps(resume_view, sort_keys=True).encode("utf-8")).hexdigest()


def _digest(episode: str, decisions: Sequence[str]) -> str:
    h = hashlib.sha256(episode.encode("utf-8"))
    for d in decisions:
        h.update(b"\n")
        h.update(d.encode("utf-8"))
    return h.hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a JSONL file (an export)."""
    if not path.is_file():
        return
    with path.open("rb") as f:
        for raw in f:
            line = raw.strip()
            if line:
                yield json.loads(line)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def is_run_dir(path: Path) -> bool:
    """Whether `path` holds a run (this store, or the earlier JSONL store)."""
    return (Path(path) / DB).is_file() or (Path(path) / MANIFEST).is_file()


# -- the store ---------------------------------------------------------------------------------------


@dataclass
class Verification:
    """What `RunStore.verify` found: episodes checked and the keys that are not whole (with why)."""

    episodes: int
    damaged: dict[str, str]
    integrity: str


class RunStore:
    """One run's database. Open a run for writing with `RunStore.claim`; for reading (reports,
    exports) with `RunStore.read`."""

    def __init__(self, run_dir: Path, conn: sqlite3.Connection, lock_fd: int | None) -> None:
        self.dir = Path(run_dir)
        self.conn = conn
        self._lock_fd = lock_fd
        self._secrets = _secrets()
        self.session: int | None = None

    # -- opening ---------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
        if readonly:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30, isolation_level=None)
        else:
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        return conn

    @staticmethod
    def _lock(run_dir: Path) -> int:
        fd = os.open(run_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreBusy(
                f"{run_dir}: another runner is writing this run (it holds the directory's lock); wait for it "
                "to finish, or use another --name"
            ) from None
        return fd

    @classmethod
    def read(cls, run_dir: str | Path) -> RunStore:
        """Open a run for reading (no lock: a report may run beside a live runner)."""
        run_dir = Path(run_dir)
        if not run_dir.exists():
            raise StoreError(f"{run_dir}: no such directory")
        if not run_dir.is_dir():
            raise StoreError(f"{run_dir}: not a directory")
        db = run_dir / DB
        if not db.is_file():
            if (run_dir / MANIFEST).is_file() and (run_dir / EPISODES).is_file():
                raise StoreError(
                    f"{run_dir}: written by the earlier JSONL store (no {DB}); convert it with: "
                    f"python -m runs.store convert {run_dir}"
                )
            raise StoreError(f"{run_dir}: not a run directory (no {DB})")
        try:
            conn = cls._connect(db, readonly=True)
            version = conn.execute("SELECT value FROM meta WHERE name='schema'").fetchone()
        except sqlite3.DatabaseError as err:
            raise StoreDamaged(_damage_message(run_dir, f"cannot read {DB}: {err}")) from None
        if version is None or int(version[0]) != SCHEMA_VERSION:
            raise StoreError(
                f"{run_dir}: {DB} has schema {version and version[0]}, this version reads {SCHEMA_VERSION}"
            )
        return cls(run_dir, conn, None)

    @classmethod
    def claim(
        cls,
        run_dir: str | Path,
        *,
        config: Mapping[str, Any],
        resume_view: Mapping[str, Any],
        manifest: Mapping[str, Any],
        session: Mapping[str, Any],
        must_exist: bool = False,
    ) -> tuple[RunStore, bool]:
        """Open `run_dir` for writing: create it atomically if absent, else lock it, check that it
        holds a run of the same config and verify it. Starts a session (recorded before returning).
        Returns the store and whether the run is new. Raises StoreError (exit 2) otherwise."""
        run_dir = Path(run_dir)
        h = config_hash(resume_view)
        created = False
        if not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir())):
            if must_exist:
                raise StoreError(f"{run_dir}: no run to resume there")
            try:
                created = cls._create(run_dir, config=config, config_hash=h, manifest=manifest)
            except OSError as err:
                raise StoreError(f"{run_dir}: cannot create the run directory: {err}") from None
        elif not run_dir.is_dir():
            raise StoreError(f"{run_dir}: exists and is not a directory")
        fd = cls._lock(run_dir)
        try:
            db = run_dir / DB
            if not db.is_file():
                cls.read(run_dir)  # raises the right message (JSONL run, or not a run)
            conn = cls._connect(db)
            store = cls(run_dir, conn, fd)
            store._check_claim(h, config)
            if not created:
                store.verify_or_raise()
            store._start_session(session)
        except BaseException:
            os.close(fd)
            raise
        return store, created

    @classmethod
    def _create(
        cls, run_dir: Path, *, config: Mapping[str, Any], config_hash: str, manifest: Mapping[str, Any]
    ) -> bool:
        """Build and claim the database in a hidden sibling folder, then rename it into place."""
        parent = run_dir.parent
        parent.mkdir(parents=True, exist_ok=True)
        tmp = parent / f".{run_dir.name}.creating-{uuid.uuid4().hex[:12]}"
        tmp.mkdir()
        try:
            conn = cls._connect(tmp / DB)
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                for stmt in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(stmt)
                secrets = _secrets()
                rows = {
                    "schema": str(SCHEMA_VERSION),
                    "config_hash": config_hash,
                    "config": redact(dumps(config), secrets),
                    "manifest": redact(dumps(manifest), secrets),
                    "created": _now(),
                    "budget_history": "[]",
                }
                conn.executemany("INSERT INTO meta(name, value) VALUES (?, ?)", rows.items())
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.close()
            _fsync_dir(tmp)
            try:
                os.rename(tmp, run_dir)
            except OSError:
                if run_dir.is_dir() and any(run_dir.iterdir()):
                    return False  # another runner created it first: use theirs (claim checks it)
                raise
            _fsync_dir(parent)
            return True
        finally:
            if tmp.exists():
                for f in tmp.iterdir():
                    f.unlink()
                tmp.rmdir()

    def _check_claim(self, h: str, config: Mapping[str, Any]) -> None:
        try:
            rows = dict(self.conn.execute("SELECT name, value FROM meta").fetchall())
        except sqlite3.DatabaseError as err:
            raise StoreDamaged(_damage_message(self.dir, f"cannot read {DB}: {err}")) from None
        if int(rows.get("schema", 0)) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.dir}: {DB} has schema {rows.get('schema')}, this version writes {SCHEMA_VERSION}"
            )
        if rows.get("config_hash") != h:
            old = json.loads(rows.get("config", "{}"))
            from runs.config import RESUME_KEYS

            diff = [k for k in RESUME_KEYS if old.get(k) != config.get(k)]
            lines = [f"{self.dir}: holds a run with a different config; differing keys:"]
            lines += [f"  {k}: run has {old.get(k)!r}, now {config.get(k)!r}" for k in diff]
            lines.append("use another --name/--run-dir, or --resume DIR to finish that run as configured")
            raise StoreError("\n".join(lines))

    # -- meta, sessions and budget ---------------------------------------------------------------
    def meta(self, name: str) -> Any:
        row = self.conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return (
            None
            if row is None
            else json.loads(row[0])
            if name not in ("schema", "config_hash", "created")
            else row[0]
        )

    def manifest(self) -> dict[str, Any]:
        """The manifest, with the budget history and the sessions (exported as manifest.json)."""
        m = dict(self.meta("manifest") or {})
        for key in ("agents", "reproducible", "execution"):
            value = self.meta(key)
            if value is not None:
                m[key] = value
        m["schema"] = SCHEMA_VERSION
        m["created"] = self.meta("created")
        m["budget_history"] = self.meta("budget_history") or []
        m["sessions"] = self.sessions()
        return m

    def config(self) -> dict[str, Any]:
        return dict(self.meta("config") or {})

    def set_meta(self, name: str, value: Any) -> None:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT INTO meta(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                (name, redact(dumps(value), self._secrets)),
            )

    def _start_session(self, record: Mapping[str, Any]) -> None:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            cur = self.conn.execute(
                "INSERT INTO sessions(started, pid, record) VALUES (?, ?, ?)",
                (_now(), os.getpid(), redact(dumps(record), self._secrets)),
            )
            self.session = int(cur.lastrowid)

    def end_session(self, outcome: Mapping[str, Any]) -> None:
        if self.session is None:
            return
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "UPDATE sessions SET ended=?, outcome=? WHERE id=?",
                (_now(), redact(dumps(outcome), self._secrets), self.session),
            )

    def sessions(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT id, started, pid, record, ended, outcome FROM sessions ORDER BY id")
        return [
            {
                "session": i,
                "started": s,
                "pid": pid,
                **json.loads(rec),
                "ended": e,
                "outcome": None if o is None else json.loads(o),
            }
            for i, s, pid, rec, e, o in rows
        ]

    def ledger(self, agent: str) -> _Ledger:
        """The budget ledger of one agent (agents.llm.cache.Ledger) in this run."""
        return _Ledger(self, agent)

    def note_budget(self, budget: Mapping[str, Any]) -> None:
        """Record the budget this session runs under, when it differs from the last one recorded."""
        history = list(self.meta("budget_history") or [])
        if not history or {k: history[-1].get(k) for k in budget} != dict(budget):
            self.set_meta("budget_history", [*history, {"session": self.session, **budget}])

    def spent(self, agent: str) -> tuple[int, int]:
        """Model calls and tokens spent by `agent` over every session of the run."""
        row = self.conn.execute("SELECT calls, tokens FROM budget WHERE agent=?", (agent,)).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def spend(self, agent: str, calls: int, tokens: int) -> None:
        """Add to `agent`'s spending, durably (called before the calls are made: a kill can only
        over-count, never let a budget be exceeded)."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT INTO budget(agent, calls, tokens) VALUES (?, ?, ?) ON CONFLICT(agent) DO UPDATE SET "
                "calls = calls + excluded.calls, tokens = tokens + excluded.tokens",
                (agent, int(calls), int(tokens)),
            )

    # -- records ----------------------------------------------------------------------------
    def completed(self) -> set[str]:
        """Keys of the finished episodes."""
        return {k for (k,) in self.conn.execute("SELECT key FROM episodes")}

    def add_episode(
        self, seq: int, episode: Mapping[str, Any], decisions: Sequence[Mapping[str, Any]]
    ) -> None:
        """Write one finished episode and its decisions in one transaction (all or nothing; a key
        that exists already is an error, never a duplicate)."""
        if self.session is None:
            raise StoreError("RunStore.claim() must open the run before episodes are added")
        ep = redact(dumps(episode), self._secrets)
        decs = [redact(dumps(d), self._secrets) for d in decisions]
        try:
            with self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute(
                    "INSERT INTO episodes(key, seq, session, n_decisions, record, digest) VALUES (?, ?, ?, ?, ?, ?)",
                    (episode["key"], seq, self.session, len(decs), ep, _digest(ep, decs)),
                )
                self.conn.executemany(
                    "INSERT INTO decisions(episode, idx, record) VALUES (?, ?, ?)",
                    [(episode["key"], i, d) for i, d in enumerate(decs)],
                )
        except sqlite3.IntegrityError as err:
            raise StoreError(f"{self.dir}: episode {episode['key']} is already stored ({err})") from None

    def episodes(self) -> list[dict[str, Any]]:
        """Every finished episode's record, in plan order."""
        return [json.loads(r) for (r,) in self.conn.execute("SELECT record FROM episodes ORDER BY seq, key")]

    def decisions(self) -> Iterator[dict[str, Any]]:
        """Every decision record, in plan order of their episodes, then decision order."""
        q = "SELECT d.record FROM decisions d JOIN episodes e ON d.episode = e.key ORDER BY e.seq, e.key, d.idx"
        for (r,) in self.conn.execute(q):
            yield json.loads(r)

    # -- integrity ---------------------------------------------------------------------------
    def verify(self) -> Verification:
        """SQLite's integrity check, then every episode's decision count and digest."""
        try:
            res = [r[0] for r in self.conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as err:
            res = [str(err)]
        integrity = "ok" if res == ["ok"] else "; ".join(res[:5])
        damaged: dict[str, str] = {}
        n = 0
        try:
            counts: dict[str, int] = dict(
                self.conn.execute("SELECT episode, COUNT(*) FROM decisions GROUP BY episode").fetchall()
            )
            for key, n_dec, rec, digest in self.conn.execute(
                "SELECT key, n_decisions, record, digest FROM episodes"
            ):
                n += 1
                have = counts.pop(key, 0)
                if have != n_dec:
                    damaged[key] = f"{have} decision rows for {n_dec}"
                    continue
                decs = [
                    r
                    for (r,) in self.conn.execute(
                        "SELECT record FROM decisions WHERE episode=? ORDER BY idx", (key,)
                    )
                ]
                if _digest(rec, decs) != digest:
                    damaged[key] = "digest mismatch (a record was changed)"
            for key, have in counts.items():
                damaged[key] = f"{have} decision rows of an episode that is not stored"
        except sqlite3.DatabaseError as err:
            integrity = (
                f"{integrity}; reading records failed: {err}"
                if integrity != "ok"
                else f"reading records failed: {err}"
            )
        return Verification(n, damaged, integrity)

    def verify_or_raise(self) -> None:
        v = self.verify()
        if v.integrity != "ok" or v.damaged:
            parts = []
            if v.integrity != "ok":
                parts.append(f"SQLite integrity check: {v.integrity}")
            if v.damaged:
                sample = "; ".join(f"{k}: {why}" for k, why in list(v.damaged.items())[:3])
                parts.append(f"{len(v.damaged)} of {v.episodes} episode(s) not whole ({sample})")
            raise StoreDamaged(_damage_message(self.dir, "; ".join(parts)))

    # -- exports -----------------------------------------------------------------------------
    def export(self) -> None:
        """Write manifest.json, episodes.jsonl and decisions.jsonl from the database, atomically."""
        _atomic_write(
            self.dir / MANIFEST,
            json.dumps(self.manifest(), indent=2, ensure_ascii=False, default=_default) + "\n",
        )
        _atomic_write(self.dir / EPISODES, "".join(dumps(e) + "\n" for e in self.episodes()))
        _atomic_write(self.dir / DECISIONS, "".join(dumps(d) + "\n" for d in self.decisions()))

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


@dataclass
class _Ledger:
    store: RunStore
    agent: str

    def spent(self) -> tuple[int, int]:
        return self.store.spent(self.agent)

    def spend(self, calls: int, tokens: int) -> None:
        if calls or tokens:
            self.store.spend(self.agent, calls, tokens)


def _damage_message(run_dir: Path, what: str) -> str:
    return (
        f"{run_dir}: the run's records cannot be proven whole: {what}. Nothing was changed. To keep every "
        f"intact episode and re-run the rest: python -m runs.store repair {run_dir} && "
        f"python -m runs.evaluate --resume {run_dir}"
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- repair and conversion ----------------------------------------------------------------------------


def _rows(conn: sqlite3.Connection, table: str, cols: str) -> list[tuple]:
    """Every readable row of `table` (row by row past damaged pages)."""
    try:
        return conn.execute(f"SELECT {cols} FROM {table}").fetchall()  # noqa: S608 - fixed names
    except sqlite3.DatabaseError:
        pass
    out = []
    try:
        hi = conn.execute(f"SELECT MAX(rowid) FROM {table}").fetchone()[0] or 0  # noqa: S608
    except sqlite3.DatabaseError:
        hi = 1_000_000
    misses = 0
    for rowid in range(1, hi + 1):
        try:
            row = conn.execute(f"SELECT {cols} FROM {table} WHERE rowid=?", (rowid,)).fetchone()  # noqa: S608
        except sqlite3.DatabaseError:
            continue
        if row is None:
            misses += 1
            if misses > 10_000:
                break
            continue
        misses = 0
        out.append(row)
    return out


def repair(run_dir: str | Path) -> dict[str, int]:
    """Rebuild the run's database from its intact episodes (digest and decision count verified);
    the damaged database is kept as run.sqlite.damaged-<time>. Returns counts kept and dropped. A
    store with nothing damaged is left untouched (and the result says "unchanged")."""
    run_dir = Path(run_dir)
    db = run_dir / DB
    if not db.is_file():
        raise StoreError(f"{run_dir}: no {DB} to repair")
    fd = RunStore._lock(run_dir)
    try:
        old = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
        meta = dict(_rows(old, "meta", "name, value"))
        for need in ("schema", "config_hash", "config", "manifest"):
            if need not in meta:
                raise StoreDamaged(f"{run_dir}: the run's {need} cannot be read; the run cannot be repaired")
        eps = _rows(old, "episodes", "key, seq, session, n_decisions, record, digest")
        decs: dict[str, dict[int, str]] = {}
        for ep, idx, rec in _rows(old, "decisions", "episode, idx, record"):
            decs.setdefault(ep, {})[idx] = rec
        sessions = _rows(old, "sessions", "id, started, pid, record, ended, outcome")
        budget = _rows(old, "budget", "agent, calls, tokens")
        try:
            intact_file = [r[0] for r in old.execute("PRAGMA integrity_check")] == ["ok"]
        except sqlite3.DatabaseError:
            intact_file = False
        old.close()
        keep = []
        for key, seq, session, n_dec, rec, digest in eps:
            d = decs.get(key, {})
            ordered = [d[i] for i in range(n_dec) if i in d]
            if len(d) == n_dec and len(ordered) == n_dec and _digest(rec, ordered) == digest:
                keep.append((key, seq, session, n_dec, rec, digest, ordered))
        if intact_file and len(keep) == len(eps) and set(decs) <= {e[0] for e in eps}:
            return {"kept": len(keep), "dropped": 0, "unchanged": 1}  # nothing damaged: left as it is
        tmp = run_dir / f".{DB}.repair-{uuid.uuid4().hex[:8]}"
        conn = sqlite3.connect(tmp, isolation_level=None)
        with conn:
            conn.execute("BEGIN")
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(stmt)
            conn.executemany("INSERT INTO meta(name, value) VALUES (?, ?)", meta.items())
            conn.executemany("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, ?)", sessions)
            conn.executemany("INSERT INTO budget VALUES (?, ?, ?)", budget)
            for key, seq, session, n_dec, rec, digest, ordered in keep:
                conn.execute(
                    "INSERT INTO episodes VALUES (?, ?, ?, ?, ?, ?)", (key, seq, session, n_dec, rec, digest)
                )
                conn.executemany(
                    "INSERT INTO decisions VALUES (?, ?, ?)", [(key, i, r) for i, r in enumerate(ordered)]
                )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.close()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            f = run_dir / f"{DB}{suffix}"
            if f.exists():
                os.replace(f, run_dir / f"{DB}{suffix}.damaged-{stamp}")
        os.replace(tmp, db)
        _fsync_dir(run_dir)
        return {"kept": len(keep), "dropped": len(eps) - len(keep)}
    finally:
        os.close(fd)


def _lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The parseable JSON lines of a file and the count of unparseable ones."""
    out, bad = [], 0
    if path.is_file():
        for raw in path.read_bytes().splitlines():
            try:
                out.append(json.loads(raw))
            except json.JSONDecodeError:
                bad += 1
    return out, bad


def _jsonl_config(run_dir: Path, manifest: dict[str, Any]) -> Any:
    """The RunConfig of a JSONL-store run, refused when this version cannot continue it."""
    from runs.config import ConfigError, validate
    from runs.plan import EPISODE_SEED_RULE

    rule = manifest.get("seeds", {}).get("episode_seed")
    if rule is not None and rule != EPISODE_SEED_RULE:
        commit = manifest.get("code", {}).get("commit") or "the commit in its manifest"
        raise StoreError(
            f"{run_dir}: planned with episode seeds {rule}; this version uses {EPISODE_SEED_RULE} (option orders "
            f"of a trial are paired), so its episodes would not match: finish it with the code that started it "
            f"({commit}), or start a new run"
        )
    try:
        return validate(manifest["config"], f"{run_dir / MANIFEST}: config")
    except (ConfigError, KeyError) as err:
        raise StoreError(f"{run_dir}: its config is not one this version runs: {err}") from None


def convert(run_dir: str | Path) -> dict[str, int]:
    """Convert a run of the earlier JSONL store into this store (episodes whose decision lines are
    all present are kept; the others are left for a resume to re-run)."""
    run_dir = Path(run_dir)
    if (run_dir / DB).exists():
        raise StoreError(f"{run_dir}: already holds {DB}")
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise StoreError(f"{run_dir}: cannot read {MANIFEST}: {err}") from None
    config = _jsonl_config(run_dir, manifest)
    from runs.plan import plan

    seq = {e.key: e.seq for e in plan(config)}
    decisions, bad_d = _lines(run_dir / DECISIONS)
    episodes, bad_e = _lines(run_dir / EPISODES)
    decs: dict[str, list[dict[str, Any]]] = {}
    for d in decisions:
        decs.setdefault(d.get("episode"), []).append(d)
    fd = RunStore._lock(run_dir)
    tmp = run_dir / f".{DB}.convert"
    try:
        conn = RunStore._connect(tmp)
        store = RunStore(run_dir, conn, None)
        with conn:
            conn.execute("BEGIN")
            for stmt in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(stmt)
            rows = {
                "schema": str(SCHEMA_VERSION),
                "config_hash": config_hash(config.resume_view()),
                "config": dumps(config.model_dump(mode="json")),
                "manifest": dumps(
                    {**manifest, "config": config.model_dump(mode="json"), "converted_from": "jsonl"}
                ),
                "created": manifest.get("environment", {}).get("time") or _now(),
                "budget_history": "[]",
            }
            conn.executemany("INSERT INTO meta(name, value) VALUES (?, ?)", rows.items())
        store._start_session({"converted": True})
        kept = 0
        for ep in episodes:
            d = sorted(decs.get(ep.get("key"), []), key=lambda x: x.get("step", 0))
            if ep.get("key") in seq and len(d) == ep.get("n_decisions"):
                store.add_episode(seq[ep["key"]], ep, d)
                kept += 1
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        os.replace(tmp, run_dir / DB)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(f"{tmp}{suffix}")
    finally:
        os.close(fd)
    return {"kept": kept, "dropped": len(episodes) - kept, "unreadable_lines": bad_d + bad_e}


# -- provenance ----------------------------------------------------------------------------------------


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str | None]:
    """Installed versions (None if absent), read from metadata without importing the packages."""
    out: dict[str, str | None] = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def code_version(root: Path | None = None) -> dict[str, Any]:
    """Git commit and dirty flag of the code in `root` (default: this repository)."""
    root = root or Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def environment() -> dict[str, Any]:
    """Python, platform and package versions for the manifest (no environment variable values)."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
    }


# -- command line --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m runs.store",
        description="Check, repair or convert a run directory's store (see runs/store.py).",
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, help_ in (
        ("verify", "check the run's records (SQLite integrity, every episode's decisions and digest)"),
        ("repair", "keep every intact episode (the damaged database is kept beside it); then --resume"),
        ("convert", "convert a run of the earlier JSONL store (manifest.json + episodes.jsonl)"),
    ):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("run_dir")
    args = p.parse_args(argv)
    try:
        if args.cmd == "verify":
            store = RunStore.read(args.run_dir)
            v = store.verify()
            store.close()
            print(
                f"{args.run_dir}: {v.episodes} episode(s); integrity {v.integrity}; {len(v.damaged)} not whole"
            )
            for k, why in v.damaged.items():
                print(f"  {k}: {why}")
            return 0 if v.integrity == "ok" and not v.damaged else 2
        if args.cmd == "repair":
            r = repair(args.run_dir)
            if r.get("unchanged"):
                print(
                    f"{args.run_dir}: nothing damaged ({r['kept']} episode(s) intact); the store is left as it is"
                )
                return 0
            print(
                f"{args.run_dir}: kept {r['kept']} episode(s), dropped {r['dropped']}; now: python -m runs.evaluate --resume {args.run_dir}"
            )
            return 0
        r = convert(args.run_dir)
        print(f"{args.run_dir}: converted; kept {r['kept']} episode(s), dropped {r['dropped']}")
        return 0
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
