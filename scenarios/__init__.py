"""Scenario data (instruments, values, prompts, dilemmas, personas) and its validation."""

from scenarios.instruments import (
    VALUE_NAMES,
    Instrument,
    Item,
    Value,
    instrument_ids,
    load_instrument,
    load_values,
    value,
)
from scenarios.loading import DATA_DIR, ScenarioError, load_yaml_model, parse_model

__all__ = [
    "DATA_DIR",
    "VALUE_NAMES",
    "Instrument",
    "Item",
    "ScenarioError",
    "Value",
    "instrument_ids",
    "load_instrument",
    "load_values",
    "load_yaml_model",
    "parse_model",
    "value",
]
