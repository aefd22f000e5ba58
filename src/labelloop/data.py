"""Load a pool of texts (and optional labels) from CSV, JSONL or Parquet.

We read with pandas rather than HF ``datasets``: the files are small enough for
memory, pandas gives row-exact errors, and nothing is written to a hidden cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError

__all__ = ["Pool", "load_pool", "demo_paths", "content_id", "check_test_labels"]

_READERS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Pool:
    """Texts with stable ids and, when known, their labels (``None`` = unlabeled)."""

    ids: list[str]
    texts: list[str]
    labels: list[str | None]
    source: str = ""

    def __len__(self) -> int:
        return len(self.ids)

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
        return Pool(
            [self.ids[i] for i in rows], [self.texts[i] for i in rows], [self.labels[i] for i in rows], self.source
        )


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


def _read_frame(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a CSV, JSONL or Parquet file")
    kind = _READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unknown file type {path.suffix!r}; use .csv, .tsv, .jsonl or .parquet")
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        raw = path.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw[: exc.start].count(b"\n") + 1
            raise DataError(
                f"{path}: not UTF-8 (byte {exc.start}, line {line}); re-save it as UTF-8, e.g. "
                f"`iconv -f latin1 -t utf-8`"
            ) from None
        if kind == "jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        # Read everything as text: ids like "007" must not become 7.
        return pd.read_csv(path, sep="\t" if kind == "tsv" else ",", dtype=str, keep_default_na=False,
                           na_values=[""], encoding="utf-8-sig")
    except DataError:
        raise
    except (ValueError, pd.errors.ParserError, OSError) as exc:  # malformed content
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot parse as {kind}: {first}") from None


def _column(frame: pd.DataFrame, name: str, path: Path, role: str) -> pd.Series:
    if name not in frame.columns:
        cols = ", ".join(map(str, frame.columns))
        raise DataError(f"{path}: no {role} column {name!r} (columns: {cols}); pass --{role}-column")
    return frame[name]


def _as_text(value: object) -> str | None:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():  # JSON ints become floats beside nulls
        return str(int(value))
    return str(value)


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
    or, without it, from the text's content, so they survive re-ordering the file;
    they must be unique unless ``unique_ids=False`` (a test set, whose ids are unused).
    """
    import warnings

    path = Path(path)
    frame = _read_frame(path)
    if frame.empty:
        raise DataError(f"{path}: no rows")
    texts_raw = [_as_text(v) for v in _column(frame, text_column, path, "text")]
    bad = [i for i, t in enumerate(texts_raw) if t is None or not t.strip()]
    keep = list(range(len(texts_raw)))
    if bad:
        rows = [i + 1 for i in bad]
        if not skip_empty:
            raise DataError(
                f"{path}: {len(bad)} empty or missing text(s) in column {text_column!r} at data rows "
                f"{_preview(rows)}; fix them or pass --skip-empty"
            )
        warnings.warn(f"{path}: skipped {len(bad)} empty text(s) at data rows {_preview(rows)}", stacklevel=2)
        bad_set = set(bad)
        keep = [i for i in keep if i not in bad_set]
        if not keep:
            raise DataError(f"{path}: every text is empty")
    texts = [texts_raw[i] for i in keep]  # type: ignore[misc]

    labels: list[str | None]
    if label_column is not None and label_column in frame.columns:
        col = [_as_text(v) for v in frame[label_column]]
        labels = [None if col[i] is None or not col[i].strip() else col[i].strip() for i in keep]  # type: ignore[union-attr]
        if require_labels:
            missing = [keep[j] + 1 for j, lab in enumerate(labels) if lab is None]
            if missing:
                raise DataError(
                    f"{path}: {len(missing)} row(s) without a label in column {label_column!r} at data rows "
                    f"{_preview(missing)}"
                )
    elif require_labels:
        cols = ", ".join(map(str, frame.columns))
        raise DataError(f"{path}: no label column {label_column!r} (columns: {cols}); pass --label-column")
    else:
        labels = [None] * len(texts)

    if id_column is not None:
        ids_raw = [_as_text(v) for v in _column(frame, id_column, path, "id")]
        missing_ids = [i + 1 for i in keep if ids_raw[i] is None or not ids_raw[i].strip()]  # type: ignore[union-attr]
        if missing_ids:
            raise DataError(f"{path}: {len(missing_ids)} empty id(s) at data rows {_preview(missing_ids)}")
        ids = [ids_raw[i].strip() for i in keep]  # type: ignore[union-attr]
        what = f"in column {id_column!r}"
    else:
        ids = [content_id(t) for t in texts]
        what = "(ids derived from text: these texts are exact duplicates; pass --id-column or dedupe)"
    seen: dict[str, int] = {}
    dups: list[str] = []
    for j, i in enumerate(ids):
        if i in seen:
            dups.append(f"{i} (rows {keep[seen[i]] + 1} and {keep[j] + 1})")
        else:
            seen[i] = j
    if dups and unique_ids:
        raise DataError(f"{path}: {len(dups)} duplicate id(s) {what}: {_preview(dups, 5)}")
    return Pool(ids=ids, texts=texts, labels=labels, source=str(path))


def check_test_labels(train: Pool, test: Pool) -> None:
    """Fail if the test set has labels the training pool never shows: its accuracy would be capped silently."""
    unseen = sorted(set(test.label_set) - set(train.label_set))
    if unseen:
        raise DataError(
            f"{test.source}: {len(unseen)} test label(s) never seen in {train.source}: {_preview(unseen)}"
        )
