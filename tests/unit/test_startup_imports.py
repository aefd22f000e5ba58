"""Starting the command line loads only what every command needs.

A no-op ``labelloop sync`` run by cron every minute pays the interpreter's imports each time: scikit-learn
(≈1.6 s on 2 cores), matplotlib and label-studio-sdk load when a command first uses them, not at start-up.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("sklearn", "scipy", "matplotlib", "label_studio_sdk", "cleanlab", "torch", "onnxruntime")


def modules_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in out.split()}


@pytest.mark.parametrize(
    "statement",
    ["import labelloop.cli", "import labelloop", "import labelloop.sync", "from labelloop.labelstudio import Connector"],
)
def test_importing_loads_no_heavy_library(statement: str) -> None:
    loaded = modules_after(statement)
    assert not loaded & set(HEAVY), f"{statement!r} imported {sorted(loaded & set(HEAVY))}"


def test_fitting_a_head_still_works_after_a_light_start() -> None:
    """The lazy import is taken on the first fit (guards against a lazy import that never happens)."""
    loaded = modules_after(
        "import numpy as np\nfrom labelloop.head import Head\n"
        "Head(2).fit(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0, 1]))"
    )
    assert "sklearn" in loaded
