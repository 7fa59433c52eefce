"""Environments: the SVO instruments (Gymnasium) and social dilemmas (PettingZoo).

Importing this package registers the Gymnasium ids below. Variants are keyword arguments of one
class; any registered id also takes the others (e.g. option_order="permuted").
"""

import gymnasium as gym

from envs.svo import LETTERS, NO_ANSWER, SVOEnv

__all__ = ["LETTERS", "NO_ANSWER", "SVO_IDS", "SVOEnv"]

#: Registered ids and their keyword arguments.
SVO_IDS = {
    "SVO/Slider-v0": {"instrument": "slider", "items": "primary"},
    "SVO/SliderFull-v0": {"instrument": "slider", "items": "all"},
    "SVO/TripleDominance-v0": {"instrument": "triple_dominance"},
    "SVO/SliderReversed-v0": {"instrument": "slider", "items": "primary", "option_order": "reversed"},
    "SVO/SliderPermuted-v0": {"instrument": "slider", "items": "primary", "option_order": "permuted"},
}

for _id, _kwargs in SVO_IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="envs.svo:SVOEnv", kwargs=_kwargs)
