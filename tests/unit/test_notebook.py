"""notebooks/explore.ipynb: committed without outputs, in sync with its script, and runs top to bottom.

The notebook runs in a real Jupyter kernel started from *this* interpreter (a kernel spec
written to a temporary directory, nothing registered globally). It uses the session's
embedding cache, so the demo texts are not embedded again, and a guard refuses any
connection off this machine, so the notebook provably downloads nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import ipykernel  # noqa: F401  (the kernel the notebook runs in)
import jupytext
import nbclient
import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOK = NOTEBOOKS / "explore.ipynb"
SCRIPT = NOTEBOOKS / "explore.py"

# Run in the kernel before the notebook: any connection to a non-loopback address fails the cell.
# (The kernel's own ZeroMQ channels do not go through Python's socket module.)
NETWORK_GUARD = """
import socket as _socket
_real_connect, _real_connect_ex = _socket.socket.connect, _socket.socket.connect_ex
def _local_only(real):
    def connect(self, address, *args):
        remote = address[0] not in ("127.0.0.1", "::1", "localhost")
        if self.family in (_socket.AF_INET, _socket.AF_INET6) and remote:
            raise RuntimeError(f"the notebook tried to reach the network: {address!r}")
        return real(self, address, *args)
    return connect
_socket.socket.connect = _local_only(_real_connect)
_socket.socket.connect_ex = _local_only(_real_connect_ex)
"""


def read_notebook() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def test_notebook_is_committed_without_outputs():
    nb = read_notebook()
    dirty = [i for i, c in enumerate(code_cells(nb)) if c.outputs or c.execution_count is not None]
    assert not dirty, (f"code cells {dirty} of {NOTEBOOK.name} hold outputs: clear all outputs and save, "
                       f"or run `jupyter nbconvert --clear-output --inplace notebooks/explore.ipynb`")


def test_notebook_and_percent_script_hold_the_same_cells():
    ours = [(c.cell_type, c.source.strip()) for c in read_notebook().cells]
    theirs = [(c.cell_type, c.source.strip()) for c in jupytext.read(SCRIPT).cells]
    assert ours == theirs, ("notebooks/explore.ipynb and explore.py differ; regenerate one from the other: "
                            "jupytext --sync notebooks/explore.ipynb")


@pytest.fixture
def kernel_manager(tmp_path, monkeypatch):
    """A kernel manager for a kernel spec that runs the current interpreter, visible to nobody else."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = tmp_path / "kernels" / "labelloop-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "labelloop test kernel", "language": "python",
    }))
    # Connection files and IPython's profile go to the temporary directory, not the home directory.
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")], ensure_native_kernel=False)
    return KernelManager(kernel_name="labelloop-test", kernel_spec_manager=specs)


@pytest.mark.slow
def test_notebook_runs_top_to_bottom_on_the_demo_data(demo_embedded, embedding_cache, kernel_manager,
                                                      monkeypatch):
    # demo_embedded has filled the session cache: the notebook's embed() finds every vector there.
    monkeypatch.setenv("LABELLOOP_CACHE_DIR", str(embedding_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)  # the Label Studio section must skip cleanly
    monkeypatch.delenv("MPLBACKEND", raising=False)
    segments = sorted(embedding_cache.rglob("seg-*"))
    nb = read_notebook()
    n_code = len(code_cells(nb))
    nb.cells.insert(0, nbformat.v4.new_code_cell(NETWORK_GUARD))

    client = nbclient.NotebookClient(nb, km=kernel_manager, timeout=600, allow_errors=False,
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error

    cells = code_cells(nb)[1:]  # without the guard
    assert len(cells) == n_code
    assert all(c.execution_count is not None for c in cells), "every code cell ran"
    outputs = [o for c in cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) >= 5, "learning curves, map, confusion, per-class F1 and uncertain texts are drawn"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "LABEL_STUDIO_URL is not set: skipping the Label Studio round trip." in text
    assert sorted(embedding_cache.rglob("seg-*")) == segments, "the notebook embedded nothing anew"
