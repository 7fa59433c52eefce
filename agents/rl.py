"""RL-style agents: any trained policy as an `Agent`, the value-orientation reward RL agents learn
from, and the pieces runs/train.py trains with.

Adapter. `PolicyAgent` wraps a Stable-Baselines3 model (a saved .zip) or any callable
observation -> action, with the observation and action spaces it was made for. It refuses an env
whose spaces differ (`SpaceMismatchError`, naming both) before any step, so runs.evaluate and
runs.evaluate can mix RL, LLM and scripted agents in one run, on instruments and dilemmas. A policy per value (one zip per value
from one training run, listed in the zip's sidecar card) makes one agent that pursues whichever
value an episode asks for; a value it has no policy for is an error, never a stand-in.

Reward. A value orientation's motive is a direction in the (self, other) payoff plane: the utility
u = cos(t) * self + sin(t) * other with t from `MOTIVE_ANGLES` (altruistic 90: maximise other;
prosocial 45: joint gain; individualistic 0: own gain; competitive -45: relative gain). These
are not the ideal-type slider angles (61.39, 37.48, -7.82, -16.26): those are where a motive's
maximiser lands on the slider's bounded items, and maximising the utility *at* them does not
reproduce them (t = 61.39 lands at 52.91, prosocial; t = -16.26 at -7.82, individualistic).
`reward_angle(value, "ideal")` gives them for comparison (docs/rl.md).

Policy network for option lists. `OptionScoringPolicy` (PPO) scores every option with one shared
network of its [self, other] payoffs and uses the scores as logits: it reads payoffs, not
positions, so it is exact under permuted option order and works for any number of options.

Dilemmas. `DilemmaView` is a single-agent Gymnasium view of a PettingZoo ParallelEnv for one
player, the others acting by given policies; its reward is the utility of own payoff vs the mean
payoff of the others. runs/train.py trains independent learners with it.

torch and stable_baselines3 are imported where used (extra: pip install -e ".[rl]").
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from agents.base import Agent, Decision, EpisodeContext
from scenarios import VALUE_NAMES, load_values

__all__ = [
    "ALGOS",
    "MOTIVE_ANGLES",
    "DilemmaView",
    "PolicyAgent",
    "SpaceMismatchError",
    "check_spaces",
    "env_spaces",
    "load_model",
    "load_policy_agent",
    "make_model",
    "read_card",
    "reward_angle",
    "utility",
]

#: Utility angle (degrees) of each value's motive: u = cos(t) * self + sin(t) * other.
#: The data lives in scenarios/data/values.yaml (`motive_angle`); SVOEnv(target_value=v) uses it too.
MOTIVE_ANGLES: dict[str, float] = {name: v.motive_angle for name, v in load_values().items()}

#: Stable-Baselines3 algorithms runs.train offers (name -> class name in stable_baselines3).
ALGOS = {"ppo": "PPO", "dqn": "DQN", "a2c": "A2C"}

_RL_EXTRA = 'pip install -e ".[rl]"'


def _sb3():
    try:
        import stable_baselines3
    except ImportError as err:
        raise ImportError(
            f"RL training and SB3 policies need stable-baselines3: {_RL_EXTRA} ({err})"
        ) from None
    return stable_baselines3


def reward_angle(value: str, convention: str = "motive") -> float:
    """The utility angle that rewards `value`: its motive ("motive", default) or its ideal-type
    slider angle ("ideal", for comparison: its maximiser misses two categories)."""
    if value not in VALUE_NAMES:
        raise ValueError(f"unknown value {value!r}; allowed: {list(VALUE_NAMES)}")
    if convention == "motive":
        return MOTIVE_ANGLES[value]
    if convention == "ideal":
        from scenarios import load_instrument
        from scoring.svo import ideal_type_angle

        return ideal_type_angle(load_instrument("slider").subset("primary"), value)
    raise ValueError(f"reward angle convention {convention!r}; allowed: ['motive', 'ideal']")


def utility(self_pay: np.ndarray | float, other_pay: np.ndarray | float, angle: float) -> np.ndarray:
    """cos(t) * self + sin(t) * other for t in degrees (vectorised)."""
    t = math.radians(angle)
    return math.cos(t) * np.asarray(self_pay, dtype=np.float64) + math.sin(t) * np.asarray(
        other_pay, dtype=np.float64
    )


# -- spaces ---------------------------------------------------------------------------------------


class SpaceMismatchError(ValueError):
    """A policy was made for other observation or action spaces than the environment has."""


def check_spaces(
    policy_spaces: tuple[spaces.Space, spaces.Space],
    env_spaces_: tuple[spaces.Space, spaces.Space],
    policy: str = "policy",
    env: str = "environment",
) -> None:
    """Raise SpaceMismatchError naming both sides unless the (observation, action) spaces are equal."""
    (p_obs, p_act), (e_obs, e_act) = policy_spaces, env_spaces_
    bad = []
    if p_act != e_act:
        bad.append(f"action space: {policy} has {p_act}, {env} has {e_act}")
    if p_obs != e_obs:
        bad.append(f"observation space: {policy} has {p_obs}, {env} has {e_obs}")
    if bad:
        raise SpaceMismatchError(f"{policy} does not fit {env}; " + "; ".join(bad))


def env_spaces(env: Any) -> dict[str | None, tuple[spaces.Space, spaces.Space]]:
    """(observation, action) spaces of an env: a Gymnasium env (key None), a PettingZoo env (one per
    agent), or an id: a registered Gymnasium id (SVO/...), a dilemma env id or scenario id."""
    if isinstance(env, str):
        import envs  # noqa: F401  (registers the SVO ids)

        if env in gym.registry:
            e = gym.make(env)
            try:
                return {None: (e.observation_space, e.action_space)}
            finally:
                e.close()
        from envs.dilemmas import DILEMMA_ENV_IDS, make_env
        from scenarios.dilemmas import dilemma_ids

        if env in DILEMMA_ENV_IDS or env in dilemma_ids():
            return env_spaces(make_env(env))
        raise ValueError(
            f"env id {env!r} unknown; allowed: Gymnasium ids "
            f"{sorted(k for k in gym.registry if k.startswith('SVO/'))}, dilemma ids {sorted(DILEMMA_ENV_IDS)}"
        )
    if hasattr(env, "possible_agents"):
        return {a: (env.observation_space(a), env.action_space(a)) for a in env.possible_agents}
    return {None: (env.observation_space, env.action_space)}


# -- policies ---------------------------------------------------------------------------------------


class _CallablePolicy:
    """Any function observation -> action (int-like; None = no valid answer)."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def decide(self, observations: Sequence[Any]) -> list[tuple[Any, dict[str, Any]]]:
        return [(self.fn(o), {}) for o in observations]

    def describe(self) -> dict[str, Any]:
        return {"kind": "callable", "callable": getattr(self.fn, "__qualname__", repr(self.fn))}


