"""report.html: one self-contained page per run (or per comparison of two runs), opened from disk.

`python -m runs.report DIR --html` writes DIR/report.html (the runner writes it at the end of every
run); `python -m runs.report A B --html` writes a comparison of two runs, cell by cell. The page is
the template runs/templates/report.html (vanilla JavaScript, inline SVG, no network) with the
run's data embedded as JSON in <script type="application/json"> blocks:

- "meta": the manifest, the summary (runs.summary.summarise_run, rendered generically: any field a
  row has gets a column, so new summary fields appear without code changes), the SVO category
  bands and ideal-type angles, and one row per episode (columnar: `cols` names, `rows` values);
- "decisions": per episode its decision records, parsed only when an episode is opened or replies
  are searched. Prompt messages are interned (each distinct message stored once, a decision keeps
  indices; a conversation repeats every earlier message), as are option tables and shown orders.

A block larger than GZIP_OVER characters is gzip-compressed and base64-encoded (the page inflates
it with the browser's DecompressionStream), so a 50,000-decision run stays a few megabytes.
The output is deterministic: no timestamps beyond the manifest's own, gzip without a file time.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "GZIP_OVER",
    "HTML_NAME",
    "RunData",
    "compare_payload",
    "read_run",
    "render_html",
    "report_payload",
    "svo_reference",
    "write_compare",
    "write_html",
]

HTML_NAME = "report.html"
#: Blocks longer than this (characters of JSON) are embedded gzip + base64.
GZIP_OVER = 200_000
EPISODE_COLS = (
    "key", "kind", "agent", "instrument", "items", "order", "value", "goal", "trial", "prompt_set", "framing",
    "n_decisions", "n_invalid", "total_reward", "angle", "category", "hit", "rationality_interval",
    "rationality_ideal", "cell", "methods", "players",
)  # fmt: skip
_DEFAULTS = {"prompt_set": "paper", "framing": "none", "items": "primary", "kind": "instrument"}


@dataclass
class RunData:
    """What a report is built from: a run's directory, manifest, records and summary."""

    dir: Path
    manifest: dict[str, Any]
    episodes: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    summary: dict[str, Any]


def read_run(run_dir: str | Path) -> RunData:
    """Read and summarise a run from its store (StoreError if it is not a run; nothing is written)."""
    from runs.store import RunStore
    from runs.summary import summarise_run

    store = RunStore.read(run_dir)
    try:
        manifest = store.manifest()
        episodes = store.episodes()
        decisions = list(store.decisions())
    finally:
        store.close()
    return RunData(Path(run_dir), manifest, episodes, decisions, summarise_run(manifest, episodes, decisions))


# -- the SVO reference data the page draws (bands, ideal types) ----------------------------------------


def _finite(x: float, cap: float = 180.0) -> float:
    return max(-cap, min(cap, float(x))) if not math.isnan(x) else 0.0


def svo_reference() -> dict[str, Any]:
    """Category bands (lower bound closed) and the ideal-type angle of each value on the slider."""
    from scenarios import load_instrument, load_values
    from scoring.svo import ideal_type_angle

    slider = load_instrument("slider").subset("primary")
    values = load_values()
    return {
        "bands": [
            {"name": n, "lo": _finite(v.bounds()[0]), "hi": _finite(v.bounds()[1])} for n, v in values.items()
        ],
        "ideal": {n: round(ideal_type_angle(slider, n), 4) for n in values},
    }


# -- episodes ------------------------------------------------------------------------------------------------


def _episode_scores(episodes: Sequence[dict[str, Any]], fresh: bool) -> list[dict[str, Any] | None]:
    """Each instrument episode's score: re-scored when the summary found a stored score stale
    (fresh=True), else the stored one (the summary has checked that they agree)."""
    from runs.summary import rescore

    out: list[dict[str, Any] | None] = []
    for e in episodes:
        if e.get("kind", "instrument") != "instrument":
            out.append(None)
        elif fresh or e.get("score") is None:
            out.append(rescore(e))
        else:
            out.append(e["score"])
    return out


