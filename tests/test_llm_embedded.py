"""The full goal-prompted chain on the embedded model (SmolLM2-135M GGUF through agents.llm.local), on CPU.

All four values, one trial each, in both decision modes, all episodes batched together. The 135M
model is weak: the test checks that the chain runs end to end and that every decision carries its
evidence, not that the model holds its value.
"""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

import envs  # noqa: F401
from agents.base import EpisodeContext
from agents.llm import GoalPromptedPolicy, make_backend
from runs.rollout import single as run_episodes
from scenarios import VALUE_NAMES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend():
    return make_backend("embedded")


def _run(backend, mode: str, goal: bool, max_reasks: int = 0):
    policy = GoalPromptedPolicy(
        backend=backend,
        mode=mode,
        induction_tokens=24,
        goal_tokens=16,
        max_reasks=max_reasks,
        extractor_tokens=3,
        sampling={"max_new_tokens": 6},
    )
    ctxs = [
        EpisodeContext("slider", 6, 9, seed=100 + k, value=v, goal_prompt=goal)
        for k, v in enumerate(VALUE_NAMES)
    ]
    return policy, run_episodes(policy, [gym.make("SVO/Slider-v0").unwrapped for _ in ctxs], ctxs)


def _check(results, mode: str) -> None:
    for res, value in zip(results, VALUE_NAMES, strict=True):
        assert len(res.decisions) == 6 and res.score["target"] == value
        assert res.score["answered"] == sum(d.valid for d in res.decisions)
        first = res.decisions[0].record
        assert first["setup"]["induction"]["reply"].strip()
        assert first["messages"][0]["content"].startswith("Do you know")
        for d in res.decisions:
            json.dumps(d.record)
            assert d.record["mode"] == mode and d.record["valid"] == (d.action is not None)
            if d.valid:
                assert d.record["canonical_option"] == d.action  # fixed order


def test_generate_mode_all_values(backend):
    policy, results = _run(backend, "generate", goal=False)
    _check(results, "generate")
    for res in results:
        for d in res.decisions:
            assert d.record["method"] in ("strict", "extractor", "invalid")
            if d.record["method"] != "strict":
                assert d.record["attempts"][0]["extractor_prompt"].startswith(
                    "Only based on the robot answer"
                )
    assert policy.describe()["model"]["model_id"] == backend.model_id


def test_logprob_mode_all_values(backend):
    _, results = _run(backend, "logprob", goal=False)
    _check(results, "logprob")
    for res in results:
        for d in res.decisions:
            # a local forward pass scores every letter: the distribution is complete
            probs = d.record["probabilities"]
            assert d.valid and all(p is not None for p in probs.values())
            assert sum(probs.values()) == pytest.approx(1.0)
            assert 0 < d.record["letter_mass"] <= 1.0 + 1e-6
        assert res.score["angle"] is not None
