"""GPU benchmark: random-weight SmolLM2-135M, Qwen2.5-1.5B and Llama-3-8B architectures, bf16, sdpa.

No files and no tokenizer: models are built from literal configs and prompts are random token ids
of the right lengths (throughput does not depend on weight values or token identities). Every
mode goes through this project's engine (agents.llm._engine.PrefixCachingEngine, what
LocalBackend runs):

- sequential generate: one 512-token prompt at a time, 16 new tokens (the paper-style loop);
- batched generate: many 512-token prompts together, 16 new tokens each;
- batched logprob: one forward pass per 512-token decision, the letters' log-probs read at the end;
- protocol logprob, without and with prefix reuse: the paper protocol's real shapes (value
  induction prefix ~60 tokens shared per value, a 256-token description, role 31, goal prompt 108 +
  goal 30 when on, then six ~154-token items, each answered by a letter), 4 values x goal on/off x
  many trials, decisions/s over the six item calls.

Then the full paper protocol on the 8B architecture: 4 values x goal on/off x 10 trials x 6 items
in log-prob mode with reuse, plus the value-induction (256 tokens) and goal (64 tokens)
generations, as wall time. Each row reports decisions/s, achieved TFLOP/s (2 x non-embedding
parameters x tokens computed / s) and the fraction of the bf16 matmul peak measured here first.

    python bench/bench_llm_gpu.py               # on one H100/H200, about 3-6 minutes
    python bench/bench_llm_gpu.py --cpu-smoke   # tiny configs on CPU: checks the script's logic
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Literal architecture configs (no hub access). Values from the models' published config.json files.
ARCHS: dict[str, tuple[str, dict[str, Any]]] = {
    "SmolLM2-135M": (
        "llama",
        dict(
            vocab_size=49152,
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            max_position_embeddings=8192,
            rms_norm_eps=1e-5,
            tie_word_embeddings=True,
            rope_theta=100000.0,
        ),
    ),
    "Qwen2.5-1.5B": (
        "qwen2",
        dict(
            vocab_size=151936,
            hidden_size=1536,
            intermediate_size=8960,
            num_hidden_layers=28,
            num_attention_heads=12,
            num_key_value_heads=2,
            max_position_embeddings=32768,
            rms_norm_eps=1e-6,
            tie_word_embeddings=True,
            rope_theta=1000000.0,
        ),
    ),
    "Llama-3-8B": (
        "llama",
        dict(
            vocab_size=128256,
            hidden_size=4096,
            intermediate_size=14336,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=8192,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
            rope_theta=500000.0,
        ),
    ),
}

# Per architecture: sequential decisions, generate batch, logprob rows (512 tokens), protocol trials.
PLAN = {
    "SmolLM2-135M": dict(seq=4, gen_batch=256, lp_rows=4096, lp_batch=1024, trials=64),
    "Qwen2.5-1.5B": dict(seq=3, gen_batch=256, lp_rows=1024, lp_batch=512, trials=24),
    "Llama-3-8B": dict(seq=2, gen_batch=128, lp_rows=512, lp_batch=256, trials=10),
}
SMOKE_PLAN = dict(seq=2, gen_batch=4, lp_rows=16, lp_batch=8, trials=2)

PROMPT, NEW = 512, 16
SHAPES = dict(prefix=60, description=256, role=31, goal_prompt=108, goal=30, item=154, answer=3, goal_gen=64)
VALUES = 4
LETTERS = 9


def build(name: str, smoke: bool, device: str, dtype: Any) -> Any:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

    family, cfg = ARCHS[name]
    cfg = dict(cfg)
    if smoke:  # same family, tiny sizes
        cfg.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, vocab_size=512)
        cfg.update(num_attention_heads=4, num_key_value_heads=2 if cfg["num_key_value_heads"] < 32 else 4)
    theta = cfg.pop("rope_theta")
    cls = LlamaConfig if family == "llama" else Qwen2Config
    config = cls(**cfg, rope_parameters={"rope_type": "default", "rope_theta": theta})
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    return model.eval()


def non_embedding_params(model: Any) -> int:
    return sum(
        p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n and "lm_head" not in n
    )


def matmul_peak(device: str, dtype: Any, n: int, reps: int) -> float:
    """Measured dense matmul TFLOP/s at n x n x n."""
    import torch

    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e12


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def protocol(rng: np.random.Generator, vocab: int, trials: int) -> list[dict[str, Any]]:
    """Episodes with random token ids of the protocol's shapes (see module docstring)."""
    prefixes = [rng.integers(10, vocab, SHAPES["prefix"]) for _ in range(VALUES)]
    role = rng.integers(10, vocab, SHAPES["role"])
    goal_prompt = rng.integers(10, vocab, SHAPES["goal_prompt"])
    out = []
    for v in range(VALUES):
        for goal in (True, False):
            for t in range(trials):
                out.append(
                    {
                        "value": v,
                        "goal": goal,
                        "prefix": prefixes[v],
                        "role": role,
                        "goal_prompt": goal_prompt,
                        "seed": 1000 * v + 10 * t + int(goal),
                        "items": [rng.integers(10, vocab, SHAPES["item"]) for _ in range(6)],
                        "answers": [rng.integers(10, vocab, SHAPES["answer"]) for _ in range(6)],
                        "description": rng.integers(10, vocab, SHAPES["description"]),
                        "goal_text": rng.integers(10, vocab, SHAPES["goal"]),
                    }
                )
    return out