def _methods(decisions: Iterable[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in decisions:
        m = str((d.get("record") or {}).get("method", "unrecorded"))
        out[m] = out.get(m, 0) + 1
    return out


def _episode_rows(
    episodes: Sequence[dict[str, Any]],
    by_episode: Mapping[str, list[dict[str, Any]]],
    summary: dict[str, Any],
) -> list[list[Any]]:
    from runs.summary import CELL_KEYS

    cell_index = {tuple(c.get(k) for k in CELL_KEYS): i for i, c in enumerate(summary.get("cells") or [])}
    scores = _episode_scores(episodes, bool(summary.get("rescored_mismatches")))
    rows = []
    for e, s in zip(episodes, scores, strict=True):
        s = s or {}
        key = tuple(e.get(k, _DEFAULTS.get(k)) for k in CELL_KEYS)
        row = {
            **{k: e.get(k, _DEFAULTS.get(k)) for k in EPISODE_COLS},
            "angle": s.get("angle"),
            "category": s.get("category") or s.get("type"),
            "hit": s.get("hit"),
            "rationality_interval": s.get("rationality_interval"),
            "rationality_ideal": s.get("rationality_ideal"),
            "cell": cell_index.get(key),
            "methods": _methods(by_episode.get(e["key"], [])),
            "players": e.get("players"),
        }
        rows.append([row[k] for k in EPISODE_COLS])
    return rows


# -- decisions (interned) -------------------------------------------------------------------------------------


class _Interner:
    """Each distinct value stored once; records keep its index."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._index: dict[str, int] = {}

    def __call__(self, value: Any) -> int:
        k = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        i = self._index.get(k)
        if i is None:
            i = self._index[k] = len(self.items)
            self.items.append(value)
        return i


_EPISODE_FIELDS = ("episode", "value", "goal", "order", "instrument", "trial")


def _decision_blocks(
    episodes: Sequence[dict[str, Any]], by_episode: Mapping[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """Per episode (in episode order) its decisions, with messages, option tables and shown orders
    interned. Fields equal to the episode's own (key, value, goal, order...) are left out."""
    msgs, tables, orders = _Interner(), _Interner(), _Interner()
    out = []
    for e in episodes:
        eps = []
        for d in by_episode.get(e["key"], []):
            row = {k: v for k, v in d.items() if k not in _EPISODE_FIELDS and v is not None}
            if e.get("kind") != "scenario":
                row.pop("agent", None)
            row["options"] = tables(d.get("options"))
            row["shown_order"] = orders(d.get("shown_order"))
            rec = dict(d.get("record") or {})
            if isinstance(rec.get("messages"), list):
                rec["messages"] = [msgs([m.get("role"), m.get("content")]) for m in rec["messages"]]
            row["record"] = rec
            eps.append(row)
        out.append(eps)
    return {"episodes": out, "messages": msgs.items, "options": tables.items, "orders": orders.items}


# -- scenarios ------------------------------------------------------------------------------------------------


def _scenario_extra(summary: dict[str, Any], config: Mapping[str, Any]) -> dict[str, Any] | None:
    """Action labels per stage and the interaction graph (node positions) of a scenario run."""
    dil = summary.get("dilemma")
    if not dil:
        return None
    from scenarios import ScenarioError
    from scenarios.dilemmas import game_text, load_dilemma

    try:
        d = load_dilemma(config.get("scenario") or dil["scenario"])
    except (ScenarioError, OSError) as err:
        return {"error": f"scenario {dil['scenario']!r} cannot be loaded here ({err}); no graph or labels"}
    text = game_text(d, d.rounds, 0)
    return {
        "name": d.name,
        "game": d.game,
        "labels": [list(x) for x in text.labels],
        "stages": list(text.stage_names),
        "graph": _graph(d),
    }


def _graph(d: Any) -> dict[str, Any]:
    import networkx as nx

    g = d.graph_nodes() if d.game in ("matrix", "slider") else nx.complete_graph(d.player_names())
    try:
        pos = nx.spring_layout(g, seed=0) if g.number_of_nodes() > 2 else nx.circular_layout(g)
    except ImportError:  # large graphs need scipy for the spring layout
        pos = nx.circular_layout(g)
    nodes = list(g.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    return {
        "nodes": [
            {"id": str(n), "x": round(float(pos[n][0]), 4), "y": round(float(pos[n][1]), 4)} for n in nodes
        ],
        "edges": [[index[a], index[b]] for a, b in g.edges],
    }


# -- payloads ------------------------------------------------------------------------------------------------


def _group(decisions: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for d in decisions:
        out.setdefault(d["episode"], []).append(d)
    return out


def report_payload(
    manifest: dict[str, Any],
    episodes: Sequence[dict[str, Any]],
    decisions: Sequence[dict[str, Any]],
    summary: dict[str, Any],
    run_dir: str | Path | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The page's data: the "meta" block (manifest, summary, reference, episodes) and the
    "decisions" block."""
    by_episode = _group(decisions)
    cfg = manifest.get("config", {})
    name = cfg.get("name") or (Path(run_dir).name if run_dir else "run")
    meta = {
        "kind": "run",
        "title": f"SVO evaluation: {name}",
        "dir": str(run_dir) if run_dir else None,
        "manifest": manifest,
        "summary": summary,
        "svo": svo_reference(),
        "episodes": {"cols": list(EPISODE_COLS), "rows": _episode_rows(episodes, by_episode, summary)},
        "scenario": _scenario_extra(summary, cfg),
    }
    return meta, _decision_blocks(episodes, by_episode)


def _dumps(obj: Any) -> str:
    from runs.store import dumps

    return dumps(obj)


def _block(name: str, obj: Any) -> str:
    """One <script type="application/json"> block (gzip + base64 when large)."""
    text = _dumps(obj)
    if len(text) > GZIP_OVER:
        raw = gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)
        body, enc = base64.b64encode(raw).decode("ascii"), "gzip64"
    else:
        body, enc = text.replace("<", "\\u003c"), "json"
    return f'<script type="application/json" id="block-{name}" data-enc="{enc}">{body}</script>'


def render_html(meta: dict[str, Any], blocks: Mapping[str, Any]) -> str:
    """The page: the template with the "meta" block and the lazily parsed blocks embedded."""
    template = resources.files("runs").joinpath("templates/report.html").read_text(encoding="utf-8")
    data = "\n".join([_block("meta", meta), *(_block(k, v) for k, v in blocks.items())])
    title = str(meta.get("title", "SVO report")).replace("&", "&amp;").replace("<", "&lt;")
    return template.replace("<!--TITLE-->", title).replace("<!--DATA-->", data)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_html(
    run_dir: str | Path,
    manifest: dict[str, Any],
    episodes: Sequence[dict[str, Any]],
    decisions: Sequence[dict[str, Any]],
    summary: dict[str, Any],
) -> Path:
    """Write run_dir/report.html (atomically) and return its path."""
    run_dir = Path(run_dir)
    meta, dec = report_payload(manifest, episodes, decisions, summary, run_dir)
    path = run_dir / HTML_NAME
    _atomic_write(path, render_html(meta, {"decisions": dec}))
    return path


# -- comparing two runs ----------------------------------------------------------------------------------------


def _cell_angles(run: RunData) -> dict[tuple, list[float]]:
    """Per instrument cell, the episode angles its summary used (one per distinct observation for
    deterministic agents, as runs.summary does)."""
    from runs.summary import CELL_KEYS, observation_key
    from scoring.stats import distinct_indices

    scores = _episode_scores(run.episodes, bool(run.summary.get("rescored_mismatches")))
    groups: dict[tuple, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for e, s in zip(run.episodes, scores, strict=True):
        if s is not None:
            groups.setdefault(tuple(e.get(k, _DEFAULTS.get(k)) for k in CELL_KEYS), []).append((e, s))
    dedupe = {
        tuple(c.get(k) for k in CELL_KEYS): bool(c.get("deduplicated")) for c in run.summary.get("cells", [])
    }
    out = {}
    for key, members in groups.items():
        members.sort(key=lambda m: m[0]["trial"])
        if dedupe.get(key):
            members = [members[i] for i in distinct_indices([observation_key(e) for e, _ in members])]
        out[key] = [s["angle"] for _, s in members if s.get("angle") is not None]
    return out


def _difference(a: Sequence[float], b: Sequence[float], level: float) -> dict[str, Any]:
    """B - A of two runs' means with Welch's interval: the runs are independent samples (their
    trials are not paired, so no trial is matched with another run's)."""
    from scoring.stats import paired_difference

    return paired_difference(
        {("A", i): x for i, x in enumerate(a)}, {("B", i): x for i, x in enumerate(b)}, level
    )


def _compare_cells(a: RunData, b: RunData) -> list[dict[str, Any]]:
    from runs.summary import CELL_KEYS

    level = float(b.manifest.get("config", {}).get("ci_level", 0.95))
    conv = b.summary.get("convention", "interval")
    cells_a = {tuple(c.get(k) for k in CELL_KEYS): c for c in a.summary.get("cells", [])}
    cells_b = {tuple(c.get(k) for k in CELL_KEYS): c for c in b.summary.get("cells", [])}
    ang_a, ang_b = _cell_angles(a), _cell_angles(b)
    rows = []
    for key in list(cells_a) + [k for k in cells_b if k not in cells_a]:
        ca, cb = cells_a.get(key), cells_b.get(key)
        row: dict[str, Any] = dict(zip(CELL_KEYS, key, strict=True))
        row["in"] = "both" if ca and cb else ("A only" if ca else "B only")
        for side, c in (("A", ca), ("B", cb)):
            row[f"{side}_n"] = c.get("n_used") if c else None
            row[f"{side}_angle_mean"] = c.get("angle_mean") if c else None
            row[f"{side}_angle_ci"] = c.get("angle_ci") if c else None
            row[f"{side}_category"] = c.get("category_of_mean") if c else None
            row[f"{side}_rationality_{conv}"] = c.get(f"rationality_{conv}") if c else None
        if ca and cb and ang_a.get(key) and ang_b.get(key):
            d = _difference(ang_a[key], ang_b[key], level)
            row["angle_diff"], row["angle_diff_ci"] = d["diff"], d["ci"]
            row["angle_diff_method"], row["angle_diff_reason"] = d["method"], d.get("reason")
        rows.append(row)
    return rows


def _compare_seats(a: RunData, b: RunData) -> list[dict[str, Any]]:
    """Scenario seat cells of both runs: cooperation and payoff side by side, with the difference
    of mean cooperation over the decisions and its Welch interval."""
    from runs.summary import SEAT_KEYS

    def seats(run: RunData) -> dict[tuple, dict[str, Any]]:
        dil = run.summary.get("dilemma") or {}
        return {tuple(c.get(k) for k in SEAT_KEYS): c for c in dil.get("cells", [])}

    def coop(run: RunData) -> dict[tuple, list[float]]:
        kinds = {e["key"]: e for e in run.episodes if e.get("kind") == "scenario"}
        out: dict[tuple, list[float]] = {}
        for d in run.decisions:
            e = kinds.get(d["episode"])
            if e is None or not d["valid"] or d.get("cooperation") is None:
                continue
            fr = e["players"][d["player"]]["framing"]
            key = (
                d["instrument"],
                d["group"],
                d["agent"],
                d["value"],
                d["goal"],
                d["order"],
                e["prompt_set"],
                fr,
            )
            out.setdefault(key, []).append(float(d["cooperation"]))
        return out

    sa, sb = seats(a), seats(b)
    if not sa and not sb:
        return []
    level = float(b.manifest.get("config", {}).get("ci_level", 0.95))
    xa, xb = coop(a), coop(b)
    rows = []
    for key in list(sa) + [k for k in sb if k not in sa]:
        ca, cb = sa.get(key), sb.get(key)
        row: dict[str, Any] = dict(zip(SEAT_KEYS, key, strict=True))
        row["in"] = "both" if ca and cb else ("A only" if ca else "B only")
        for side, c in (("A", ca), ("B", cb)):
            row[f"{side}_cooperation"] = c["cooperation"]["mean"] if c else None
            row[f"{side}_n"] = c["cooperation"]["n"] if c else None
            row[f"{side}_mean_payoff"] = c.get("mean_payoff") if c else None
            row[f"{side}_fit_angle"] = (c.get("fit") or {}).get("angle") if c else None
        if ca and cb and xa.get(key) and xb.get(key):
            d = _difference(xa[key], xb[key], level)
            row["cooperation_diff"], row["cooperation_diff_ci"] = d["diff"], d["ci"]
            row["cooperation_diff_reason"] = d.get("reason")
        rows.append(row)
    return rows


def compare_payload(a: RunData, b: RunData) -> dict[str, Any]:
    """The comparison page's data: both runs' headers and the matched cells with B - A."""

    def side(run: RunData) -> dict[str, Any]:
        cfg = run.manifest.get("config", {})
        return {
            "name": cfg.get("name") or run.dir.name,
            "dir": str(run.dir),
            "manifest": run.manifest,
            "n_episodes": len(run.episodes),
            "n_decisions": len(run.decisions),
        }

    return {
        "kind": "compare",
        "title": f"SVO comparison: {side(a)['name']} vs {side(b)['name']}",
        "runs": {"A": side(a), "B": side(b)},
        "convention": b.summary.get("convention", "interval"),
        "level": float(b.manifest.get("config", {}).get("ci_level", 0.95)),
        "cells": _compare_cells(a, b),
        "seats": _compare_seats(a, b),
        "svo": svo_reference(),
    }


def write_compare(dir_a: str | Path, dir_b: str | Path, out: str | Path | None = None) -> Path:
    """Compare two runs into one page (default: <A>/compare-<B's folder name>.html). Both runs are read before
    anything is written (StoreError when either is not a run)."""
    a, b = read_run(dir_a), read_run(dir_b)
    path = Path(out) if out is not None else Path(dir_a) / f"compare-{Path(dir_b).resolve().name}.html"
    _atomic_write(path, render_html(compare_payload(a, b), {}))
    return path
