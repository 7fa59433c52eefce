"""python -m runs.report DIR: re-score a run's episodes, recompute its statistics, re-plot.

Needs no model: the episodes' canonical choices are re-scored with scoring.score_episode, grouped
into cells (agent, instrument, value, goal, option order), and summarised with scoring.stats.
Writes summary.json, summary.csv, summary.md and the plots into the run directory.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runs.store import DECISIONS, RunStore, StoreError, read_jsonl
from scenarios import load_instrument
from scoring import svo
from scoring.episode import score_episode
from scoring.stats import cell_summary, distinct_indices, goal_effect, position_bias, stable_seed

__all__ = ["main", "print_table", "rescore", "summarise", "write_reports"]

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


def summarise(
    manifest: dict[str, Any],
    episodes: Sequence[dict[str, Any]],
    evidence: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Cells, goal effects, position bias and per-agent overall rows from re-scored episodes.

    evidence: `decision_evidence` of the run's decisions (answer methods, expected angles).
    """
    evidence = evidence or {}
    cfg = manifest.get("config", {})
    n_boot, level = int(cfg.get("n_boot", 2000)), float(cfg.get("ci_level", 0.95))
    base_seed, conv = int(cfg.get("seed", 0)), cfg.get("convention", "interval")
    deterministic = manifest.get("deterministic", {})
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
    rank = {
        k: {v: i for i, v in enumerate(cfg.get(k, []))}
        for k in ("agents", "prompt_sets", "framings", "values", "orders")
    }

    def sort_key(k: tuple) -> tuple:
        a, i, ps, fr, v, g, o = k
        return (
            rank["agents"].get(a, 99),
            a,
            i,
            rank["prompt_sets"].get(ps, 99),
            ps,
            rank["framings"].get(fr, 99),
            fr,
            rank["values"].get(v, 99),
            not g,
            rank["orders"].get(o, 99),
            o,
        )

    cells = []
    by_key: dict[tuple, dict[str, Any]] = {}
    for key in sorted(groups, key=sort_key):
        members = sorted(groups[key], key=lambda x: x[0]["trial"])
        row = dict(zip(CELL_KEYS, key, strict=True))
        row.update(
            cell_summary(
                [s for _, s in members],
                row["value"],
                observation_keys=[_obs_key(ep) for ep, _ in members],
                dedupe=bool(deterministic.get(row["agent"], False)),
                n_boot=n_boot,
                level=level,
                seed=stable_seed(base_seed, "cell", *key),
            )
        )
        use = members
        if row["deduplicated"]:
            keep = distinct_indices([_obs_key(ep) for ep, _ in members])
            use = [members[i] for i in keep]
        row["_used"] = [s.get("angle") for _, s in use if s.get("angle") is not None]
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
        cells.append(row)
        by_key[key] = row

    effects, biases = [], []
    for key, c in by_key.items():
        if not c["goal"]:
            continue
        off = by_key.get(_replace(key, "goal", False))
        if off is None:
            continue
        e = goal_effect(
            _used_angles(c),
            _used_angles(off),
            c["value"],
            conv,
            n_boot=n_boot,
            level=level,
            seed=stable_seed(base_seed, "goal", *key),
        )
        if e is not None:
            effects.append({**{k: c[k] for k in CELL_KEYS if k != "goal"}, **e})
    seen = set()
    for key, c in by_key.items():
        k = _replace(key, "order", None)
        if k in seen:
            continue
        seen.add(k)
        by_order = {
            x["order"]: _used_angles(x) for kk, x in by_key.items() if _replace(kk, "order", None) == k
        }
        b = position_bias(by_order, n_boot=n_boot, level=level, seed=stable_seed(base_seed, "order", *k))
        if b is not None:
            biases.append({**{f: c[f] for f in CELL_KEYS if f != "order"}, **b})
    overall = _overall(cells, conv)
    for c in cells:
        c.pop("_used", None)
    return {
        "run": manifest.get("config", {}).get("name"),
        "convention": conv,
        "n_episodes": len(episodes),
        "rescored_mismatches": mismatched,
        "cells": cells,
        "overall": overall,
        "goal_effect": effects,
        "position_bias": biases,
    }


