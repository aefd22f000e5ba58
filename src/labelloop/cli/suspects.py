"""``labelloop suspects``: rank labeled texts by how likely their label is wrong (offline).

Thin over :func:`labelloop.label_errors.rank_label_errors`: load the data (and pulled labels),
featurize the whole file the usual way (unlabeled rows serve as neighbours), score every labeled
row out-of-fold, and write a CSV that others read by its column names.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import numpy as np
import typer
from rich.console import Console

from ..data import Pool, columns_of
from ..errors import DataError, LabelloopError
from ..featurize import featurize
from . import app
from ._common import CacheDir, LabelColumn, ModelPath, TextColumn, load_data

if TYPE_CHECKING:
    from ..label_errors import Suspects

COLUMNS = ("id", "label", "suggested", "score", "flagged")
FOLDS = 5


DataOpt = Annotated[
    Path,
    typer.Option(
        help="Texts with labels (CSV, JSONL or Parquet); unlabeled rows are used as neighbours only."
    ),
]
SuspectsIdColumn = Annotated[
    Optional[str],
    typer.Option(
        help="Column with stable ids (default: `id` if the file has one, else derived from the text)."
    ),
]
LabelsFileOpt = Annotated[
    Optional[Path],
    typer.Option(
        help="Labels pulled from Label Studio (`labelloop pull --out`); their agreed labels override or add to "
        "the data's."
    ),
]


@app.command()
def suspects(
    data: DataOpt,
    out: Annotated[Path, typer.Option(help="CSV to write: id,label,suggested,score,flagged.")],
    text_column: TextColumn = "text",
    label_column: LabelColumn = "label",
    id_column: SuspectsIdColumn = None,
    labels_file: LabelsFileOpt = None,
    model: ModelPath = None,
    cache_dir: CacheDir = None,
) -> None:
    """Rank every labeled row by how likely its label is wrong; flag those worth a second opinion.

    Each row is scored by a model that never saw it (5-fold cross-validation of the labelloop head);
    confident learning (cleanlab) flags the rows whose label disagrees confidently with the model, as
    many as the estimated share of wrong labels. Then every row is scored and flagged once more by fold
    models trained without the flagged rows, so wrong labels do not vouch for each other. OUT lists
    every labeled row, most suspicious first, with columns `id,label,suggested,score,flagged`
    (score = 1 − the model's probability of the given label; flagged = 1 where the label should be
    checked again).

    Example:

        labelloop suspects --data tickets.csv --labels-file labels.jsonl --out suspects.csv
    """
    console = Console(stderr=True, soft_wrap=True)
    _check_out(out)
    pool = _load(data, text_column, label_column, id_column, console)
    known = _known(pool, labels_file, label_column, console)
    classes = _classes(data, known)
    rows = [i for i, k in enumerate(pool.ids) if k in known]
    console.print(f"{len(rows)} labeled of {len(pool)} texts, {len(classes)} classes.")
    f = featurize(pool.texts, model=model, cache_dir=cache_dir, progress=True)
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[known[pool.ids[i]]] for i in rows], dtype=np.int64)

    from ..label_errors import LABEL_ERROR_PASSES, rank_label_errors

    with console.status(
        f"scoring out-of-fold ({FOLDS} folds, {LABEL_ERROR_PASSES} pass(es)) and finding label issues"
    ):
        s = rank_label_errors(f.pool[rows], y, len(classes), folds=FOLDS)
    _write_atomic(out, _csv_rows(s, [pool.ids[i] for i in rows], y, classes))
    console.print(
        f"Flagged {int(s.flagged.sum())} of {len(rows)} labels for a second opinion (estimated "
        f"{s.noise_rate:.1%} wrong). Wrote {out}"
    )


def _classes(data: Path, known: dict[str, str]) -> list[str]:
    """The known labels' classes, refused when out-of-fold scoring cannot work: fewer than two classes,
    or a class with fewer labels than folds."""
    classes = sorted(set(known.values()))
    if len(classes) < 2:
        raise DataError(
            f"{data}: labels of at least two classes are needed to find suspicious ones, found "
            f"{len(classes)}" + (f" ({classes[0]!r})" if classes else "")
        )
    counts = Counter(known.values())
    rare = sorted((c, n) for c, n in counts.items() if n < FOLDS)
    if rare:
        shown = ", ".join(f"{c!r}: {n}" for c, n in rare[:8]) + (", …" if len(rare) > 8 else "")
        raise DataError(
            f"{len(rare)} class(es) have fewer than {FOLDS} labels ({shown}); each row is scored by a "
            f"model trained on the other {FOLDS - 1} of {FOLDS} folds, so every class needs at least "
            f"{FOLDS}: label more of them or leave those rows out"
        )
    return classes


def _csv_rows(s: Suspects, ids: list[str], y: np.ndarray, classes: list[str]) -> list[tuple[object, ...]]:
    """One row of OUT per labeled text (``ids[j]`` with label ``y[j]``), most suspicious first."""
    return [
        (ids[j], classes[y[j]], classes[s.suggested[j]], f"{s.score[j]:.6f}", int(s.flagged[j]))
        for j in s.order
    ]


def _check_out(out: Path) -> None:
    """Fail before embedding, not after, when OUT cannot be written."""
    if out.is_dir():
        raise LabelloopError(f"--out {out} is a directory; give a file name")
    parent = out.parent if str(out.parent) else Path(".")
    existing = next((p for p in (parent, *parent.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise LabelloopError(f"--out {out}: {existing} is not a writable directory")


def _load(data: Path, text_column: str, label_column: str, id_column: str | None, console: Console) -> Pool:
    if id_column is not None:
        return load_data(console, data, text_column, label_column, id_column)
    if "id" not in columns_of(data):  # an `id` column is what a user means by ids; else ids from the text
        return load_data(console, data, text_column, label_column, None)
    pool = load_data(console, data, text_column, label_column, "id")
    console.print(f"Ids from column 'id' of {data} (pass --id-column to choose another).")
    return pool


def _known(pool: Pool, labels_file: Path | None, label_column: str, console: Console) -> dict[str, str]:
    """The data's labels, overridden or completed by the agreed labels of a pull file."""
    from ..labels import DEFAULT_DELIMITER
    from ._common import known_labels

    known = known_labels(pool, labels_file, console)
    if not known:
        raise DataError(
            f"{pool.source}: no labels in column {label_column!r} (missing or empty); pass "
            f"--label-column or --labels-file"
        )
    sets = sorted({lab for lab in known.values() if DEFAULT_DELIMITER in lab})
    if sets:  # not yet for multi-label data: each joined set would be ranked as a class of its own
        console.print(
            f"warning: {len(sets)} label(s) look like label sets (e.g. {sets[0]!r}); `labelloop suspects` "
            f"ranks single labels and treats each set as one class of its own",
            highlight=False,
        )
    return known


def _write_atomic(out: Path, rows: list[tuple[object, ...]]) -> None:
    """Write beside OUT, then replace it: a reader never sees half a file, a failure leaves no temp behind."""
    from ..outputs import atomic_write

    with atomic_write(out, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        w.writerows(rows)
