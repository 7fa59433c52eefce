"""The run directory: manifest, append-only records, and crash recovery.

Layout of a run directory:
- manifest.json: resolved config, seeds, code version (git commit, dirty flag), package versions,
  agent/model identities. Written once, atomically.
- sessions.jsonl: one line per start of the runner (time, code version, episodes done, model calls).
- episodes.jsonl / decisions.jsonl: one JSON record per line, append-only. For each episode all
  its decision lines are written, flushed and fsynced, then its episode line. An episode counts as
  done iff its episode line is complete. After a crash, `RunStore.open` cuts the files back to the
  last complete episode (a torn last line, decision lines of an unfinished episode), so a resumed
  run appends exactly the missing episodes.

Values of environment variables that look like secrets (names with KEY, TOKEN, SECRET, PASSWORD)
are replaced by "<redacted>" in everything written here.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "DECISIONS",
    "EPISODES",
    "MANIFEST",
    "RunStore",
    "StoreError",
    "code_version",
    "episode_key",
    "package_versions",
    "read_jsonl",
]

MANIFEST = "manifest.json"
EPISODES = "episodes.jsonl"
DECISIONS = "decisions.jsonl"
SESSIONS = "sessions.jsonl"

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


class StoreError(RuntimeError):
    """The run directory is inconsistent with this run (config mismatch, corrupted records)."""


def episode_key(
    agent: str,
    value: str | None,
    goal: bool,
    order: str,
    instrument: str,
    items: str,
    trial: int,
    seed: int,
    prompt_set: str = "paper",
    framing: str = "none",
) -> str:
    """Stable id of one episode of the grid (16 hex digits)."""
    parts: list = [agent, value, goal, order, instrument, items, trial, seed]
    if (prompt_set, framing) != ("paper", "none"):
        parts += [prompt_set, framing]
    blob = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


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
    status = git("status", "--porcelain")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)", re.IGNORECASE)


def _secrets() -> list[str]:
    vals = {v for k, v in os.environ.items() if _SECRET_NAME.search(k) and len(v) >= 8}
    return sorted(vals, key=len, reverse=True)


def redact(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        if s in text:
            text = text.replace(s, "<redacted>")
    return text


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_default)


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
    if hasattr(o, "content") and hasattr(o, "type"):  # a LangChain message
        return {"type": o.type, "content": o.content}
    return repr(o)


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Complete records of a JSONL file (a torn last line is skipped)."""
    if not path.is_file():
        return
    with path.open("rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            line = raw.strip()
            if line:
                yield json.loads(line)


def _cut_torn_tail(path: Path) -> int:
    """Truncate a JSONL file after its last complete, parseable line; return bytes removed."""
    if not path.is_file():
        return 0
    data = path.read_bytes()
    good = 0
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        line = data[pos:nl].strip()
        if line:
            try:
                json.loads(line)
            except json.JSONDecodeError:
                break
        good = nl + 1
        pos = nl + 1
    removed = len(data) - good
    if removed:
        with path.open("r+b") as f:
            f.truncate(good)
            f.flush()
            os.fsync(f.fileno())
    return removed


@dataclass
class Recovery:
    """What `RunStore.open` had to cut after a crash."""

    torn_bytes: int = 0
    orphan_decisions: int = 0


class RunStore:
    """Append-only records of one run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir)
        self._secrets = _secrets()
        self._dec = None
        self._epi = None
        self.recovery = Recovery()

    # -- manifest ---------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.dir / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def read_manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise StoreError(f"{self.manifest_path}: cannot read the manifest: {err}") from None

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.manifest_path.with_suffix(".json.tmp")
        tmp.write_text(
            redact(json.dumps(manifest, indent=2, ensure_ascii=False, default=_default), self._secrets) + "\n"
        )
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, self.manifest_path)

    def lock(self) -> None:
        """Hold an exclusive lock on the run directory until the process exits (two runners
        appending to one directory would interleave their records)."""
        import fcntl

        self.dir.mkdir(parents=True, exist_ok=True)
        self._lockf = (self.dir / ".lock").open("w")
        try:
            fcntl.flock(self._lockf.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lockf.close()
            raise StoreError(f"{self.dir}: another run is writing to this directory") from None

    # -- records ----------------------------------------------------------------------------
    def completed(self) -> dict[str, dict[str, Any]]:
        """Finished episodes by key."""
        return {r["key"]: r for r in read_jsonl(self.dir / EPISODES)}

    def episodes(self) -> list[dict[str, Any]]:
        return list(read_jsonl(self.dir / EPISODES))

    def decisions(self) -> list[dict[str, Any]]:
        return list(read_jsonl(self.dir / DECISIONS))

    def open(self) -> Recovery:
        """Repair after a crash, then open the record files for appending."""
        self.dir.mkdir(parents=True, exist_ok=True)
        rec = Recovery()
        rec.torn_bytes += _cut_torn_tail(self.dir / EPISODES)
        rec.torn_bytes += _cut_torn_tail(self.dir / DECISIONS)
        done = set(self.completed())
        dpath = self.dir / DECISIONS
        if dpath.is_file():
            data = dpath.read_bytes()
            offset, cut_at, orphans = 0, None, 0
            for raw in data.splitlines(keepends=True):
                rec_d = json.loads(raw) if raw.strip() else None
                if rec_d is not None and rec_d.get("episode") not in done:
                    if cut_at is None:
                        cut_at = offset
                    orphans += 1
                elif cut_at is not None:
                    raise StoreError(
                        f"{dpath}: decisions of an unfinished episode sit before finished ones at byte {cut_at}; "
                        "the file was edited or written by two runs at once"
                    )
                offset += len(raw)
            if cut_at is not None:
                with dpath.open("r+b") as f:
                    f.truncate(cut_at)
                    f.flush()
                    os.fsync(f.fileno())
            rec.orphan_decisions = orphans
        self._dec = (self.dir / DECISIONS).open("a", encoding="utf-8")
        self._epi = (self.dir / EPISODES).open("a", encoding="utf-8")
        self.recovery = rec
        return rec

    def append_episode(self, episode: Mapping[str, Any], decisions: Sequence[Mapping[str, Any]]) -> None:
        """Write one finished episode durably: its decisions, then its episode line."""
        if self._dec is None or self._epi is None:
            raise StoreError("RunStore.open() must be called before appending")
        text = "".join(redact(_dumps(d), self._secrets) + "\n" for d in decisions)
        self._dec.write(text)
        self._dec.flush()
        os.fsync(self._dec.fileno())
        self._epi.write(redact(_dumps(episode), self._secrets) + "\n")
        self._epi.flush()
        os.fsync(self._epi.fileno())

    def log_session(self, record: Mapping[str, Any]) -> None:
        with (self.dir / SESSIONS).open("a", encoding="utf-8") as f:
            f.write(redact(_dumps(record), self._secrets) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        for f in (self._dec, self._epi):
            if f is not None:
                f.close()
        self._dec = self._epi = None


def environment() -> dict[str, Any]:
    """Python, platform and package versions for the manifest (no environment variable values)."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