def _used_angles(cell: dict[str, Any]) -> list[float]:
    """Angles the cell's statistics used (first of each distinct observation when deduplicated)."""
    return cell["_used"]


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


def _framed(summary: dict[str, Any]) -> bool:
    """Whether the tables need prompt-set and framing columns (anything but the paper's English set)."""
    return any((c.get("prompt_set"), c.get("framing")) != ("paper", "none") for c in summary["cells"])


def _pf(row: dict[str, Any], show: bool) -> list[str]:
    return [row.get("prompt_set", "paper"), row.get("framing", "none")] if show else []


# -- output files --------------------------------------------------------------------------------

CSV_COLUMNS = (
    "agent",
    "instrument",
    "prompt_set",
    "framing",
    "value",
    "goal",
    "order",
    "n_episodes",
    "n_distinct",
    "n_used",
    "n_angle",
    "angle_mean",
    "angle_ci_lo",
    "angle_ci_hi",
    "angle_sd",
    "category_of_mean",
    "hit_k",
    "hit_n",
    "hit_rate",
    "distance_interval",
    "rationality_interval",
    "rationality_interval_ci_lo",
    "rationality_interval_ci_hi",
    "distance_ideal",
    "rationality_ideal",
    "rationality_ideal_ci_lo",
    "rationality_ideal_ci_hi",
    "episode_rationality_interval_mean",
    "episode_rationality_ideal_mean",
    "invalid_k",
    "invalid_n",
    "invalid_rate",
    "transitive_k",
    "transitive_n",
    "transitive_rate",
    "vector_length_mean",
    "expected_angle_mean",
    "n_expected_angle",
    "answer_methods",
)


def _flat(cell: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in cell.items() if not isinstance(v, (dict, list))}
    for k in ("angle_ci", "rationality_interval_ci", "rationality_ideal_ci"):
        ci = cell.get(k)
        row[f"{k}_lo"], row[f"{k}_hi"] = (ci[0], ci[1]) if ci else (None, None)
    row["answer_methods"] = _methods(cell)
    for k in ("hit", "invalid", "transitive"):
        r = cell.get(k) or {}
        row[f"{k}_k"], row[f"{k}_n"], row[f"{k}_rate"] = r.get("k"), r.get("n"), r.get("rate")
    return row


