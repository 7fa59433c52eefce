"""What the run summaries claim about validity, checked against agents whose truth is known: every
summary (md, csv, json) and the angle plot carry the null bands and the two null tests; a
position-probe agent reads as letter-following in the summary itself; the letter-prior correction
recovers the option preferences of a simulated model with a known letter bias."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from agents.llm.backend import Backend, Generation
from runs.evaluate import main
from scenarios import load_instrument
from scoring.svo import svo_angle


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_every_summary_carries_null_bands_and_tests(tmp_path):
    run = tmp_path / "r"
    assert main(["--run-dir", str(run), "--no-progress", "--agents", "scripted:always:0", "scripted:ideal:prosocial",
                 "--values", "prosocial", "--goal", "off", "--orders", "fixed", "reversed", "--trials", "3"]) == 0  # fmt: skip
    s = _summary(run)
    for c in s["cells"]:
        uni = c["null"]["uniform"]
        assert uni["mean"] == pytest.approx(22.70, abs=0.01) and uni["band"][0] < uni["mean"] < uni["band"][1]
        first = c["null"]["letter A"]["mean"]
        assert first == pytest.approx(30.47 if c["order"] == "fixed" else 14.74, abs=0.01)
        assert c["random_test"]["p_value"] is not None and c["letter_test"]["verdict"]
    verdict = {c["agent"]: c["letter_test"]["verdict"] for c in s["cells"]}
    assert verdict == {
        "scripted:always:0": "letter-following",
        "scripted:ideal:prosocial": "option-following",
    }
    md = (run / "summary.md").read_text()
    assert "## What the null models say" in md
    assert re.search(r"`scripted:always:0`.*letter-following.*follow the letter shown", md)
    assert "random 22.7 [" in md and "always A 30.5" in md and "always A 14.7" in md
    rows = list(csv.DictReader((run / "summary.csv").open()))
    assert {r["letter_verdict"] for r in rows} == {"letter-following", "option-following"}
    assert all(float(r["null_uniform_lo"]) < 22.7 < float(r["null_uniform_hi"]) for r in rows)
    (b,) = [b for b in s["position_bias"] if b["agent"] == "scripted:always:0"]
    # identical trials of a deterministic agent count once: one pair, no test, and the summary says so
    assert b["index"] == pytest.approx(15.73, abs=0.02) and b["test"] is None and b["index_ci_reason"]
    assert (run / "angles.png").stat().st_size > 10_000


def test_no_zero_width_interval_is_printed_as_95_percent(tmp_path):
    run = tmp_path / "r"
    assert main(["--run-dir", str(run), "--no-progress", "--agents", "scripted:ideal:prosocial", "--values",
                 "prosocial", "--goal", "off", "--orders", "permuted", "--trials", "4"]) == 0  # fmt: skip
    (c,) = _summary(run)["cells"]
    assert c["angle_ci"] is None and c["angle_ci_reason"] == "no variation in n=4"
    assert "37.5 (no variation in n=4)" in (run / "summary.md").read_text()


class _BiasedModel(Backend):
    """A simulated model with known truth: it prefers options by a softmax of
    cos(t) self + sin(t) other at `angle`, and multiplies the probability of each letter by a known
    prior (letter A strongly favoured). It reads the options from the item prompt it is shown."""

    model_id = "simulated-biased"

    def __init__(self, angle: float, temperature: float, prior: np.ndarray) -> None:
        self.t, self.temp, self.prior = math.radians(angle), temperature, prior

    def generate(self, conversations, sampling):
        return [Generation("I aim for fairness.") for _ in conversations]

    def choice_logprobs(self, conversations, choices):
        out = []
        for conv in conversations:
            text = conv[-1].content
            pay = [tuple(map(float, m)) for m in re.findall(r"^[A-I]: (\d+), (\d+)$", text, flags=re.M)]
            u = np.array([math.cos(self.t) * a + math.sin(self.t) * b for a, b in pay]) / self.temp
            logp = u - u.max() + np.log(self.prior[: len(pay)])
            logp -= np.log(np.exp(logp).sum())
            out.append({c: float(logp[i]) for i, c in enumerate(choices)})
        return out

    def describe(self):
        return {"model_id": self.model_id}


def test_letter_prior_correction_recovers_a_known_preference(tmp_path):
    from agents.llm import GoalPromptedPolicy
    from runs.agents import BuiltAgent
    from runs.evaluate import build_parser, resolve
    from runs.evaluate import run as run_grid
    from runs.report import write_reports
    from runs.store import RunStore

    prior = np.array([6.0, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0])
    prior /= prior.sum()
    backend = _BiasedModel(angle=45.0, temperature=2.0, prior=prior)
    args = ["--run-dir", str(tmp_path / "r"), "--agents", "llm:simulated", "--values", "prosocial", "--goal", "off",
            "--orders", "fixed", "reversed", "permuted", "--trials", "6"]  # fmt: skip
    config, run_dir, _ = resolve(build_parser().parse_args(args))
    store, _ = RunStore.claim(run_dir, config=config.model_dump(mode="json"), resume_view=config.resume_view(),
                              manifest={"config": config.model_dump(mode="json")}, session={})  # fmt: skip
    policy = GoalPromptedPolicy(backend=backend, mode="logprob")
    try:
        run_grid(config, store, {"llm:simulated": BuiltAgent("llm:simulated", policy)}, progress=False)
        s = write_reports(run_dir, plots=False, store=store)
    finally:
        store.close()
    est = s["letter_prior"]["llm:simulated"]
    assert est["identified"], est["reason"]
    assert np.allclose(est["prior"], prior, atol=0.02), (est["prior"], prior.round(3))
    # the truth: the expected allocation of the unbiased softmax at 45 degrees, per primary item
    items = load_instrument("slider").subset("primary").payoffs()
    u = (np.cos(np.radians(45)) * items[..., 0] + np.sin(np.radians(45)) * items[..., 1]) / 2.0
    p = np.exp(u - u.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    alloc = np.einsum("ik,ikd->id", p, items)
    truth = float(svo_angle(alloc[:, 0], alloc[:, 1]))
    for c in s["cells"]:
        d = c["debiased"]
        assert d["angle_expected_mean"] == pytest.approx(truth, abs=0.5), (c["order"], d, truth)
    raw_fixed = next(c for c in s["cells"] if c["order"] == "fixed")["expected_angle_mean"]
    assert abs(raw_fixed - truth) > 1.5  # the raw estimate carries the letter bias; it stays reported
