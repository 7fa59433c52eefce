"""Scoring wrappers: accumulate per step, write one info key when the episode ends."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from scoring import svo
from scoring.episode import score_episode

__all__ = ["SVOScoring"]


class SVOScoring(gym.Wrapper):
    """Writes info["svo"] at the end of each episode (like RecordEpisodeStatistics).

    Works on any env whose step info carries "self" and "other" payoffs. On an env that exposes an
    `instrument` (SVOEnv), it uses the instrument's scoring (angle, category, vector length,
    transitivity, items answered vs asked, inequality aversion, value rationality for
    `target_value`). On any other env it reports the angle and vector length of the mean
    allocation around `centre`.
    """

    def __init__(self, env: gym.Env, target_value: str | None = None, centre: float = 50.0) -> None:
        super().__init__(env)
        self.target_value = target_value
        self.centre = centre
        self._choices: dict[int, int | None] = {}
        self._pay: list[tuple[float, float]] = []

    def reset(self, **kwargs):
        self._choices, self._pay = {}, []
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if "item_id" in info:
            self._choices[info["item_id"]] = info.get("option")
        self._pay.append((info["self"], info["other"]))
        if terminated or truncated:
            info = dict(info)
            info["svo"] = self._score()
        return obs, reward, terminated, truncated, info

    def _score(self) -> dict:
        instrument = getattr(self.env.unwrapped, "instrument", None)
        if instrument is not None:
            return score_episode(instrument, self._choices, self.target_value)
        pay = np.array(self._pay, dtype=np.float64)
        ok = ~np.isnan(pay).any(axis=1)
        angle = float(svo.svo_angle(pay[ok, 0], pay[ok, 1], self.centre)) if ok.any() else float("nan")
        return {
            "asked": len(pay),
            "answered": int(ok.sum()),
            "angle": angle,
            "category": str(svo.categorise(angle)),
            "vector_length": float(svo.vector_length(pay[ok, 0], pay[ok, 1], self.centre))
            if ok.any()
            else None,
        }
