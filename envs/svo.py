"""The SVO instruments as one Gymnasium environment."""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from scenarios import VALUE_NAMES, Instrument, load_instrument, load_values

__all__ = ["NO_ANSWER", "SVOEnv"]

#: Pass to step() when the agent gave no valid answer: the item is recorded as unanswered.
NO_ANSWER = -1

OptionOrder = Literal["fixed", "reversed", "permuted"]
ORDERS = ("fixed", "reversed", "permuted")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class SVOEnv(gym.Env):
    """An SVO instrument answered item by item: each step allocates coins between self and other.

    ## Description
    One episode is one pass through an instrument (scenarios/data/instruments): the 6 primary
    items of the SVO Slider Measure, all 15 slider items, or the 9 Triple-Dominance items. Items
    come in their published order. Options may be shown in the slider's fixed direction (as in the
    paper), reversed, or permuted per episode with the env's seeded generator; every record keeps
    the canonical option, so scoring never depends on the order shown.

    ## Observation space
    Dict:
    - "item": Discrete(n_items), position of the current item in the episode;
    - "payoffs": Box(0, 1000, (n_options, 2), float32), the options as shown, [self, other];
    - "order": Box(0, n_options - 1, (n_options,), int64), canonical option index of each shown
      option (agents may ignore it; it makes the display explicit).
    After the last item the observation repeats the last item (the episode is over).

    ## Action space
    Discrete(n_options): the index of the shown option. `NO_ANSWER` (-1) records the item as
    unanswered (an agent's invalid reply); it earns no reward and is never turned into a choice.

    ## Rewards
    reward="self" (default): the agent's own payoff. reward="utility": cos(t) * self + sin(t) *
    other for target angle t (degrees): `target_angle`, or the motive angle of `target_value`
    (scenarios/data/values.yaml: altruistic 90, prosocial 45, individualistic 0, competitive -45;
    a maximiser of it lands in the value's slider category).

    ## Episode end
    Terminates after the last item. No truncation.

    ## Info
    Each step: "item_id", "shown_option", "option" (canonical, or None), "answered", "self",
    "other" (NaN when unanswered), and "order" at reset.

    ## Arguments
    instrument: "slider" | "triple_dominance" (ids in scenarios/data/instruments).
    items: "primary" | "all" (slider: 6 or 15 items).
    option_order: "fixed" | "reversed" | "permuted".
    reward: "self" | "utility"; target_angle / target_value for "utility".
    render_mode: None | "ansi".

    ## Version history
    v0: initial release.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

    def __init__(
        self,
        instrument: str = "slider",
        items: Literal["primary", "all"] = "primary",
        option_order: OptionOrder = "fixed",
        reward: Literal["self", "utility"] = "self",
        target_angle: float | None = None,
        target_value: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        if option_order not in ORDERS:
            raise ValueError(f"option_order={option_order!r}; allowed: {list(ORDERS)}")
        if items not in ("primary", "all"):
            raise ValueError(f"items={items!r}; allowed: ['primary', 'all']")
        if reward not in ("self", "utility"):
            raise ValueError(f"reward={reward!r}; allowed: ['self', 'utility']")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode={render_mode!r}; allowed: {self.metadata['render_modes']}")
        base = load_instrument(instrument)
        self.instrument: Instrument = base.subset(items) if base.scoring == "slider" else base
        self.option_order = option_order
        self.render_mode = render_mode
        self.reward_kind = reward
        self._target = self._resolve_target(reward, target_angle, target_value)
        self._payoffs = self.instrument.payoffs()
        n_items, n_opt = self._payoffs.shape[:2]
        self.n_items, self.n_options = n_items, n_opt
        self.observation_space = spaces.Dict(
            {
                "item": spaces.Discrete(n_items),
                "payoffs": spaces.Box(0.0, 1000.0, shape=(n_opt, 2), dtype=np.float32),
                "order": spaces.Box(0, n_opt - 1, shape=(n_opt,), dtype=np.int64),
            }
        )
        self.action_space = spaces.Discrete(n_opt)
        self._t = 0
        self._order = np.arange(n_opt)
        self._orders = np.tile(np.arange(n_opt), (n_items, 1))
        self._last: dict[str, Any] | None = None

    def _resolve_target(self, reward: str, angle: float | None, value: str | None) -> float | None:
        if reward != "utility":
            if angle is not None or value is not None:
                raise ValueError("target_angle/target_value need reward='utility'")
            return None
        if (angle is None) == (value is None):
            raise ValueError("reward='utility' needs exactly one of target_angle or target_value")
        if value is not None:
            if value not in VALUE_NAMES:
                raise ValueError(f"target_value={value!r}; allowed: {list(VALUE_NAMES)}")
            return load_values()[value].motive_angle
        return float(angle)

    @property
    def target_angle(self) -> float | None:
        return self._target

    def _obs(self) -> dict[str, np.ndarray]:
        t = min(self._t, self.n_items - 1)
        order = self._orders[t]
        return {
            "item": t,
            "payoffs": self._payoffs[t, order].astype(np.float32),
            "order": order.astype(np.int64),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._t = 0
        base = np.arange(self.n_options)
        if self.option_order == "fixed":
            self._orders = np.tile(base, (self.n_items, 1))
        elif self.option_order == "reversed":
            self._orders = np.tile(base[::-1], (self.n_items, 1))
        else:
            self._orders = np.stack([self.np_random.permutation(self.n_options) for _ in range(self.n_items)])
        self._last = None
        return self._obs(), {"order": self._orders.tolist(), "instrument": self.instrument.id}

    def step(self, action):
        if self._t >= self.n_items:
            raise RuntimeError("step() called after the episode ended; call reset()")
        item = self.instrument.items[self._t]
        action = int(action)
        if action == NO_ANSWER:
            canon, s, o, r = None, float("nan"), float("nan"), 0.0
        else:
            if not 0 <= action < self.n_options:
                raise ValueError(f"action {action} outside 0..{self.n_options - 1} (or NO_ANSWER=-1)")
            canon = int(self._orders[self._t, action])
            s, o = (float(x) for x in self._payoffs[self._t, canon])
            r = (
                s
                if self._target is None
                else float(np.cos(np.radians(self._target)) * s + np.sin(np.radians(self._target)) * o)
            )
        info = {
            "item_id": item.id,
            "shown_option": None if canon is None else action,
            "option": canon,
            "answered": canon is not None,
            "self": s,
            "other": o,
        }
        self._last = info
        self._t += 1
        terminated = self._t >= self.n_items
        return self._obs(), r, terminated, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        if self._t >= self.n_items:
            return f"{self.instrument.name}: finished ({self.n_items} items).\n"
        obs = self._obs()
        lines = [f"{self.instrument.name}, item {self._t + 1} of {self.n_items} (you, other):"]
        for k, (s, o) in enumerate(obs["payoffs"]):
            lines.append(f"  {LETTERS[k]}) you {s:g}, other {o:g}")
        return "\n".join(lines) + "\n"