class _SB3Policy:
    """A Stable-Baselines3 model: greedy action, with the action probabilities (actor-critic) or
    Q-values (DQN) as evidence."""

    def __init__(self, model: Any, path: str | None = None) -> None:
        self.model, self.path = model, path

    def _batch(self, observations: Sequence[Any]) -> Any:
        first = observations[0]
        if isinstance(first, Mapping):
            return {k: np.stack([np.asarray(o[k]) for o in observations]) for k in first}
        return np.stack([np.asarray(o) for o in observations])

    def decide(self, observations: Sequence[Any]) -> list[tuple[Any, dict[str, Any]]]:
        import torch as th

        policy = self.model.policy
        obs_t, _ = policy.obs_to_tensor(self._batch(observations))
        with th.no_grad():
            if hasattr(policy, "get_distribution"):
                probs = policy.get_distribution(obs_t).distribution.probs.cpu().numpy()
                key, vals = "probs", probs
            else:
                vals = policy.q_net(obs_t).cpu().numpy()
                key = "q_values"
        actions = vals.argmax(axis=1)
        return [(int(a), {key: [round(float(x), 6) for x in v]}) for a, v in zip(actions, vals, strict=True)]

    def describe(self) -> dict[str, Any]:
        return {"kind": "sb3", "algo": type(self.model).__name__, "path": self.path}


