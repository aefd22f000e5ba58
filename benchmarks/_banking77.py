"""Where BANKING77 lives for benchmarks (read from ../shared, never copied into the project)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
BANKING77 = Path(os.environ.get("BANKING77_DIR", ROOT.parent.parent / "shared" / "data" / "banking77"))


def banking77_paths() -> tuple[Path, Path]:
    train, test = BANKING77 / "train.csv", BANKING77 / "test.csv"
    if not train.exists():
        raise SystemExit(f"BANKING77 not found at {BANKING77}; set BANKING77_DIR")
    return train, test
