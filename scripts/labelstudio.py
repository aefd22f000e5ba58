#!/usr/bin/env python3
"""Run a local Label Studio for development and the integration tests: install | start | stop | status.

    python3 scripts/labelstudio.py start [--port 18080] [--data-dir DIR]   # prints `export ...` lines
    eval "$(python3 scripts/labelstudio.py start)"                         # ... straight into the shell
    python3 scripts/labelstudio.py status [--port 18080]
    python3 scripts/labelstudio.py stop [--port 18080]

Label Studio goes into its own venv (``.venv-ls`` in the project root): its pins (Django,
pytz<2023, openai<2) must not reach ours. Standard library only, so any python3 ≥ 3.10 runs it.

Why it is this careful (measured with label-studio 1.23.2):
* it binds 0.0.0.0 unless ``--internal-host`` is given, and silently moves to port+1 when the
  port is busy, so we check the port is free first and that *our* process listens on it after;
* the user token is refused (401) unless legacy tokens are enabled when the organisation is
  created, i.e. on the first start of a data dir;
* it reads ``PORT``, ``HOST``, ``USERNAME``, ``PASSWORD``... from the environment (unprefixed
  fallbacks), so it gets a clean environment instead of ours;
* ``label-studio --version`` starts a server on 0.0.0.0:8080: never call it. The installed
  version is read from the package metadata instead.

Stdout carries only the ``export`` lines (the token is printed there once, for you to eval);
everything else goes to stderr. Exit codes: 0 ok, 1 failure, 3 ``status``: not running.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

LS_VERSION = "1.23.2"
ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("LABELLOOP_LS_VENV", ROOT / ".venv-ls"))
STATE_DIR = VENV / "run"  # inside the git-ignored venv: pid files and logs
DEFAULT_PORT = 18080
DEFAULT_USER = "admin@labelloop.local"
MARKER = VENV / ".labelloop-installed"
QUIET_DIR = STATE_DIR / "quiet"  # on the server's PYTHONPATH: holds the sitecustomize below
# Label Studio's LOG_LEVEL (which --log-level sets) reaches only its root logger: Django's own "django" logger
# keeps Django's default INFO, so every request was logged, organisation invite links with their tokens
# included. A settings module wrapping Label Studio's cannot fix it (its settings read django.conf.settings
# while they load), so Django's default is lowered before Django starts.
QUIET_SITECUSTOMIZE = """\
# Written by labelloop's scripts/labelstudio.py: Django's request log at WARNING for Label Studio.
try:
    import django.utils.log
except ImportError:
    pass
else:
    django.utils.log.DEFAULT_LOGGING["loggers"]["django"]["level"] = "WARNING"
