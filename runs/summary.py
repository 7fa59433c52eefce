"""Summaries of a run's records: pure functions from stored episodes and decisions to the tables
that runs/report.py writes and runs/plots.py draws (no files, no model).

Instrument episodes are re-scored from their canonical choices (scoring.score_episode), grouped into
cells (agent, instrument, prompt set, framing, value, goal, option order) and summarised with
scoring.stats: Student-t intervals (never a zero-width "95%"), paired goal effects and position
bias with a within-trial relabelling test (scoring/stats.py). Every cell carries where null
responders land under its order condition (uniform random answering and always-the-k-th-letter,
exact: scoring/null.py) and two tests: are its choices distinguishable from random answering, and
are they explained better by the letter shown than by the option (across the order conditions of
the same agent, value and goal). In logprob mode each agent's prior over option letters is
estimated from permuted orders (PriDe, scoring/letter_prior.py) and a debiased angle is reported
beside the raw one, never in its place.

Scenario episodes are summarised per seat cell (scenario, group, agent, value, goal, action order,
prompt set, framing): cooperation, payoffs, invalid answers, the SVO angle fitted to the choices
(scoring.fit: tested against random choice, consistent sets under separation), the players'
fitted angles on the circle, and the position bias across action orders.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from scenarios import load_instrument
from scoring import svo
from scoring.episode import score_episode
from scoring.stats import (
    cell_summary,
    circular_summary,
    distinct_indices,
    goal_effect,
    paired_difference,
    position_bias,
    stable_seed,
)

__all__ = ["CELL_KEYS", "decision_evidence", "rescore", "summarise", "summarise_run", "summarise_scenarios"]

CELL_KEYS = ("agent", "instrument", "prompt_set", "framing", "value", "goal", "order")


def _cell_key(ep: dict[str, Any]) -> tuple:
    defaults = {"prompt_set": "paper", "framing": "none"}
    return tuple(ep.get(k, defaults.get(k)) for k in CELL_KEYS)


def _replace(key: tuple, field: str, value: Any) -> tuple:
    k = list(key)
    k[CELL_KEYS.index(field)] = value
    return tuple(k)


def rescore(episode: dict[str, Any]) -> dict[str, Any]:
    """Score one stored episode again from its canonical choices."""
    inst = load_instrument(episode["instrument"])
    if inst.scoring == "slider":
        inst = inst.subset(episode.get("items", "primary"))
    choices = {int(k): v for k, v in episode["choices"].items()}
    return score_episode(inst, choices, target_value=episode["value"])


def observation_key(ep: dict[str, Any]) -> str:
    """What an instrument episode showed and chose (shown orders and choices): identical keys are
    identical observations (deterministic agents count each once)."""
    return json.dumps([ep.get("shown_orders"), ep["choices"]], sort_keys=True)


def decision_evidence(decisions: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per episode key: how each answer was obtained (the policy's record "method": strict,
    extractor, reask, logprob, invalid...) and, in logprob mode, the expected SVO angle from the
    expected allocations (None unless every item has one)."""
    out: dict[str, dict[str, Any]] = {}
    for d in decisions:
        e = out.setdefault(d["episode"], {"methods": defaultdict(int), "alloc": [], "n": 0, "letters": []})
        rec = d.get("record") or {}
        e["methods"][str(rec.get("method", "unrecorded"))] += 1
        e["n"] += 1
        if rec.get("expected_allocation") is not None:
            e["alloc"].append(rec["expected_allocation"])
        if rec.get("probabilities"):
            e["letters"].append((d["item_id"], d["shown_order"], rec["probabilities"]))
    result = {}
    for key, e in out.items():
        angle = None
        if e["alloc"] and len(e["alloc"]) == e["n"]:
            a = np.asarray(e["alloc"], dtype=np.float64)
            angle = float(svo.svo_angle(a[:, 0], a[:, 1]))
        result[key] = {"methods": dict(e["methods"]), "expected_angle": angle, "letters": e["letters"]}
    return result


def _settings(manifest: dict[str, Any]) -> dict[str, Any]:
    cfg = manifest.get("config", {})
    return {
        "cfg": cfg,
        "level": float(cfg.get("ci_level", 0.95)),
        "seed": int(cfg.get("seed", 0)),
        "conv": cfg.get("convention", "interval"),
        "deterministic": manifest.get("deterministic", {}),
    }


