"""Helpers for the fault suite: the CLI as a real subprocess, small tmpfs mounts, file listings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(os.environ.get("FAULTS_SRC", Path(__file__).resolve().parents[2] / "src"))


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None, drop_root: bool = False
            ) -> subprocess.CompletedProcess[str]:
    """``labelloop ARGS`` in a fresh interpreter; ``drop_root`` runs it without root's right to ignore
    file permissions (so a folder without permission is one, even in a root container)."""
    full_env = {**os.environ, "PYTHONPATH": str(SRC), "LABEL_STUDIO_URL": "http://127.0.0.1:9",
                "LABEL_STUDIO_API_KEY": "secret-key-123", **(env or {})}
    cmd = [sys.executable, "-m", "labelloop.cli", *args]
    if drop_root and os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot drop the right to ignore permissions")
        caps = "-dac_override,-dac_read_search,-fowner"
        cmd = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", *cmd]
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600)
    assert "secret-key-123" not in proc.stdout + proc.stderr
    return proc


def one_line_error(proc: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The error line of a refused command: exit ``code``, no traceback, exactly one ``error:`` line."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return " ".join(proc.stderr.split())


def listing(root: Path) -> dict[str, bytes | None]:
    """Every file and folder under ``root`` with its content: compared before and after a refused command."""
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        out[rel] = p.read_bytes() if p.is_file() and not p.is_symlink() else None
    return out


class Tmpfs:
    """A small tmpfs mounted for one test (we may be root in a container); skipped where it cannot be."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir()
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or 'mount failed'})")

    def read_only(self, on: bool = True) -> None:
        mode = "ro" if on else "rw"
        subprocess.run(["mount", "-o", f"remount,{mode}", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def tmpfs(tmp_path) -> Iterator:
    """``tmpfs(size)`` mounts a fresh tmpfs under tmp_path; all are unmounted after the test."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mounts: list[Tmpfs] = []

    def make(size: str = "2m", name: str = "mnt") -> Tmpfs:
        m = Tmpfs(tmp_path / name, size)
        mounts.append(m)
        return m

    yield make
    for m in mounts:
        m.unmount()


def write_config(folder: Path, *, data: str = "pool.csv", state: str = "state.db", extra: str = "",
                 project: str = '"faults"') -> Path:
    path = folder / "labelloop.toml"
    path.write_text(f'labels = ["billing", "bug", "other"]\n[data]\npath = "{data}"\nid_column = "id"\n'
                    f'[labelstudio]\nproject = {project}\n[state]\npath = "{state}"\n{extra}', encoding="utf-8")
    return path


POOL = "id,text\na1,My invoice is wrong\na2,The app crashes\na3,Just saying hi\n"
