"""Summaries of a run's records: pure functions from stored episodes and decisions to the tables
that runs/report.py writes and runs/plots.py draws (no files, no model).

Instrument episodes are re-scored from their canonical choices (scoring.score_episode), grouped into
cells (agent, instrument, prompt set, framing, value, goal, option order) and summarised with
scoring.stats. Scenario episodes are summarised per seat cell (scenario, group, agent, value, goal,
action order, prompt set, framing): cooperation, payoffs, invalid answers, the SVO angle fitted to
the choices (scoring.fit) and the position-bias index across action orders.
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
from scoring.stats import cell_summary, distinct_indices, goal_effect, position_bias, stable_seed

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


def _obs_key(ep: dict[str, Any]) -> str:
    return json.dumps([ep.get("shown_orders"), ep["choices"]], sort_keys=True)


def decision_evidence(decisions: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per episode key: how each answer was obtained (the policy's record "method": strict,
    extractor, reask, logprob, invalid...) and, in logprob mode, the expected SVO angle from the
    expected allocations (None unless every item has one)."""
    out: dict[str, dict[str, Any]] = {}
    for d in decisions:
        e = out.setdefault(d["episode"], {"methods": defaultdict(int), "alloc": [], "n": 0})
        rec = d.get("record") or {}
        e["methods"][str(rec.get("method", "unrecorded"))] += 1
        e["n"] += 1
        if rec.get("expected_allocation") is not None:
            e["alloc"].append(rec["expected_allocation"])
    result = {}
    for key, e in out.items():
        angle = None
        if e["alloc"] and len(e["alloc"]) == e["n"]:
            a = np.asarray(e["alloc"], dtype=np.float64)
            angle = float(svo.svo_angle(a[:, 0], a[:, 1]))
        result[key] = {"methods": dict(e["methods"]), "expected_angle": angle}
    return result


def _settings(manifest: dict[str, Any]) -> dict[str, Any]:
    cfg = manifest.get("config", {})
    return {
        "cfg": cfg,
        "n_boot": int(cfg.get("n_boot", 2000)),
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
    obs_keys = [_obs_key(ep) for ep, _ in members]
    row.update(
        cell_summary(
            [s for _, s in members],
            row["value"],
            observation_keys=obs_keys,
            dedupe=bool(st["deterministic"].get(row["agent"], False)),
            n_boot=st["n_boot"],
            level=st["level"],
            seed=stable_seed(st["seed"], "cell", *key),
        )
    )
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


def _goal_effects(by_key: dict[tuple, dict[str, Any]], st: dict[str, Any]) -> list[dict[str, Any]]:
    effects = []
    for key, c in by_key.items():
        off = by_key.get(_replace(key, "goal", False)) if c["goal"] else None
        if off is None:
            continue
        e = goal_effect(
            list(c["_used"].values()),
            list(off["_used"].values()),
            c["value"],
            st["conv"],
            n_boot=st["n_boot"],
            level=st["level"],
            seed=stable_seed(st["seed"], "goal", *key),
        )
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
        by_order = {
            x["order"]: list(x["_used"].values())
            for kk, x in by_key.items()
            if _replace(kk, "order", None) == k
        }
        b = position_bias(
            by_order, n_boot=st["n_boot"], level=st["level"], seed=stable_seed(st["seed"], "order", *k)
        )
        if b is not None:
            biases.append({**{f: c[f] for f in CELL_KEYS if f != "order"}, **b})
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
    for c in cells:
        c.pop("_used", None)
    return {
        "run": st["cfg"].get("name"),
        "convention": st["conv"],
        "n_episodes": len(episodes),
        "rescored_mismatches": mismatched,
        "cells": cells,
        "overall": overall,
        "goal_effect": effects,
        "position_bias": biases,
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
    """Per cell without its order: cooperation and fitted angle by action order, and the index
    (max - min over orders) of each, with the denominators."""
    out, seen = [], {}
    for c in cells:
        k = tuple(c[f] for f in SEAT_KEYS if f != "order")
        seen.setdefault(k, []).append(c)
    for k, cs in seen.items():
        if len({c["order"] for c in cs}) < 2:
            continue
        coop = {c["order"]: c["cooperation"] for c in cs}
        means = {o: v["mean"] for o, v in coop.items() if v["mean"] is not None}
        angles = {c["order"]: c["fit"].get("angle") for c in cs}
        ok = {o: a for o, a in angles.items() if a is not None}
        out.append(
            {
                **dict(zip([f for f in SEAT_KEYS if f != "order"], k, strict=True)),
                "cooperation_by_order": coop,
                "cooperation_index": round(max(means.values()) - min(means.values()), 6)
                if len(means) > 1
                else None,
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
    by_player: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in decisions:
        by_player[d["player"]].append(d)
    everyone = [d for rows in groups.values() for d in rows]
    return {
        "scenario": eps[0]["instrument"],
        "game": eps[0].get("game"),
        "n_episodes": len(eps),
        "cells": cells,
        "position_bias": _dilemma_bias(cells),
        "players": _players(by_player, eps),
        "population": {
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