"""


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Failure(Exception):
    """A failure with a one-line message for the user."""


# -- install ----------------------------------------------------------------------------------------

def installed_version() -> str | None:
    """The label-studio version in the venv, from its metadata (never `label-studio --version`)."""
    py = VENV / "bin" / "python"
    if not py.exists() or not MARKER.exists():
        return None
    out = subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('label-studio'))"],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def install() -> None:
    """Create ``.venv-ls`` with label-studio pinned; a half-finished install is wiped and redone."""
    if installed_version() == LS_VERSION:
        return
    if VENV.exists():
        say(f"removing incomplete or outdated {VENV}")
        shutil.rmtree(VENV)
    base = getattr(sys, "_base_executable", None) or sys.executable
    say(f"installing label-studio=={LS_VERSION} into {VENV} (≈ 2–3 min, ≈ 1 GB) ...")
    t0 = time.monotonic()
    log = Path(tempfile.gettempdir()) / "labelloop-ls-install.log"
    with open(log, "w") as fh:
        for cmd in ([base, "-m", "venv", str(VENV)],
                    [str(VENV / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                     "--no-input", f"label-studio=={LS_VERSION}"]):
            if subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode != 0:
                tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
                raise Failure(f"installing Label Studio failed ({' '.join(cmd[:4])} ...); see {log}:\n{tail}")
    MARKER.write_text(LS_VERSION + "\n")
    if installed_version() != LS_VERSION:
        raise Failure(f"label-studio {LS_VERSION} not importable in {VENV} after install; see {log}")
    say(f"installed in {time.monotonic() - t0:.0f} s")


# -- processes --------------------------------------------------------------------------------------

def state_file(port: int) -> Path:
    return STATE_DIR / f"{port}.json"


def read_state(port: int) -> dict | None:
    try:
        return json.loads(state_file(port).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def descendants(pid: int) -> list[int]:
    """All processes below ``pid`` (Linux /proc), so stop can kill children that left the group."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().split(")")[-1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def port_free(port: int) -> bool:
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def listening_pids(port: int) -> set[int]:
    """Pids owning a TCP socket listening on ``port`` (from /proc/net/tcp and /proc/*/fd)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                inodes.add(f[9])
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    pids.add(int(entry.name))
                    break
        except OSError:
            continue
    return pids


def healthy(port: int, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as r:
            return r.status == 200 and json.loads(r.read() or b"{}").get("status") == "UP"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def token_accepted(port: int, token: str) -> bool:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/current-user/whoami",
                                 headers={"Authorization": f"Token {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stored_token(data_dir: Path, username: str) -> str | None:
    """The user's token from Label Studio's own database, to re-export it on a warm restart."""
    db = data_dir / "label_studio.sqlite3"
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            row = con.execute("SELECT t.key FROM authtoken_token t JOIN htx_user u ON u.id = t.user_id "
                              "WHERE u.email = ?", (username,)).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def clean_env(data_dir: Path, username: str, password: str, token: str) -> dict[str, str]:
    """A minimal environment: Label Studio falls back to unprefixed PORT, HOST, USERNAME... from ours."""
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR") if k in os.environ}
    env.update({
        "HOME": str(data_dir),
        "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
        "LABEL_STUDIO_USERNAME": username,
        "LABEL_STUDIO_PASSWORD": password,
        "LABEL_STUDIO_USER_TOKEN": token,
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        # no calls to the outside world
        "LATEST_VERSION_CHECK": "false",
        "SENTRY_DSN": "",
        "FRONTEND_SENTRY_DSN": "",
        "COLLECT_ANALYTICS": "false",
        "PYTHONUNBUFFERED": "1",
        # This server listens on 127.0.0.1 only; `labelloop serve` runs beside it on the same host, so its
        # webhooks and ML backend (loopback URLs, refused by default as SSRF targets) must be allowed.
        "SSRF_PROTECTION_ENABLED": "false",
        "ML_BLOCK_LOCAL_IP": "false",
        # Quiet logs: no request lines (they hold invite tokens) in a log kept across sessions.
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(QUIET_DIR),
    })
    return env


def write_quiet() -> None:
    """The sitecustomize clean_env's PYTHONPATH finds: Django's request log quiet."""
    QUIET_DIR.mkdir(parents=True, exist_ok=True)
    tmp = QUIET_DIR / f".sitecustomize.{os.getpid()}.tmp"
    tmp.write_text(QUIET_SITECUSTOMIZE)
    os.replace(tmp, QUIET_DIR / "sitecustomize.py")  # whole, even while another start reads it


def open_log(log: Path) -> int:
    """The server log, appended to and readable by its owner only (an older log is made private too)."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def start(port: int, data_dir: Path | None, timeout: float, username: str) -> dict:
    """Install if needed, start on 127.0.0.1:port, wait for /health, check the port and the token."""
    current = read_state(port)
    if current and alive(current["pid"]) and healthy(port):
        if data_dir is not None and Path(current["data_dir"]) != data_dir.resolve():
            raise Failure(f"a Label Studio from {current['data_dir']} already runs on port {port}; "
                          f"stop it first")
        say(f"already running on port {port} (pid {current['pid']})")
        token = os.environ.get("LABEL_STUDIO_API_KEY") or stored_token(Path(current["data_dir"]), username)
        print(f"export LABEL_STUDIO_URL={current['url']}")
        if token:
            print(f"export LABEL_STUDIO_API_KEY={token}")
        return current
    if current:
        stop(port, quiet=True)  # stale state from a crash: clean it up
    install()
    if not port_free(port):
        raise Failure(f"port {port} is busy; Label Studio would silently take port {port + 1}. "
                      f"Free it or pass --port")
    temporary = data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="labelloop-ls-")) if data_dir is None else data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    fresh = not (data_dir / "label_studio.sqlite3").exists()  # the user is created on a fresh data dir only
    token = (os.environ.get("LABEL_STUDIO_API_KEY") or stored_token(data_dir, username)
             or secrets.token_hex(20))
    password = os.environ.get("LABEL_STUDIO_PASSWORD") or secrets.token_urlsafe(12)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    write_quiet()
    log = STATE_DIR / f"{port}.log"
    log_start = log.stat().st_size if log.exists() else 0
    cmd = [str(VENV / "bin" / "label-studio"), "start", "--no-browser", "--internal-host", "127.0.0.1",
           "--port", str(port), "--data-dir", str(data_dir), "--enable-legacy-api-token",
           "--log-level", "WARNING"]
    t0 = time.monotonic()
    with os.fdopen(open_log(log), "ab") as fh:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                env=clean_env(data_dir, username, password, token), start_new_session=True)
    state = {"pid": proc.pid, "port": port, "url": f"http://127.0.0.1:{port}", "data_dir": str(data_dir),
             "temporary": temporary, "log": str(log), "username": username}
    state_file(port).write_text(json.dumps(state, indent=2) + "\n")
    say(f"starting Label Studio {LS_VERSION} on 127.0.0.1:{port} (pid {proc.pid}, data {data_dir}, "
        f"log {log})")
    while not healthy(port):
        if proc.poll() is not None:
            stop(port, quiet=True)
            raise Failure(f"Label Studio exited with code {proc.returncode} during start-up:\n{tail(log)}")
        if b"is in use" in log.read_bytes()[log_start:]:  # it moved to another port
            stop(port, quiet=True)
            raise Failure(f"port {port} was taken while Label Studio started:\n{tail(log)}")
        if time.monotonic() - t0 > timeout:
            stop(port, quiet=True)
            raise Failure(f"Label Studio not healthy after {timeout:.0f} s:\n{tail(log)}")
        time.sleep(1)
    owners = listening_pids(port)
    ours = {proc.pid, *descendants(proc.pid)}
    if not owners & ours:
        stop(port, quiet=True)
        raise Failure(f"something else answers on port {port} (pids {sorted(owners)}), not our Label Studio")
    if not token_accepted(port, token):
        stop(port, quiet=True)
        raise Failure(f"Label Studio on port {port} refuses the token: this data dir was created with "
                      f"another token (set LABEL_STUDIO_API_KEY to it) or without legacy tokens enabled")
    state["start_seconds"] = round(time.monotonic() - t0, 1)
    state_file(port).write_text(json.dumps(state, indent=2) + "\n")
    shown = f" / {password}" if fresh and "LABEL_STUDIO_PASSWORD" not in os.environ else ""
    say(f"healthy after {state['start_seconds']} s; log in at {state['url']} as {username}{shown}")
    print(f"export LABEL_STUDIO_URL={state['url']}")
    print(f"export LABEL_STUDIO_API_KEY={token}")
    return state