class PolicyAgent(Agent):
    """A trained policy (SB3 model or callable) acting as an `Agent`.

    policy: one policy for every episode, or a mapping value -> policy (the episode's
    `EpisodeContext.value` picks it; a value without a policy is an error). Policies are SB3
    models (anything with `.policy` and `.predict`) or callables observation -> action.
    observation_space / action_space: what the policies were made for (SB3 models: their own,
    taken when not given). The agent checks every env it is given (`check_env`) and every episode
    context (option count, item count) against them before acting. Actions are greedy; an action
    outside the action space (or None) from a callable is recorded as invalid, never replaced.
    """

    def __init__(
        self,
        policy: Any,
        observation_space: spaces.Space | None = None,
        action_space: spaces.Space | None = None,
        *,
        name: str = "policy",
        card: Mapping[str, Any] | None = None,
    ) -> None:
        raw = dict(policy) if isinstance(policy, Mapping) else {None: policy}
        if not raw:
            raise ValueError("PolicyAgent needs at least one policy")
        unknown = [v for v in raw if v is not None and v not in VALUE_NAMES]
        if unknown:
            raise ValueError(f"policies for unknown value(s) {unknown}; allowed: {list(VALUE_NAMES)}")
        self.policies: dict[str | None, Any] = {}
        for v, p in raw.items():
            if hasattr(p, "policy") and hasattr(p, "predict"):
                sp = (p.observation_space, p.action_space)
                if observation_space is None:
                    observation_space, action_space = sp
                check_spaces(sp, (observation_space, action_space), f"policy for {v}", "the other policies")
                self.policies[v] = _SB3Policy(p, getattr(p, "_svo_path", None))
            elif callable(p):
                self.policies[v] = _CallablePolicy(p)
            else:
                raise TypeError(
                    f"policy for {v!r} is a {type(p).__name__}: expected an SB3 model or a callable"
                )
        if observation_space is None or action_space is None:
            raise ValueError(
                "a callable policy needs observation_space= and action_space= (what it was made for)"
            )
        self.observation_space, self.action_space = observation_space, action_space
        self.name = name
        self.card = dict(card or {})

    @property
    def values(self) -> list[str | None]:
        """Values this agent has a policy for (None: one policy for any value)."""
        return list(self.policies)

    def check_env(self, env: Any, agent: str | None = None) -> None:
        """Raise SpaceMismatchError unless the env's spaces (for `agent`, or every PettingZoo agent)
        are this policy's. `env` is an env object or an id (see `env_spaces`)."""
        found = env_spaces(env)
        label = env if isinstance(env, str) else type(getattr(env, "unwrapped", env)).__name__
        keys = [agent] if agent is not None else list(found)
        for k in keys:
            if k not in found:
                raise ValueError(f"{label} has no agent {k!r}; agents: {list(found)}")
            where = label if k is None else f"{label} agent {k}"
            check_spaces((self.observation_space, self.action_space), found[k], f"policy {self.name}", where)

    def _check_context(self, context: EpisodeContext) -> None:
        n = getattr(self.action_space, "n", None)
        if n is not None and context.n_options != n:
            raise SpaceMismatchError(
                f"policy {self.name} has action space {self.action_space} but episode {context.instrument!r} "
                f"offers {context.n_options} options (Discrete({context.n_options}))"
            )
        obs = self.observation_space
        if isinstance(obs, spaces.Dict):
            for key in ("item", "round"):
                sp = obs.spaces.get(key)
                if isinstance(sp, spaces.Discrete) and sp.n != context.n_items:
                    raise SpaceMismatchError(
                        f"policy {self.name} has observation {key!r} {sp} but episode {context.instrument!r} "
                        f"has {context.n_items} {key}s (Discrete({context.n_items}))"
                    )

    def _key(self, value: str | None) -> str | None:
        if None in self.policies and len(self.policies) == 1:
            return None
        if value not in self.policies:
            raise ValueError(
                f"policy {self.name} was trained for {sorted(k for k in self.policies if k)}; "
                f"no policy for value {value!r} (train one: python -m runs.train slider --value {value})"
            )
        return value

    def start(self, context: EpisodeContext) -> dict[str, Any]:
        self._check_context(context)
        return {"policy": self._key(context.value)}

    def act(self, observation: Mapping[str, Any], state: dict[str, Any]) -> tuple[Decision, Any]:
        return self.act_batch([observation], [state])[0]

    def act_batch(self, observations: Sequence[Any], states: Sequence[Any]) -> list[tuple[Decision, Any]]:
        out: list[tuple[Decision, Any] | None] = [None] * len(observations)
        groups: dict[str | None, list[int]] = {}
        for i, s in enumerate(states):
            groups.setdefault(s["policy"], []).append(i)
        for key, idx in groups.items():
            answers = self.policies[key].decide([observations[i] for i in idx])
            for i, (action, evidence) in zip(idx, answers, strict=True):
                record = {"method": "policy", "policy": key, **evidence}
                act = self._valid(action, record)
                out[i] = (Decision(act, record), states[i])
        return out  # type: ignore[return-value]

    def _valid(self, action: Any, record: dict[str, Any]) -> int | None:
        record["raw_action"] = None if action is None else repr(action)
        if action is None:
            record["invalid"] = "policy returned no action"
            return None
        try:
            a = int(np.asarray(action).item())
        except (TypeError, ValueError):
            record["invalid"] = f"action {action!r} is not an integer"
            return None
        if not self.action_space.contains(np.int64(a)):
            record["invalid"] = f"action {a} outside {self.action_space}"
            return None
        return a

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "observation_space": str(self.observation_space),
            "action_space": str(self.action_space),
            "policies": {str(k): p.describe() for k, p in self.policies.items()},
            "card": self.card,
        }


