"""Scenario data: every shipped file loads; malformed files fail with file and field named."""

import pytest

from scenarios import ScenarioError, instrument_ids, load_instrument, load_values, load_yaml_model
from scenarios.instruments import Instrument


def test_every_shipped_instrument_loads():
    ids = instrument_ids()
    assert {"slider", "triple_dominance"} <= set(ids)
    for i in ids:
        inst = load_instrument(i)
        assert inst.id == i


def test_values_are_the_four_orientations():
    assert sorted(load_values()) == ["altruistic", "competitive", "individualistic", "prosocial"]


def test_unknown_instrument_lists_allowed():
    with pytest.raises(ScenarioError, match="allowed.*slider"):
        load_instrument("ring")


@pytest.mark.parametrize(
    "body,field,what",
    [
        ("items:\n  - {id: 1, options: [[1,2],[3,4]], ends: [prosocial, selfish]}\n", "items[0]", "selfish"),
        ("items:\n  - {id: 1, options: [[1,2]]}\n", "items[0].options", "at least 2"),
        ("items:\n  - {id: 1, options: [[1,2],[3,'x']]}\n", "items[0].options", "number"),
        ("items:\n  - {id: 1, options: [[1,2],[3,4]], colour: red}\n", "items[0].colour", "Extra inputs"),
    ],
)
def test_malformed_instrument_names_file_and_field(tmp_path, body, field, what):
    f = tmp_path / "bad.yaml"
    f.write_text("id: bad\nname: Bad\nsource: test\nscoring: slider\n" + body)
    with pytest.raises(ScenarioError) as err:
        load_yaml_model(f, Instrument)
    msg = str(err.value)
    assert str(f) in msg and field in msg and what in msg


def test_missing_and_unparseable_files(tmp_path):
    with pytest.raises(ScenarioError, match="file not found"):
        load_yaml_model(tmp_path / "nope.yaml", Instrument)
    f = tmp_path / "broken.yaml"
    f.write_text("id: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_yaml_model(f, Instrument)
