"""Social dilemmas as PettingZoo environments, built from scenario YAML (scenarios/data/dilemmas).

Three classes cover every scenario (variants are data):

- `MatrixGameEnv` (ParallelEnv): symmetric two-person games (prisoner's dilemma, stag hunt,
  chicken, the paired SVO slider), one-shot or repeated, for one pair or a population on a graph;
- `PublicGoodsEnv` (ParallelEnv): the N-player public goods game;
- `SequentialGameEnv` (AECEnv): turn-based games (dictator, ultimatum, trust).

Simultaneous games also come as AEC envs through PettingZoo's `parallel_to_aec`.

Stable API (used by agents/rl.py, runs/episodes.py and runs/train.py):

    from envs.dilemmas import make_parallel, make_aec, DILEMMA_ENV_IDS, NO_ANSWER
    env = make_parallel("prisoners_dilemma_repeated")          # or "public_goods", a Dilemma, a path
    obs, infos = env.reset(seed=0)                             # obs[agent]: {"round", "payoffs", "history"}
    obs, rewards, terms, truncs, infos = env.step({a: 0 for a in env.agents})

Observations are Dicts: "payoffs" (n_actions, 2) [self, other] expected per own action (the options
the SVO fit uses), "history" (memory, 2, n_actions) one-hot own action and partners' action
shares, "order" (canonical action of each shown position), "cooperation" (how cooperative each
shown action is); flatten with gymnasium.spaces.flatten for a vector learner. Every per-action
array is in the shown order (`action_order="fixed" | "reversed" | "permuted"`, a constructor
argument of every env); actions are shown positions, infos report the canonical action.
Actions: Discrete(n_actions), or NO_ANSWER (-1) for an invalid answer (recorded, never replaced).
Rewards: own payoff. `DILEMMA_ENV_IDS` maps ids such as "Dilemma/PrisonersDilemma-v1" to scenario
ids; the version is ENV_VERSION (the env classes' observation API) plus the scenario's `version`
(its data), so a change of either gives a new id.
"""

from __future__ import annotations

from pathlib import Path

from pettingzoo import AECEnv, ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec

from envs.dilemmas.common import ACTION_ORDERS, NO_ANSWER
from envs.dilemmas.matrix import MatrixGameEnv
from envs.dilemmas.public_goods import PublicGoodsEnv
from envs.dilemmas.sequential import SequentialGameEnv
from scenarios.dilemmas import Dilemma, dilemma_ids, load_dilemma

__all__ = [
    "ACTION_ORDERS",
    "DILEMMA_ENV_IDS",
    "ENV_VERSION",
    "NO_ANSWER",
    "MatrixGameEnv",
    "PublicGoodsEnv",
    "SequentialGameEnv",
    "env_id",
    "is_parallel",
    "make_aec",
    "make_env",
    "make_parallel",
]

_CLASSES = {"matrix": MatrixGameEnv, "slider": MatrixGameEnv, "public_goods": PublicGoodsEnv}

#: Version of the dilemma envs' observation API (v1: "order" and "cooperation", shown order).
ENV_VERSION = 1


def env_id(d: Dilemma) -> str:
    """ "Dilemma/<CamelCaseId>-v<ENV_VERSION + scenario version>" for a scenario."""
    return f"Dilemma/{''.join(p.capitalize() for p in d.id.split('_'))}-v{ENV_VERSION + d.version}"


def _resolve(scenario: str | Dilemma | Path) -> Dilemma:
    if isinstance(scenario, Dilemma):
        return scenario
    s = str(scenario)
    if s in DILEMMA_ENV_IDS:
        s = DILEMMA_ENV_IDS[s]
    return load_dilemma(s)


def is_parallel(scenario: str | Dilemma | Path) -> bool:
    """True for simultaneous-move scenarios (ParallelEnv), False for sequential ones (AEC only)."""
    return _resolve(scenario).game != "sequential"


def make_parallel(scenario: str | Dilemma | Path, **kwargs) -> ParallelEnv:
    """The ParallelEnv of a simultaneous-move scenario (id, env id, path or Dilemma)."""
    d = _resolve(scenario)
    if d.game == "sequential":
        raise ValueError(f"scenario {d.id!r} is sequential (turn-based): use make_aec")
    return _CLASSES[d.game](d, **kwargs)


def make_aec(scenario: str | Dilemma | Path, **kwargs) -> AECEnv:
    """The AEC env of any scenario (simultaneous ones through PettingZoo's parallel_to_aec)."""
    d = _resolve(scenario)
    if d.game == "sequential":
        return SequentialGameEnv(d, **kwargs)
    return parallel_to_aec(_CLASSES[d.game](d, **kwargs))


def make_env(scenario: str | Dilemma | Path, **kwargs) -> ParallelEnv | AECEnv:
    """The native env of a scenario: ParallelEnv if simultaneous, AECEnv if sequential."""
    return make_parallel(scenario, **kwargs) if is_parallel(scenario) else make_aec(scenario, **kwargs)


#: Registered env ids of the shipped scenarios -> scenario ids.
DILEMMA_ENV_IDS: dict[str, str] = {env_id(load_dilemma(i)): i for i in dilemma_ids()}