def tail(log: Path, n: int = 30) -> str:
    try:
        return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-n:])
    except OSError:
        return ""


def stop(port: int, quiet: bool = False) -> bool:
    """Kill the whole process tree (group first, then any stragglers); remove a temporary data dir."""
    state = read_state(port)
    if state is None:
        if not quiet:
            say(f"no Label Studio started by this script on port {port}")
        return False
    pid = state["pid"]
    tree = [pid, *descendants(pid)] if alive(pid) else []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not any(alive(p) for p in tree):
            break
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        for p in tree:
            try:
                os.kill(p, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(p) for p in tree):
            time.sleep(0.2)
    try:  # reap it if we are its parent (same process called start)
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    left = [p for p in tree if alive(p)]
    if left:
        raise Failure(f"could not kill Label Studio processes {left}")
    if state.get("temporary"):
        shutil.rmtree(state["data_dir"], ignore_errors=True)
    state_file(port).unlink(missing_ok=True)
    if not quiet:
        say(f"stopped Label Studio on port {port} (pid {pid})")
    return True


def status(port: int) -> int:
    state = read_state(port)
    if state is None:
        say(f"not running (no Label Studio started by this script on port {port})")
        return 3
    if not alive(state["pid"]):
        say(f"not running: pid {state['pid']} is gone (stale state; `stop` cleans it up)")
        return 3
    ok = healthy(port)
    say(f"{'running' if ok else 'NOT HEALTHY'}: {state['url']} pid {state['pid']} data {state['data_dir']} "
        f"log {state['log']}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["install", "start", "stop", "status"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("LABELLOOP_LS_PORT", DEFAULT_PORT)))
    parser.add_argument("--data-dir", type=Path, help="keep the data here (default: a temporary dir, "
                                                     "deleted on stop)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for /health")
    parser.add_argument("--username", default=DEFAULT_USER, help="the pre-created user's e-mail")
    args = parser.parse_args(argv)
    try:
        if args.command == "install":
            install()
        elif args.command == "start":
            start(args.port, args.data_dir, args.timeout, args.username)
        elif args.command == "stop":
            stop(args.port)
        else:
            return status(args.port)
    except Failure as exc:
        say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
