"""python -m runs.report DIR [--html]: re-score any run (instrument or scenario) from its store and
rewrite its summaries, exports and plots. Needs no model.

Writes into the run directory: summary.json, summary.csv (instrument cells), dilemma.csv (scenario
seat cells), summary.md, manifest.json, episodes.jsonl and decisions.jsonl (exports of the store),
and the plots (radar.png and angles.png for instruments; graph.png and rounds.png for scenarios).
A directory that is missing or holds no run is refused with exit status 2 and nothing written.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runs.store import RunStore, StoreError
from runs.summary import summarise_run

__all__ = ["cell_table_rows", "dilemma_table_rows", "main", "markdown", "print_table", "write_reports"]


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
    "angle_ci_method",
    "angle_ci_reason",
    "null_uniform_mean",
    "null_uniform_lo",
    "null_uniform_hi",
    "null_letter_a_mean",
    "random_test_p",
    "random_distinguishable",
    "letter_verdict",
    "letter_effect_p",
    "option_effect_p",
    "debiased_angle_argmax_mean",
    "debiased_angle_expected_mean",
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
    uni = (cell.get("null") or {}).get("uniform") or {}
    band = uni.get("band") or [None, None]
    row["null_uniform_mean"], row["null_uniform_lo"], row["null_uniform_hi"] = (
        uni.get("mean"),
        band[0],
        band[1],
    )
    row["null_letter_a_mean"] = ((cell.get("null") or {}).get("letter A") or {}).get("mean")
    rt, lt = cell.get("random_test") or {}, cell.get("letter_test") or {}
    row["random_test_p"], row["random_distinguishable"] = rt.get("p_value"), rt.get("distinguishable")
    row["letter_verdict"] = lt.get("verdict")
    row["letter_effect_p"], row["option_effect_p"] = lt.get("p_letter_effect"), lt.get("p_option_effect")
    d = cell.get("debiased") or {}
    row["debiased_angle_argmax_mean"] = d.get("angle_argmax_mean")
    row["debiased_angle_expected_mean"] = d.get("angle_expected_mean")
    return row


def _fmt(x: Any, nd: int = 1) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _ci(ci: list | None, nd: int = 1) -> str:
    return "" if not ci else f" [{ci[0]:.{nd}f}, {ci[1]:.{nd}f}]"


def _angle(c: dict[str, Any]) -> str:
    """The mean angle with its interval, or why there is none ("no variation in n=K")."""
    if c.get("angle_mean") is None:
        return "-"
    if c.get("angle_ci"):
        return _fmt(c["angle_mean"]) + _ci(c["angle_ci"])
    why = c.get("angle_ci_reason")
    return _fmt(c["angle_mean"]) + (f" ({why})" if why else "")


def _null_text(c: dict[str, Any]) -> str:
    """Where a uniform random answerer and an always-'A' answerer land for this cell (mean of n)."""
    null = c.get("null") or {}
    uni, first = null.get("uniform"), null.get("letter A")
    parts = []
    if uni and uni.get("band"):
        parts.append(f"random {_fmt(uni['mean'])} [{uni['band'][0]:.1f}, {uni['band'][1]:.1f}]")
    if first and first.get("mean") is not None:
        parts.append(f"always A {_fmt(first['mean'])}")
    return "; ".join(parts) or "-"


def _p(x: Any) -> str:
    return "-" if x is None else (f"{x:.3f}" if x >= 0.001 else "<0.001")


def _random_text(c: dict[str, Any]) -> str:
    t = c.get("random_test") or {}
    if t.get("p_value") is None:
        return t.get("reason") or "-"
    return f"{'yes' if t['distinguishable'] else 'no'} (p {_p(t['p_value'])})"


def _letter_text(t: dict[str, Any] | None) -> str:
    if not t:
        return "-"
    v = t.get("verdict") or "-"
    if t.get("p_letter_effect") is None:
        return v
    return f"{v} (letter p {_p(t['p_letter_effect'])}, option p {_p(t.get('p_option_effect'))})"


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
            "random answering band",
            "letters?",
        ]
        rows = [
            [
                _short(c["agent"]),
                *_pf(c, show),
                c["value"],
                "on" if c["goal"] else "off",
                c["order"],
                f"{c['n_episodes']} ({c['n_distinct']})",
                _angle(c),
                c["category_of_mean"],
                _kn(c.get("hit")),
                _fmt(c.get(f"rationality_{summary['convention']}")),
                _kn(c["invalid"]),
                _null_text(c).split(";")[0].removeprefix("random "),
                (c.get("letter_test") or {}).get("verdict") or "-",
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
        "null responders here (mean [95% band])",
        "distinguishable from random answering",
        "letter or option (across orders)",
    ]
    head += ["expected angle"] if expected else []
    head += ["debiased angle (letter prior)"] if any(c.get("debiased") for c in cells) else []
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
            _angle(c),
            c["category_of_mean"],
            _kn(c.get("hit")),
            _fmt(c.get("rationality_interval")) + _ci(c.get("rationality_interval_ci")),
            _fmt(c.get("rationality_ideal")),
            _kn(c["invalid"]),
            _kn(c.get("transitive")),
            _fmt(c["vector_length_mean"]),
            _null_text(c),
            _random_text(c),
            _letter_text(c.get("letter_test")),
        ]
        row += [_fmt(c.get("expected_angle_mean"))] if expected else []
        if any(x.get("debiased") for x in cells):
            d = c.get("debiased") or {}
            row.append(
                _fmt(d.get("angle_argmax_mean"))
                + (f" (expected {_fmt(d.get('angle_expected_mean'))})" if d else "")
            )
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
    who = (
        f"scenario {cfg.get('scenario')}, agents {cfg.get('agents') or 'as written'}"
        if cfg.get("scenario")
        else f"agents {cfg.get('agents')}"
    )
    out = [
        f"# SVO evaluation: {cfg.get('name') or 'run'}",
        "",
        f"{summary['n_episodes']} episodes; {who}; LLM mode {cfg.get('llm', {}).get('mode')}, "
        f"temperature {cfg.get('llm', {}).get('temperature')}; seed {cfg.get('seed')}; "
        f"code {manifest.get('code', {}).get('commit')}{' (dirty)' if manifest.get('code', {}).get('dirty') else ''}.",
    ]
    if summary["cells"]:
        out += ["", "## What the null models say", ""] + _headlines(summary)
        out += [
            "",
            "Angle: mean SVO angle over trials (degrees) with a Student-t 95% interval (none, with the "
            "reason, when the trials do not vary). Null responders: where a uniform random answerer and an "
            "always-'A' answerer land under the cell's option order (exact, for the mean of the cell's n). "
            "Distinguishable from random answering: a randomisation test of the cell's choices. Letter or "
            "option: whether the choices across the option orders of the same agent, value and goal follow the "
            "letter shown or the option (docs/validity.md). "
            "Rationality: the study's 0-60 scale, max(0, 60 - distance) of the mean angle to the target value's "
            "category interval (`interval`, default) or ideal-type angle (`ideal`). n (distinct): episodes "
            "(distinct observations; deterministic agents count each distinct observation once). "
            "Every rate is k/n.",
            "",
            "## Cells",
            "",
            _md_table(*cell_table_rows(summary)),
        ]
    if summary.get("dilemma"):
        out += _dilemma_md(summary["dilemma"])
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
            "n on/off (pairs)",
            "rationality on",
            "off",
            "diff [95% CI]",
            "angle diff [95% CI] (method)",
        ]
        rows = [
            [
                e["agent"],
                e["instrument"],
                *_pf(e, show),
                e["value"],
                e["order"],
                f"{e['n_on']}/{e['n_off']} ({e.get('n_pairs')})",
                _fmt(e["rationality_on"]),
                _fmt(e["rationality_off"]),
                _fmt(e["rationality_diff"])
                + (_ci(e["rationality_diff_ci"]) or f" ({e.get('rationality_diff_reason') or '-'})"),
                _fmt(e["angle_diff"])
                + (_ci(e["angle_diff_ci"]) or f" ({e.get('angle_diff_reason') or '-'})")
                + f" ({e.get('angle_diff_method') or '-'})",
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
            "index [95% CI]",
            "no-order-effect test: p (noise floor)",
            "mean angle by order",
            "paired differences [95% CI]",
            "letter or option",
        ]
        rows = []
        for b in summary["position_bias"]:
            means = ", ".join(f"{k} {_fmt(v)} (n={b['n'][k]})" for k, v in b["means"].items())
            pairs = "; ".join(
                f"{p['to']}-{p['from']} {_fmt(p['diff'])}{_ci(p['ci']) or ' (' + str(p.get('reason')) + ')'}"
                for p in b["pairs"]
            )
            t = b.get("test") or {}
            test = f"{_p(t.get('p_value'))} ({_fmt(t.get('noise_floor'))})" if t else "- (unpaired)"
            index = _fmt(b["index"]) + (_ci(b.get("index_ci")) or f" ({b.get('index_ci_reason') or '-'})")
            rows.append(
                [
                    b["agent"],
                    b["instrument"],
                    *_pf(b, show),
                    b["value"],
                    "on" if b["goal"] else "off",
                    index,
                    test,
                    means,
                    pairs,
                    _letter_text(b.get("letter_test")),
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


def _headlines(summary: dict[str, Any]) -> list[str]:
    """Per agent, one line: how many cells are distinguishable from random answering, and what the
    letter-or-option test found across option orders. Read these before the angles."""
    lines = []
    for agent in dict.fromkeys(c["agent"] for c in summary["cells"]):
        cs = [c for c in summary["cells"] if c["agent"] == agent]
        tested = [c for c in cs if (c.get("random_test") or {}).get("distinguishable") is not None]
        k = sum(bool(c["random_test"]["distinguishable"]) for c in tested)
        groups = {
            json.dumps([c["value"], c["goal"], c["prompt_set"], c["framing"], c["instrument"]]): c.get(
                "letter_test"
            )
            for c in cs
        }
        verdicts = [t.get("verdict") for t in groups.values() if t]
        counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts)}
        letter = ", ".join(f"{v} in {n} of {len(verdicts)}" for v, n in counts.items()) or "not tested"
        warn = (
            " **Its choices follow the letter shown, not the option: the angles below measure letter bias.**"
            if counts.get("letter-following")
            else ""
        )
        lines.append(
            f"- `{agent}`: distinguishable from random answering in {k} of {len(tested)} cells; letter or option "
            f"(value x goal groups, across option orders): {letter}.{warn}"
        )
    return lines


def dilemma_table_rows(dil: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a scenario's seat cells."""
    head = ["group", "agent", "value", "goal", "order", "prompt set", "framing", "players", "cooperation",
            "mean payoff", "fitted angle", "fit", "rationality 0-60 (interval)", "invalid k/n"]  # fmt: skip
    rows = []
    for c in dil["cells"]:
        coop = c["cooperation"]
        coop_s = f"{coop['k']}/{coop['n']}" if "k" in coop else f"{_fmt(coop['mean'], 3)} (n={coop['n']})"
        fit = c["fit"]
        rows.append(
            [c["group"], _short(c["agent"]), str(c["value"] or "-"), "on" if c["goal"] else "off", c["order"],
             c["prompt_set"], c["framing"], str(c["n_players"]), coop_s, _fmt(c["mean_payoff"], 2),
             _fmt(fit.get("angle")), str(fit.get("status")), _fmt(c.get("rationality_interval")), _kn(c["invalid"])]
        )  # fmt: skip
    return head, rows