def setup_rows(eps: list[dict[str, Any]]) -> list[np.ndarray]:
    """Each episode's conversation before item 1 (description and goal as given token ids)."""
    rows = []
    for e in eps:
        parts = [e["prefix"], e["description"], e["role"]]
        if e["goal"]:
            parts += [e["goal_prompt"], e["goal_text"]]
        rows.append(np.concatenate(parts))
    return rows


def run_items(
    engine: Any, rows: list[np.ndarray], eps: list[dict[str, Any]], device: str
) -> tuple[float, int]:
    """The six item calls (log-prob mode); returns (seconds, decisions)."""
    letters = list(range(10, 10 + LETTERS))
    sync(device)
    t = time.perf_counter()
    for k in range(6):
        rows = [np.concatenate([r, e["items"][k]]) for r, e in zip(rows, eps, strict=True)]
        engine.end_logprobs(rows, letters)
        rows = [np.concatenate([r, e["answers"][k]]) for r, e in zip(rows, eps, strict=True)]
    sync(device)
    return time.perf_counter() - t, 6 * len(eps)


def measure_arch(name: str, args: argparse.Namespace, peak: float) -> list[dict[str, Any]]:
    import torch

    from agents.llm._engine import PrefixCachingEngine, RowSampling

    plan = SMOKE_PLAN if args.cpu_smoke else PLAN[name]
    t_build = time.perf_counter()
    model = build(name, args.cpu_smoke, args.device, args.dtype)
    sync(args.device)
    build_s = time.perf_counter() - t_build
    n_params = non_embedding_params(model)
    vocab = model.config.vocab_size
    rng = np.random.default_rng(0)
    out: list[dict[str, Any]] = []

    def row(mode: str, decisions: int, seconds: float, tokens: int, **extra: Any) -> None:
        tflops = 2 * n_params * tokens / seconds / 1e12
        out.append(
            {
                "arch": name,
                "mode": mode,
                "decisions": decisions,
                "seconds": seconds,
                "decisions_per_s": decisions / seconds,
                "tokens": tokens,
                "tflops": tflops,
                "peak_fraction": tflops / peak,
                **extra,
            }
        )
        print(f"  {name:13s} {mode:32s} {decisions / seconds:10.1f} /s  {tflops:8.1f} TFLOP/s", flush=True)

    total = torch.cuda.get_device_properties(0).total_memory if args.device.startswith("cuda") else 4 << 30

    def engine(cache: bool, batch_tokens: int, lm: Any = model) -> PrefixCachingEngine:
        return PrefixCachingEngine(
            lm, max_batch_tokens=batch_tokens, prefix_cache=cache, max_cache_bytes=int(total * 0.3)
        )

    greedy = RowSampling(temperature=0.0, max_new_tokens=NEW)
    # warm-up (kernels, allocator)
    warm = engine(False, 1 << 30)
    warm.end_logprobs([rng.integers(10, vocab, PROMPT) for _ in range(4)], [10])
    warm.generate([rng.integers(10, vocab, PROMPT)], [RowSampling(0.0, 1.0, 2)], eos_ids=[])
    del warm

    # 1. sequential generate (paper-style), batch 1
    e = engine(False, 1 << 30)
    prompts = [rng.integers(10, vocab, PROMPT) for _ in range(plan["seq"])]
    sync(args.device)
    t = time.perf_counter()
    for p in prompts:
        e.generate([p], [greedy], eos_ids=[])
    sync(args.device)
    row("sequential generate (512+16)", len(prompts), time.perf_counter() - t, len(prompts) * (PROMPT + NEW))

    # 2. batched generate
    b = plan["gen_batch"]
    prompts = [rng.integers(10, vocab, PROMPT) for _ in range(b)]
    e = engine(False, b * (PROMPT + NEW))
    sync(args.device)
    t = time.perf_counter()
    e.generate(prompts, [greedy] * b, eos_ids=[])
    sync(args.device)
    row(f"batched generate (512+16, b={b})", b, time.perf_counter() - t, b * (PROMPT + NEW))

    # 3. batched logprob on 512-token prompts
    n, lb = plan["lp_rows"], plan["lp_batch"]
    prompts = [rng.integers(10, vocab, PROMPT) for _ in range(n)]
    e = engine(False, lb * PROMPT)
    sync(args.device)
    t = time.perf_counter()
    e.end_logprobs(prompts, list(range(10, 10 + LETTERS)))
    sync(args.device)
    row(f"batched logprob (512, b={lb})", n, time.perf_counter() - t, n * PROMPT)
    del prompts

    # 4. protocol shapes, without and with prefix reuse
    eps = protocol(rng, vocab, plan["trials"])
    for cache in (False, True):
        e = engine(cache, lb * PROMPT)
        rows = setup_rows(eps)
        if cache:
            e.end_logprobs(rows, [10])  # the setup conversation is in the cache, as after the generations
        e.reset_stats()
        seconds, decisions = run_items(e, rows, eps, args.device)
        st = e.stats
        label = "protocol logprob + prefix reuse" if cache else "protocol logprob, no reuse"
        row(
            label,
            decisions,
            seconds,
            st.computed_tokens + st.padded_tokens,
            prompt_tokens=st.prompt_tokens,
            computed_tokens=st.computed_tokens,
            savings=st.savings,
            episodes=len(eps),
        )
        del e
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()

    # 5. full paper protocol (8B): generations + items, wall time
    if name == "Llama-3-8B" or (args.cpu_smoke and name == args.archs[-1]):
        out.append(full_protocol(model, name, args, n_params, peak, vocab))
    for r in out:
        r["build_s"] = build_s
        r["non_embedding_params"] = n_params
    del model
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return out


