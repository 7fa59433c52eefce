"""Inside a fresh network and PID namespace (tests/test_ray_cluster.py starts this file with
`unshare -n -p -f --mount-proc`): bring loopback up, start a two-node Ray cluster on 127.0.0.1
(a head and a second node, 1 CPU each), run the runner against it, kill one actor's worker process
mid-run, stop the cluster, and print one JSON line of what happened. Every wait is bounded.

    python tests/ray_cluster.py OUT_DIR RUN_ARGS_JSON
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

PORT = 6380  # free by construction: the namespace has no other listener


def sh(*cmd: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def start_cluster() -> None:
    sh("ip", "link", "set", "lo", "up", timeout=10).check_returncode()
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--object-store-memory", "100000000"]
    common.append("--disable-usage-stats")  # RAY_TMPDIR (set by the test) keeps its files apart
    head = sh("ray", "start", "--head", "--port", str(PORT), "--include-dashboard", "false", *common)
    if head.returncode:
        raise SystemExit(f"ray start --head failed: {head.stderr[-2000:]}")
    node = sh("ray", "start", "--address", f"127.0.0.1:{PORT}", *common)
    if node.returncode:
        raise SystemExit(f"ray start (second node) failed: {node.stderr[-2000:]}")


def ray_processes() -> list[str]:
    """raylet / gcs_server processes visible here (this PID namespace: the cluster started here)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "/raylet" in cmd.split(" ")[0] or "gcs_server" in cmd.split(" ")[0]:
            out.append(f"{pid}: {cmd[:120]}")
    return out


def runner(run_dir: Path, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "runs.evaluate", "--run-dir", str(run_dir), "--no-progress", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def meta(run_dir: Path, name: str):
    db = run_dir / "run.sqlite"
    if not db.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
            return None if row is None else json.loads(row[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return None


def written(run_dir: Path) -> list[dict]:
    db = run_dir / "run.sqlite"
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return [json.loads(r) for (r,) in conn.execute("SELECT record FROM episodes")]
        finally:
            conn.close()
    except sqlite3.DatabaseError:
        return []


def until(cond, proc: subprocess.Popen, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = cond()
        if got:
            return got
        if proc.poll() is not None:
            raise SystemExit(
                f"the run ended before {what} (exit {proc.returncode}): {proc.stderr.read()[-3000:]}"
            )
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    out, spec = Path(sys.argv[1]), json.loads(sys.argv[2])
    address = ["--executor", "ray", "--ray-address", f"127.0.0.1:{PORT}"]
    report: dict = {"runs": {}}
    start_cluster()
    try:
        for name, args in spec["runs"].items():  # plain runs through the cluster
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "runs.evaluate",
                    "--run-dir",
                    str(out / name),
                    "--no-progress",
                    *args,
                    *address,
                ],
                capture_output=True,
                text=True,
                timeout=1200,
            )
            report["runs"][name] = {"exit": r.returncode, "stderr": r.stderr[-3000:]}
        # the kill: wait for the actors, then for an episode of the first unit (dealt to the first
        # actor), then SIGKILL that actor's worker process by its pid
        kill = out / "killed"
        proc = runner(kill, [*spec["kill"], *address])
        ex = until(lambda: meta(kill, "execution"), proc, 600, "the actors to start")
        first = ex["actors"][0]["pid"]
        value = spec["kill_value"]
        until(lambda: any(e["value"] == value for e in written(kill)), proc, 900, f"an episode of {value}")
        before = sorted(e["key"] for e in written(kill))
        os.kill(int(first), signal.SIGKILL)
        _, err = proc.communicate(timeout=1200)
        report["kill"] = {
            "exit": proc.returncode,
            "pid": first,
            "written_before": before,
            "stderr": err[-3000:],
        }
    finally:
        stop = sh("ray", "stop", "--force", timeout=120)
        t0 = time.monotonic()
        while ray_processes() and time.monotonic() - t0 < 30:
            time.sleep(0.2)
        report["stop"] = {"exit": stop.returncode, "left": ray_processes()}
        print(json.dumps(report))


if __name__ == "__main__":
    main()
