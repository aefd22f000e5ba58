"""A real local Ray cluster for a test module: ``ray start --head`` in its own session, stopped with everything
it started (and only that) even when the test fails."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import labelloop


@dataclass(frozen=True)
class RayCluster:
    address: str
    session: int  # the session id of every process of this cluster (``ray start`` ran in a new session)
    env: dict[str, str]  # what a driver needs in its environment to connect (this cluster's own token)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_processes(session: int) -> list[int]:
    """PIDs whose session id is ``session`` (Ray's workers change their name and group, not their session)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state ppid pgrp session ...
        if int(fields[3]) == session and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop(session: int, grace: float = 15.0) -> list[int]:
    """``ray stop`` for this cluster only: SIGTERM to its processes, SIGKILL to any left after ``grace``.

    Returns the PIDs that needed SIGKILL."""
    _signal_all(session_processes(session), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = session_processes(session)
    _signal_all(left, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def ray_cluster(num_cpus: int = 2) -> Iterator[RayCluster]:
    """Start a head node on 127.0.0.1 with ``num_cpus`` CPUs; its workers import labelloop from this checkout."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    assert ray, "the ray command is not installed: pip install 'labelloop[ray]'"
    port = free_port()
    temp = tempfile.mkdtemp(prefix="lr-", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    src = str(Path(labelloop.__file__).resolve().parents[1])
    # Token auth with a token of its own: independent of ~/.ray/auth_token (which a local ray.init() writes and
    # a later `ray start` would pick up), and nobody else on the network can use the cluster meanwhile.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
           "RAY_USAGE_STATS_ENABLED": "0", **auth}
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    log = Path(temp) / "ray-start.log"
    with log.open("w") as sink:
        head = subprocess.Popen(
            [ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
             f"--num-cpus={num_cpus}", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
            start_new_session=True, stdout=sink, stderr=subprocess.STDOUT, env=env,
        )
    try:
        deadline = time.monotonic() + 180
        while "block forever" not in log.read_text():
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("ray start failed or took over 180 s:\n" + log.read_text()[-3000:])
            time.sleep(0.5)
        yield RayCluster(f"127.0.0.1:{port}", head.pid, auth)
    finally:
        killed = stop(head.pid)
        head.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)
        left = session_processes(head.pid)
        assert not left, f"Ray processes left behind: {left}"
        if killed:
            print(f"ray cluster: {len(killed)} process(es) needed SIGKILL", file=sys.stderr)
