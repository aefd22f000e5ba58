"""Data files as frames of text cells: CSV, TSV, JSONL, Parquet and Arrow files, and folders
(:mod:`labelloop.datadirs`).

Every format is refused the same way, in one sentence naming the file (and the line or data rows):
unreadable paths, encodings other than UTF-8, duplicate column names or JSON keys, malformed content,
and cells that are not text. What a pool makes of the cells is :mod:`labelloop.data`'s business.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .datadirs import read_arrow_file, read_folder
from .errors import DataError

_READERS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".arrow": "arrow",  # Arrow IPC (stream or file), e.g. one shard of a saved Hugging Face dataset
}


def preview(items: Sequence[object], n: int = 10) -> str:
    """The first ``n`` items for an error message, with how many there are in all when more."""
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


def read_frame(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
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


def all_columns(frame: pd.DataFrame) -> str:
    """Every column of the file, even those a Parquet read left out, for an error message."""
    return ", ".join(map(str, frame.attrs.get("columns", frame.columns)))


def named_column(frame: pd.DataFrame, name: str, path: Path, role: str) -> pd.Series:
    """The column ``name`` (the file's ``role`` column), or one sentence listing the columns there are."""
    if name not in frame.columns:
        cols = all_columns(frame)
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


def cell_texts(values: Sequence[object] | pd.Series, path: Path, column: str) -> list[str | None]:
    """Each cell as text (``None``: missing); cells that are not text are refused, naming their data rows."""
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
            f"data rows {preview([r for r, _ in bad])}; store them as strings"
        )
    return out
