"""Read YAML data files into frozen pydantic models, with errors that name file and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["DATA_DIR", "ScenarioError", "load_yaml_model", "parse_model", "read_yaml"]

DATA_DIR = Path(__file__).parent / "data"

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
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise error(f"{path}: not valid YAML: {err}") from None


def load_yaml_model(path: str | Path, model: type[M]) -> M:
    """Load one YAML file into `model`."""
    return parse_model(read_yaml(path), model, str(path))
