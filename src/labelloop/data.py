"""Load a pool of texts (and optional labels) from CSV, JSONL, Parquet or Arrow files, or from a folder
(a saved Hugging Face dataset or Parquet files: :mod:`labelloop.datadirs`).

We read with pandas rather than HF ``datasets``: the files are small enough for
memory, pandas gives row-exact errors, and nothing is written to a hidden cache.

(Over 400 lines formatted: every input format's reader and every input rule live here, so each
format gets the same checks.)
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .datadirs import read_arrow_file, read_folder
from .errors import DataError, LabelloopWarning

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

_READERS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",  # Arrow IPC (stream or file), e.g. one shard of a saved Hugging Face dataset
}


class LabelConflictWarning(LabelloopWarning):
    """Copies of one text carry different labels in the data: the majority label is kept."""


@dataclass(frozen=True)
class LabelConflict:
    """Copies of one text whose given labels differ. ``counts`` is most common first; ``kept`` is the
    majority label (on a tie, the label of the first row among the tied ones)."""

    id: str
    text: str
    counts: tuple[tuple[str, int], ...]
    kept: str

    def describe(self, chars: int = 60) -> str:
        shown = self.text if len(self.text) <= chars else self.text[: chars - 1] + "…"
        votes = ", ".join(f"{lab} ×{n}" for lab, n in self.counts)
        return f"{shown!r} ({votes}; kept {self.kept})"


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
            raise DataError(f"{self.source}: labels not in the label set: {_preview(unknown)}")
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


def conflicts_message(n: int, shown: Sequence[str]) -> str:
    """One sentence for ``n`` label conflicts, naming the first ones (:meth:`LabelConflict.describe`)."""
    more = f"; … ({n} in all)" if n > len(shown) else ""
    return (
        f"{n} text(s) appear several times with different labels; the majority label is kept: "
        f"{'; '.join(shown)}{more}"
    )


def collapse_copies(
    ids: Sequence[str], texts: Sequence[str], labels: Sequence[str | None], data_rows: Sequence[int]
) -> tuple[list[int], tuple[tuple[int, ...], ...], list[str | None], tuple[LabelConflict, ...]]:
    """Group rows with the same id (here: the same text) into one item, in order of first appearance.

    Returns the first row index of each item (into the inputs), the data rows each item covers, each
    item's label and the conflicts. A label on any copy applies to all; copies labeled differently keep
    the majority label (on a tie, the first row's among the tied), so nothing is dropped silently.
    """
    groups: dict[str, list[int]] = {}
    for j, i in enumerate(ids):
        groups.setdefault(i, []).append(j)
    first, covered, kept_labels, conflicts = [], [], [], []
    for item_id, members in groups.items():
        first.append(members[0])
        covered.append(tuple(data_rows[j] for j in members))
        given = [lab for lab in (labels[j] for j in members) if lab is not None]
        counts = Counter(given)
        if len(counts) <= 1:
            kept_labels.append(given[0] if given else None)
            continue
        top = max(counts.values())
        kept = next(lab for lab in given if counts[lab] == top)  # first row among the tied
        order = sorted(counts.items(), key=lambda kv: (-kv[1], given.index(kv[0])))
        kept_labels.append(kept)
        conflicts.append(LabelConflict(item_id, texts[members[0]], tuple(order), kept))
    return first, tuple(covered), kept_labels, tuple(conflicts)


def content_id(text: str) -> str:
    """A stable id derived from the text itself, for files without an id column."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def demo_paths() -> tuple[Path, Path]:
    """The bundled demo dataset (train, test), written for this project."""
    root = resources.files("labelloop") / "demo"
    return Path(str(root / "tickets_train.csv")), Path(str(root / "tickets_test.csv"))


def _preview(items: Sequence[object], n: int = 10) -> str:
    shown = ", ".join(map(str, items[:n]))
    return shown + (f", … ({len(items)} in all)" if len(items) > n else "")


def _check_readable(path: Path) -> None:
    """Say why a path cannot be read: missing, a broken link, a link loop, no permission, a folder."""
    try:
        os.stat(path)
    except FileNotFoundError:
        if os.path.lexists(path):
            raise DataError(f"{path}: a broken symbolic link (to {os.readlink(path)})") from None
        raise DataError(f"{path}: file not found") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied (a folder on the way cannot be entered)") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DataError(f"{path}: a symbolic link loop") from None
        if exc.errno == errno.ENOTDIR:
            raise DataError(f"{path}: file not found (a part of the path is a file, not a folder)") from None
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")  # a BOM is accepted in every text format alike
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: not UTF-8 (byte {exc.start}, line {line}); re-save it as UTF-8, e.g. "
            f"`iconv -f latin1 -t utf-8`"
        ) from None


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [k for k, _ in pairs]
    dups = sorted({k for k in keys if keys.count(k) > 1})
    if dups:
        raise ValueError(f"duplicate key(s) {', '.join(map(repr, dups))} in one object")
    return dict(pairs)


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    """One JSON object per line; errors name the line (not a byte offset), blank lines are skipped."""
    rows: list[dict[str, object]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_no_duplicate_keys)
        except ValueError as exc:
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            raise DataError(f"{path}: line {number} is not valid JSON ({reason})") from None
        if not isinstance(row, dict):
            raise DataError(
                f"{path}: line {number} is a JSON {type(row).__name__}, expected an object "
                f'like {{"text": "..."}}'
            )
        rows.append(row)
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return pd.DataFrame.from_records(rows, columns=columns).astype(object)


