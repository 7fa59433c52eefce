"""python -m runs.play: a person takes an instrument (or a two-player dilemma against an agent) in the
browser, recorded as agent `human:<id>` into a run directory, in the schema of model episodes.

The presentation is the one a model gets: the same items, option order condition, prompt set
(language), framings, value induction and goal prompt (agents/human.py's HumanPolicy is the LLM
policy with a person in place of the model), so `python -m runs.report` shows people and models in
one table. The server (the standard library's ThreadingHTTPServer) listens on 127.0.0.1 only,
unless --allow-remote is given for another address.

Run directory: an existing run (people join its grid under its conditions; --values, --orders...
narrow the conditions offered) or a new one made from the flags. The server claims the run like a
runner (directory lock, config hash) and holds it while it serves. Each person gets an episode of
their own: the condition with the fewest people so far (stored or in progress), in plan order.
The episode is written to the run store when the person finishes; until then each answer is kept
in <run>/.play/<token>.json, so closing the tab (or restarting the server) loses nothing answered:
the same id, or the page's address, resumes the episode.

What is stored about a person: the id they type (1-64 letters, digits, '_', '.', '-'; the consent
page asks for a code, not a name), their answers (chosen letters, typed text) and the seconds each
took. No address, no cookies; the resume token lives in the page's address and local storage.

Routes: GET / (consent and instructions), GET /i/<instrument> (the same, for one instrument),
GET /s/<token> (the instrument page), POST /api/sessions {participant, instrument?, consent},
GET /api/sessions/<token>, POST /api/sessions/<token>/answer {index, choice | text}. An unknown
instrument, a malformed request or an answer that does not fit the open question gets a 4xx with
a JSON message, and nothing is recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import queue
import secrets
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runs.config import ConfigError, RunConfig, validate
from runs.store import RunStore, StoreError, code_version, environment

__all__ = [
    "Condition",
    "PlayError",
    "PlayServer",
    "build_parser",
    "conditions",
    "is_loopback",
    "main",
    "serve",
]

JOURNAL_DIR = ".play"
MAX_BODY = 64 * 1024
DEFAULT_PORT = 8765


class PlayError(ValueError):
    """A request the server refuses (HTTP status and message) or a bad setup (exit status 2)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    """Whether `host` is a loopback address (127.0.0.0/8, ::1) or 'localhost'."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- conditions ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    """One cell of the run's grid a person can be given (plan order = position in the list)."""

    instrument: str
    order: str
    prompt_set: str
    framing: str
    value: str | None
    goal: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "instrument": self.instrument,
            "order": self.order,
            "prompt_set": self.prompt_set,
            "framing": self.framing,
            "value": self.value,
            "goal": self.goal,
        }


def conditions(config: RunConfig) -> list[Condition]:
    """The grid cells of a run (one per instrument, order, prompt set, framing, value and goal)."""
    from runs.plan import plan

    seen: dict[Condition, None] = {}
    for e in plan(
        config.model_copy(
            update={"agents": ["human:x"] if config.scenario is None else config.agents, "trials": 1}
        )
    ):
        seen.setdefault(Condition(e.instrument, e.order, e.prompt_set, e.framing, e.value, e.goal))
    return list(seen)


# -- the run store, owned by one thread ----------------------------------------------------------------


class StoreWriter:
    """The run store, claimed and used by one thread (SQLite connections belong to their thread);
    other threads hand it work with `call` and wait for the result."""

    def __init__(self, claim: Callable[[], RunStore]) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._claim = claim
        self._ready: Future = Future()
        self._thread = threading.Thread(target=self._loop, name="run-store", daemon=True)
        self._thread.start()
        self.store: RunStore = self._ready.result()  # raises the claim's StoreError here

    def _loop(self) -> None:
        try:
            store = self._claim()
        except BaseException as err:  # handed to the constructor
            self._ready.set_exception(err)
            return
        self._ready.set_result(store)
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, fut = job
            try:
                fut.set_result(fn(store))
            except BaseException as err:  # noqa: BLE001 - handed to the caller
                fut.set_exception(err)

    def call(self, fn: Callable[[RunStore], Any]) -> Any:
        fut: Future = Future()
        self._jobs.put((fn, fut))
        return fut.result()

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=60)


# -- sessions -------------------------------------------------------------------------------------------