def _dilemma_md(dil: dict[str, Any]) -> list[str]:
    out = ["", f"## Scenario {dil['scenario']} ({dil['game']}, {dil['n_episodes']} episodes)", ""]
    pop = dil["population"]
    out.append(
        f"Population: cooperation {_fmt(pop['cooperation']['mean'], 3)} (n={pop['cooperation']['n']}), "
        f"mean payoff {_fmt(pop['mean_payoff'], 3)}, invalid {_kn(pop['invalid'])}."
    )
    out += ["", _md_table(*dilemma_table_rows(dil))]
    if dil["position_bias"]:
        out += ["", "### Position bias (action order; index = max - min over orders)", ""]
        head = ["group", "agent", "value", "goal", "prompt set", "framing", "cooperation by order", "index",
                "fitted angle by order", "angle index"]  # fmt: skip
        rows = []
        for b in dil["position_bias"]:
            coop = ", ".join(
                f"{o} {_fmt(v['mean'], 3)} (n={v['n']})" for o, v in b["cooperation_by_order"].items()
            )
            ang = ", ".join(f"{o} {_fmt(a)}" for o, a in b["angle_by_order"].items())
            rows.append(
                [b["group"], _short(b["agent"]), str(b["value"] or "-"), "on" if b["goal"] else "off", b["prompt_set"],
                 b["framing"], coop, _fmt(b["cooperation_index"], 3), ang, _fmt(b["angle_index"]) if b["angle_index"] is not None else (b["angle_index_note"] or "-")]
            )  # fmt: skip
        out.append(_md_table(head, rows))
    return out


