"""python -m runs.train: train RL agents toward a value orientation and score them like LLMs.

Two subcommands (see --help of each):

- `slider`: one Stable-Baselines3 agent per value on the SVO Slider (envs.SVOEnv, reward "utility"
  at the value's motive angle, agents.rl.MOTIVE_ANGLES). Each learned policy is then played through
  the same scorer as LLM agents (runs.rollout + scoring.SVOScoring, via the
  agents.rl.PolicyAgent adapter) under fixed and permuted option order.
- `dilemma`: independent learners (one SB3 PPO per player) on a PettingZoo dilemma
  (prisoners_dilemma_repeated, public_goods, ...), every player rewarded with the utility of own
  payoff vs the others' mean payoff at one angle; reports cooperation and the fitted SVO angles
  (scoring.fit) per angle, beside a tabular Q-learning reference.

Every run writes, under --out (default results/rl/...): the model zips with a JSON card each
(config, seed, versions: what agents.rl.load_policy_agent reads), learning_curve.png, results.json
(the whole record) and results.md (the table printed at the end). Same seed, same numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from scenarios import VALUE_NAMES
from scoring.stats import circular_summary

__all__ = ["build_parser", "main", "train_dilemma", "train_slider"]

ORDERS = ("fixed", "permuted")


def _seed(*parts: int) -> int:
    """A child seed from integer parts (numpy SeedSequence), so runs never share streams."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] % (2**31))


