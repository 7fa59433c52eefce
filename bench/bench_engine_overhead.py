"""The engine's own per-row work (bookkeeping around the model), by batch size: what a GPU would expose.

On a GPU the model's forward pass for thousands of rows takes milliseconds, so the engine's Python
work per row (looking up and storing prefixes, building the padded batch, copying cached keys and
values in and out) bounds decisions/s. This measures it on any machine: a random-weight tiny Llama
(the SmolLM2 family at 2 layers, width 64, built by bench_llm_gpu.build) makes the forward pass cheap, and the time spent inside the model's forward is
timed separately, so "engine" is everything else the engine does per step.

Workload: R conversations share a 300-token prefix and own 200 tokens each, then grow by 40 new
tokens per step (an item round); each step is one `end_logprobs` call with prefix reuse.

    python bench/bench_engine_overhead.py                 # CPU, R = 64, 256, 1024
    python bench/bench_engine_overhead.py --device cuda   # the same on a GPU
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def measure(rows_n: int, steps: int, device: str) -> dict[str, float]:
    import numpy as np
    import torch
    from bench_llm_gpu import build  # the GPU benchmark's random-weight models; smoke = tiny sizes

    from agents.llm._engine import PrefixCachingEngine

    model = build("SmolLM2-135M", smoke=True, device=device, dtype=torch.float32)
    inner = {"s": 0.0}
    forward = model.forward

    @functools.wraps(forward)  # keeps the signature the engine inspects
    def timed(*a, **k):  # noqa: ANN002, ANN003, ANN202
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = forward(*a, **k)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        inner["s"] += time.perf_counter() - t
        return out

    model.forward = timed
    rng = np.random.default_rng(0)
    base = rng.integers(3, 500, 300)
    rows = [np.concatenate([base, rng.integers(3, 500, 200)]) for _ in range(rows_n)]
    engine = PrefixCachingEngine(model, max_batch_tokens=1 << 24, max_cache_bytes=1 << 34)
    engine.end_logprobs(rows, range(9))
    total = 0.0
    inner["s"] = 0.0
    for _ in range(steps):
        rows = [np.concatenate([r, rng.integers(3, 500, 40)]) for r in rows]
        t = time.perf_counter()
        engine.end_logprobs(rows, range(9))
        total += time.perf_counter() - t
    per_row = total / steps / rows_n
    model_per_row = inner["s"] / steps / rows_n
    return {
        "rows": rows_n,
        "step_s": total / steps,
        "engine_us_per_row": 1e6 * (per_row - model_per_row),
        "model_us_per_row": 1e6 * model_per_row,
        "engine_share": (per_row - model_per_row) / per_row,
        "store_entries": len(engine.store),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[64, 256, 1024])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    results = [measure(n, args.steps, args.device) for n in args.rows]
    print(
        "| rows | step s | engine us/row | model us/row | engine share | x engine us/row at the smallest R |"
    )
    print("|---|---|---|---|---|---|")
    first = results[0]["engine_us_per_row"]
    for r in results:
        print(
            f"| {r['rows']} | {r['step_s']:.3f} | {r['engine_us_per_row']:.0f} | {r['model_us_per_row']:.0f} | "
            f"{100 * r['engine_share']:.0f}% | {r['engine_us_per_row'] / first:.2f} |"
        )
    print(
        "\nA constant engine us/row across R means the bookkeeping is linear in the rows; at N us/row the "
        "engine alone caps a step at 1e6/N decisions/s, whatever the model's speed."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
