"""Load a pool of texts (and optional labels) from CSV, JSONL, Parquet or Arrow files, or from a folder
(a saved Hugging Face dataset or Parquet files: :mod:`labelloop.datadirs`).

We read with pandas rather than HF ``datasets``: the files are small enough for
memory, pandas gives row-exact errors, and nothing is written to a hidden cache. Files become
frames of text cells in :mod:`labelloop.readers`; every input rule (blank texts, ids, labels) is
applied here, the same for every format. Identical texts become one item (:mod:`labelloop.copies`).
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .copies import LabelConflict, LabelConflictWarning, collapse_copies, conflicts_message
from .errors import DataError, LabelloopWarning
from .labels import join_labels, split_labels
from .readers import all_columns, cell_texts, named_column, preview, read_frame

__all__ = [
    "Pool",
    "load_pool",
    "demo_paths",
    "content_id",
    "check_test_labels",
    "inspect_data",
    "DataPeek",
    "columns_of",
    "is_blank",
    "LabelConflict",
    "LabelConflictWarning",
    "collapse_copies",
    "conflicts_message",
]


@dataclass(frozen=True)
class Pool:
    """Texts with stable ids and, when known, their labels (``None`` = unlabeled).

    Without an id column, identical texts are one item: ``rows`` then gives, per item, the data rows
    (1-based, header excluded) it stands for, so one label asked once covers every copy. ``rows=None``
    means one row per item. ``conflicts`` lists copies whose given labels differed.
    """

    ids: list[str]
    texts: list[str]
    labels: list[str | None]
    source: str = ""
    rows: tuple[tuple[int, ...], ...] | None = None
    conflicts: tuple[LabelConflict, ...] = ()
    # 0-based file row of each item (its first copy's) when items are not simply file rows 0..n-1 (rows
    # skipped as empty, copies collapsed): how vectors read from a column of the file line up with items.
    file_rows: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def copies(self) -> np.ndarray:
        """How many data rows each item stands for (all ones unless identical texts were collapsed)."""
        if self.rows is None:
            return np.ones(len(self.ids), dtype=np.int64)
        return np.array([len(r) for r in self.rows], dtype=np.int64)

    @property
    def n_rows(self) -> int:
        """Data rows the items stand for (``len(pool)`` counts distinct items)."""
        return len(self.ids) if self.rows is None else sum(map(len, self.rows))

    def rows_covered(self, ids: Sequence[str] | set[str]) -> int:
        """Data rows covered by labels on ``ids`` (each id counts its copies; unknown ids count none)."""
        if self.rows is None:
            return len(set(ids) & set(self.ids))
        wanted = set(ids)
        return sum(len(r) for i, r in zip(self.ids, self.rows, strict=True) if i in wanted)

    @property
    def label_set(self) -> list[str]:
        """Sorted distinct labels present in the pool."""
        return sorted({lab for lab in self.labels if lab is not None})

    def label_array(self, classes: Sequence[str]) -> np.ndarray:
        """Labels as indices into ``classes`` (-1 where unlabeled)."""
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({lab for lab in self.labels if lab is not None and lab not in index})
        if unknown:
            raise DataError(f"{self.source}: labels not in the label set: {preview(unknown)}")
        return np.array([-1 if lab is None else index[lab] for lab in self.labels], dtype=np.int64)

    def subset(self, rows: Sequence[int] | np.ndarray) -> Pool:
        rows = list(map(int, rows))
        kept = {self.ids[i] for i in rows}
        return Pool(
            [self.ids[i] for i in rows],
            [self.texts[i] for i in rows],
            [self.labels[i] for i in rows],
            self.source,
            None if self.rows is None else tuple(self.rows[i] for i in rows),
            tuple(c for c in self.conflicts if c.id in kept),
            tuple(rows) if self.file_rows is None else tuple(self.file_rows[i] for i in rows),
        )


def content_id(text: str) -> str:
    """A stable id derived from the text itself, for files without an id column."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def demo_paths() -> tuple[Path, Path]:
    """The bundled demo dataset (train, test), written for this project."""
    root = resources.files("labelloop") / "demo"
    return Path(str(root / "tickets_train.csv")), Path(str(root / "tickets_test.csv"))


# Characters that show nothing on their own: controls, format characters (zero-width space, joiners,
# BOM, soft hyphen), separators, combining marks, and the few letters/symbols that render blank.
_INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"}
_BLANK_GLYPHS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"}


def is_blank(text: str | None) -> bool:
    """True for None, empty, whitespace-only and invisible-only texts (e.g. only zero-width spaces)."""
    if text is None:
        return True
    if text[:1].isalnum() and text[0] not in _BLANK_GLYPHS:  # the usual text: a letter or digit first
        return False
    return all(c in _BLANK_GLYPHS or unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in text)


