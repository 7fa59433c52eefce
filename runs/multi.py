"""Run a multi-agent dilemma scenario: all agents' decisions in a step batched together, every
decision recorded, and per-agent, per-framing and population results (cooperation, payoffs,
fitted SVO angles and how they spread over the graph), with a plot of the graph by fitted angle.

    python -m runs.multi --scenario population_ring_pd --out results/ring --episodes 3
    python -m runs.multi --scenario prisoners_dilemma --framings family,stranger \\
        --agent player_0=scripted:tit_for_tat --out results/pd

Files under the run directory: records.jsonl (one line per decision: episode, framing, round,
player, action, options, payoffs, the agent's evidence), summary.json (what evaluate_scenario
returns), run.json (config, scenario, seeds, versions), graph_angles.png.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from agents.base import Agent, EpisodeContext
from agents.dilemma import make_agent
from envs.dilemmas import NO_ANSWER, env_id, make_aec, make_parallel
from envs.dilemmas.common import jsonable
from scenarios.dilemmas import Dilemma, format_text, load_dilemma, load_framing_set
from scoring.fit import fit_svo

__all__ = ["CONFIG_KEYS", "evaluate_scenario", "main"]

#: Accepted config keys: episodes (int), framings (list of framing ids run as conditions for every
#: player; default: each group's framing), rounds (override), plot (bool), fit (fit_svo kwargs),
#: llm_backend (callable(name, params) -> Backend, not recorded), bootstrap (resamples, 0 = off).
#: assign ({player or group: key of `agents`}) maps agents keyed by something else (runs.evaluate
#: keys them by spec) onto players; a single such agent with no assign plays every player.
#: A runs.evaluate RunConfig dump is accepted: its scenario_options are this config, with trials ->
#: episodes and n_boot -> bootstrap as defaults.
CONFIG_KEYS = {"episodes", "framings", "rounds", "plot", "fit", "llm_backend", "bootstrap", "assign"}


def _normalise_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    config = dict(config or {})
    if "scenario_options" in config:  # a runs.evaluate RunConfig dump
        opts = dict(config.get("scenario_options") or {})
        opts.setdefault("episodes", config.get("trials", 1))
        if config.get("n_boot") is not None:
            opts.setdefault("bootstrap", config["n_boot"])
        config = opts
    unknown = sorted(set(config) - CONFIG_KEYS)
    if unknown:
        raise ValueError(f"config: unknown key(s) {unknown}; allowed: {sorted(CONFIG_KEYS)}")
    return config


def _map_agents(d: Dilemma, agents: Mapping[str, Any], assign: Mapping[str, str] | None) -> dict[str, Any]:
    """Agents keyed by player/group/"*" pass through; other keys go through `assign`."""
    known = set(d.player_names()) | {g.name for g in d.agents} | {"*"}
    out = {k: v for k, v in agents.items() if k in known}
    other = {k: v for k, v in agents.items() if k not in known}
    if assign:
        for target, key in assign.items():
            if target not in known:
                raise ValueError(
                    f"config.assign: {target!r} is not a player or group; allowed: {sorted(known)}"
                )
            if key not in agents:
                raise ValueError(
                    f"config.assign[{target!r}]: no agent {key!r}; agents given: {sorted(agents)}"
                )
            out[target] = agents[key]
        return out
    if len(other) == 1 and not out:
        return {"*": next(iter(other.values()))}
    if other:
        raise ValueError(
            f"agents: keys {sorted(other)} are not players or groups {sorted(known)}; "
            "map them with config assign: {player_or_group: key}"
        )
    return out


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(1)[0])


def _git() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _resolve_agents(
    d: Dilemma, overrides: Mapping[str, Any], llm_backend: Any
) -> tuple[dict[str, Agent], dict[str, str]]:
    """Agent object and group name per player; players sharing a spec share one Agent object."""
    groups = d.groups_by_player()
    players = d.player_names()
    known = set(players) | {g.name for g in d.agents} | {"*"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(
            f"agents: unknown key(s) {unknown}; allowed: player names, group names {[g.name for g in d.agents]}, '*'"
        )
    cache: dict[str, Agent] = {}
    out, gname = {}, {}
    for p in players:
        g = groups.get(p)
        spec = overrides.get(
            p, overrides.get(g.name if g else "", overrides.get("*", g.agent if g else None))
        )
        if spec is None:
            raise ValueError(
                f"no agent for player {p!r}: the scenario has no agent group for it; pass agents={{{p!r}: ...}}"
            )
        if isinstance(spec, Agent):
            out[p] = spec
        else:
            if spec not in cache:
                cache[spec] = make_agent(spec, llm_backend=llm_backend)
            out[p] = cache[spec]
        gname[p] = g.name if g else ("override" if p in overrides else "*")
    return out, gname


def _framing_of(d: Dilemma, player_group: Any, condition: str | None) -> str:
    if condition is not None:
        return condition
    if player_group is not None and player_group.framing:
        return player_group.framing
    if d.framing_set is None:
        return "neutral"
    fs = load_framing_set(d.framing_set)
    return "neutral" if "neutral" in [f.id for f in fs.framings] else fs.framings[0].id


def _context(
    d: Dilemma, env: Any, player: str, framing_id: str, group: Any, seed: int, graph: nx.Graph | None
) -> EpisodeContext:
    from scenarios.dilemmas import Framing

    framing = load_framing_set(d.framing_set).get(framing_id) if d.framing_set else Framing(id="neutral")
    n_nb = graph.degree(player) if graph is not None and player in graph else len(d.player_names()) - 1
    extra: dict[str, Any] = {"scenario": d.id, "player": player, "framing": framing_id}
    extra["intro"] = format_text(d.text.intro, d, framing, n_neighbours=n_nb)
    if d.game == "sequential":
        extra["cooperation"] = [c.tolist() for c in env._coop]
        extra["action_labels"] = [[a.label or a.name for a in s.actions] for s in d.stages]
        extra["stage_names"] = [s.name for s in d.stages]
        keep = {s.name: "{" + s.name + "}" for s in d.stages}  # filled in at decision time
        extra["stage_prompts"] = [
            format_text(s.prompt or "", d, framing, n_neighbours=n_nb, **keep) for s in d.stages
        ]
        n_opt = max(len(s.actions) for s in d.stages)
        rounds = env.rounds_
    else:
        u = env.unwrapped
        extra["cooperation"] = None if d.game == "slider" else np.asarray(u._coop[0]).tolist()
        extra["action_labels"] = list(u.action_labels)
        n_opt, rounds = u.n_actions, u.rounds_
    return EpisodeContext(
        instrument=d.id,
        n_items=rounds,
        n_options=n_opt,
        seed=seed,
        value=group.value if group is not None else None,
        extra=extra,
    )


def _run_parallel(d, envs, agents, contexts, writer) -> None:
    """Step every env together; one act_batch per distinct agent object per step."""
    obs = []
    for k, (env, ctxs) in enumerate(zip(envs, contexts, strict=True)):
        o, _ = env.reset(seed=ctxs["_seed"])
        obs.append(o)
        envs[k] = env
    states: dict[tuple[int, str], Any] = {}
    by_agent: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for k in range(len(contexts)):
        for p in envs[k].possible_agents:
            by_agent[id(agents[p])].append((k, p))
    objs = {id(a): a for a in agents.values()}
    for aid, keys in by_agent.items():
        for key, st in zip(keys, objs[aid].start_batch([contexts[k][p] for k, p in keys]), strict=True):
            states[key] = st
    active = [bool(env.agents) for env in envs]
    while any(active):
        actions: dict[int, dict[str, int]] = {k: {} for k in range(len(envs)) if active[k]}
        decisions: dict[tuple[int, str], Any] = {}
        for aid, keys in by_agent.items():
            keys = [(k, p) for k, p in keys if active[k]]
            if not keys:
                continue
            out = objs[aid].act_batch([obs[k][p] for k, p in keys], [states[(k, p)] for k, p in keys])
            for (k, p), (dec, st) in zip(keys, out, strict=True):
                states[(k, p)] = st
                decisions[(k, p)] = dec
                actions[k][p] = NO_ANSWER if dec.action is None else int(dec.action)
        for k in list(actions):
            o, rew, terms, truncs, infos = envs[k].step(actions[k])
            for p in actions[k]:
                writer(k, p, infos[p], rew[p], decisions[(k, p)])
            obs[k] = o
            active[k] = bool(envs[k].agents)


def _run_aec(d, envs, agents, contexts, writer) -> None:
    """Turn-based games: at each turn, the envs waiting on the same agent object act in one batch."""
    for k, env in enumerate(envs):
        env.reset(seed=contexts[k]["_seed"])
    states: dict[tuple[int, str], Any] = {}
    for k, env in enumerate(envs):
        for p in env.possible_agents:
            states[(k, p)] = agents[p].start_batch([contexts[k][p]])[0]
    pending: dict[tuple[int, str], Any] = {}
    while True:
        live = [k for k, env in enumerate(envs) if env.agents]
        if not live:
            break
        groups: dict[int, list[int]] = defaultdict(list)
        for k in live:
            env = envs[k]
            p = env.agent_selection
            if env.terminations[p] or env.truncations[p]:
                env.step(None)
                continue
            groups[id(agents[p])].append(k)
        for _aid, ks in groups.items():
            ps = [envs[k].agent_selection for k in ks]
            agent = agents[ps[0]]
            out = agent.act_batch(
                [envs[k].observe(p) for k, p in zip(ks, ps, strict=True)],
                [states[(k, p)] for k, p in zip(ks, ps, strict=True)],
            )
            for k, p, (dec, st) in zip(ks, ps, out, strict=True):
                states[(k, p)] = st
                env = envs[k]
                env.step(NO_ANSWER if dec.action is None else int(dec.action))
                info = dict(env.infos.get(p, {}))
                pending[(k, p)] = (info, dec)
                if "self" in info or info.get("void"):
                    # round over: payoffs known for every role's decisions this round
                    for (k2, p2), (inf2, dec2) in list(pending.items()):
                        if k2 != k:
                            continue
                        fin = {
                            **inf2,
                            **{
                                x: env.infos[p2].get(x)
                                for x in ("self", "other", "void")
                                if x in env.infos.get(p2, {})
                            },
                        }
                        writer(k, p2, fin, env.rewards.get(p2, 0.0), dec2)
                        del pending[(k2, p2)]
    for (k, p), (info, dec) in pending.items():
        writer(k, p, info, 0.0, dec)


def _summ(values: list[float]) -> dict[str, Any]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if not len(v):
        return {"n": 0, "mean": None, "sd": None, "min": None, "max": None}
    return {
        "n": int(len(v)),
        "mean": round(float(v.mean()), 6),
        "sd": round(float(v.std(ddof=1)), 6) if len(v) > 1 else None,
        "min": round(float(v.min()), 6),
        "max": round(float(v.max()), 6),
    }


def _aggregate(rows: list[dict], fit_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    coop = [r["cooperation"] for r in rows if r["valid"] and r["cooperation"] is not None]
    pay = [r["reward"] for r in rows]
    fit = fit_svo([r["options"] for r in rows], [r["action"] for r in rows], **fit_kwargs).as_dict()
    return {
        "decisions": len(rows),
        "invalid": sum(not r["valid"] for r in rows),
        "cooperation_rate": round(float(np.mean(coop)), 6) if coop else None,
        "mean_payoff": round(float(np.mean(pay)), 6) if pay else None,
        "svo_fit": fit,
    }


def _plot(graph: nx.Graph, angles: dict[str, float | None], path: Path, title: str, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    pos = nx.spring_layout(graph, seed=seed) if graph.number_of_nodes() > 2 else nx.circular_layout(graph)
    ident = [n for n in graph.nodes if angles.get(n) is not None]
    other = [n for n in graph.nodes if angles.get(n) is None]
    nx.draw_networkx_edges(graph, pos, ax=ax, alpha=0.4)
    cmap = plt.get_cmap("coolwarm_r")
    if ident:
        nodes = nx.draw_networkx_nodes(
            graph,
            pos,
            nodelist=ident,
            node_color=[angles[n] for n in ident],
            cmap=cmap,
            vmin=-45,
            vmax=90,
            ax=ax,
        )
        fig.colorbar(nodes, ax=ax, label="fitted SVO angle (degrees)")
    if other:
        nx.draw_networkx_nodes(
            graph, pos, nodelist=other, node_color="lightgrey", ax=ax, label="angle not identified"
        )
        ax.legend(loc="lower left")
    nx.draw_networkx_labels(graph, pos, labels={n: n.split("_")[-1] for n in graph.nodes}, font_size=7, ax=ax)
    ax.set_title(title)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate_scenario(
    scenario_id: str,
    agents: Mapping[str, Any] | None,
    run_dir: str | Path,
    seed: int = 0,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run a dilemma scenario and return its results (also written under run_dir).

    agents: overrides of the scenario's agent groups, keyed by player name, group name or "*",
    valued by an Agent or a spec string (agents/dilemma.py); empty = the scenario's own agents.
    config: see CONFIG_KEYS. Each (framing condition, episode) is one env, seeded from `seed`;
    all envs step together and each distinct agent object decides for all of them in one
    act_batch call per step.
    """
    config = _normalise_config(config)
    episodes = int(config.get("episodes", 1))
    if episodes < 1:
        raise ValueError(f"config.episodes={episodes}; must be >= 1")
    fit_kwargs = dict(config.get("fit", {}))
    d = load_dilemma(scenario_id)
    conditions: list[str | None] = list(config.get("framings") or [None])
    if conditions != [None]:
        if d.framing_set is None:
            raise ValueError(f"config.framings given but scenario {d.id!r} has no framing_set")
        fs = load_framing_set(d.framing_set)
        for c in conditions:
            fs.get(c)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    overrides = _map_agents(d, dict(agents or {}), config.get("assign"))
    agent_of, group_name = _resolve_agents(d, overrides, config.get("llm_backend"))
    groups = d.groups_by_player()
    env_kwargs = {"rounds": config["rounds"]} if config.get("rounds") else {}
    parallel = d.game != "sequential"
    envs, contexts, meta = [], [], []
    for ci, cond in enumerate(conditions):
        for e in range(episodes):
            env = make_parallel(d, **env_kwargs) if parallel else make_aec(d, **env_kwargs)
            graph = env.graph if parallel and hasattr(env, "graph") else None
            es = _seed(seed, ci, e)
            ctx: dict[str, Any] = {"_seed": es}
            for pi, p in enumerate(d.player_names()):
                fr = _framing_of(d, groups.get(p), cond)
                ctx[p] = _context(d, env, p, fr, groups.get(p), _seed(es, pi), graph)
            envs.append(env)
            contexts.append(ctx)
            meta.append({"condition": cond, "episode": e, "seed": es})

    rows: list[dict[str, Any]] = []
    rec_path = run_dir / "records.jsonl"
    with rec_path.open("w", encoding="utf-8") as fh:

        def writer(k: int, p: str, info: Mapping[str, Any], reward: float, decision: Any) -> None:
            row = {
                "scenario": d.id,
                "condition": meta[k]["condition"],
                "episode": meta[k]["episode"],
                "seed": meta[k]["seed"],
                "framing": contexts[k][p].extra["framing"],
                "player": p,
                "group": group_name[p],
                "agent": agent_of[p].name,
                "round": info.get("round"),
                "stage": info.get("stage"),
                "action": info.get("action"),
                "valid": bool(info.get("valid", decision.action is not None)),
                "options": jsonable(np.asarray(info.get("options", []), dtype=np.float64)),
                "self": jsonable(info.get("self", float("nan"))),
                "other": jsonable(info.get("other", float("nan"))),
                "reward": float(reward),
                "cooperation": info.get("cooperation"),
                "decision": jsonable(dict(decision.record)),
            }
            rows.append(row)
            fh.write(json.dumps(row) + "\n")

        (_run_parallel if parallel else _run_aec)(d, envs, agent_of, contexts, writer)

    # -- results -----------------------------------------------------------------------------
    by_player: dict[str, list[dict]] = defaultdict(list)
    by_framing: dict[str, list[dict]] = defaultdict(list)
    by_group: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_player[r["player"]].append(r)
        by_framing[r["framing"]].append(r)
        by_group[r["group"]].append(r)
    graph = envs[0].graph if parallel and hasattr(envs[0], "graph") else nx.complete_graph(d.player_names())
    per_agent = {}
    for p in d.player_names():
        res = _aggregate(by_player[p], fit_kwargs)
        g = groups.get(p)
        if g is not None and g.value and res["svo_fit"] and res["svo_fit"]["slider_angle"] is not None:
            from scoring.svo import paper_scale, value_rationality

            dist = float(value_rationality(res["svo_fit"]["slider_angle"], g.value))
            res["target"], res["distance_interval"] = g.value, round(dist, 6)
            res["rationality_interval"] = round(float(paper_scale(dist)), 6)
        res.update(
            group=group_name[p],
            agent=agent_of[p].describe(),
            framings=sorted({r["framing"] for r in by_player[p]}),
            degree=int(graph.degree(p)) if p in graph else None,
            node=str(getattr(envs[0], "node_of", {}).get(p, p)),
        )
        per_agent[p] = res
    angles = {p: per_agent[p]["svo_fit"]["angle"] if per_agent[p]["svo_fit"] else None for p in per_agent}

    def breakdown(parts: dict[str, list[dict]]) -> dict[str, Any]:
        out = {}
        for key, rs in sorted(parts.items()):
            res = _aggregate(rs, fit_kwargs)
            players = sorted({r["player"] for r in rs})
            res["players"] = len(players)
            res["player_angles"] = _summ([angles[p] for p in players])
            rates = [per_agent[p]["cooperation_rate"] for p in players]
            res["player_cooperation"] = _summ(rates)
            n_boot = int(config.get("bootstrap", 1000))
            vals = [x for x in rates if x is not None]
            if n_boot and len(vals) > 1:
                from scoring.stats import bootstrap_ci

                ci = bootstrap_ci(vals, n_boot=n_boot, seed=_seed(seed, len(key)))
                res["player_cooperation"]["ci95"] = None if ci is None else [round(float(x), 6) for x in ci]
            out[key] = res
        return out

    ident = {p: a for p, a in angles.items() if a is not None}
    spread: dict[str, Any] = {
        "angles": _summ(list(ident.values())),
        "identified": len(ident),
        "players": len(angles),
    }
    reasons: dict[str, int] = defaultdict(int)
    for p in per_agent:
        f = per_agent[p]["svo_fit"]
        if f and f["angle"] is None:
            reasons[(f["reason"] or "").split(":")[0]] += 1
    spread["unidentified_reasons"] = dict(reasons)
    if len(ident) > 2 and graph.number_of_edges():
        sub = graph.subgraph(ident).copy()
        nx.set_node_attributes(sub, ident, "angle")
        if sub.number_of_edges() and np.std(list(ident.values())) > 0:
            spread["assortativity"] = round(float(nx.numeric_assortativity_coefficient(sub, "angle")), 6)
        gaps = [abs(ident[p] - np.mean([ident[q] for q in sub[p]])) for p in sub if len(sub[p])]
        spread["mean_gap_to_neighbours"] = round(float(np.mean(gaps)), 6) if gaps else None
    population = _aggregate(rows, fit_kwargs)
    population["spread"] = spread
    summary = {
        "scenario": d.id,
        "env_id": env_id(d),
        "game": d.game,
        "seed": seed,
        "episodes": episodes,
        "conditions": conditions,
        "population": population,
        "per_agent": per_agent,
        "by_framing": breakdown(by_framing),
        "by_group": breakdown(by_group),
        "files": {"records": str(rec_path)},
    }
    if config.get("plot", True):
        png = run_dir / "graph_angles.png"
        _plot(graph, angles, png, f"{d.name}: fitted SVO angle", seed)
        summary["files"]["plot"] = str(png)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    import importlib.metadata as md

    versions = {}
    for pkg in ("numpy", "pettingzoo", "gymnasium", "networkx", "pydantic"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    run_rec = {
        "scenario": d.model_dump(mode="json", by_alias=True),
        "config": {k: v for k, v in config.items() if k != "llm_backend"},
        "agents": {p: agent_of[p].describe() for p in agent_of},
        "seeds": meta,
        "code_version": _git(),
        "python": platform.python_version(),
        "packages": versions,
    }
    (run_dir / "run.json").write_text(json.dumps(run_rec, indent=1, default=str))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m runs.multi", description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", required=True, help="scenario id (scenarios/data/dilemmas) or YAML path")
    ap.add_argument("--out", required=True, help="run directory (e.g. results/my-run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--episodes", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--framings", default=None, help="comma-separated framing ids, each run as a condition")
    ap.add_argument(
        "--agent", action="append", default=[], metavar="KEY=SPEC", help="override: player/group/* = spec"
    )
    ap.add_argument("--no-plot", action="store_true")
    a = ap.parse_args(argv)
    overrides = {}
    for item in a.agent:
        if "=" not in item:
            ap.error(f"--agent {item!r}: expected KEY=SPEC, e.g. player_0=scripted:tit_for_tat")
        k, v = item.split("=", 1)
        overrides[k.strip()] = v.strip()
    config: dict[str, Any] = {"episodes": a.episodes, "plot": not a.no_plot}
    if a.rounds:
        config["rounds"] = a.rounds
    if a.framings:
        config["framings"] = [x.strip() for x in a.framings.split(",") if x.strip()]
    s = evaluate_scenario(a.scenario, overrides, a.out, seed=a.seed, config=config)
    pop = s["population"]
    fit = pop["svo_fit"] or {}
    print(
        f"{s['scenario']}: cooperation {pop['cooperation_rate']}, mean payoff {pop['mean_payoff']}, "
        f"pooled angle {fit.get('angle')} ({fit.get('status')}), invalid {pop['invalid']}/{pop['decisions']}"
    )
    for fr, r in s["by_framing"].items():
        print(
            f"  framing {fr}: cooperation {r['cooperation_rate']}, payoff {r['mean_payoff']}, "
            f"player angles {r['player_angles']['mean']} (n={r['player_angles']['n']})"
        )
    print(f"records: {s['files']['records']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
