"""The `vllm:` spec without vLLM: its options are checked, and a missing vllm names the extra.

The backend itself is tested against the local engine in tests/test_vllm.py (needs vllm).
"""

from __future__ import annotations

import sys

import pytest

from agents.llm import make_backend
from agents.llm.factory import SPEC_FORMS, BackendSpecError
from agents.llm.vllm_backend import VLLM_OPTIONS, VLLMBackend


def test_spec_form_is_listed():
    assert "vllm:PATH_OR_NAME" in SPEC_FORMS


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("vllm:embedded?dtype=float64", "option dtype='float64' is not valid; allowed: auto, float32"),
        ("vllm:embedded?batch=4", "unknown vllm option 'batch'; allowed: dtype, max_model_len"),
        ("vllm:embedded?enforce_eager=maybe", "option enforce_eager='maybe' is not valid"),
        ("vllm:embedded?", "nothing after '?'"),
    ],
)
def test_bad_options_are_named_before_vllm_is_needed(monkeypatch, spec, message):
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed: options fail first
    with pytest.raises(BackendSpecError, match=message.replace("?", r"\?").replace("(", r"\(")):
        make_backend(spec)


def test_missing_vllm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[vllm\]"'):
        make_backend("vllm:embedded?dtype=float32&max_model_len=2048")


def test_options_parse_to_backend_arguments():
    assert VLLM_OPTIONS["enforce_eager"]("1") is True and VLLM_OPTIONS["max_model_len"]("2048") == 2048
    params = VLLMBackend.__init__.__code__.co_varnames
    assert set(VLLM_OPTIONS) <= set(params)


def test_bad_dtype_and_missing_folder_fail_before_loading(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", object())  # never reached
    with pytest.raises(ValueError, match="dtype 'int8'"):
        VLLMBackend("embedded", dtype="int8")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        VLLMBackend(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="expected 'embedded', a .gguf file"):
        VLLMBackend(str(tmp_path / "missing"))