def load_pool(
    path: str | Path,
    text_column: str = "text",
    label_column: str | None = "label",
    id_column: str | None = None,
    *,
    skip_empty: bool = False,
    require_labels: bool = False,
    unique_ids: bool = True,
    label_delimiter: str | None = None,
) -> Pool:
    """Read a pool from ``path``.

    Empty, missing or whitespace-only texts are an error naming their rows (1-based
    data rows, header excluded) unless ``skip_empty`` is set, in which case they are
    dropped with a warning. ``label_column=None`` or a file without that column
    gives an unlabeled pool, unless ``require_labels``. Ids come from ``id_column``
    or, without it, from the text's content, so they survive re-ordering the file.
    Ids in ``id_column`` must be unique (they are the user's promise). Without it,
    identical texts become one item carrying its copies (:attr:`Pool.rows`), so each
    distinct text is asked once; copies with different given labels keep the majority
    label, with a :class:`LabelConflictWarning`. ``unique_ids=False`` keeps every row as
    it is, duplicates included (a test set scored per row, or texts to predict per row).
    ``label_delimiter`` (multi-label): each label cell is a set written with it, kept in its canonical form
    (:func:`labelloop.labels.join_labels`), so ``refund|bug`` and ``bug|refund`` are one label, on copies too.
    """
    path = Path(path)
    frame = read_frame(path, [c for c in (text_column, label_column, id_column) if c is not None])
    if len(frame.index) == 0:
        raise DataError(f"{path}: no rows")
    texts_raw = cell_texts(named_column(frame, text_column, path, "text"), path, text_column)
    keep = _rows_with_text(path, texts_raw, text_column, skip_empty)
    texts = [t for t in (texts_raw[i] for i in keep) if t is not None]  # blanks were dropped above
    _warn_odd_texts(path, texts, keep)
    labels = _labels(path, frame, keep, label_column, require_labels)
    if label_delimiter is not None:
        d = label_delimiter
        labels = [None if lab is None else join_labels(split_labels(lab, d), d) or None for lab in labels]
    moved = tuple(keep) if len(keep) < len(texts_raw) else None  # file rows, when some were skipped
    if id_column is None:
        ids = [content_id(t) for t in texts]
        if unique_ids:  # identical texts are one item: asked once, its label covers every copy
            return _collapsed(path, ids, texts, labels, [i + 1 for i in keep])
        return Pool(ids=ids, texts=texts, labels=labels, source=str(path), file_rows=moved)
    ids_raw = cell_texts(named_column(frame, id_column, path, "id"), path, id_column)
    missing_ids = [i + 1 for i in keep if is_blank(ids_raw[i])]
    if missing_ids:
        raise DataError(f"{path}: {len(missing_ids)} empty id(s) at data rows {preview(missing_ids)}")
    ids = [(ids_raw[i] or "").strip() for i in keep]
    if unique_ids:
        seen: dict[str, int] = {}
        dups: list[str] = []
        for j, i in enumerate(ids):
            if i in seen:
                dups.append(f"{i} (rows {keep[seen[i]] + 1} and {keep[j] + 1})")
            else:
                seen[i] = j
        if dups:
            raise DataError(
                f"{path}: {len(dups)} duplicate id(s) in column {id_column!r}: {preview(dups, 5)}; "
                f"ids must be unique"
            )
    return Pool(ids=ids, texts=texts, labels=labels, source=str(path), file_rows=moved)


def _rows_with_text(path: Path, texts: list[str | None], column: str, skip_empty: bool) -> list[int]:
    """Rows whose text is not blank; blanks are an error naming their rows, or skipped with a warning."""
    import warnings

    bad = [i for i, t in enumerate(texts) if is_blank(t)]
    if not bad:
        return list(range(len(texts)))
    rows = [i + 1 for i in bad]
    invisible = sum(1 for i in bad if (texts[i] or "").strip())
    note = f" ({invisible} of them only invisible characters, e.g. zero-width spaces)" if invisible else ""
    if not skip_empty:
        raise DataError(
            f"{path}: {len(bad)} empty or missing text(s) in column {column!r} at data rows "
            f"{preview(rows)}{note}; fix them or pass --skip-empty"
        )
    warnings.warn(f"{path}: skipped {len(bad)} empty text(s) at data rows {preview(rows)}", stacklevel=3)
    bad_set = set(bad)
    keep = [i for i in range(len(texts)) if i not in bad_set]
    if not keep:
        raise DataError(f"{path}: every text is empty")
    return keep


LONG_TEXT = 100_000  # characters: far beyond any ticket or e-mail, most likely a file pasted into a cell


def _warn_odd_texts(path: Path, texts: list[str], keep: list[int]) -> None:
    """Texts that load fine but will surprise later: NUL characters (Label Studio on PostgreSQL refuses
    them at import) and huge cells (the encoder reads only their first few hundred tokens, while every
    annotator's browser gets all of it). Kept as they are, said once."""
    import warnings

    nul = [keep[j] + 1 for j, t in enumerate(texts) if "\x00" in t]
    if nul:
        warnings.warn(
            f"{path}: {len(nul)} text(s) contain NUL characters (data rows {preview(nul)}); Label Studio on "
            f"PostgreSQL refuses them at import: remove them from the data",
            LabelloopWarning,
            stacklevel=3,
        )
    long = [keep[j] + 1 for j, t in enumerate(texts) if len(t) > LONG_TEXT]
    if long:
        warnings.warn(
            f"{path}: {len(long)} text(s) longer than {LONG_TEXT:,} characters (data rows {preview(long)}); "
            f"the encoder reads only their beginning, and annotators are sent all of it",
            LabelloopWarning,
            stacklevel=3,
        )