def _fmt(x: Any, nd: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _ci(ci: list | None, nd: int = 1) -> str:
    return "" if not ci else f" [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


def _kn(r: dict | None) -> str:
    return "-" if not r else f"{r['k']}/{r['n']}"


def _methods(c: dict[str, Any]) -> str:
    m = c.get("answer_methods") or {}
    return ", ".join(f"{k} {v['k']}/{v['n']}" for k, v in m.items()) or "-"


def _short(spec: str, n: int = 32) -> str:
    return spec if len(spec) <= n else spec[: n - 1] + "\u2026"


def cell_table_rows(summary: dict[str, Any], compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main results table (markdown: full; terminal: compact)."""
    cells = summary["cells"]
    llm = any(
        c.get("answer_methods") and set(c["answer_methods"]) - {"random", "utility", "fixed"} for c in cells
    )
    expected = any(c.get("expected_angle_mean") is not None for c in cells)
    show = _framed(summary)
    pf_head = ["prompt set", "framing"] if show else []
    if compact:
        head = [
            "agent",
            *pf_head,
            "value",
            "goal",
            "order",
            "n (distinct)",
            "angle [95% CI]",
            "category",
            "hit",
            "rationality 0-60",
            "invalid",
        ]
        rows = [
            [
                _short(c["agent"]),
                *_pf(c, show),
                c["value"],
                "on" if c["goal"] else "off",
                c["order"],
                f"{c['n_episodes']} ({c['n_distinct']})",
                _fmt(c["angle_mean"]) + _ci(c["angle_ci"]),
                c["category_of_mean"],
                _kn(c.get("hit")),
                _fmt(c.get(f"rationality_{summary['convention']}")),
                _kn(c["invalid"]),
            ]
            for c in cells
        ]
        return head, rows
    head = [
        "agent",
        "instrument",
        *pf_head,
        "value",
        "goal",
        "order",
        "n (distinct)",
        "angle [95% CI]",
        "category",
        "hit k/n",
        "rationality 0-60 interval [95% CI]",
        "rationality 0-60 ideal",
        "invalid k/n",
        "transitive k/n",
        "length",
    ]
    head += ["expected angle"] if expected else []
    head += ["answers: method k/n"] if llm else []
    rows = []
    for c in cells:
        row = [
            c["agent"],
            c["instrument"],
            *_pf(c, show),
            c["value"],
            "on" if c["goal"] else "off",
            c["order"],
            f"{c['n_episodes']} ({c['n_distinct']})",
            _fmt(c["angle_mean"]) + _ci(c["angle_ci"]),
            c["category_of_mean"],
            _kn(c.get("hit")),
            _fmt(c.get("rationality_interval")) + _ci(c.get("rationality_interval_ci")),
            _fmt(c.get("rationality_ideal")),
            _kn(c["invalid"]),
            _kn(c.get("transitive")),
            _fmt(c["vector_length_mean"]),
        ]
        row += [_fmt(c.get("expected_angle_mean"))] if expected else []
        row += [_methods(c)] if llm else []
        rows.append(row)
    return head, rows


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(summary: dict[str, Any], manifest: dict[str, Any]) -> str:
    cfg = manifest.get("config", {})
    conv = summary["convention"]
    out = [
        f"# SVO evaluation: {cfg.get('name') or 'run'}",
        "",
        f"{summary['n_episodes']} episodes; agents {cfg.get('agents')}; LLM mode {cfg.get('llm', {}).get('mode')}, "
        f"temperature {cfg.get('llm', {}).get('temperature')}; seed {cfg.get('seed')}; "
        f"code {manifest.get('code', {}).get('commit')}{' (dirty)' if manifest.get('code', {}).get('dirty') else ''}.",
        "",
        "Angle: mean SVO angle over trials (degrees) with a percentile bootstrap 95% interval. "
        "Rationality: the study's 0-60 scale, max(0, 60 - distance) of the mean angle to the target value's "
        "category interval (`interval`, default) or ideal-type angle (`ideal`). n (distinct): episodes "
        "(distinct observations; deterministic agents count each distinct observation once). "
        "Every rate is k/n.",
        "",
        "## Cells",
        "",
        _md_table(*cell_table_rows(summary)),
    ]
    show = _framed(summary)
    pf_head = ["prompt set", "framing"] if show else []
    if summary["overall"]:
        out += ["", f"## Overall (mean rationality over values, {conv})", ""]
        head = [
            "agent",
            "instrument",
            *pf_head,
            "goal",
            "order",
            "values scored",
            f"mean rationality ({conv})",
            "hit k/n",
            "invalid k/n",
        ]
        rows = [
            [
                o["agent"],
                o["instrument"],
                *_pf(o, show),
                "on" if o["goal"] else "off",
                o["order"],
                f"{o['n_values_scored']}/{o['n_values']}",
                _fmt(o[f"mean_rationality_{conv}"]),
                _kn(o["hit"]),
                _kn(o["invalid"]),
            ]
            for o in summary["overall"]
        ]
        out.append(_md_table(head, rows))
    if summary["goal_effect"]:
        out += ["", f"## Goal-prompt effect (with minus without; rationality {conv}, 0-60)", ""]
        head = [
            "agent",
            "instrument",
            *pf_head,
            "value",
            "order",
            "n on/off",
            "rationality on",
            "off",
            "diff [95% CI]",
            "angle diff [95% CI]",
        ]
        rows = [
            [
                e["agent"],
                e["instrument"],
                *_pf(e, show),
                e["value"],
                e["order"],
                f"{e['n_on']}/{e['n_off']}",
                _fmt(e["rationality_on"]),
                _fmt(e["rationality_off"]),
                _fmt(e["rationality_diff"]) + _ci(e["rationality_diff_ci"]),
                _fmt(e["angle_diff"]) + _ci(e["angle_diff_ci"]),
            ]
            for e in summary["goal_effect"]
        ]
        out.append(_md_table(head, rows))
    if summary["position_bias"]:
        out += ["", "## Position bias (mean angle by option order; index = max - min, degrees)", ""]
        head = [
            "agent",
            "instrument",
            *pf_head,
            "value",
            "goal",
            "index",
            "mean angle by order",
            "differences [95% CI]",
        ]
        rows = []
        for b in summary["position_bias"]:
            means = ", ".join(f"{k} {_fmt(v)} (n={b['n'][k]})" for k, v in b["means"].items())
            pairs = "; ".join(f"{p['to']}-{p['from']} {_fmt(p['diff'])}{_ci(p['ci'])}" for p in b["pairs"])
            rows.append(
                [
                    b["agent"],
                    b["instrument"],
                    *_pf(b, show),
                    b["value"],
                    "on" if b["goal"] else "off",
                    _fmt(b["index"]),
                    means,
                    pairs,
                ]
            )
        out.append(_md_table(head, rows))
    if summary.get("plots"):
        out += ["", "## Plots", ""] + [f"![{Path(p).stem}]({Path(p).name})" for p in summary["plots"]]
    if summary["rescored_mismatches"]:
        out += [
            "",
            f"Note: {summary['rescored_mismatches']} stored episode scores differ from a fresh re-scoring; "
            "the tables use the fresh scores.",
        ]
    return "\n".join(out) + "\n"


def write_reports(run_dir: str | Path, plots: bool = True) -> dict[str, Any]:
    """Re-score the run in `run_dir` and write summary.json/.csv/.md and the plots; return the summary."""
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    if not store.exists():
        raise StoreError(f"{run_dir}: no manifest.json (not a run directory)")
    manifest = store.read_manifest()
    episodes = store.episodes()
    summary = summarise(manifest, episodes, decision_evidence(read_jsonl(run_dir / DECISIONS)))
    if plots and episodes:
        from runs.plots import angle_plot, radar_plot

        made = [
            radar_plot(summary, run_dir / "radar.png"),
            angle_plot(summary, episodes, run_dir / "angles.png"),
        ]
        summary["plots"] = [str(p.name) for p in made if p is not None]
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with (run_dir / "summary.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for c in summary["cells"]:
            w.writerow(_flat(c))
    (run_dir / "summary.md").write_text(markdown(summary, manifest), encoding="utf-8")
    return summary


def print_table(summary: dict[str, Any]) -> None:
    """The results table on the terminal (rich)."""
    from rich.console import Console
    from rich.table import Table

    head, rows = cell_table_rows(summary, compact=True)
    table = Table(title=f"SVO results ({summary['n_episodes']} episodes)", show_lines=False)
    for h in head:
        table.add_column(h, overflow="fold")
    for r in rows:
        table.add_row(*r)
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m runs.report",
        description="Re-score a run's episodes and rewrite its summaries and plots (no model needed).",
    )
    p.add_argument("run_dir", help="a run directory written by python -m runs.evaluate")
    p.add_argument("--no-plots", action="store_true", help="skip the plots")
    p.add_argument("--quiet", action="store_true", help="do not print the table")
    args = p.parse_args(argv)
    try:
        summary = write_reports(args.run_dir, plots=not args.no_plots)
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        print_table(summary)
    print(
        f"wrote summary.json, summary.csv, summary.md{', plots' if summary.get('plots') else ''} in "
        f"{args.run_dir}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