@dataclass
class Session:
    """One person's episode in progress."""

    token: str
    participant: str
    condition: Condition
    trial: int
    key: str
    channel: Any
    status: str = "running"  # running, done, failed, abandoned
    error: str | None = None
    thread: threading.Thread | None = None
    n_questions: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        q = self.channel.question if self.status == "running" else None
        return {
            "token": self.token,
            "participant": self.participant,
            "agent": f"human:{self.participant}",
            "episode": self.key,
            "status": self.status if q is not None or self.status != "running" else "waiting",
            "error": self.error,
            "condition": {**self.condition.as_dict(), "trial": self.trial},
            "answered": len(self.channel.answers),
            "total": self.n_questions or None,
            "question": None if q is None else q.as_dict(),
        }


class PlayServer:
    """The sessions of one run directory and the rules for starting, answering and recording them.

    config: the run's config; run_dir: where it lives; writer: the claimed store; seat and
    opponent: for a scenario run, the player a person takes (others play as the run's config says).
    """

    def __init__(self, config: RunConfig, run_dir: Path, writer: StoreWriter, *, offer: Sequence[Condition],
                 seat: str | None = None) -> None:  # fmt: skip
        self.config, self.run_dir, self.writer = config, Path(run_dir), writer
        self.offer = list(offer)
        self.seat = seat
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()
        self._agents: dict[str, Any] = {}
        self._planned: set[str] | None = None
        self.journal = self.run_dir / JOURNAL_DIR

    # -- conditions and keys -----------------------------------------------------------------------
    def instruments(self) -> list[str]:
        return list(dict.fromkeys(c.instrument for c in self.offer))

    def _stored(self) -> list[dict[str, Any]]:
        return self.writer.call(lambda s: s.episodes())

    def _human(self, ep: Mapping[str, Any]) -> str | None:
        if ep.get("kind") == "scenario":
            agents = [p["agent"] for p in (ep.get("players") or {}).values()]
            return next((a for a in agents if a.startswith("human:")), None)
        return ep.get("agent") if str(ep.get("agent", "")).startswith("human:") else None

    def _pick(self, participant: str, instrument: str | None) -> tuple[Condition, int]:
        """The condition with the fewest people (stored + in progress), and this person's trial."""
        offer = [c for c in self.offer if instrument is None or c.instrument == instrument]
        counts = {c: 0 for c in offer}
        mine = {c: 0 for c in offer}
        rows = []
        for ep in self._stored():
            who = self._human(ep)
            if who is not None:
                rows.append((who, Condition(ep["instrument"], ep["order"], ep.get("prompt_set", "paper"),
                                            ep.get("framing", "none"), ep.get("value"), ep["goal"])))  # fmt: skip
        rows += [
            (f"human:{s.participant}", s.condition) for s in self.sessions.values() if s.status == "running"
        ]
        for who, c in rows:
            if c in counts:
                counts[c] += 1
                if who == f"human:{participant}":
                    mine[c] += 1
        best = min(offer, key=lambda c: (counts[c], offer.index(c)))
        return best, mine[best]

    def _spec(self, participant: str, c: Condition, trial: int) -> Any:
        from runs.plan import EpisodeSpec, episode_key, episode_seed

        agent = f"human:{participant}"
        seed = episode_seed(self.config.seed, c.instrument, trial)
        key = episode_key(
            agent,
            c.value,
            c.goal,
            c.order,
            c.instrument,
            self.config.items,
            trial,
            seed,
            c.prompt_set,
            c.framing,
        )
        kind = "instrument" if self.config.scenario is None else "scenario"
        return EpisodeSpec(0, key, kind, agent if kind == "instrument" else "", c.instrument, self.config.items,
                           c.order, c.value, c.goal, trial, seed, c.prompt_set, c.framing)  # fmt: skip

    def _episode_config(self, participant: str) -> RunConfig:
        """The run's config with the person in their seat (scenario runs) or as the agent."""
        spec = f"human:{participant}"
        if self.config.scenario is None:
            return self.config.model_copy(update={"agents": [spec]})
        others = [a for a in self.config.agents if a.partition("=")[0].strip() != self.seat]
        return self.config.model_copy(update={"agents": [*others, f"{self.seat}={spec}"]})

    # -- agents ----------------------------------------------------------------------------------------
    def _opponents(self, config: RunConfig) -> dict[str, Any]:
        """The other seats' agents of a scenario (built once, shared, one decision at a time)."""
        from runs.episodes import seat_specs

        out = {}
        for seat in seat_specs(config).values():
            if seat.spec.startswith("human:"):
                continue
            if seat.spec not in self._agents:
                self._agents[seat.spec] = _Locked(
                    _build_agent(seat.spec, self.config, self.run_dir, self.writer)
                )
            out[seat.spec] = self._agents[seat.spec]
        return out

    # -- starting and resuming -----------------------------------------------------------------------
    def start(self, participant: str, instrument: str | None) -> Session:
        """A new episode for this person, or the one they have in progress (resume)."""
        from agents.registry import AgentSpecError, parse_spec

        try:
            parse_spec(f"human:{participant}")
        except AgentSpecError:
            raise PlayError(
                "participant: a code of 1-64 letters, digits, '_', '.', '-' (no name, no e-mail address)"
            ) from None
        if instrument is not None and instrument not in self.instruments():
            raise PlayError(
                f"unknown instrument {instrument!r}; this server offers: {', '.join(self.instruments())}", 404
            )
        with self.lock:
            for s in self.sessions.values():
                if (
                    s.participant == participant
                    and s.status == "running"
                    and (instrument in (None, s.condition.instrument))
                ):
                    return s
            c, trial = self._pick(participant, instrument)
            return self._launch(participant, c, trial, secrets.token_urlsafe(18), [])

    def _launch(self, participant: str, c: Condition, trial: int, token: str, replay: list) -> Session:
        from agents.human import Channel

        spec = self._spec(participant, c, trial)
        s = Session(token, participant, c, trial, spec.key, None)
        s.channel = Channel(replay, on_answer=lambda answers: self._save_journal(s, answers))
        s.n_questions = self._n_questions(spec)
        self.sessions[token] = s
        self._save_journal(s, replay)
        s.thread = threading.Thread(target=self._play, args=(s, spec), name=f"play-{token[:6]}", daemon=True)
        s.thread.start()
        return s

    def _n_questions(self, spec: Any) -> int:
        """Questions of an episode: value induction and goal (when asked), then items or moves."""
        setup = (spec.value is not None) + bool(spec.goal)  # value induction and goal replies
        if spec.kind == "instrument":
            from scenarios import load_instrument

            inst = load_instrument(spec.instrument)
            n = len(inst.subset(spec.items).items) if inst.scoring == "slider" else len(inst.items)
            return setup + n
        from scenarios.dilemmas import load_dilemma

        d = load_dilemma(self.config.scenario)
        rounds = self.config.rounds or d.rounds
        moves = sum(1 for st in d.stages if st.player == self.seat) if d.game == "sequential" else 1
        return setup + rounds * moves

    def resume_journals(self) -> int:
        """Restart the sessions an earlier server left unfinished (their answers replayed)."""
        from agents.human import Answer

        n = 0
        if not self.journal.is_dir():
            return 0
        done = self.writer.call(lambda st: st.completed())
        for path in sorted(self.journal.glob("*.json")):
            try:
                j = json.loads(path.read_text(encoding="utf-8"))
                c = Condition(**j["condition"])
            except (OSError, ValueError, TypeError, KeyError) as err:
                print(
                    f"warning: {path}: cannot resume this session ({err}); it is left as it is",
                    file=sys.stderr,
                )
                continue
            if j.get("key") in done or c not in self.offer:
                continue
            replay = [Answer(a["kind"], a["value"], a.get("seconds")) for a in j.get("answers", [])]
            with self.lock:
                s = self._launch(j["participant"], c, int(j["trial"]), j["token"], replay)
            s.channel.wait_next(len(replay) - 1, timeout=60.0)  # replayed up to the open question
            n += 1
        return n

    def _save_journal(self, s: Session, answers: Sequence[Any]) -> None:
        """Keep the answers so far in <run>/.play/<token>.json (atomically), for resuming."""
        self.journal.mkdir(exist_ok=True)
        data = {"token": s.token, "participant": s.participant, "condition": s.condition.as_dict(),
                "trial": s.trial, "key": s.key, "answers": [a.as_dict() for a in answers]}  # fmt: skip
        path = self.journal / f"{s.token}.json"
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    # -- playing --------------------------------------------------------------------------------------
    def _play(self, s: Session, spec: Any) -> None:
        from agents.human import Abandoned, AnswerError, HumanPolicy
        from runs.episodes import build_game, records
        from runs.rollout import play

        try:
            config = self._episode_config(s.participant)
            person = HumanPolicy(s.channel, person=s.participant, prompt_mode=self.config.llm.mode)
            agents = {f"human:{s.participant}": person}
            if config.scenario is not None:
                agents.update(self._opponents(config))
            game, seats = build_game(spec, config, agents)
            (played,) = play([game])
            ep, decs = records(spec, played, seats)
            self.writer.call(lambda st: st.add_episode(self._next_seq(st), ep, decs))
            s.status = "done"
            with contextlib.suppress(FileNotFoundError):
                (self.journal / f"{s.token}.json").unlink()
        except Abandoned:
            s.status = "abandoned"
        except (AnswerError, StoreError) as err:
            s.status, s.error = "failed", str(err)
            print(f"error: session {s.token[:6]} ({s.participant}): {err}", file=sys.stderr)
        except Exception as err:  # a bug or an agent that failed: the person is told, the trace logged
            s.status, s.error = "failed", f"the episode stopped: {type(err).__name__}: {err}"
            traceback.print_exc()
        finally:
            s.channel.close()

    def _next_seq(self, store: RunStore) -> int:
        """After the plan's episodes: the plan's size plus the episodes stored beyond it."""
        from runs.plan import plan

        if self._planned is None:
            self._planned = (
                {e.key for e in plan(self.config)} if self.config.agents or self.config.scenario else set()
            )
        return len(self._planned) + len(store.completed() - self._planned)

    # -- answering ---------------------------------------------------------------------------------------
    def session(self, token: str) -> Session:
        s = self.sessions.get(token)
        if s is None:
            raise PlayError(
                "unknown session (it may have finished, or the server was restarted without it)", 404
            )
        return s

    def answer(self, token: str, payload: Any) -> Session:
        from agents.human import AnswerError

        s = self.session(token)
        if s.status != "running":
            raise PlayError(f"this session is {s.status}; nothing more to answer", 409)
        try:
            a = s.channel.answer(payload)
        except AnswerError as err:
            raise PlayError(
                str(err), 409 if "open question" in str(err) or "no question" in str(err) else 400
            ) from None
        del a
        index = payload["index"]
        s.channel.wait_next(index, timeout=20.0)
        if s.thread is not None and s.channel.question is None:
            s.thread.join(timeout=20.0)
        return s

    def close(self) -> None:
        for s in list(self.sessions.values()):
            s.channel.close()