def _labels(
    path: Path, frame: pd.DataFrame, keep: list[int], column: str | None, required: bool
) -> list[str | None]:
    """The given label of each kept row (None: unlabeled); every row must have one if ``required``."""
    if column is None or column not in frame.columns:
        if required:
            cols = all_columns(frame)
            raise DataError(f"{path}: no label column {column!r} (columns: {cols}); pass --label-column")
        return [None] * len(keep)
    col = cell_texts(frame[column], path, column)
    labels = [None if is_blank(col[i]) else col[i].strip() for i in keep]  # type: ignore[union-attr]
    if required:
        missing = [keep[j] + 1 for j, lab in enumerate(labels) if lab is None]
        if missing:
            raise DataError(
                f"{path}: {len(missing)} row(s) without a label in column {column!r} at data rows "
                f"{preview(missing)}"
            )
    return labels


def _collapsed(
    path: Path, ids: list[str], texts: list[str], labels: list[str | None], data_rows: list[int]
) -> Pool:
    """The pool with identical texts as one item, warning (not failing) when their given labels differ."""
    import warnings

    first, covered, kept, conflicts = collapse_copies(ids, texts, labels, data_rows)
    if conflicts:
        shown = [c.describe() for c in conflicts[:5]]
        warnings.warn(
            f"{path}: {conflicts_message(len(conflicts), shown)}", LabelConflictWarning, stacklevel=3
        )
    file_rows = tuple(data_rows[j] - 1 for j in first)
    moved = None if file_rows == tuple(range(len(file_rows))) else file_rows
    if len(first) == len(ids):
        return Pool(ids=ids, texts=texts, labels=labels, source=str(path), file_rows=moved)
    return Pool(
        ids=[ids[j] for j in first],
        texts=[texts[j] for j in first],
        labels=kept,
        source=str(path),
        rows=covered,
        conflicts=conflicts,
        file_rows=moved,
    )


def columns_of(path: str | Path) -> list[str]:
    """The column names of a data file (a one-line error if it cannot be read)."""
    return [str(c) for c in read_frame(Path(path).expanduser()).columns]


def check_test_labels(train: Pool, test: Pool) -> None:
    """Fail if the test set has labels the training pool never shows: its accuracy would be capped silently."""
    unseen = sorted(set(test.label_set) - set(train.label_set))
    if unseen:
        raise DataError(
            f"{test.source}: {len(unseen)} test label(s) never seen in {train.source}: {preview(unseen)}"
        )


_ROLE_NAMES = {
    "id": ("id", "uid", "item_id", "doc_id", "text_id", "row_id"),
    "text": ("text", "texts", "content", "body", "message", "sentence", "utterance", "document"),
    "label": ("label", "labels", "category", "class", "intent", "target"),
}


@dataclass(frozen=True)
class DataPeek:
    """What ``labelloop init`` learns from a data file: obvious columns by role, rows, distinct labels."""

    columns: dict[str, str]
    rows: int | None
    labels: list[str]
    problem: str | None = None
    examples: dict[str, list[str]] = field(default_factory=dict)  # a few texts per label, for guidelines


def inspect_data(path: str | Path) -> DataPeek | None:
    """Detect the id, text and label columns by their usual names (case-insensitive); None if no file.

    Never raises for a bad file: the problem is returned as a sentence for a warning, since a
    config may well be written before its data is ready.
    """
    path = Path(path).expanduser()
    if not os.path.lexists(path):
        return None
    try:
        frame = read_frame(path)
    except DataError as exc:
        return DataPeek({}, None, [], f"could not look at the data: {exc}")
    lower = {str(c).lower(): str(c) for c in reversed(list(frame.columns))}
    columns = {role: lower[n] for role, names in _ROLE_NAMES.items() for n in names if n in lower}
    columns = {role: next(lower[n] for n in _ROLE_NAMES[role] if n in lower) for role in columns}
    labels: list[str] = []
    if "label" in columns:
        try:
            labels = sorted(
                {
                    (t or "").strip()
                    for t in cell_texts(frame[columns["label"]], path, columns["label"])
                    if not is_blank(t)
                }
            )
        except DataError:
            labels = []
    problem = None
    if "text" not in columns:
        problem = (
            f"{path} has no obvious text column (columns: {', '.join(map(str, frame.columns))}); "
            f"set data.text_column"
        )
    examples: dict[str, list[str]] = {}
    if labels and "text" in columns:
        for text, label in zip(frame[columns["text"]], frame[columns["label"]], strict=True):
            if isinstance(text, str) and isinstance(label, str) and text.strip() and label.strip() in labels:
                shown = examples.setdefault(label.strip(), [])
                if len(shown) < 3:
                    shown.append(text.strip())
    return DataPeek(columns, len(frame), labels, problem, examples)
