"""Score one finished episode from its canonical choices: the same function serves the live
wrapper and the offline re-scoring of saved runs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from scenarios import Instrument
from scoring import svo

__all__ = ["score_episode"]


def _num(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


def score_episode(
    instrument: Instrument,
    choices: Mapping[int, int | None],
    target_value: str | None = None,
) -> dict[str, Any]:
    """Score canonical choices (item id -> 0-based canonical option, None if unanswered).

    Returns JSON-ready numbers (None where undefined): answered/asked counts; for the slider the
    angle, category, vector length, transitivity, pairwise wins and, with secondary items, the
    inequality-aversion index; for the Triple-Dominance Measure the type and its counts. With a
    target value: value rationality under both conventions, their 0-60 scores and a category hit.
    """
    asked = len(instrument.items)
    answered = sum(choices.get(it.id) is not None for it in instrument.items)
    out: dict[str, Any] = {"instrument": instrument.id, "asked": asked, "answered": answered}
    if instrument.scoring == "slider":
        prim = [it for it in instrument.items if it.primary]
        alloc = np.array(
            [
                it.options[choices[it.id]] if choices.get(it.id) is not None else (np.nan, np.nan)
                for it in prim
            ]
        )
        angle = svo.svo_angle(alloc[:, 0], alloc[:, 1], instrument.centre)
        out.update(
            angle=_num(angle),
            category=str(svo.categorise(angle)),
            vector_length=_num(svo.vector_length(alloc[:, 0], alloc[:, 1], instrument.centre)),
            transitive=bool(svo.transitive(alloc, instrument)),
            wins=dict(
                zip(svo.CATEGORIES, (_num(w) for w in svo.preference_wins(alloc, instrument)), strict=False)
            ),
        )
        second = [it for it in instrument.items if not it.primary]
        if second:
            c = np.array([np.nan if choices.get(it.id) is None else choices[it.id] for it in second])
            out["inequality_aversion"] = _num(svo.inequality_aversion_index(c, instrument))
        measured = out["category"]
    else:
        c = np.array([np.nan if choices.get(it.id) is None else choices[it.id] for it in instrument.items])
        out["angle"] = None
        measured = str(svo.triple_dominance_type(c, instrument))
        out["category"] = measured
    if target_value is not None:
        out["target"] = target_value
        out["hit"] = measured == target_value
        if out["angle"] is not None:
            for conv in ("interval", "ideal"):
                d = svo.value_rationality(out["angle"], target_value, conv)
                out[f"distance_{conv}"] = _num(d)
                out[f"rationality_{conv}"] = _num(svo.paper_scale(d))
    return out