class _Locked:
    """An agent shared by several people's episodes, used by one thread at a time."""

    def __init__(self, agent: Any) -> None:
        self.agent, self._lock = agent, threading.Lock()
        self.name, self.supports = agent.name, agent.supports

    def check_game(self, context: Any) -> None:
        self.agent.check_game(context)

    def describe(self) -> dict[str, Any]:
        return self.agent.describe()

    def start_batch(self, contexts: Sequence[Any]) -> list[Any]:
        with self._lock:
            return self.agent.start_batch(contexts)

    def act_batch(self, observations: Sequence[Any], states: Sequence[Any]) -> list[Any]:
        with self._lock:
            return self.agent.act_batch(observations, states)


def _build_agent(spec: str, config: RunConfig, run_dir: Path, writer: StoreWriter) -> Any:
    """A scenario's other agents, built as the runner builds them (cache, budget, backend options)."""
    from runs.agents import build
    from runs.checks import uses_llm
    from runs.runner import cache_path_for, llm_kwargs

    built = build(
        spec,
        llm=llm_kwargs(config) if uses_llm([spec]) else None,
        cache_path=cache_path_for(config, run_dir),
        budget=config.budget.model_dump(),
        backend_options=config.llm.backend_options,
        ledger=None,
    )
    return built.agent