def _record_base(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    from runs.store import code_version, environment

    return {
        "command": ["python", "-m", "runs.train", *argv],
        "args": {k: v for k, v in vars(args).items() if k != "func"},
        "code": code_version(),
        "environment": environment(),
    }


def _setup_torch(threads: int) -> None:
    try:
        import torch
    except ImportError as err:
        raise SystemExit(
            f'runs.train needs torch and stable-baselines3: pip install -e ".[rl]" ({err})'
        ) from None
    torch.set_num_threads(threads)


# -- slider ------------------------------------------------------------------------------------------


def evaluate_slider(agent: Any, value: str, orders: Sequence[str], episodes: int, seed: int) -> list[dict]:
    """Score an agent on the slider for `value`, like runs.evaluate does: per option order, the
    mean angle's category (the paper's rule), the per-episode hit rate and value rationality."""
    from agents.base import EpisodeContext
    from envs.svo import SVOEnv
    from runs.rollout import single
    from scoring.svo import categorise, paper_scale, value_rationality

    rows = []
    for order in orders:
        envs = [SVOEnv(option_order=order) for _ in range(episodes)]
        ctx = [
            EpisodeContext("slider", e.n_items, e.n_options, seed=_seed(seed, 7, k), value=value)
            for k, e in enumerate(envs)
        ]
        res = single(agent, envs, ctx)
        angles = np.array([np.nan if r.score["angle"] is None else r.score["angle"] for r in res])
        mean = float(np.nanmean(angles)) if np.isfinite(angles).any() else float("nan")
        dist = float(value_rationality(mean, value))
        rows.append(
            {
                "value": value,
                "eval_order": order,
                "episodes": episodes,
                "answered": int(sum(r.score["answered"] for r in res)),
                "asked": int(sum(r.score["asked"] for r in res)),
                "mean_angle": round(mean, 3),
                "sd_angle": round(float(np.nanstd(angles)), 3),
                "category": str(categorise(mean)),
                "hit": str(categorise(mean)) == value,
                "hit_rate": round(float(np.mean([r.score.get("hit", False) for r in res])), 3),
                "rationality": round(float(paper_scale(dist)), 3),
            }
        )
    return rows


def _angle_callback(eval_every: int, eval_seeds: Sequence[int], order: str):
    """SB3 callback: every `eval_every` steps, the greedy policy's slider angle (learning curve)."""
    from stable_baselines3.common.callbacks import BaseCallback

    from envs.svo import SVOEnv
    from scoring.svo import svo_angle

    class AngleCurve(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.points: list[tuple[int, float]] = []
            self.env = SVOEnv(option_order=order)

        def _measure(self) -> None:
            angles = []
            for s in eval_seeds:
                obs, _ = self.env.reset(seed=s)
                pay, done = [], False
                while not done:
                    a, _ = self.model.predict(obs, deterministic=True)
                    obs, _, done, _, info = self.env.step(int(a))
                    pay.append((info["self"], info["other"]))
                p = np.array(pay)
                angles.append(float(svo_angle(p[:, 0], p[:, 1])))
            self.points.append((self.num_timesteps, float(np.mean(angles))))

        def _on_training_start(self) -> None:
            self._measure()

        def _on_step(self) -> bool:
            if self.num_timesteps % eval_every == 0:
                self._measure()
            return True

    return AngleCurve()


def train_slider(
    value: str,
    *,
    algo: str = "ppo",
    network: str = "option",
    order: str = "permuted",
    convention: str = "motive",
    steps: int = 20_000,
    seed: int = 0,
    progress: bool = False,
    eval_every: int = 2048,
    learning_rate: float = 1e-3,
) -> tuple[Any, dict[str, Any]]:
    """Train one SB3 model toward `value` on the slider; returns (model, curves and timing)."""
    from stable_baselines3.common.monitor import Monitor

    from agents.rl import make_model, reward_angle
    from envs.svo import SVOEnv

    angle = reward_angle(value, convention)
    env = Monitor(SVOEnv(reward="utility", target_angle=angle, option_order=order))
    kw: dict[str, Any] = {}
    if algo == "ppo":
        kw = {"n_steps": 512, "batch_size": 128}
    elif algo == "dqn":
        kw = {"learning_starts": 500, "exploration_fraction": 0.3, "target_update_interval": 250}
    model = make_model(algo, env, seed=seed, network=network, learning_rate=learning_rate, **kw)
    cb = _angle_callback(eval_every, [_seed(seed, 3, k) for k in range(5)], order)
    t0 = time.time()
    model.learn(steps, callback=cb, progress_bar=progress)
    secs = time.time() - t0
    returns = env.get_episode_rewards()
    return model, {"seconds": round(secs, 2), "angle": angle, "returns": returns, "angles": cb.points}


def _plot_slider(curves: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scenarios import load_values

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for v, c in curves.items():
        r = np.asarray(c["returns"], dtype=np.float64)
        if len(r):
            w = max(1, len(r) // 50)
            smooth = np.convolve(r, np.ones(w) / w, mode="valid")
            x = (np.arange(len(smooth)) + w) * 6
            ax1.plot(x, smooth, label=f"{v} (t={c['angle']:g})")
        pts = np.array(c["angles"])
        if len(pts):
            ax2.plot(pts[:, 0], pts[:, 1], marker=".", label=v)
    for v in load_values().values():
        lo, _ = v.bounds()
        if lo is not None and np.isfinite(lo):
            ax2.axhline(lo, color="grey", lw=0.6, ls="--")
    ax1.set(xlabel="environment steps", ylabel="episode utility (moving mean)", title="training return")
    ax2.set(
        xlabel="environment steps",
        ylabel="slider angle (greedy policy)",
        title="SVO angle; dashed: category bounds",
    )
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _table(rows: list[dict], cols: Sequence[str]) -> str:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    return "\n".join(out)


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.2f}"
    return "" if x is None else str(x)


def run_slider(args: argparse.Namespace, argv: Sequence[str]) -> int:
    _setup_torch(args.threads)
    values = list(VALUE_NAMES) if args.value == "all" else [args.value]
    out = Path(args.out or f"results/rl/slider-{args.algo}-{args.network}-{args.order}-s{args.seed}")
    out.mkdir(parents=True, exist_ok=True)
    record = _record_base(args, argv)
    files = {v: f"{v}.zip" for v in values}
    curves, rows, models = {}, [], {}
    for i, v in enumerate(values):
        seed = _seed(args.seed, i + 1)
        print(
            f"[{i + 1}/{len(values)}] {v}: {args.algo}/{args.network}, {args.steps} steps, seed {seed}",
            file=sys.stderr,
        )
        model, curve = train_slider(
            v,
            algo=args.algo,
            network=args.network,
            order=args.order,
            convention=args.reward_angle,
            steps=args.steps,
            seed=seed,
            progress=not args.no_progress,
            eval_every=args.eval_every,
            learning_rate=args.lr,
        )
        model.save(out / files[v])
        card = {
            "algo": args.algo,
            "network": args.network,
            "value": v,
            "reward": "utility",
            "reward_angle": curve["angle"],
            "reward_convention": args.reward_angle,
            "env_id": "SVO/Slider-v0",
            "env_kwargs": {"option_order": args.order},
            "steps": args.steps,
            "seed": seed,
            "seconds": curve["seconds"],
            "siblings": files,
            "code": record["code"],
            "environment": record["environment"],
        }
        (out / files[v]).with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
        curves[v], models[v] = curve, model
    from agents.rl import PolicyAgent

    agent = PolicyAgent(models, name=f"rl:{out.name}")
    agent.check_env("SVO/Slider-v0")
    for v in values:
        for r in evaluate_slider(agent, v, ORDERS, args.eval_episodes, args.seed):
            rows.append(
                {
                    **r,
                    "reward_angle": curves[v]["angle"],
                    "train_order": args.order,
                    "train_seconds": curves[v]["seconds"],
                }
            )
    _plot_slider(
        curves,
        out / "learning_curve.png",
        f"{args.algo}/{args.network}, train order {args.order}, seed {args.seed}",
    )
    cols = [
        "value",
        "reward_angle",
        "train_order",
        "eval_order",
        "episodes",
        "mean_angle",
        "sd_angle",
        "category",
        "hit",
        "hit_rate",
        "rationality",
        "train_seconds",
    ]
    table = _table(rows, cols)
    record.update(
        results=rows, curves={v: {"angles": c["angles"], "returns": c["returns"]} for v, c in curves.items()}
    )
    (out / "results.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    (out / "results.md").write_text(table + "\n")
    print(table)
    print(f"models, learning_curve.png, results.json in {out}", file=sys.stderr)
    return 0


# -- dilemmas ------------------------------------------------------------------------------------------


def _q_baseline(scenario: str, angle: float, episodes: int, seed: int, eval_episodes: int) -> dict[str, Any]:
    """Reference only: independent tabular Q-learners (state: own and partners' last action),
    epsilon-greedy, rewarded like the PPO learners; returns their greedy play's statistics."""
    from agents.rl import utility
    from envs.dilemmas import make_parallel

    env = make_parallel(scenario)
    players = env.possible_agents
    n = env.action_space(players[0]).n
    rng = np.random.default_rng([seed, 99])

    def state(o: dict) -> tuple:
        h = np.asarray(o["history"])[-1]  # last round: my one-hot, partners' shares
        return (
            int(h[0].argmax()) if h[0].any() else -1,
            int(round(float(h[1] @ np.arange(n)))) if h[1].any() else -1,
        )

    q = {p: {} for p in players}
    alpha, gamma = 0.1, 0.9
    for ep in range(episodes):
        eps = max(0.05, 1.0 - ep / (0.7 * episodes))
        obs, _ = env.reset(seed=_seed(seed, 5, ep))
        while env.agents:
            s = {p: state(obs[p]) for p in env.agents}
            acts = {}
            for p in env.agents:
                qs = q[p].setdefault(s[p], np.zeros(n))
                acts[p] = int(rng.integers(n)) if rng.random() < eps else int(qs.argmax())
            obs2, rew, terms, _, _ = env.step(acts)
            for p in acts:
                own = rew[p]
                other = np.mean([rew[o] for o in rew if o != p])
                u = float(utility(own, other, angle))
                nxt = 0.0 if terms[p] else q[p].setdefault(state(obs2[p]), np.zeros(n)).max()
                q[p][s[p]][acts[p]] += alpha * (u + gamma * nxt - q[p][s[p]][acts[p]])
            obs = obs2 if obs2 else obs
    policies = {p: (lambda o, g, p=p: int(q[p].get(state(o), np.zeros(n)).argmax())) for p in players}
    return _play(scenario, policies, eval_episodes, seed, sample=False)


def _play(scenario: str, policies: dict[str, Any], episodes: int, seed: int, sample: bool) -> dict[str, Any]:
    """Every player's policy in play: cooperation rate, mean payoff and the SVO fitted to its
    choices per player (scoring.fit). sample: draw actions from an SB3 policy's probabilities with
    a seeded generator (the learned stochastic policy); else greedy."""
    from agents.rl import PolicyAgent
    from envs.dilemmas import make_parallel
    from scoring.fit import fit_svo

    env = make_parallel(scenario)
    rng = np.random.default_rng([seed, 23])
    probs_of = {p: PolicyAgent(m) for p, m in policies.items() if hasattr(m, "predict")}
    coop, rewards = [], {}
    options: dict[str, list] = {}
    choices: dict[str, list] = {}
    for ep in range(episodes):
        obs, _ = env.reset(seed=_seed(seed, 11, ep))
        while env.agents:
            acts = {}
            for p in env.agents:
                if p in probs_of:
                    dec, _ = probs_of[p].act(obs[p], {"policy": None})
                    pr = np.asarray(dec.record["probs"], dtype=np.float64)
                    acts[p] = int(rng.choice(len(pr), p=pr / pr.sum())) if sample else int(dec.action)
                else:
                    acts[p] = int(policies[p](obs[p], rng))
                options.setdefault(p, []).append(np.asarray(obs[p]["payoffs"], dtype=np.float64))
                choices.setdefault(p, []).append(acts[p])
            obs, rew, _, _, infos = env.step(acts)
            for p in acts:
                coop.append(float(infos[p]["cooperation"]))
                rewards.setdefault(p, []).append(float(rew[p]))
    fits = {p: fit_svo(options[p], choices[p]) for p in options}
    return {
        "cooperation": round(float(np.mean(coop)), 3),
        "mean_payoff": round(float(np.mean([np.mean(r) for r in rewards.values()])), 3),
        "fits": {p: f.as_dict() for p, f in fits.items()},
    }


def train_dilemma(
    scenario: str,
    angle: float,
    *,
    phases: int = 4,
    steps: int = 4096,
    seed: int = 0,
    progress: bool = False,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Independent PPO learners, one per player, trained in turns against the others' current
    policies (agents.rl.DilemmaView); returns (models, curves)."""
    from stable_baselines3.common.monitor import Monitor

    from agents.rl import DilemmaView, make_model
    from envs.dilemmas import make_parallel

    proto = make_parallel(scenario)
    players = list(proto.possible_agents)
    views = {
        p: Monitor(DilemmaView(make_parallel(scenario), p, angle, {q: None for q in players if q != p}))
        for p in players
    }
    models = {
        p: make_model(
            "ppo",
            views[p],
            seed=_seed(seed, 13, i),
            network="mlp",
            gamma=0.95,
            n_steps=512,
            batch_size=128,
            ent_coef=0.01,
        )
        for i, p in enumerate(players)
    }
    for p in players:
        views[p].env.set_others({q: models[q] for q in players if q != p})
        views[p].reset(seed=_seed(seed, 17, players.index(p)))
    for ph in range(phases):
        for p in players:
            models[p].learn(steps, reset_num_timesteps=False, progress_bar=progress)
        print(f"  phase {ph + 1}/{phases} done", file=sys.stderr)
    curves = {p: views[p].get_episode_rewards() for p in players}
    return models, curves


def _plot_dilemma(curves: dict[str, dict[str, list]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, per_player in curves.items():
        r = np.mean(
            [np.asarray(v[: min(map(len, per_player.values()))]) for v in per_player.values()], axis=0
        )
        if len(r):
            w = max(1, len(r) // 30)
            ax.plot(np.convolve(r, np.ones(w) / w, mode="valid"), label=label)
    ax.set(xlabel="training episodes (per player)", ylabel="episode utility, mean over players", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_dilemma(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from agents.rl import MOTIVE_ANGLES

    _setup_torch(args.threads)
    angles = (
        {f"{v} ({MOTIVE_ANGLES[v]:g})": MOTIVE_ANGLES[v] for v in VALUE_NAMES}
        if not args.angles
        else {f"{a:g}": a for a in args.angles}
    )
    from scenarios.dilemmas import load_dilemma

    out = Path(args.out or f"results/rl/{load_dilemma(args.game).id}-ppo-s{args.seed}")
    out.mkdir(parents=True, exist_ok=True)
    record = _record_base(args, argv)
    rows, curves = [], {}
    for i, (label, angle) in enumerate(angles.items()):
        t0 = time.time()
        print(f"[{i + 1}/{len(angles)}] {args.game}, angle {angle:g}", file=sys.stderr)
        seed = _seed(args.seed, 21, i)
        models, curve = train_dilemma(
            args.game, angle, phases=args.phases, steps=args.steps, seed=seed, progress=not args.no_progress
        )
        secs = time.time() - t0
        for p, m in models.items():
            f = out / f"angle{angle:g}_{p}.zip"
            m.save(f)
            f.with_suffix(".json").write_text(
                json.dumps(
                    {
                        "algo": "ppo",
                        "network": "mlp",
                        "scenario": args.game,
                        "player": p,
                        "reward": "utility",
                        "reward_angle": angle,
                        "phases": args.phases,
                        "steps_per_phase": args.steps,
                        "seed": seed,
                        "code": record["code"],
                        "environment": record["environment"],
                    },
                    indent=2,
                )
                + "\n"
            )
        res = _play(args.game, models, args.eval_episodes, seed, sample=False)
        sampled = _play(args.game, models, args.eval_episodes, seed, sample=True)
        curves[label] = curve
        rows.append(_dilemma_row(label, angle, "ppo greedy", res, secs))
        rows.append(_dilemma_row(label, angle, "ppo sampled", sampled, secs))
        if args.q_episodes:
            t0 = time.time()
            q = _q_baseline(args.game, angle, args.q_episodes, seed, args.eval_episodes)
            rows.append(_dilemma_row(label, angle, "tabular Q (reference)", q, time.time() - t0))
        record.setdefault("results", []).append(
            {
                "angle": angle,
                "label": label,
                "ppo": res,
                "ppo_sampled": sampled,
                **({"q": q} if args.q_episodes else {}),
            }
        )
    _plot_dilemma(curves, out / "learning_curve.png", f"{args.game}: independent PPO, seed {args.seed}")
    cols = [
        "reward",
        "learner",
        "cooperation",
        "mean_payoff",
        "fitted_angle",
        "fit_status",
        "consistent set / reason",
        "slider_angle",
        "category",
        "train_seconds",
    ]
    table = _table(rows, cols)
    record["rows"] = rows
    (out / "results.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    (out / "results.md").write_text(table + "\n")
    print(table)
    print(f"models, learning_curve.png, results.json in {out}", file=sys.stderr)
    return 0


def _arcs(arcs: Any) -> str:
    return " + ".join(f"[{lo:g}, {hi:g}]" for lo, hi in arcs)


def _short(reason: str | None) -> str:
    if not reason:
        return ""
    if "one direction" in reason:
        return "options on one line: side only"
    if "interval is" in reason:
        return "flat: " + reason.split("(")[0].replace("the 95% interval is ", "95% interval ").strip()
    return reason.split(":")[0]


def _dilemma_row(label: str, angle: float, learner: str, res: dict, secs: float) -> dict[str, Any]:
    fits = list(res["fits"].values())
    ang = [f["angle"] for f in fits if f["angle"] is not None]
    circ = circular_summary(ang)
    sl = [f["slider_angle"] for f in fits if f.get("slider_angle") is not None]
    statuses = sorted({f["status"] for f in fits})
    cats = sorted({str(f.get("category")) for f in fits if f.get("category")})
    why = sorted(
        {
            _arcs(f["consistent"]) if f.get("consistent") else _short(f.get("reason"))
            for f in fits
            if f["angle"] is None
        }
    )
    return {
        "reward": label,
        "learner": learner,
        "cooperation": res["cooperation"],
        "mean_payoff": res["mean_payoff"],
        "fitted_angle": f"{circ['mean']:.1f} (circular SD {circ['circular_sd']:.1f}, {len(ang)} players)"
        if ang
        else "",
        "consistent set / reason": "; ".join(why),
        "fit_status": ", ".join(statuses),
        "slider_angle": f"{np.mean(sl):.1f}" if sl else "",
        "category": ", ".join(cats),
        "train_seconds": round(secs, 1),
    }


# -- command line --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m runs.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  python -m runs.train slider --value all --steps 20000 --seed 0\n"
            "  python -m runs.train slider --value prosocial --order fixed --algo dqn --network mlp\n"
            "  python -m runs.train dilemma --game prisoners_dilemma_repeated --phases 4 --steps 4096\n"
            "  python -m runs.evaluate --agents rl:results/rl/slider-ppo-option-permuted-s0/prosocial.zip ...\n"
        ),
    )
    sub = p.add_subparsers(dest="command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--seed", type=int, default=0, help="base seed; every model/episode seed derives from it"
        )
        q.add_argument("--out", help="output folder (default: results/rl/<setup>-s<seed>)")
        q.add_argument(
            "--threads", type=int, default=1, help="torch CPU threads (default 1; results depend on it)"
        )
        q.add_argument("--no-progress", action="store_true", help="no progress bar")

    s = sub.add_parser(
        "slider",
        help="one agent per value on the SVO Slider",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument(
        "--value", choices=[*VALUE_NAMES, "all"], default="all", help="value to train for (default all)"
    )
    s.add_argument("--algo", choices=["ppo", "dqn", "a2c"], default="ppo", help="SB3 algorithm (default ppo)")
    s.add_argument(
        "--network",
        choices=["option", "mlp"],
        default="option",
        help="option: one shared scorer per option, logits = scores (PPO/A2C; default); mlp: SB3's MultiInputPolicy",
    )
    s.add_argument(
        "--order",
        choices=["fixed", "permuted"],
        default="permuted",
        help="option order while training (default permuted: the policy must read payoffs)",
    )
    s.add_argument(
        "--reward-angle",
        choices=["motive", "ideal"],
        default="motive",
        help="utility angle: the value's motive (90/45/0/-45, default) or its ideal-type slider angle",
    )
    s.add_argument("--steps", type=int, default=20_000, help="environment steps per value (default 20000)")
    s.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    s.add_argument(
        "--eval-episodes", type=int, default=20, help="scored episodes per value and order (default 20)"
    )
    s.add_argument("--eval-every", type=int, default=2048, help="steps between learning-curve angle checks")
    common(s)
    s.set_defaults(func=run_slider)

    d = sub.add_parser("dilemma", help="independent PPO learners on a PettingZoo dilemma")
    d.add_argument(
        "--game",
        default="prisoners_dilemma_repeated",
        help="simultaneous-move scenario: a shipped id or a YAML file (default prisoners_dilemma_repeated); "
        "populations on a graph train one learner per player",
    )
    d.add_argument(
        "--angles",
        type=float,
        nargs="+",
        help="reward angles in degrees (default: the four motives 90, 45, 0, -45)",
    )
    d.add_argument("--phases", type=int, default=4, help="training phases; each trains every player in turn")
    d.add_argument("--steps", type=int, default=4096, help="steps per player per phase (default 4096)")
    d.add_argument(
        "--q-episodes",
        type=int,
        default=2000,
        help="episodes of the tabular Q-learning reference (0: skip; default 2000)",
    )
    d.add_argument("--eval-episodes", type=int, default=10, help="greedy evaluation episodes (default 10)")
    common(d)
    d.set_defaults(func=run_dilemma)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    for flag in ("steps", "eval_episodes", "threads"):
        if getattr(args, flag, 1) < 1:
            print(f"error: --{flag.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    if args.command == "slider" and args.network == "option" and args.algo == "dqn":
        print(
            "error: --network option is actor-critic (ppo, a2c); use --network mlp with --algo dqn",
            file=sys.stderr,
        )
        return 2
    if args.command == "dilemma":
        from envs.dilemmas import is_parallel
        from scenarios import ScenarioError
        from scenarios.dilemmas import load_dilemma

        try:
            load_dilemma(args.game)
        except (ScenarioError, OSError) as err:
            print(f"error: --game {args.game!r}: {err}", file=sys.stderr)
            return 2
        if not is_parallel(args.game):
            print(
                f"error: --game {args.game!r} is turn-based; independent learners need a simultaneous game",
                file=sys.stderr,
            )
            return 2
    return args.func(args, argv)


if __name__ == "__main__":
    sys.exit(main())
