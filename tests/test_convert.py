"""The converted copy of the embedded GGUF is a standard Hugging Face checkpoint that any loader reads.

The local backend dequantises the GGUF once and writes a safetensors copy. An earlier layout
stored the tied head only (`lm_head.weight` under `tie_word_embeddings: true`): transformers
loaded it, but loaders that follow the tie (vLLM) found no embedding and gave uniform log-probs.
Here a fresh conversion is loaded with plain `AutoModelForCausalLM.from_pretrained` (no GGUF, no
project code) and its logits are compared with the GGUF read directly by transformers and with
the local backend's model.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from agents.llm.local import (  # noqa: E402
    CONVERT_VERSION,
    converted_model_path,
    embedded_model_path,
    load_model,
)

pytestmark = pytest.mark.slow

TEXT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {
        "role": "user",
        "content": "Choose A or B. A gives you 85 and the other 85; B gives you 100 and the other 50.",
    },
]


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory):
    """A conversion written now, into an empty cache (not a copy left by an earlier version)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SVO_CACHE", str(tmp_path_factory.mktemp("svo-cache")))
    try:
        yield converted_model_path("embedded")
    finally:
        mp.undo()


def _logits(model, tokenizer) -> torch.Tensor:
    enc = tokenizer.apply_chat_template(
        TEXT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        return model(input_ids=enc["input_ids"]).logits[0].float()


def test_copy_is_a_standard_checkpoint(fresh_copy):
    from safetensors import safe_open

    assert fresh_copy.name.endswith(f"-v{CONVERT_VERSION}")
    files = sorted(p.name for p in fresh_copy.iterdir())
    for name in ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json"):
        assert name in files
    with safe_open(str(fresh_copy / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        embed = f.get_tensor("model.embed_tokens.weight")
    assert "lm_head.weight" not in keys  # tied: stored once, under the embedding's name
    config = json.loads((fresh_copy / "config.json").read_text())
    assert config["tie_word_embeddings"] is True and "quantization_config" not in config
    assert embed.shape == (config["vocab_size"], config["hidden_size"])
    assert json.loads((fresh_copy / "svo-complete.json").read_text())["version"] == CONVERT_VERSION


def test_plain_loader_gives_the_gguf_and_backend_logits(fresh_copy):
    tok = transformers.AutoTokenizer.from_pretrained(fresh_copy)
    plain = transformers.AutoModelForCausalLM.from_pretrained(fresh_copy).eval()
    gguf = embedded_model_path()
    direct = transformers.AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    ).eval()
    backend_model, backend_tok, _ = load_model("embedded", device="cpu", dtype="float32")
    assert plain.lm_head.weight.data_ptr() == plain.model.embed_tokens.weight.data_ptr()  # tied on load
    ref = _logits(direct, tok)
    got = _logits(plain, tok)
    assert torch.equal(got, ref)  # same float32 weights, same code: bit for bit
    assert torch.allclose(_logits(backend_model, backend_tok), ref, atol=1e-4, rtol=0)
    # a uniform distribution (the old copy under vLLM) would have a spread of 0
    assert float(ref[-1].max() - ref[-1].min()) > 10