# -- HTTP --------------------------------------------------------------------------------------------------


def _template() -> str:
    return resources.files("runs").joinpath("templates/play.html").read_text(encoding="utf-8")


class Handler(BaseHTTPRequestHandler):
    """Routes of the play server (see module docstring)."""

    server_version = "svo-eval-play"
    play: PlayServer  # set on the subclass made by `serve`
    loopback_only = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        if os.environ.get("SVO_PLAY_LOG"):
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
        )
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(
            status, json.dumps(obj, ensure_ascii=False).encode("utf-8"), "application/json; charset=utf-8"
        )

    def _error(self, err: PlayError) -> None:
        self._json(err.status, {"error": str(err)})

    def _host_ok(self) -> bool:
        """On a loopback address, refuse requests naming another host (DNS rebinding)."""
        if not self.loopback_only:
            return True
        host = urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
        return is_loopback(host)

    def _page(self, instrument: str | None, token: str | None) -> None:
        boot = {
            "instruments": self.play.instruments(),
            "instrument": instrument,
            "token": token,
            "scenario": self.play.config.scenario,
            "seat": self.play.seat,
            "run": self.play.config.name or self.play.run_dir.name,
        }
        html = _template().replace("/*BOOT*/null", json.dumps(boot).replace("<", "\\u003c"))
        self._send(200, html.encode("utf-8"), "text/html; charset=utf-8")

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if not self._host_ok():
            return self._json(403, {"error": "this server answers requests for 127.0.0.1/localhost only"})
        path = urlsplit(self.path).path
        parts = [p for p in path.split("/") if p]
        try:
            if not parts:
                return self._page(None, None)
            if parts[0] == "i" and len(parts) == 2:
                if parts[1] not in self.play.instruments():
                    raise PlayError(
                        f"unknown instrument {parts[1]!r}; this server offers: {', '.join(self.play.instruments())}",
                        404,
                    )
                return self._page(parts[1], None)
            if parts[0] == "s" and len(parts) == 2:
                self.play.session(parts[1])
                return self._page(None, parts[1])
            if parts[:2] == ["api", "sessions"] and len(parts) == 3:
                return self._json(200, self.play.session(parts[2]).state())
            if parts == ["favicon.ico"]:
                return self._send(204, b"", "image/x-icon")
            raise PlayError(f"no such page: {path}", 404)
        except PlayError as err:
            self._error(err)

    def _body(self) -> Any:
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise PlayError("Content-Length is not a number") from None
        if n <= 0:
            raise PlayError("the request needs a JSON body")
        if n > MAX_BODY:
            raise PlayError(f"the body is {n} bytes; at most {MAX_BODY}", 413)
        raw = self.rfile.read(n)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise PlayError(f"the body is not JSON: {err}") from None

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            return self._json(403, {"error": "this server answers requests for 127.0.0.1/localhost only"})
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        try:
            if parts == ["api", "sessions"]:
                body = self._body()
                if not isinstance(body, dict):
                    raise PlayError("the body must be a JSON object {participant, instrument, consent}")
                if body.get("consent") is not True:
                    raise PlayError("consent: the person must agree on the first page (consent: true)")
                participant = body.get("participant")
                if not isinstance(participant, str):
                    raise PlayError("participant: a code of 1-64 letters, digits, '_', '.', '-'")
                instrument = body.get("instrument")
                if instrument is not None and not isinstance(instrument, str):
                    raise PlayError("instrument: a string")
                s = self.play.start(participant.strip(), instrument)
                s.channel.wait_next(-1, timeout=20.0)  # the first question (an opponent may move first)
                return self._json(201, s.state())
            if len(parts) == 4 and parts[:2] == ["api", "sessions"] and parts[3] == "answer":
                s = self.play.answer(parts[2], self._body())
                return self._json(200, s.state())
            raise PlayError(f"no such endpoint: POST {self.path}", 404)
        except PlayError as err:
            self._error(err)