def full_protocol(
    model: Any, name: str, args: argparse.Namespace, n_params: int, peak: float, vocab: int
) -> dict:
    """4 values x goal on/off x 10 trials: induction (256) and goal (64) generations, 6 log-prob items."""
    import torch

    from agents.llm._engine import PrefixCachingEngine, RowSampling

    trials = 2 if args.cpu_smoke else 10
    induction_tokens = 8 if args.cpu_smoke else 256
    goal_tokens = 4 if args.cpu_smoke else SHAPES["goal_gen"]
    rng = np.random.default_rng(1)
    eps = protocol(rng, vocab, trials)
    total = torch.cuda.get_device_properties(0).total_memory if args.device.startswith("cuda") else 4 << 30
    e = PrefixCachingEngine(model, max_batch_tokens=256 * PROMPT, max_cache_bytes=int(total * 0.3))
    sync(args.device)
    t = time.perf_counter()
    # value induction: every trial of a value shares the prompt (one prefill), sampled per trial
    conv = [e_["prefix"] for e_ in eps]
    samp = [RowSampling(1.0, 1.0, induction_tokens, seed=e_["seed"]) for e_ in eps]
    desc = e.generate(conv, samp, eos_ids=[])
    conv = [
        np.concatenate([c, np.asarray(d, dtype=np.int64), e_["role"]])
        for c, d, e_ in zip(conv, desc, eps, strict=True)
    ]
    g = [i for i, e_ in enumerate(eps) if e_["goal"]]
    gconv = [np.concatenate([conv[i], eps[i]["goal_prompt"]]) for i in g]
    goals = e.generate(
        gconv, [RowSampling(1.0, 1.0, goal_tokens, seed=eps[i]["seed"] + 7) for i in g], eos_ids=[]
    )
    for i, c, gt in zip(g, gconv, goals, strict=True):
        conv[i] = np.concatenate([c, np.asarray(gt, dtype=np.int64)])
    sync(args.device)
    setup_s = time.perf_counter() - t
    item_s, decisions = run_items(e, conv, eps, args.device)
    wall = time.perf_counter() - t
    st = e.stats
    tokens = st.computed_tokens + st.padded_tokens + st.generated_tokens
    tflops = 2 * n_params * tokens / wall / 1e12
    print(
        f"  {name:13s} full paper protocol: {wall:.1f} s (setup generations {setup_s:.1f} s, items {item_s:.1f} s)",
        flush=True,
    )
    return {
        "arch": name,
        "mode": "full paper protocol (logprob + reuse, with generations)",
        "decisions": decisions,
        "seconds": wall,
        "setup_s": setup_s,
        "item_s": item_s,
        "decisions_per_s": decisions / wall,
        "tokens": tokens,
        "tflops": tflops,
        "peak_fraction": tflops / peak,
        "episodes": len(eps),
        "savings": st.savings,
    }