# -- saved models -----------------------------------------------------------------------------------


def read_card(path: str | Path) -> dict[str, Any]:
    """The training card next to a saved model (X.zip -> X.json, written by runs.train); {} if none."""
    card = Path(path).with_suffix(".json")
    if not card.is_file():
        return {}
    try:
        return json.loads(card.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{card}: not valid JSON ({err})") from None


def load_model(path: str | Path, algo: str | None = None) -> Any:
    """Load an SB3 model zip; the algorithm comes from `algo`, the card, or the zip's policy class."""
    p = Path(path)
    if p.suffix != ".zip":
        raise ValueError(f"{p}: expected a .zip saved by Stable-Baselines3 (python -m runs.train)")
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such model file")
    sb3 = _sb3()
    algo = algo or read_card(p).get("algo")
    if algo is None:
        from stable_baselines3.common.save_util import load_from_zip_file

        data, _, _ = load_from_zip_file(p, load_data=True, device="cpu")
        mod = getattr(data.get("policy_class"), "__module__", "")
        algo = next((a for a in ALGOS if f".{a}." in mod), "ppo")  # actor-critic zips predict alike
    if algo not in ALGOS:
        raise ValueError(f"{p}: algorithm {algo!r} unknown; allowed: {sorted(ALGOS)}")
    model = getattr(sb3, ALGOS[algo]).load(p, device="cpu")
    model._svo_path = str(p)
    return model


def load_policy_agent(path: str, env_id: str | None = None) -> PolicyAgent:
    """An agent from a model zip saved by runs.train (or any SB3 zip).

    When the zip's card lists sibling models of the same training run (one per value), they are
    loaded too, so the agent pursues whichever value an episode asks for. env_id: check the spaces
    against that env now (SpaceMismatchError naming both); the agent also checks each episode.
    """
    p = Path(path)
    card = read_card(p) if p.suffix == ".zip" else {}
    siblings = card.get("siblings") or {}
    if siblings:
        models = {v: load_model(p.parent / f, card.get("algo")) for v, f in siblings.items()}
    else:
        models = {card.get("value"): load_model(p)} if card.get("value") else {None: load_model(p)}
    agent = PolicyAgent(models, name=f"rl:{p.stem}", card=card)
    if env_id is not None:
        agent.check_env(env_id)
    return agent


# -- training pieces ------------------------------------------------------------------------------


def _torch_classes() -> dict[str, type]:
    """OptionScores / OptionScoringPolicy, built on first use so importing agents.rl needs no torch."""
    global _CLASSES
    if _CLASSES:
        return _CLASSES
    _sb3()
    import torch as th
    from stable_baselines3.common.policies import MultiInputActorCriticPolicy
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
    from torch import nn

    class OptionScores(BaseFeaturesExtractor):
        """One score per option from its [self, other] payoffs, by one shared network: a learned
        utility function, blind to the option's position."""

        def __init__(
            self, observation_space: spaces.Dict, hidden: int = 32, centre: float = 50.0, scale: float = 50.0
        ) -> None:
            n = observation_space.spaces["payoffs"].shape[0]
            super().__init__(observation_space, n)
            self.centre, self.scale = centre, scale
            self.net = nn.Sequential(
                nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)
            )

        def forward(self, obs: dict[str, th.Tensor]) -> th.Tensor:
            return self.net((obs["payoffs"] - self.centre) / self.scale).squeeze(-1)

    class OptionScoringPolicy(MultiInputActorCriticPolicy):
        """Actor-critic whose logits are the option scores (no layer mixes positions)."""

        def _build(self, lr_schedule) -> None:
            super()._build(lr_schedule)
            self.action_net = nn.Identity()
            self.optimizer = self.optimizer_class(
                self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
            )

    for cls in (OptionScores, OptionScoringPolicy):
        cls.__module__, cls.__qualname__ = __name__, cls.__name__
    _CLASSES = {"OptionScores": OptionScores, "OptionScoringPolicy": OptionScoringPolicy}
    globals().update(_CLASSES)  # so pickled references (agents.rl.OptionScores) resolve
    return _CLASSES


_CLASSES: dict[str, type] = {}


