"""Options and helpers the commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..strategies import STRATEGIES, check_strategy

TextColumn = Annotated[str, typer.Option(help="Column holding the texts.")]
LabelColumn = Annotated[str, typer.Option(help="Column holding the labels.")]
IdColumn = Annotated[
    Optional[str], typer.Option(help="Column with stable ids (default: derived from the text).")
]
ModelPath = Annotated[
    Optional[Path],
    typer.Option("--model", help="Local transformer model directory (default: bundled all-MiniLM-L6-v2)."),
]
CacheDir = Annotated[
    Optional[Path],
    typer.Option(help="Embedding cache directory (default: $LABELLOOP_CACHE_DIR or ~/.cache/labelloop)."),
]
Neighbours = Annotated[
    int,
    typer.Option(
        help="Blend each embedding with its K nearest pool texts before training (labelloop.features); 0 = off.",
        metavar="K",
        min=0,
    ),
]
SkipEmpty = Annotated[
    bool, typer.Option("--skip-empty", help="Drop empty texts with a warning instead of failing.", metavar="")
]


def _strategy(value: str) -> str:
    """The one strategy-name check of the command line: typer reports the message as a usage error."""
    try:
        return check_strategy(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


StrategyOpt = Annotated[
    str, typer.Option(help=f"Query strategy: {', '.join(STRATEGIES)}.", callback=_strategy)
]