# -- setting up ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m runs.play",
        description="Serve an SVO instrument (or a two-player dilemma against an agent) to people in the browser, "
        "recorded as human:<id> in a run directory with the same items, order conditions and wording as the models.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--run-dir", metavar="DIR", help="run directory: an existing run to join, or a new one"
    )
    where.add_argument("--name", help="run name: results/<name> [people]")
    p.add_argument(
        "--results-dir", default="results", metavar="DIR", help="parent folder for --name [results]"
    )
    p.add_argument(
        "--instruments", nargs="+", metavar="ID", help="instruments offered (slider, triple_dominance)"
    )
    p.add_argument(
        "--values",
        nargs="+",
        metavar="VALUE",
        help="value conditions (the value the person is asked to hold)",
    )
    p.add_argument("--goal", choices=("on", "off", "both"), help="goal prompt condition(s)")
    p.add_argument("--orders", nargs="+", metavar="ORDER", help="option orders: fixed reversed permuted")
    p.add_argument(
        "--prompt-sets", nargs="+", metavar="ID", help="prompt sets (languages): paper, paper-fr..."
    )
    p.add_argument("--framings", nargs="+", metavar="ID", help="framings: none, or ids joined by +")
    p.add_argument("--items", choices=("primary", "all"), help="slider items (a new run only)")
    p.add_argument(
        "--mode",
        choices=("generate", "logprob"),
        help="the models' decision mode whose item wording to copy (a new run only)",
    )
    p.add_argument(
        "--seed",
        type=int,
        help="base seed (a new run only; episode seeds and permuted orders derive from it)",
    )
    p.add_argument("--scenario", metavar="ID_OR_PATH", help="a two-player dilemma (a new run only)")
    p.add_argument(
        "--opponent", metavar="SPEC", help="the agent the person plays against (a new scenario run)"
    )
    p.add_argument("--rounds", type=int, help="rounds per scenario episode (a new scenario run)")
    p.add_argument(
        "--seat", metavar="PLAYER", help="the player the person takes in a scenario [the first player]"
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on [127.0.0.1]")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (0: any free port) [{DEFAULT_PORT}]")
    p.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (the pages have no login)"
    )
    return p


