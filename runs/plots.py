"""The run's figures: the paper's radar of value rationality and SVO angles against the slider's
category bands (instrument runs); a scenario's graph coloured by each player's fitted angle and its
cooperation per round (scenario runs). All read a summary (runs.summary.summarise_run) and are
written with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["angle_plot", "graph_plot", "radar_plot", "rounds_plot"]

_GOAL_STYLE = {True: ("tab:blue", "with goal prompt"), False: ("tab:orange", "without goal prompt")}
_ORDER_LS = {"fixed": "-", "reversed": "--", "permuted": ":"}
_BAND_COLOURS = {
    "altruistic": "#d9f0d3",
    "prosocial": "#e7f3fb",
    "individualistic": "#fdf1d8",
    "competitive": "#f8dcdc",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def radar_plot(summary: dict[str, Any], path: Path, convention: str | None = None) -> Path | None:
    """Value rationality (0-60) per value, with vs without the goal prompt, one panel per agent.

    Uses the slider cells; one line per goal condition (and per option order when several).
    Returns the path, or None when no slider cell has a rationality score.
    """
    import numpy as np

    conv = convention or summary.get("convention", "interval")
    cells = [
        c
        for c in summary["cells"]
        if c["instrument"] == "slider" and c.get(f"rationality_{conv}") is not None
    ]
    if not cells:
        return None
    agents = list(dict.fromkeys(c["agent"] for c in cells))
    values = list(dict.fromkeys(c["value"] for c in summary["cells"]))
    plt = _pyplot()
    n = len(agents)
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(
        rows, cols, subplot_kw={"projection": "polar"}, figsize=(5.4 * cols, 5.8 * rows), squeeze=False
    )
    theta = np.linspace(0, 2 * np.pi, len(values), endpoint=False)
    for ax, agent in zip(axes.flat, agents, strict=False):
        mine = [c for c in cells if c["agent"] == agent]
        for goal in (False, True):  # "with" drawn last, thinner, so coinciding lines both show
            for order in dict.fromkeys(c["order"] for c in mine):
                by_value = {
                    c["value"]: c[f"rationality_{conv}"]
                    for c in mine
                    if c["goal"] == goal and c["order"] == order
                }
                if not by_value:
                    continue
                r = np.array([by_value.get(v, np.nan) for v in values], dtype=float)
                colour, label = _GOAL_STYLE[goal]
                label = label if len({c["order"] for c in mine}) == 1 else f"{label}, {order}"
                tt, rr = np.append(theta, theta[0]), np.append(r, r[0])
                ax.plot(
                    tt,
                    rr,
                    color=colour,
                    ls=_ORDER_LS.get(order, "-"),
                    marker="o" if goal else "s",
                    lw=1.5 if goal else 3.5,
                    ms=5 if goal else 8,
                    alpha=1.0 if goal else 0.7,
                    label=label,
                )
                ax.fill(tt, np.nan_to_num(rr), color=colour, alpha=0.12)
        ax.set_xticks(theta)
        ax.set_xticklabels(values)
        ax.tick_params(axis="x", pad=12)
        ax.set_ylim(0, 60)
        ax.set_yticks([0, 15, 30, 45, 60])
        ax.set_title(agent, pad=18, fontsize=10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8, frameon=False)
    for ax in list(axes.flat)[n:]:
        ax.set_visible(False)
    fig.suptitle(f"Value rationality (0-60, {conv} convention), slider", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def angle_plot(summary: dict[str, Any], episodes: Sequence[dict[str, Any]], path: Path) -> Path | None:
    """Per-episode SVO angles (dots), cell means with 95% intervals (bars) and the target's ideal
    angle (x), against the slider's category bands; one panel per agent."""
    import numpy as np

    from runs.summary import rescore
    from scenarios import load_instrument, load_values
    from scoring.svo import ideal_type_angle

    eps = [e for e in episodes if e["instrument"] == "slider"]
    if not eps:
        return None
    angles: dict[tuple, list[float]] = {}
    for e in eps:
        a = rescore(e).get("angle")
        if a is not None:
            angles.setdefault((e["agent"], e["value"], e["goal"], e["order"]), []).append(a)
    cells = [c for c in summary["cells"] if c["instrument"] == "slider"]
    agents = list(dict.fromkeys(c["agent"] for c in cells))
    slider = load_instrument("slider").subset("primary")
    bounds = {name: v.bounds() for name, v in load_values().items()}
    lo_x, hi_x = -20.0, 66.0
    plt = _pyplot()
    heights = [max(2, len([c for c in cells if c["agent"] == a])) * 0.42 + 1.0 for a in agents]
    fig, axes = plt.subplots(
        len(agents), 1, figsize=(8, sum(heights)), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    rng = np.random.default_rng(0)  # jitter only; does not touch any result
    for ax, agent in zip(axes[:, 0], agents, strict=False):
        mine = [c for c in cells if c["agent"] == agent]
        for name, (lo, hi) in bounds.items():
            ax.axvspan(max(lo, lo_x), min(hi, hi_x), color=_BAND_COLOURS[name], zorder=0)
            ax.text(
                (max(lo, lo_x) + min(hi, hi_x)) / 2,
                -0.45,
                name,
                ha="center",
                va="center",
                fontsize=7,
                color="0.35",
            )
        labels = []
        for y, c in enumerate(mine):
            colour, _ = _GOAL_STYLE[c["goal"]]
            null = c.get("null") or {}
            uni, first = null.get("uniform") or {}, null.get("letter A") or {}
            if uni.get("band"):  # where a random answerer's mean of n would land (95%)
                lo, hi = uni["band"]
                ax.fill_betweenx([y - 0.32, y + 0.32], lo, hi, color="0.55", alpha=0.25, lw=0, zorder=1)
            if first.get("mean") is not None:
                ax.scatter([first["mean"]], [y], marker="|", s=160, color="0.25", zorder=2)
            pts = angles.get((agent, c["value"], c["goal"], c["order"]), [])
            if pts:
                ax.scatter(
                    pts, y + rng.uniform(-0.15, 0.15, len(pts)), s=10, color=colour, alpha=0.5, zorder=2
                )
            if c["angle_mean"] is not None:
                ci = c["angle_ci"] or [c["angle_mean"], c["angle_mean"]]  # no interval: a point, labelled so
                ax.errorbar(
                    c["angle_mean"],
                    y,
                    xerr=[[c["angle_mean"] - ci[0]], [ci[1] - c["angle_mean"]]],
                    fmt="D",
                    color="black",
                    ms=5,
                    capsize=3,
                    zorder=3,
                )
            ax.scatter(
                [ideal_type_angle(slider, c["value"])], [y], marker="x", color="crimson", s=40, zorder=4
            )
            labels.append(f"{c['value']}, goal {'on' if c['goal'] else 'off'}, {c['order']}")
        ax.set_yticks(range(len(mine)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.set_ylim(len(mine) - 0.1, -0.7)
        ax.set_xlim(lo_x, hi_x)
        ax.set_title(agent, fontsize=10)
        ax.set_xlabel(
            "SVO angle (degrees); dots: episodes, diamond: mean [95% CI], x: target ideal type;\n"
            "grey band: where random answering lands (95%), |: always the first letter"
        )
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def graph_plot(dil: dict[str, Any], config: dict[str, Any], path: Path) -> Path | None:
    """The scenario's players on its graph, coloured by the SVO angle fitted to each player's
    choices (pooled over the run's conditions); players whose angle is not identified are grey."""
    import networkx as nx

    from scenarios.dilemmas import load_dilemma

    d = load_dilemma(config.get("scenario") or dil["scenario"])
    players = dil["players"]
    if d.game in ("matrix", "slider"):
        graph = d.graph_nodes()
    else:
        graph = nx.complete_graph(d.player_names())
    angles = {p: v["angle"] for p, v in players.items()}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    pos = nx.spring_layout(graph, seed=0) if graph.number_of_nodes() > 2 else nx.circular_layout(graph)
    ident = [n for n in graph.nodes if angles.get(n) is not None]
    other = [n for n in graph.nodes if angles.get(n) is None]
    nx.draw_networkx_edges(graph, pos, ax=ax, alpha=0.4)
    if ident:
        nodes = nx.draw_networkx_nodes(
            graph, pos, nodelist=ident, node_color=[angles[n] for n in ident], cmap=plt.get_cmap("coolwarm_r"),
            vmin=-45, vmax=90, ax=ax,
        )  # fmt: skip
        fig.colorbar(nodes, ax=ax, label="fitted SVO angle (degrees)")
    if other:
        nx.draw_networkx_nodes(
            graph, pos, nodelist=other, node_color="white", edgecolors="0.4", linewidths=1.2, node_shape="s",
            ax=ax, label="angle not identified",
        )  # fmt: skip
        ax.legend(loc="lower left", fontsize=8)
    nx.draw_networkx_labels(
        graph, pos, labels={n: str(n).split("_")[-1] for n in graph.nodes}, font_size=7, ax=ax
    )
    ax.set_title(f"{d.name}: fitted SVO angle per player", fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def rounds_plot(dil: dict[str, Any], path: Path) -> Path | None:
    """Cooperation per round, one line per seat cell (group, value, goal, order...)."""
    cells = [c for c in dil["cells"] if any(x is not None for x in c["cooperation_by_round"])]
    if not cells:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for c in cells:
        ys = [float("nan") if y is None else y for y in c["cooperation_by_round"]]
        label = f"{c['group']} ({c['value'] or '-'}, goal {'on' if c['goal'] else 'off'}, {c['order']}, {c['framing']})"
        ax.plot(
            range(1, len(ys) + 1),
            ys,
            marker="o",
            ms=3,
            lw=1.2,
            ls=_ORDER_LS.get(c["order"], "-"),
            label=label,
        )
    ax.set(
        xlabel="round",
        ylabel="mean cooperation (0-1)",
        ylim=(-0.05, 1.05),
        title=f"{dil['scenario']}: cooperation by round",
    )
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