DILEMMA_COLUMNS = (
    "scenario", "group", "agent", "value", "goal", "order", "prompt_set", "framing", "n_episodes", "n_players",
    "invalid_k", "invalid_n", "cooperation_mean", "cooperation_k", "cooperation_n", "mean_payoff", "fit_angle",
    "fit_status", "fit_slider_angle", "rationality_interval", "rationality_ideal",
)  # fmt: skip


def _dilemma_flat(c: dict[str, Any]) -> dict[str, Any]:
    row = {k: c.get(k) for k in DILEMMA_COLUMNS}
    row["invalid_k"], row["invalid_n"] = c["invalid"]["k"], c["invalid"]["n"]
    row["cooperation_mean"], row["cooperation_n"] = c["cooperation"]["mean"], c["cooperation"]["n"]
    row["cooperation_k"] = c["cooperation"].get("k")
    row["fit_angle"], row["fit_status"] = c["fit"].get("angle"), c["fit"].get("status")
    row["fit_slider_angle"] = c["fit"].get("slider_angle")
    return row


def _plots(
    run_dir: Path, summary: dict[str, Any], episodes: list[dict[str, Any]], config: dict[str, Any]
) -> list[str]:
    from runs.plots import angle_plot, graph_plot, radar_plot, rounds_plot

    made = []
    if summary["cells"]:
        made += [
            radar_plot(summary, run_dir / "radar.png"),
            angle_plot(summary, episodes, run_dir / "angles.png"),
        ]
    if summary.get("dilemma"):
        made += [
            graph_plot(summary["dilemma"], config, run_dir / "graph.png"),
            rounds_plot(summary["dilemma"], run_dir / "rounds.png"),
        ]
    return [p.name for p in made if p is not None]