def _sort_key(cfg: dict[str, Any]):
    rank = {
        k: {v: i for i, v in enumerate(cfg.get(k) or [])}
        for k in ("agents", "prompt_sets", "framings", "values", "orders")
    }

    def key(k: tuple) -> tuple:
        a, i, ps, fr, v, g, o = k
        return (
            rank["agents"].get(a, 99), a, i, rank["prompt_sets"].get(ps, 99), ps, rank["framings"].get(fr, 99), fr,
            rank["values"].get(v, 99), str(v), not g, rank["orders"].get(o, 99), o,
        )  # fmt: skip

    return key


def _cell(
    key: tuple, members: list, st: dict[str, Any], evidence: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """One cell's row: statistics of its episodes' scores, answer methods, expected angle."""
    members = sorted(members, key=lambda x: x[0]["trial"])
    row = dict(zip(CELL_KEYS, key, strict=True))
    obs_keys = [observation_key(ep) for ep, _ in members]
    row.update(
        cell_summary(
            [s for _, s in members],
            row["value"],
            observation_keys=obs_keys,
            dedupe=bool(st["deterministic"].get(row["agent"], False)),
            level=st["level"],
        )
    )
    row["null"] = _null_bands(row, members[0][0].get("items", "primary"), st["level"])
    row["_shown"] = [d for ep, _ in members for d in _shown(ep)]
    row["random_test"] = _random_test(row["_shown"], st, key)
    use = [members[i] for i in distinct_indices(obs_keys)] if row["deduplicated"] else members
    row["_used"] = {ep["trial"]: s["angle"] for ep, s in use if s.get("angle") is not None}
    methods: dict[str, int] = defaultdict(int)
    for ep, _ in members:
        for m, k in evidence.get(ep["key"], {}).get("methods", {}).items():
            methods[m] += k
    n_dec = sum(methods.values())
    row["answer_methods"] = {m: {"k": k, "n": n_dec} for m, k in sorted(methods.items())}
    expected = [evidence.get(ep["key"], {}).get("expected_angle") for ep, _ in use]
    expected = [x for x in expected if x is not None]
    row["expected_angle_mean"] = round(float(np.mean(expected)), 6) if expected else None
    row["n_expected_angle"] = len(expected)
    return row


def _shown(ep: dict[str, Any]) -> list[Any]:
    """An instrument episode's decisions as shown (item, shown order, shown position chosen)."""
    from scoring.null import shown_decisions

    inst = load_instrument(ep["instrument"])
    if inst.scoring == "slider":
        inst = inst.subset(ep.get("items", "primary"))
    choices = {int(k): v for k, v in ep["choices"].items()}
    return shown_decisions([it.id for it in inst.items], ep["shown_orders"], choices)


def _null_bands(row: dict[str, Any], items: str, level: float) -> dict[str, Any]:
    """Where null responders land for this cell: the mean of n_angle (at least 1) episodes of a
    uniform random answerer and of an always-the-k-th-letter answerer, under the cell's order."""
    from scoring.null import null_bands

    n = max(int(row.get("n_angle") or 0), 1)
    bands = null_bands(row["instrument"], row["order"], n, level, items=items)
    keep = ("responder", "mean", "sd", "band", "categories", "types")
    return {b["responder"]: {k: b[k] for k in keep if k in b} for b in bands}


def _random_test(decisions: list[Any], st: dict[str, Any], key: tuple) -> dict[str, Any]:
    from scoring.null import random_answering_test

    return random_answering_test(decisions, n_sim=1999, seed=stable_seed(st["seed"], "random", *key) % 2**32)


def _letter_test(decisions: list[Any], st: dict[str, Any], key: tuple, n_orders: int) -> dict[str, Any]:
    from scoring.null import letter_vs_option_test

    out = letter_vs_option_test(decisions, seed=stable_seed(st["seed"], "letter", *key) % 2**32)
    out["orders"] = n_orders
    return out


def _key_str(row: dict[str, Any]) -> str:
    return json.dumps([row[k] for k in CELL_KEYS])


def _letter_prior(scored: list[tuple[dict, dict]], evidence: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per agent with letter probabilities (logprob mode): its estimated prior over option letters
    (PriDe, scoring/letter_prior.py; refused with the reason when the orders shown cannot separate
    letters from options) and, when identified, each cell's mean debiased angle (argmax and
    expected allocation) beside the raw one."""
    from scoring.letter_prior import ProbDecision, episode_angles, estimate_letter_prior

    by_agent: dict[str, list[tuple[dict, list]]] = defaultdict(list)
    for ep, _ in scored:
        letters = evidence.get(ep["key"], {}).get("letters") or []
        if letters:
            by_agent[ep["agent"]].append((ep, letters))
    out: dict[str, Any] = {}
    for agent, eps in by_agent.items():
        decisions = [
            ProbDecision.from_letters(
                (
                    item,
                    ep["instrument"],
                    ep["value"],
                    ep["goal"],
                    ep["prompt_set"],
                    ep["framing"],
                    ep["trial"],
                ),
                order,
                probs,
            )
            for ep, letters in eps
            for item, order, probs in letters
        ]
        prior = estimate_letter_prior(decisions)
        cells: dict[str, dict[str, Any]] = {}
        if prior.identified:
            per_cell: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for ep, letters in eps:
                inst = load_instrument(ep["instrument"])
                inst = inst.subset(ep.get("items", "primary")) if inst.scoring == "slider" else inst
                canon = {item: prior.debias(order, [probs.get(c) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[: len(order)]])
                         for item, order, probs in letters}  # fmt: skip
                per_cell[_key_str({**{k: ep.get(k) for k in CELL_KEYS}})].append(episode_angles(inst, canon))
            for k, angles in per_cell.items():
                arg = [a["angle_argmax"] for a in angles if a["angle_argmax"] is not None]
                exp = [a["angle_expected"] for a in angles if a["angle_expected"] is not None]
                cells[k] = {
                    "angle_argmax_mean": round(float(np.mean(arg)), 6) if arg else None,
                    "angle_expected_mean": round(float(np.mean(exp)), 6) if exp else None,
                    "n": len(arg),
                }
        out[agent] = {"prior": prior.as_dict(), "cells": cells}
    return out


def _goal_effects(by_key: dict[tuple, dict[str, Any]], st: dict[str, Any]) -> list[dict[str, Any]]:
    effects = []
    for key, c in by_key.items():
        off = by_key.get(_replace(key, "goal", False)) if c["goal"] else None
        if off is None:
            continue
        e = goal_effect(c["_used"], off["_used"], c["value"], st["conv"], level=st["level"])
        if e is not None:
            effects.append({**{k: c[k] for k in CELL_KEYS if k != "goal"}, **e})
    return effects


def _position_biases(by_key: dict[tuple, dict[str, Any]], st: dict[str, Any]) -> list[dict[str, Any]]:
    biases, seen = [], set()
    for key, c in by_key.items():
        k = _replace(key, "order", None)
        if k in seen:
            continue
        seen.add(k)
        same = [x for kk, x in by_key.items() if _replace(kk, "order", None) == k]
        letter = _letter_test([d for x in same for d in x["_shown"]], st, k, len(same))
        for x in same:
            x["letter_test"] = letter
        by_order = {x["order"]: x["_used"] for x in same}
        b = position_bias(by_order, level=st["level"], seed=stable_seed(st["seed"], "order", *k))
        if b is not None:
            biases.append({**{f: c[f] for f in CELL_KEYS if f != "order"}, **b, "letter_test": letter})
    return biases


def summarise(
    manifest: dict[str, Any],
    episodes: Sequence[dict[str, Any]],
    evidence: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Cells, goal effects, position bias and per-agent overall rows of the instrument episodes.

    evidence: `decision_evidence` of the run's decisions (answer methods, expected angles).
    """
    st = _settings(manifest)
    scored, mismatched = [], 0
    for ep in episodes:
        s = rescore(ep)
        if ep.get("score") is not None and json.dumps(ep["score"], sort_keys=True) != json.dumps(
            s, sort_keys=True
        ):
            mismatched += 1
        scored.append((ep, s))
    groups: dict[tuple, list] = defaultdict(list)
    for ep, s in scored:
        groups[_cell_key(ep)].append((ep, s))
    by_key = {
        key: _cell(key, groups[key], st, evidence or {}) for key in sorted(groups, key=_sort_key(st["cfg"]))
    }
    cells = list(by_key.values())
    effects = _goal_effects(by_key, st)
    biases = _position_biases(by_key, st)
    overall = _overall(cells, st["conv"])
    prior = _letter_prior(scored, evidence or {})
    for c in cells:
        c.pop("_shown", None)
        c.pop("_used", None)
        c["debiased"] = prior.get(c["agent"], {}).get("cells", {}).get(_key_str(c))
    return {
        "run": st["cfg"].get("name"),
        "convention": st["conv"],
        "n_episodes": len(episodes),
        "rescored_mismatches": mismatched,
        "cells": cells,
        "overall": overall,
        "goal_effect": effects,
        "position_bias": biases,
        "letter_prior": {a: v["prior"] for a, v in prior.items()},
    }


def _overall(cells: list[dict[str, Any]], conv: str) -> list[dict[str, Any]]:
    """Mean 0-60 rationality over values per (agent, instrument, prompt set, framing, goal, order)."""
    fields = [k for k in CELL_KEYS if k != "value"]
    groups: dict[tuple, list] = defaultdict(list)
    for c in cells:
        groups[tuple(c[k] for k in fields)].append(c)
    out = []
    for key, cs in groups.items():
        ok = [c.get(f"rationality_{conv}") for c in cs if c.get(f"rationality_{conv}") is not None]
        hit_k = sum(c["hit"]["k"] for c in cs if c.get("hit"))
        hit_n = sum(c["hit"]["n"] for c in cs if c.get("hit"))
        inv_k = sum(c["invalid"]["k"] for c in cs)
        inv_n = sum(c["invalid"]["n"] for c in cs)
        out.append(
            {
                **dict(zip(fields, key, strict=True)),
                "n_values": len(cs),
                "n_values_scored": len(ok),
                f"mean_rationality_{conv}": round(sum(ok) / len(ok), 3) if ok else None,
                "hit": {"k": hit_k, "n": hit_n, "rate": round(hit_k / hit_n, 6) if hit_n else None},
                "invalid": {"k": inv_k, "n": inv_n, "rate": round(inv_k / inv_n, 6) if inv_n else None},
            }
        )
    return out


# -- scenarios ------------------------------------------------------------------------------------------

SEAT_KEYS = ("scenario", "group", "agent", "value", "goal", "order", "prompt_set", "framing")


def _mean(xs: Sequence[float]) -> float | None:
    return round(float(np.mean(xs)), 6) if len(xs) else None


def _fit(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    from scoring.fit import fit_svo

    return fit_svo([r["options"] for r in rows], [r["option"] for r in rows]).as_dict()


def _cooperation(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean cooperation score of the valid decisions; k/n when every score is 0 or 1."""
    xs = [r["cooperation"] for r in rows if r["valid"] and r["cooperation"] is not None]
    out: dict[str, Any] = {"mean": _mean(xs), "n": len(xs)}
    if xs and all(x in (0.0, 1.0) for x in xs):
        out["k"] = int(sum(xs))
    return out


def _seat_cell(key: tuple, rows: list[dict[str, Any]], value: str | None) -> dict[str, Any]:
    """One seat cell: invalid answers, cooperation (overall and per round), payoff and the fit."""
    row: dict[str, Any] = dict(zip(SEAT_KEYS, key, strict=True))
    valid = [r for r in rows if r["valid"]]
    row["n_episodes"] = len({r["episode"] for r in rows})
    row["n_players"] = len({r["player"] for r in rows})
    row["invalid"] = {"k": len(rows) - len(valid), "n": len(rows)}
    row["cooperation"] = _cooperation(rows)
    by_round: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_round[int(r["round"] or 0)].append(r)
    row["cooperation_by_round"] = [_cooperation(by_round[k])["mean"] for k in sorted(by_round)]
    row["mean_payoff"] = _mean([r["reward"] for r in rows])
    fit = _fit(rows)
    row["fit"] = fit
    by_player: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_player[r["player"]].append(r)
    fits = [_fit(rs) for rs in by_player.values()] if len(by_player) > 1 else [fit]
    row["player_angles"] = {
        **circular_summary([f.get("angle") for f in fits]),
        "identified": sum(f.get("angle") is not None for f in fits),
        "players": len(fits),
    }
    trials: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        if r["valid"] and r["cooperation"] is not None:
            trials[int(r["trial"])].append(r["cooperation"])
    row["_trial_cooperation"] = {t: float(np.mean(v)) for t, v in trials.items()}
    if value is not None and fit.get("slider_angle") is not None:
        for conv in ("interval", "ideal"):
            d = float(svo.value_rationality(fit["slider_angle"], value, conv))
            row[f"distance_{conv}"] = round(d, 6)
            row[f"rationality_{conv}"] = round(float(svo.paper_scale(d)), 6)
    return row


def _seat_rows(episodes: Sequence[dict[str, Any]], decisions: Iterable[dict[str, Any]]) -> dict[tuple, list]:
    by_key = {e["key"]: e for e in episodes}
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for d in decisions:
        ep = by_key.get(d["episode"])
        if ep is None or ep.get("kind") != "scenario":
            continue
        seat = ep["players"][d["player"]]
        key = (
            d["instrument"],
            d["group"],
            d["agent"],
            d["value"],
            d["goal"],
            d["order"],
            ep["prompt_set"],
            seat["framing"],
        )
        groups[key].append(d)
    return groups


def _dilemma_bias(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per cell without its order: cooperation and fitted angle by action order, the index (max -
    min over orders) of each with the denominators, and each order's paired difference in
    cooperation from the first order (trials share their seeds across orders)."""
    out, seen = [], {}
    for c in cells:
        k = tuple(c[f] for f in SEAT_KEYS if f != "order")
        seen.setdefault(k, []).append(c)
    for k, cs in seen.items():
        if len({c["order"] for c in cs}) < 2:
            continue
        coop = {c["order"]: c["cooperation"] for c in cs}
        means = {o: v["mean"] for o, v in coop.items() if v["mean"] is not None}
        first, *rest = cs
        pairs = [
            {
                "from": first["order"],
                "to": c["order"],
                **paired_difference(first["_trial_cooperation"], c["_trial_cooperation"]),
            }
            for c in rest
        ]
        angles = {c["order"]: c["fit"].get("angle") for c in cs}
        ok = {o: a for o, a in angles.items() if a is not None}
        out.append(
            {
                **dict(zip([f for f in SEAT_KEYS if f != "order"], k, strict=True)),
                "cooperation_by_order": coop,
                "cooperation_index": round(max(means.values()) - min(means.values()), 6)
                if len(means) > 1
                else None,
                "cooperation_pairs": pairs,
                "angle_by_order": angles,
                "angle_index": round(float(max(ok.values()) - min(ok.values())), 6) if len(ok) > 1 else None,
                "angle_index_note": None
                if len(ok) > 1
                else f"fitted angle identified under {len(ok)} of {len(angles)} orders",
            }
        )
    return out


def _players(
    rows_by_player: dict[str, list[dict[str, Any]]], episodes: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    seat = {}
    for e in episodes:
        for p, s in (e.get("players") or {}).items():
            seat.setdefault(p, s)
    out = {}
    for p in sorted(seat, key=lambda x: (len(x), x)):
        rows = rows_by_player.get(p, [])
        fit = (
            _fit(rows)
            if rows
            else {"angle": None, "status": "unidentified", "reason": "no decisions (this role does not move)"}
        )
        out[p] = {
            "group": seat[p]["group"],
            "agent": seat[p]["agent"],
            "value": seat[p]["value"],
            "cooperation": _cooperation(rows)["mean"],
            "invalid": {"k": sum(not r["valid"] for r in rows), "n": len(rows)},
            "angle": fit.get("angle"),
            "status": fit.get("status"),
            "slider_angle": fit.get("slider_angle"),
            "fit": fit,
        }
    return out


def summarise_scenarios(
    manifest: dict[str, Any], episodes: Sequence[dict[str, Any]], decisions: Iterable[dict[str, Any]]
) -> dict[str, Any] | None:
    """Seat cells, per-player fits (pooled over conditions), the action-order bias and the whole
    population, from the scenario episodes of a run (None when it has none)."""
    eps = [e for e in episodes if e.get("kind") == "scenario"]
    if not eps:
        return None
    decisions = [d for d in decisions if d.get("player") is not None]
    groups = _seat_rows(eps, decisions)
    cfg = manifest.get("config", {})
    order_rank = {o: i for i, o in enumerate(cfg.get("orders") or [])}
    keys = sorted(
        groups, key=lambda k: (k[0], k[1], k[2], str(k[3]), not k[4], order_rank.get(k[5], 99), k[6], k[7])
    )
    cells = [_seat_cell(k, groups[k], k[3]) for k in keys]
    bias = _dilemma_bias(cells)
    for c in cells:
        c.pop("_trial_cooperation")
    by_player: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in decisions:
        by_player[d["player"]].append(d)
    everyone = [d for rows in groups.values() for d in rows]
    players = _players(by_player, eps)
    return {
        "scenario": eps[0]["instrument"],
        "game": eps[0].get("game"),
        "n_episodes": len(eps),
        "cells": cells,
        "position_bias": bias,
        "players": players,
        "population": {
            "player_angles": circular_summary([v["angle"] for v in players.values()]),
            "invalid": {"k": sum(not d["valid"] for d in everyone), "n": len(everyone)},
            "cooperation": _cooperation(everyone),
            "mean_payoff": _mean([d["reward"] for d in everyone]),
        },
    }


def summarise_run(
    manifest: dict[str, Any], episodes: Sequence[dict[str, Any]], decisions: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """The whole run's summary: instrument cells (may be empty) and the scenario part (or None)."""
    instrument = [e for e in episodes if e.get("kind", "instrument") == "instrument"]
    out = summarise(manifest, instrument, decision_evidence(d for d in decisions if d.get("player") is None))
    out["n_episodes"] = len(episodes)
    out["dilemma"] = summarise_scenarios(manifest, episodes, decisions)
    return out
