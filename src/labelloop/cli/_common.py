"""Options and helpers the commands share."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console

from ..data import Pool, load_pool
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


def known_labels(pool: Pool, labels_file: Path | None, console: Console) -> dict[str, str]:
    """Labels in the data, overridden or completed by the agreed labels of a pull file (``--labels-file``)
    for ids in the pool: what ``push`` trains on and ``suspects`` ranks."""
    from ..errors import DataError
    from ..labelstudio.annotations import resolve
    from .pullfile import read_records

    known = {i: lab for i, lab in zip(pool.ids, pool.labels, strict=True) if lab is not None}
    if labels_file is None:
        return known
    if not os.path.lexists(labels_file):
        raise DataError(f"--labels-file {labels_file}: file not found")
    records = read_records(labels_file, option="--labels-file")
    pulled = {k: r.label for k, r in resolve(records).items() if r.label is not None}
    in_pool = set(pool.ids)
    outside = len(set(pulled) - in_pool)
    if outside:
        console.print(f"[yellow]{outside} pulled label(s) are for ids not in {pool.source}; ignored[/]")
    changed = sum(1 for k, v in pulled.items() if k in known and known[k] != v)
    known.update({k: v for k, v in pulled.items() if k in in_pool})
    console.print(
        f"{labels_file}: {len(pulled) - outside} agreed label(s) used ({changed} replace the data's)."
    )
    return known


def load_data(console: Console, *args: Any, **kwargs: Any) -> Pool:
    """:func:`~labelloop.data.load_pool`, its warnings (skipped empty texts, copies of one text with different
    labels) printed as one line each rather than Python's warning format with a source line."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pool = load_pool(*args, **kwargs)
    for w in caught:
        console.print(f"[yellow]warning:[/] {w.message}", highlight=False)
    return pool