def write_reports(
    run_dir: str | Path, plots: bool = True, store: RunStore | None = None, html: bool = False
) -> dict[str, Any]:
    """Re-score the run in `run_dir` from its store; write its exports, summaries and plots, and
    with html=True report.html (runs/html.py)."""
    run_dir = Path(run_dir)
    own = store is None
    store = store or RunStore.read(run_dir)
    try:
        manifest = store.manifest()
        episodes = store.episodes()
        decisions = list(store.decisions())
        if own:
            store.export()
    finally:
        if own:
            store.close()
    summary = summarise_run(manifest, episodes, decisions)
    if plots and episodes:
        summary["plots"] = _plots(run_dir, summary, episodes, manifest.get("config", {}))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with (run_dir / "summary.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for c in summary["cells"]:
            w.writerow(_flat(c))
    if summary.get("dilemma"):
        with (run_dir / "dilemma.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=DILEMMA_COLUMNS, extrasaction="ignore")
            w.writeheader()
            for c in summary["dilemma"]["cells"]:
                w.writerow(_dilemma_flat(c))
    (run_dir / "summary.md").write_text(markdown(summary, manifest), encoding="utf-8")
    if html:
        from runs.html import write_html

        write_html(run_dir, manifest, episodes, decisions, summary)
    return summary


def print_table(summary: dict[str, Any]) -> None:
    """The results table on the terminal (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)
    tables = []
    if summary["cells"]:
        tables.append(
            (f"SVO results ({summary['n_episodes']} episodes)", *cell_table_rows(summary, compact=True))
        )
    if summary.get("dilemma"):
        tables.append((f"Scenario {summary['dilemma']['scenario']}", *dilemma_table_rows(summary["dilemma"])))
    for title, head, rows in tables:
        table = Table(title=title, show_lines=False)
        for h in head:
            table.add_column(h, overflow="fold")
        for r in rows:
            table.add_row(*r)
        console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m runs.report",
        description="Re-score a run's episodes and rewrite its summaries and plots (no model needed).",
    )
    p.add_argument("run_dir", help="a run directory written by python -m runs.evaluate")
    p.add_argument(
        "other", nargs="?", help="with --html: a second run to compare with the first, cell by cell"
    )
    p.add_argument(
        "--html", action="store_true", help="also write report.html (self-contained, opens offline)"
    )
    p.add_argument("--out", metavar="FILE", help="comparison page path [RUN_DIR/compare-<other>.html]")
    p.add_argument("--no-plots", action="store_true", help="skip the plots")
    p.add_argument("--quiet", action="store_true", help="do not print the table")
    args = p.parse_args(argv)
    if args.other is not None or args.out is not None:
        return _compare(args)
    try:
        summary = write_reports(args.run_dir, plots=not args.no_plots, html=args.html)
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        print_table(summary)
    print(
        f"wrote summary.json, summary.csv, summary.md{', plots' if summary.get('plots') else ''}"
        f"{', report.html' if args.html else ''} in "
        f"{args.run_dir}",
        file=sys.stderr,
    )
    return 0


def _compare(args: argparse.Namespace) -> int:
    """runs.report A B --html: the comparison page (both runs are read before anything is written)."""
    from runs.html import write_compare

    if args.other is None or not args.html:
        print(
            "error: comparing two runs writes a page: python -m runs.report A B --html [--out FILE]",
            file=sys.stderr,
        )
        return 2
    try:
        path = write_compare(args.run_dir, args.other, args.out)
    except StoreError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: cannot write the comparison: {err}", file=sys.stderr)
        return 2
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