_NARROW = {
    "instruments": "instruments",
    "values": "values",
    "orders": "orders",
    "prompt_sets": "prompt_sets",
    "framings": "framings",
}


def _new_config(args: argparse.Namespace, run_dir: Path) -> RunConfig:
    data: dict[str, Any] = {
        "name": run_dir.name,
        "results_dir": str(run_dir.parent),
        "agents": [],
        "goal": args.goal or "off",
    }
    for attr in (*_NARROW, "items", "seed", "scenario", "rounds"):
        v = getattr(args, attr)
        if v is not None:
            data[attr] = v
    if args.mode:
        data["llm"] = {"mode": args.mode}
    if args.scenario:
        if not args.opponent:
            raise ConfigError("--scenario needs --opponent SPEC: the agent the person plays against")
        data["agents"] = [f"*={args.opponent}"]
        data.setdefault("values", None)
    elif args.opponent:
        raise ConfigError("--opponent is for a scenario run (with --scenario)")
    config = validate(data, "command line")
    from runs.checks import check_run

    check_run(config if config.scenario else config.model_copy(update={"agents": ["human:participant"]}))
    return config


def _offer(config: RunConfig, args: argparse.Namespace, joined: bool) -> list[Condition]:
    """The run's conditions, narrowed by the flags (each flag's values must be in the run's grid)."""
    offer = conditions(config)
    if not joined:
        return offer
    for attr, key in _NARROW.items():
        want = getattr(args, attr)
        if want is None:
            continue
        have = getattr(config, key) or []
        if key == "instruments" and config.scenario:
            raise ConfigError("--instruments: this run plays a scenario")
        if key == "values" and not have:
            from scenarios import VALUE_NAMES

            have = list(VALUE_NAMES)
        bad = [w for w in want if w not in have]
        if bad:
            raise ConfigError(
                f"--{attr.replace('_', '-')}: {bad} are not conditions of this run; allowed: {have}"
            )
        field_ = {
            "instruments": "instrument",
            "values": "value",
            "orders": "order",
            "prompt_sets": "prompt_set",
            "framings": "framing",
        }[key]
        offer = [c for c in offer if getattr(c, field_) in want]
    if args.goal and args.goal != "both":
        offer = [c for c in offer if c.goal == (args.goal == "on")]
    if not offer:
        raise ConfigError("no condition of this run is left after the flags")
    for attr in ("items", "mode", "seed", "scenario", "opponent", "rounds"):
        if getattr(args, attr) is not None:
            raise ConfigError(
                f"--{attr} is set by the run being joined ({config.name or 'its config'}); leave it out"
            )
    return offer