def _header(text: str, sep: str) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(text), delimiter=sep), [])
    except csv.Error:
        return []


def _refuse_duplicate_columns(path: Path, names: Sequence[object]) -> None:
    """pandas renames a second ``text`` to ``text.1`` silently: which one is meant is then a guess."""
    text_names = [str(n) for n in names]
    dups = sorted({n for n in text_names if text_names.count(n) > 1})
    if dups:
        where = "; ".join(
            f"{d!r} (columns {', '.join(str(i + 1) for i, n in enumerate(text_names) if n == d)})"
            for d in dups[:5]
        )
        raise DataError(
            f"{path}: duplicate column header(s) {where}; rename them so each column has one name"
        )


def _no_duplicate_columns(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    _refuse_duplicate_columns(path, list(frame.columns))
    return frame


def _read_frame(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The file as text cells; a Parquet file only reads ``columns`` (the rest, e.g. a million-row
    embedding column, would become a Python object per cell). ``frame.attrs["columns"]`` lists them all."""
    _check_readable(path)
    if path.is_dir():  # a saved Hugging Face dataset or a Parquet folder
        return _no_duplicate_columns(path, read_folder(path))
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv, .jsonl, .parquet or .arrow, "
            f"or a folder (saved Hugging Face dataset, Parquet files)"
        )
    try:
        if kind == "arrow":
            return _no_duplicate_columns(path, read_arrow_file(path))
        if kind == "parquet":
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            _refuse_duplicate_columns(path, names)
            wanted = None if columns is None else [c for c in names if c in columns]
            frame = pd.read_parquet(path, columns=wanted)
            frame.attrs["columns"] = names
            return frame
        text = _decode(path, _read_bytes(path))
        if kind == "jsonl":
            return _read_jsonl(path, text)
        sep = "\t" if kind == "tsv" else ","
        _refuse_duplicate_columns(path, _header(text, sep))
        # Read everything as text: ids like "007" must not become 7.
        return pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except DataError:
        raise
    except (ValueError, pd.errors.ParserError, OSError, ImportError) as exc:  # malformed content
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot parse as {kind}: {first}") from None


def _all_columns(frame: pd.DataFrame) -> str:
    return ", ".join(map(str, frame.attrs.get("columns", frame.columns)))


def _column(frame: pd.DataFrame, name: str, path: Path, role: str) -> pd.Series:
    if name not in frame.columns:
        cols = _all_columns(frame)
        raise DataError(f"{path}: no {role} column {name!r} (columns: {cols}); pass --{role}-column")
    return frame[name]


class _NotText(Exception):
    pass


def _as_text(value: object) -> str | None:
    """A cell as text: strings as they are, numbers in their plain spelling, missing as None.

    Lists, dicts and other objects are refused (:class:`_NotText`): their Python repr is not a text
    anybody wrote, and labeling it would waste an annotator's time.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"  # JSON's spelling, not Python's
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return None
        if np.isinf(value):
            raise _NotText("an infinite number")
        if float(value).is_integer():  # JSON ints become floats beside nulls
            return str(int(value))
        return repr(float(value))
    raise _NotText(f"a {type(value).__name__}")


def _texts(values: Sequence[object] | pd.Series, path: Path, column: str) -> list[str | None]:
    if isinstance(values, pd.Series) and pd.api.types.is_string_dtype(values.dtype) and not values.hasnans:
        listed = values.tolist()  # a column of strings (a CSV read as text): one conversion, not a loop
        if all(type(v) is str for v in listed):
            return listed
    out: list[str | None] = []
    bad: list[tuple[int, str]] = []
    for row, value in enumerate(values, start=1):
        try:
            out.append(_as_text(value))
        except _NotText as exc:
            bad.append((row, str(exc)))
            out.append(None)
    if bad:
        kinds = sorted({k for _, k in bad})
        raise DataError(
            f"{path}: {len(bad)} cell(s) in column {column!r} are not text ({', '.join(kinds)}) at "
            f"data rows {_preview([r for r, _ in bad])}; store them as strings"
        )
    return out


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
    """
    path = Path(path)
    frame = _read_frame(path, [c for c in (text_column, label_column, id_column) if c is not None])
    if len(frame.index) == 0:
        raise DataError(f"{path}: no rows")
    texts_raw = _texts(_column(frame, text_column, path, "text"), path, text_column)
    keep = _rows_with_text(path, texts_raw, text_column, skip_empty)
    texts = [t for t in (texts_raw[i] for i in keep) if t is not None]  # blanks were dropped above
    labels = _labels(path, frame, keep, label_column, require_labels)
    moved = tuple(keep) if len(keep) < len(texts_raw) else None  # file rows, when some were skipped
    if id_column is None:
        ids = [content_id(t) for t in texts]
        if unique_ids:  # identical texts are one item: asked once, its label covers every copy
            return _collapsed(path, ids, texts, labels, [i + 1 for i in keep])
        return Pool(ids=ids, texts=texts, labels=labels, source=str(path), file_rows=moved)
    ids_raw = _texts(_column(frame, id_column, path, "id"), path, id_column)
    missing_ids = [i + 1 for i in keep if is_blank(ids_raw[i])]
    if missing_ids:
        raise DataError(f"{path}: {len(missing_ids)} empty id(s) at data rows {_preview(missing_ids)}")
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
                f"{path}: {len(dups)} duplicate id(s) in column {id_column!r}: {_preview(dups, 5)}; "
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
            f"{_preview(rows)}{note}; fix them or pass --skip-empty"
        )
    warnings.warn(f"{path}: skipped {len(bad)} empty text(s) at data rows {_preview(rows)}", stacklevel=3)
    bad_set = set(bad)
    keep = [i for i in range(len(texts)) if i not in bad_set]
    if not keep:
        raise DataError(f"{path}: every text is empty")
    return keep


def _labels(
    path: Path, frame: pd.DataFrame, keep: list[int], column: str | None, required: bool
) -> list[str | None]:
    """The given label of each kept row (None: unlabeled); every row must have one if ``required``."""
    if column is None or column not in frame.columns:
        if required:
            cols = _all_columns(frame)
            raise DataError(f"{path}: no label column {column!r} (columns: {cols}); pass --label-column")
        return [None] * len(keep)
    col = _texts(frame[column], path, column)
    labels = [None if is_blank(col[i]) else col[i].strip() for i in keep]  # type: ignore[union-attr]
    if required:
        missing = [keep[j] + 1 for j, lab in enumerate(labels) if lab is None]
        if missing:
            raise DataError(
                f"{path}: {len(missing)} row(s) without a label in column {column!r} at data rows "
                f"{_preview(missing)}"
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
    return [str(c) for c in _read_frame(Path(path).expanduser()).columns]


def check_test_labels(train: Pool, test: Pool) -> None:
    """Fail if the test set has labels the training pool never shows: its accuracy would be capped silently."""
    unseen = sorted(set(test.label_set) - set(train.label_set))
    if unseen:
        raise DataError(
            f"{test.source}: {len(unseen)} test label(s) never seen in {train.source}: {_preview(unseen)}"
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
        frame = _read_frame(path)
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
                    for t in _texts(frame[columns["label"]], path, columns["label"])
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
