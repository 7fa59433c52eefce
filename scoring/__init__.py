"""Pure functions and wrappers that judge trajectories."""

from scoring.episode import score_episode
from scoring.svo import (
    CATEGORIES,
    UNDEFINED,
    angular_distance,
    categorise,
    ideal_choices,
    ideal_type_angle,
    inequality_aversion_index,
    paper_scale,
    preference_wins,
    svo_angle,
    transitive,
    triple_dominance_type,
    utility_choices,
    value_rationality,
    vector_length,
    wrap_angle,
)
from scoring.wrappers import SVOScoring

__all__ = [
    "CATEGORIES",
    "UNDEFINED",
    "SVOScoring",
    "angular_distance",
    "categorise",
    "ideal_choices",
    "ideal_type_angle",
    "inequality_aversion_index",
    "paper_scale",
    "preference_wins",
    "score_episode",
    "svo_angle",
    "transitive",
    "triple_dominance_type",
    "utility_choices",
    "value_rationality",
    "vector_length",
    "wrap_angle",
]