TARGETS = [
    ("SmolLM2-135M", "batched logprob", 1500.0),
    ("SmolLM2-135M", "protocol logprob + prefix reuse", 3000.0),
    ("Llama-3-8B", "batched logprob", 60.0),
]


def report(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [
        f"device: {info['device']}; bf16 matmul peak measured: {info['peak_tflops']:.0f} TFLOP/s",
        "",
        "| architecture | mode | decisions/s | x sequential | TFLOP/s | of peak |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        base = next(x for x in rows if x["arch"] == r["arch"] and x["mode"].startswith("sequential"))
        lines.append(
            f"| {r['arch']} | {r['mode']} | {r['decisions_per_s']:.1f} | "
            f"{r['decisions_per_s'] / base['decisions_per_s']:.0f} | {r['tflops']:.1f} | {100 * r['peak_fraction']:.0f}% |"
        )
    lines.append("")
    for arch, mode, target in TARGETS:
        got = next((r for r in rows if r["arch"] == arch and r["mode"].startswith(mode)), None)
        if got is not None:
            rate = got["decisions_per_s"]
            verdict = "met" if rate >= target else f"missed by {100 * (1 - rate / target):.0f}%"
            lines.append(f"target {arch} {mode} >= {target:.0f}/s: {rate:.1f}/s ({verdict})")
    full = next((r for r in rows if r["mode"].startswith("full paper")), None)
    if full is not None:
        lines.append(
            f"target {full['arch']} full paper protocol < 30 s: {full['seconds']:.1f} s "
            f"({'met' if full['seconds'] < 30 else 'missed'})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu-smoke", action="store_true", help="tiny configs on CPU (float32): checks the logic")
    p.add_argument("--archs", nargs="+", choices=list(ARCHS), default=list(ARCHS))
    p.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "llm_gpu.json")
    args = p.parse_args(argv)
    import torch

    if args.cpu_smoke:
        args.device, args.dtype = "cpu", torch.float32
        peak = matmul_peak("cpu", torch.float32, 256, 5)
        device = f"CPU smoke test ({platform.machine()}), tiny configs, float32: NOT a measurement"
    else:
        if not torch.cuda.is_available():
            p.error("no CUDA device; use --cpu-smoke to check the script on CPU")
        args.device, args.dtype = "cuda", torch.bfloat16
        torch.backends.cuda.matmul.allow_tf32 = True
        peak = matmul_peak("cuda", torch.bfloat16, 8192, 50)
        device = torch.cuda.get_device_name(0)
    print(f"{device}: matmul peak {peak:.1f} TFLOP/s", flush=True)
    info = {
        "device": device,
        "peak_tflops": peak,
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with torch.inference_mode():
        for name in args.archs:
            rows += measure_arch(name, args, peak)
    info["total_s"] = time.perf_counter() - t0
    text = report(rows, info)
    print()
    print(text)
    print(f"\ntotal {info['total_s']:.0f} s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"info": info, "rows": rows}, indent=1))
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
