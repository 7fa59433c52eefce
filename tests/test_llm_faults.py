"""Chat backends against misbehaving servers on 127.0.0.1: timeouts and retries are options, honoured.

Each server is a plain socket server in a thread that counts the requests it reads and then hangs,
resets the connection, trickles bytes, answers HTTP 500, or answers invalid JSON. Every server
stops by itself after `LIFETIME_S` (and when its test ends); every wait in a test is bounded, so a
regression fails a test instead of hanging the suite. No external network is used.

The bounds asserted are the documented ones (agents.llm.chat): a call gives up within
`(retries + 1) * timeout_s + sum of the backoffs`, plus a small margin for thread start-up on a
loaded machine; the server sees exactly `retries + 1` requests (the chat model's own retries are
off, so retries are not multiplied); the error is a BackendError naming the URL and never the key.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest
from langchain_core.language_models import SimpleChatModel
from langchain_core.messages import HumanMessage

from agents.llm import chat
from agents.llm.backend import BackendError, Sampling
from agents.llm.chat import ChatBackend, default_timeout_s
from agents.llm.factory import BackendSpecError, check_backend_options, make_backend

LIFETIME_S = 20.0  # a server stops by itself after this, whatever the client does
KEY = "sk-fault-test-secret-7f3a9c"
TIMEOUT_S, RETRIES, BACKOFF_S = 1.0, 2, 0.1
BACKOFFS = sum(min(30.0, BACKOFF_S * 2**k) for k in range(RETRIES))
MARGIN_S = 2.5  # thread start-up and client set-up on a shared 2-core machine


class FaultServer:
    """A one-behaviour HTTP server: counts each request it reads, then misbehaves as told."""

    def __init__(self, behaviour: str, lifetime_s: float = LIFETIME_S) -> None:
        self.behaviour = behaviour
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.requests = 0
        self.auth: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + lifetime_s
        self._handlers: list[threading.Thread] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _left(self) -> float:
        return self._deadline - time.monotonic()

    def _serve(self) -> None:
        try:
            while not self._stop.is_set() and self._left() > 0:
                try:
                    conn, _ = self.sock.accept()
                except TimeoutError:
                    continue
                t = threading.Thread(target=self._handle, args=(conn,), daemon=True)
                self._handlers.append(t)
                t.start()
        finally:
            self.sock.close()

    def _read_request(self, conn: socket.socket) -> bytes:
        conn.settimeout(2.0)
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 1 << 20:
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
            if name.strip().lower() == b"authorization":
                self.auth.append(value.strip().decode())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return head

    def _handle(self, conn: socket.socket) -> None:
        try:
            if not self._read_request(conn):
                return
            with self._lock:
                self.requests += 1
            self.behaviours[self.behaviour](self, conn)
        except OSError:
            pass  # the client went away
        finally:
            conn.close()

    def _wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; False once the server is stopping."""
        return not self._stop.wait(min(seconds, max(0.0, self._left())))

    def _hang(self, conn: socket.socket) -> None:
        self._wait(self._left())

    def _reset(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST

    def _trickle_body(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
        while self._wait(0.2):
            conn.sendall(b" ")

    def _trickle_headers(self, conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while self._wait(0.2):
            conn.sendall(b"X-Slow: 1\r\n")

    @staticmethod
    def _respond(conn: socket.socket, status: str, body: bytes) -> None:
        conn.sendall(
            f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n".encode()
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )

    def _status_500(self, conn: socket.socket) -> None:
        body = '{"error": {"message": "internal error; you sent ' + self.auth[-1] + '"}}'  # echoes the key
        self._respond(conn, "500 Internal Server Error", body.encode())

    def _status_401(self, conn: socket.socket) -> None:
        self._respond(conn, "401 Unauthorized", b'{"error": {"message": "Incorrect API key provided"}}')

    def _invalid_json(self, conn: socket.socket) -> None:
        self._respond(conn, "200 OK", b'{"id": "x", "choices": [ not json')

    behaviours: dict[str, Callable[[FaultServer, socket.socket], None]] = {
        "hang": _hang,
        "reset": _reset,
        "trickle_body": _trickle_body,
        "trickle_headers": _trickle_headers,
        "status_500": _status_500,
        "status_401": _status_401,
        "invalid_json": _invalid_json,
    }

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for t in self._handlers:
            t.join(timeout=5)


def _bounded(fn: Callable[[], object], limit_s: float) -> tuple[object, BaseException | None, float]:
    """Run fn in a thread; fail the test (not hang) if it has not returned within limit_s."""
    out: list[object] = []
    err: list[BaseException] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            err.append(e)

    t0 = time.monotonic()
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout=limit_s)
    elapsed = time.monotonic() - t0
    if t.is_alive():
        pytest.fail(f"the call did not return within {limit_s:.1f} s")
    return (out[0] if out else None), (err[0] if err else None), elapsed


def _requests_seen(server: FaultServer, expected: int, within_s: float = 2.0) -> int:
    """The server's request count once `expected` have arrived (or `within_s` passed), plus a beat
    to catch any extra one (an abandoned attempt sends late on a loaded machine, never twice)."""
    deadline = time.monotonic() + within_s
    while server.requests < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)
    return server.requests


def _ask(backend: ChatBackend, max_new_tokens: int = 8) -> Callable[[], object]:
    return lambda: backend.generate(
        [[HumanMessage("Choose A or B.")]], [Sampling(max_new_tokens=max_new_tokens)]
    )


@pytest.fixture()
def key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("FAULT_TEST_KEY", KEY)
    return "FAULT_TEST_KEY"


def _server_backend(url: str, key_env: str, **options: object) -> ChatBackend:
    opts = {"timeout_s": TIMEOUT_S, "retries": RETRIES, "backoff_s": BACKOFF_S, "api_key_env": key_env}
    backend = make_backend(f"openai-compatible:smol@{url}", **{**opts, **options})
    assert isinstance(backend, ChatBackend)
    return backend


def _check_failure(err: BaseException | None, server: FaultServer, attempts: int) -> None:
    assert isinstance(err, BackendError), repr(err)
    msg = str(err)
    assert server.url in msg and f"{attempts} attempts" in msg, msg
    assert KEY not in msg
    assert server.auth and all(KEY in a for a in server.auth)  # the key was sent, and only there


@pytest.mark.parametrize("behaviour", ["hang", "trickle_body", "trickle_headers"])
def test_a_server_that_never_finishes_gives_up_after_the_configured_attempts(behaviour, key_env):
    with FaultServer(behaviour) as server:
        backend = _server_backend(server.url, key_env)
        budget = (RETRIES + 1) * TIMEOUT_S + BACKOFFS
        _, err, elapsed = _bounded(_ask(backend), budget + MARGIN_S + 5)
        _check_failure(err, server, RETRIES + 1)
        assert "within 1 s" in str(err)
        assert budget - 0.05 <= elapsed <= budget + MARGIN_S, elapsed
        assert _requests_seen(server, RETRIES + 1) == RETRIES + 1


@pytest.mark.parametrize("behaviour", ["reset", "status_500", "invalid_json"])
def test_a_failing_server_is_retried_the_configured_times(behaviour, key_env):
    with FaultServer(behaviour) as server:
        backend = _server_backend(server.url, key_env)
        _, err, elapsed = _bounded(_ask(backend), (RETRIES + 1) * TIMEOUT_S + BACKOFFS + MARGIN_S + 5)
        _check_failure(err, server, RETRIES + 1)
        assert elapsed <= (RETRIES + 1) * TIMEOUT_S + BACKOFFS + MARGIN_S
        assert _requests_seen(server, RETRIES + 1) == RETRIES + 1


def test_a_refused_key_fails_at_once(key_env):
    with FaultServer("status_401") as server:
        _, err, _ = _bounded(_ask(_server_backend(server.url, key_env, retries=3)), 10)
        assert isinstance(err, BackendError) and "status 401" in str(err) and server.url in str(err)
        assert KEY not in str(err) and _requests_seen(server, 1) == 1


def test_no_retries_means_one_request(key_env):
    with FaultServer("status_500") as server:
        backend = _server_backend(server.url, key_env, retries=0)
        _, err, _ = _bounded(_ask(backend), 10)
        _check_failure(err, server, 1)
        assert _requests_seen(server, 1) == 1


def test_provider_backends_honour_timeouts_and_retries_too(key_env, monkeypatch):
    """PROVIDER:MODEL (init_chat_model) goes through the same limits; the client's own retries are off."""
    with FaultServer("hang") as server:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_API_BASE", server.url)
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        backend = make_backend("openai:gpt-test", timeout_s=TIMEOUT_S, retries=1, backoff_s=BACKOFF_S)
        budget = 2 * TIMEOUT_S + BACKOFF_S
        _, err, elapsed = _bounded(_ask(backend), budget + MARGIN_S + 5)
        _check_failure(err, server, 2)
        assert budget - 0.05 <= elapsed <= budget + MARGIN_S
        assert _requests_seen(server, 2) == 2


class Slow(SimpleChatModel):
    """Answers "A" after `delay_s` (any chat model gets the same wall-clock limit)."""

    delay_s: float = 0.5
    calls: int = 0

    def _call(self, messages, stop=None, run_manager=None, **kwargs):
        self.calls += 1
        time.sleep(self.delay_s)
        return "A"

    @property
    def _llm_type(self) -> str:
        return "slow"


def test_default_timeout_is_proportionate_to_the_answer(monkeypatch):
    assert default_timeout_s(1) == pytest.approx(20.1)
    assert default_timeout_s(64) == pytest.approx(26.4)
    assert default_timeout_s(256) == pytest.approx(45.6)
    assert default_timeout_s(10**6) == chat.MAX_DEFAULT_TIMEOUT_S == 300
    b = ChatBackend(Slow(), reproducible=True)
    assert b.timeout_s is None and b.attempt_timeout_s(64) == pytest.approx(26.4)
    assert ChatBackend(Slow(), timeout_s=5).attempt_timeout_s(64) == 5
    # the limit follows each call's max_new_tokens: 0.2 + 0.01 * n seconds here
    monkeypatch.setattr(chat, "TIMEOUT_BASE_S", 0.2)
    monkeypatch.setattr(chat, "TIMEOUT_PER_TOKEN_S", 0.01)
    model = Slow(delay_s=0.5)
    b = ChatBackend(model, retries=0, reproducible=True)
    (g,) = _bounded(_ask(b, max_new_tokens=100), 10)[0]  # 1.2 s allowed
    assert g.text == "A"
    _, err, elapsed = _bounded(_ask(b, max_new_tokens=10), 10)  # 0.3 s allowed
    assert isinstance(err, BackendError) and "within 0.3 s" in str(err) and elapsed < 0.5 + MARGIN_S
    assert model.calls == 2


def test_fake_backend_takes_and_honours_the_same_options():
    b = make_backend("fake:A", timeout_s=0.5, retries=0, backoff_s=0)
    assert isinstance(b, ChatBackend) and (b.timeout_s, b.retries) == (0.5, 0)
    assert [g.text for g in b.generate([[HumanMessage("x")]], [Sampling()])] == ["A"]
    slow = ChatBackend(Slow(delay_s=1.0), timeout_s=0.2, retries=1, backoff_s=0, reproducible=True)
    _, err, elapsed = _bounded(_ask(slow), 10)
    assert isinstance(err, BackendError) and "2 attempts" in str(err) and elapsed < 0.4 + MARGIN_S


# --- options are declared, and refused before anything is built ----------------------------------


@pytest.fixture()
def nothing_built(monkeypatch):
    """Fail loudly if a check builds a backend or loads a model."""
    from agents.llm import local

    def boom(*a, **k):
        raise AssertionError("a check built a backend or loaded a model")

    monkeypatch.setattr(local, "load_model", boom)
    monkeypatch.setattr(local.LocalBackend, "__init__", boom)
    monkeypatch.setattr(ChatBackend, "__init__", boom)


URL = "openai-compatible:m@http://127.0.0.1:9/v1"
BAD = [
    # (spec, options, words the message must contain)
    ("embedded", {"timeout_s": 5}, ["'timeout_s'", "no network calls", "allowed: device, dtype"]),
    ("embedded", {"retries": 1}, ["'retries'", "allowed: device"]),
    ("embedded", {"dtype": "int8"}, ["dtype='int8'", "allowed: auto, float32, bfloat16, float16"]),
    ("embedded", {"max_batch_tokens": 0}, ["max_batch_tokens=0", "an integer >= 1"]),
    ("embedded", {"prefix_cache": "no"}, ["prefix_cache='no'", "true or false"]),
    ("embedded", {"device": "gpu"}, ["device='gpu'", "auto, cpu, cuda"]),
    ("embedded?dtype=float32", {"dtype": "bfloat16"}, ["dtype given twice"]),
    ("embedded?fast=1", {}, ["unknown local option 'fast'"]),
    ("hf:/no/such/model", {}, ["/no/such/model", "expected 'embedded', a .gguf file"]),
    (URL, {"dummy_key": True, "timeout_s": 0}, ["timeout_s=0", "(0, 3600]"]),
    (URL, {"dummy_key": True, "timeout_s": float("inf")}, ["timeout_s=inf"]),
    (URL, {"dummy_key": True, "timeout_s": float("nan")}, ["timeout_s=nan"]),
    (URL, {"dummy_key": True, "timeout_s": "5"}, ["timeout_s='5'", "a number of seconds"]),
    (URL, {"dummy_key": True, "retries": -1}, ["retries=-1", "an integer in [0, 10]"]),
    (URL, {"dummy_key": True, "retries": 1.5}, ["retries=1.5"]),
    (URL, {"dummy_key": True, "retries": True}, ["retries=True"]),
    (URL, {"dummy_key": True, "retries": 11}, ["retries=11"]),
    (URL, {"dummy_key": True, "backoff_s": -1}, ["backoff_s=-1", "[0, 300]"]),
    (URL, {"dummy_key": True, "max_concurrency": 0}, ["max_concurrency=0"]),
    (URL, {"dummy_key": True, "top_logprobs": 21}, ["top_logprobs=21", "[1, 20]"]),
    (URL, {"dummy_key": True, "dtype": "float32"}, ["'dtype'", "openai-compatible backend", "timeout_s"]),
    (URL, {"dummy_key": "yes"}, ["dummy_key='yes'"]),
    (URL, {"dummy_key": True, "api_key_env": "1-BAD"}, ["api_key_env='1-BAD'", "environment variable"]),
    (URL, {"dummy_key": True, "timeout": 5}, ["unknown option", "'timeout'", "timeout_s"]),
    (URL + "?dummy_key=maybe", {}, ["dummy_key='maybe'"]),
    (URL + "?key=1", {}, ["unknown URL options ['key']"]),
    ("openai-compatible:http://h/v1", {}, ["MODEL@URL"]),
    ("openai-compatible:m@ftp://h/v1", {"dummy_key": True}, ["must be http(s)"]),
    ("fake:a", {"reproducible": False}, ["'reproducible'", "fake backend"]),
    ("fake:a", {"temperature": 0}, ["'temperature'"]),
    ("gpt4", {}, ["allowed forms"]),
    ("", {}, ["empty"]),
    ("embedded", ["retries"], ["must be a mapping"]),
]


@pytest.mark.parametrize(("spec", "options", "words"), BAD)
def test_bad_options_are_refused_before_anything_is_built(spec, options, words, nothing_built):
    with pytest.raises(BackendSpecError) as err:
        check_backend_options(spec, options)
    for w in words:
        assert w in str(err.value), str(err.value)
    if isinstance(options, dict):  # make_backend refuses the same way, first
        with pytest.raises(BackendSpecError):
            make_backend(spec, **options)


def test_good_options_pass_the_check(nothing_built, monkeypatch):
    check_backend_options("embedded?dtype=bfloat16", {"max_batch_tokens": 2048, "prefix_cache": False})
    check_backend_options("embedded", {"device": "cuda:1", "max_cache_bytes": 0})
    check_backend_options(URL, {"dummy_key": True, "timeout_s": 5, "retries": 0, "backoff_s": 0.5})
    check_backend_options(URL + "?dummy_key=1", {"timeout_s": None, "reproducible": True})
    check_backend_options("fake:a|b", {"timeout_s": 1, "retries": 0, "max_concurrency": 2})
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(BackendSpecError, match="OPENAI_API_KEY"):
        check_backend_options("openai:gpt-4o-mini", {"timeout_s": 30})
    check_backend_options("openai:gpt-4o-mini", {"timeout_s": 30}, check_key=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    check_backend_options("openai:gpt-4o-mini", {"timeout_s": 30, "retries": 3})


def test_options_reach_the_backend_and_its_client(monkeypatch):
    b = make_backend(URL, dummy_key=True, timeout_s=7.5, retries=1, backoff_s=0.25, max_backoff_s=2)
    assert (b.timeout_s, b.retries, b.backoff_s, b.max_backoff_s) == (7.5, 1, 0.25, 2.0)
    assert b.model.max_retries == 0 and b.model.request_timeout == 7.5  # the client never retries
    d = b.describe()
    assert d["timeout_s"] == 7.5 and d["retries"] == 1 and d["timeout_rule"] == "fixed"
    default = make_backend(URL, dummy_key=True)
    assert default.timeout_s is None and default.retries == chat.DEFAULT_RETRIES
    assert default.model.request_timeout == chat.MAX_DEFAULT_TIMEOUT_S
    assert "20 + 0.1 * max_new_tokens" in default.describe()["timeout_rule"]