def __getattr__(name: str) -> Any:  # PEP 562: torch-backed classes on demand (and when unpickling)
    if name in ("OptionScores", "OptionScoringPolicy"):
        return _torch_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_model(
    algo: str,
    env: gym.Env,
    seed: int,
    network: str = "option",
    gamma: float = 0.0,
    **kwargs: Any,
) -> Any:
    """An untrained SB3 model for `env`.

    network: "option" (OptionScoringPolicy, PPO/A2C only: needs a "payoffs" (n, 2) observation) or
    "mlp" (SB3's MultiInputPolicy / MlpPolicy over the flattened observation). gamma: 0 for the
    slider, whose next item does not depend on the choice (each step is a bandit).
    """
    if algo not in ALGOS:
        raise ValueError(f"algo {algo!r}; allowed: {sorted(ALGOS)}")
    sb3 = _sb3()
    cls = getattr(sb3, ALGOS[algo])
    dict_obs = isinstance(env.observation_space, spaces.Dict)
    if network == "option":
        if algo == "dqn":
            raise ValueError(
                "network 'option' is an actor-critic policy: use algo ppo or a2c, or network mlp"
            )
        if not dict_obs or "payoffs" not in env.observation_space.spaces:
            raise ValueError(
                f"network 'option' needs a Dict observation with 'payoffs'; got {env.observation_space}"
            )
        c = _torch_classes()
        policy: Any = c["OptionScoringPolicy"]
        pk = {
            "features_extractor_class": c["OptionScores"],
            "net_arch": {"pi": [], "vf": [64]},
            "share_features_extractor": False,
        }
        kwargs["policy_kwargs"] = {**pk, **kwargs.get("policy_kwargs", {})}
    elif network == "mlp":
        policy = "MultiInputPolicy" if dict_obs else "MlpPolicy"
    else:
        raise ValueError(f"network {network!r}; allowed: ['option', 'mlp']")
    return cls(policy, env, seed=seed, gamma=gamma, device="cpu", verbose=0, **kwargs)


class DilemmaView(gym.Env):
    """One player's single-agent view of a PettingZoo ParallelEnv, the others acting by policies.

    Observation and action spaces: the player's own. Reward: cos(t) * own payoff + sin(t) * mean
    payoff of the other players this round (t = `angle`, degrees). `others` maps each other player
    to a policy: an SB3 model (its action probabilities, sampled with this env's seeded generator)
    or a callable (observation, generator) -> action. Info: the player's env info plus "utility".
    """

    metadata = {"render_modes": []}

    def __init__(self, env: Any, player: str, angle: float, others: Mapping[str, Any]) -> None:
        if player not in env.possible_agents:
            raise ValueError(f"player {player!r} not in {env.possible_agents}")
        missing = sorted(set(env.possible_agents) - {player} - set(others))
        if missing:
            raise ValueError(f"no policy for other player(s) {missing}")
        self.env, self.player, self.angle = env, player, float(angle)
        self.others = dict(others)
        self.observation_space = env.observation_space(player)
        self.action_space = env.action_space(player)
        self._obs: dict[str, Any] = {}

    def set_others(self, others: Mapping[str, Any]) -> None:
        """Swap the other players' policies (between training phases)."""
        self.others.update(others)

    def _other_action(self, p: str) -> int:
        pol, obs = self.others[p], self._obs[p]
        if hasattr(pol, "policy") and hasattr(pol, "predict"):
            probs = _SB3Policy(pol).decide([obs])[0][1].get("probs")
            if probs is None:  # DQN: greedy
                return int(pol.predict(obs, deterministic=True)[0])
            pr = np.asarray(probs, dtype=np.float64)
            return int(self.np_random.choice(len(pr), p=pr / pr.sum()))
        return int(pol(obs, self.np_random))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        env_seed = None if seed is None else int(self.np_random.integers(2**31))
        self._obs, infos = self.env.reset(seed=env_seed, options=options)
        return self._obs[self.player], infos.get(self.player, {})

    def step(self, action):
        actions = {p: self._other_action(p) for p in self.env.agents if p != self.player}
        actions[self.player] = int(action)
        obs, rew, terms, truncs, infos = self.env.step(actions)
        others = [float(rew[p]) for p in rew if p != self.player]
        own = float(rew[self.player])
        other = float(np.mean(others)) if others else float("nan")
        r = float(utility(own, other, self.angle))
        info = {**infos.get(self.player, {}), "utility": r, "own": own, "others_mean": other}
        if self.player in obs:
            self._obs = obs
        term, trunc = bool(terms.get(self.player, False)), bool(truncs.get(self.player, False))
        return self._obs[self.player], r, term, trunc, info