def _seat(config: RunConfig, args: argparse.Namespace) -> str | None:
    if config.scenario is None:
        if args.seat:
            raise ConfigError("--seat is for a scenario run")
        return None
    from scenarios.dilemmas import load_dilemma

    d = load_dilemma(config.scenario)
    players = d.player_names()
    if len(players) != 2:
        raise ConfigError(
            f"scenario {d.id!r} has {len(players)} players; runs.play serves two-player dilemmas"
        )
    if d.game == "public_goods":
        raise ConfigError(f"scenario {d.id!r}: public-goods games are not served to people")
    seat = args.seat or players[0]
    if seat not in players:
        raise ConfigError(f"--seat {seat!r}: not a player of {d.id!r}; players: {players}")
    return seat


def prepare(
    args: argparse.Namespace, argv: Sequence[str]
) -> tuple[RunConfig, Path, list[Condition], str | None, bool]:
    """The config, run directory, conditions offered and seat (ConfigError/StoreError: exit 2)."""
    if not args.allow_remote and not is_loopback(args.host):
        raise ConfigError(
            f"--host {args.host}: refusing to listen beyond this machine (the pages have no login); "
            "use 127.0.0.1, or add --allow-remote on a network you trust"
        )
    run_dir = Path(args.run_dir) if args.run_dir else Path(args.results_dir) / (args.name or "people")
    from runs.store import is_run_dir

    joined = is_run_dir(run_dir)
    if joined:
        store = RunStore.read(run_dir)
        try:
            config = validate(store.config(), f"{run_dir}: config")
        finally:
            store.close()
    else:
        config = _new_config(args, run_dir)
    offer = _offer(config, args, joined)
    return config, run_dir, offer, _seat(config, args), joined


def _claim(config: RunConfig, run_dir: Path, argv: Sequence[str], args: argparse.Namespace) -> RunStore:
    from runs.plan import EPISODE_SEED_RULE

    command = ["python", "-m", "runs.play", *argv]
    manifest = {
        "config": config.model_dump(mode="json"),
        "seeds": {"base": config.seed, "episode_seed": EPISODE_SEED_RULE},
        "code": code_version(),
        "environment": environment(),
        "deterministic": {},
        "command": command,
        "play": {"note": "people answered through python -m runs.play; agents human:<id>"},
    }
    store, _ = RunStore.claim(
        run_dir,
        config=config.model_dump(mode="json"),
        resume_view=config.resume_view(),
        manifest=manifest,
        session={"code": code_version(), "command": command, "play": {"host": args.host, "port": args.port}},
    )
    return store


def serve(play: PlayServer, host: str, port: int, *, loopback_only: bool = True) -> ThreadingHTTPServer:
    """An HTTP server for `play` (not yet serving: call serve_forever)."""
    handler = type("PlayHandler", (Handler,), {"play": play, "loopback_only": loopback_only})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def _finish(play: PlayServer, writer: StoreWriter) -> int:
    """End the session: record its outcome, export, rewrite the reports (report.html included)."""
    from runs.report import write_reports

    done = sum(s.status == "done" for s in play.sessions.values())
    open_ = sum(s.status in ("running", "abandoned") for s in play.sessions.values())

    def end(store: RunStore) -> None:
        store.end_session({"play": True, "episodes": done, "unfinished": open_})
        store.export()
        write_reports(play.run_dir, store=store, html=True)
        store.close()

    writer.call(end)
    writer.stop()
    print(
        f"{done} episode(s) recorded in {play.run_dir}; {open_} unfinished (kept in {JOURNAL_DIR}/ for resuming)",
        file=sys.stderr,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        config, run_dir, offer, seat, _ = prepare(args, argv)
        writer = StoreWriter(lambda: _claim(config, run_dir, argv, args))
    except (ConfigError, StoreError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    play = PlayServer(config, run_dir, writer, offer=offer, seat=seat)
    try:
        server = serve(play, args.host, args.port, loopback_only=not args.allow_remote)
    except OSError as err:
        print(f"error: cannot listen on {args.host}:{args.port}: {err}", file=sys.stderr)
        writer.call(lambda st: st.close())
        writer.stop()
        return 2
    resumed = play.resume_journals()
    host, port = server.server_address[:2]
    print(f"serving {', '.join(play.instruments())} for {run_dir} on http://{host}:{port}/ "
          f"({resumed} unfinished session(s) resumed); Ctrl-C to stop", file=sys.stderr, flush=True)  # fmt: skip

    def stop(signum: int, frame: Any) -> None:  # noqa: ARG001
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        play.close()
    return _finish(play, writer)


if __name__ == "__main__":
    sys.exit(main())
