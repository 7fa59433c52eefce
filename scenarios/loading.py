"""Read YAML data files into frozen pydantic models, with errors that name file and field."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = [
    "DATA_DIR",
    "MAX_FILE_BYTES",
    "ScenarioError",
    "load_yaml_model",
    "max_file_bytes",
    "parse_model",
    "read_yaml",
]

DATA_DIR = Path(__file__).parent / "data"
#: Largest scenario or config file read (bytes). Such files are small; a huge one is a mistake or an
#: attack on the parser. Raise it deliberately with the environment variable SVO_MAX_FILE_BYTES.
MAX_FILE_BYTES = 1_000_000


def max_file_bytes() -> int:
    raw = os.environ.get("SVO_MAX_FILE_BYTES")
    if raw is None:
        return MAX_FILE_BYTES
    try:
        return int(raw)
    except ValueError:
        raise ScenarioError(f"SVO_MAX_FILE_BYTES={raw!r} is not a number of bytes") from None


M = TypeVar("M", bound=BaseModel)


class ScenarioError(ValueError):
    """A scenario data file is missing, malformed or inconsistent."""


def _field_path(loc: tuple) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def parse_model(data: object, model: type[M], source: str) -> M:
    """Validate already-loaded data; on failure list every bad field of `source`."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = [f"{source}: invalid {model.__name__}:"]
        for e in err.errors():
            lines.append(f"  - field {_field_path(e['loc'])}: {e['msg']}")
        raise ScenarioError("\n".join(lines)) from None


def read_yaml(path: str | Path, error: type[Exception] = ScenarioError, what: str = "file") -> Any:
    """The parsed content of one YAML file; `error` (naming the path) if missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found")
    size, limit = path.stat().st_size, max_file_bytes()
    if size > limit:
        raise error(
            f"{path}: {what} is {size:,} bytes; the limit is {limit:,} (raise it deliberately with the "
            "environment variable SVO_MAX_FILE_BYTES)"
        )
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {err}") from None


def load_yaml_model(path: str | Path, model: type[M]) -> M:
    """Load one YAML file into `model`."""
    return parse_model(read_yaml(path), model, str(path))
