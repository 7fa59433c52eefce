"""SVO instruments and value orientations as validated data (see scenarios/data/)."""

from __future__ import annotations

from functools import cache
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenarios.loading import DATA_DIR, ScenarioError, load_yaml_model

__all__ = [
    "VALUE_NAMES",
    "Instrument",
    "Item",
    "Value",
    "instrument_ids",
    "load_instrument",
    "load_values",
    "value",
]

VALUE_NAMES = ("altruistic", "prosocial", "individualistic", "competitive")
SECONDARY_TYPES = ("inequality_aversion", "joint_gain", "individualistic", "altruistic")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Item(_Frozen):
    """One decision: a list of (self, other) allocations."""

    id: int = Field(ge=1)
    options: tuple[tuple[float, float], ...] = Field(min_length=2)
    primary: bool = True
    ends: tuple[str, str] | None = None
    ideal: dict[str, int | None] | None = None
    types: tuple[str, ...] | None = None

    @model_validator(mode="after")
    def _check(self) -> Item:
        n = len(self.options)
        if self.ends is not None:
            bad = [e for e in self.ends if e not in VALUE_NAMES]
            if bad:
                raise ValueError(f"ends {bad} unknown; allowed: {list(VALUE_NAMES)}")
        if self.ideal is not None:
            for name, k in self.ideal.items():
                if name not in SECONDARY_TYPES:
                    raise ValueError(f"ideal type {name!r} unknown; allowed: {list(SECONDARY_TYPES)}")
                if k is not None and not 1 <= k <= n:
                    raise ValueError(f"ideal option {k} for {name!r} outside 1..{n}")
        if self.types is not None:
            if len(self.types) != n:
                raise ValueError(f"types has {len(self.types)} entries for {n} options")
            bad = [t for t in self.types if t not in VALUE_NAMES]
            if bad:
                raise ValueError(f"types {bad} unknown; allowed: {list(VALUE_NAMES)}")
        return self


class Instrument(_Frozen):
    """A questionnaire of allocation items and how it is scored."""

    id: str
    name: str
    source: str
    centre: float = 50.0
    scoring: Literal["slider", "triple_dominance"]
    min_consistent: int | None = None
    items: tuple[Item, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Instrument:
        ids = [it.id for it in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate item ids in {ids}")
        widths = {len(it.options) for it in self.items}
        if len(widths) != 1:
            raise ValueError(f"all items need the same number of options, got {sorted(widths)}")
        if self.scoring == "slider":
            if not any(it.primary and it.ends for it in self.items):
                raise ValueError("a slider instrument needs primary items with `ends`")
        if self.scoring == "triple_dominance":
            if any(it.types is None for it in self.items):
                raise ValueError("every triple-dominance item needs `types`")
            if self.min_consistent is None:
                raise ValueError("triple-dominance scoring needs `min_consistent`")
        return self

    @property
    def n_options(self) -> int:
        return len(self.items[0].options)

    def payoffs(self) -> np.ndarray:
        """All allocations, shape (n_items, n_options, 2) as [self, other]."""
        return np.array([it.options for it in self.items], dtype=np.float64)

    def subset(self, which: Literal["all", "primary"]) -> Instrument:
        """The instrument restricted to its primary items, or unchanged."""
        if which == "all":
            return self
        items = tuple(it for it in self.items if it.primary)
        return self.model_copy(update={"id": f"{self.id}_primary", "items": items})


Utility = Literal[
    "maximise_self",
    "maximise_other",
    "maximise_joint",
    "maximise_difference",
    "minimise_inequality",
    "minimise_other",
]


class Value(_Frozen):
    """A social value orientation an agent can be told to pursue."""

    name: str
    prompt_name: str
    utility: Utility
    tie_break: Utility
    interval: tuple[float | None, float | None]
    motive_angle: float = Field(ge=-180, le=180)

    def bounds(self) -> tuple[float, float]:
        lo, hi = self.interval
        return (-np.inf if lo is None else lo, np.inf if hi is None else hi)


class _Values(_Frozen):
    values: tuple[Value, ...]

    @model_validator(mode="after")
    def _check(self) -> _Values:
        names = [v.name for v in self.values]
        if sorted(names) != sorted(VALUE_NAMES):
            raise ValueError(f"values must be exactly {list(VALUE_NAMES)}, got {names}")
        return self


def instrument_ids() -> list[str]:
    """Ids of the shipped instruments (file names in scenarios/data/instruments)."""
    return sorted(p.stem for p in (DATA_DIR / "instruments").glob("*.yaml"))


@cache
def load_instrument(instrument_id: str) -> Instrument:
    """Load a shipped instrument by id."""
    if instrument_id not in instrument_ids():
        raise ScenarioError(f"unknown instrument {instrument_id!r}; allowed: {instrument_ids()}")
    inst = load_yaml_model(DATA_DIR / "instruments" / f"{instrument_id}.yaml", Instrument)
    if inst.id != instrument_id:
        raise ScenarioError(
            f"instruments/{instrument_id}.yaml: field id is {inst.id!r}, must match file name"
        )
    return inst


@cache
def load_values() -> dict[str, Value]:
    """The four value orientations, by name."""
    vals = load_yaml_model(DATA_DIR / "values.yaml", _Values)
    return {v.name: v for v in vals.values}


def value(name: str) -> Value:
    """One value orientation by name, with an error that lists the allowed names."""
    vals = load_values()
    if name not in vals:
        raise ScenarioError(f"unknown value {name!r}; allowed: {list(VALUE_NAMES)}")
    return vals[name]
