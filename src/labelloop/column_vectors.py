"""Bring your own embeddings: vectors read from a Parquet column instead of running the encoder.

A column holds one vector per row, as an Arrow fixed-size list or list of floats. It is read batch
by batch, streaming pages rather than whole row groups, straight into one preallocated ``(n, d)``
float32 matrix, never through pandas (which would make a Python object per row): 1M × 384 read with
a peak of 1.5× the matrix and 1.1× once read (with ``pq.ParquetFile`` defaults: 2.5× and 2.3×).
The vectors are checked (same dimension on every row, every number finite, no zero vector: each
problem is one :class:`~labelloop.errors.DataError` naming the rows) and normalised to unit
length, as the encoder's own vectors are.

Encoder identity (what model versions and a campaign's state file are tied to):
``column:<name>:<d>d:<first 12 hex of the SHA-256 of the first row's vector as float32>``.
Vectors re-made by another model change the first row and so the identity; a file that only gains
rows keeps it, so a growing campaign pool is not mistaken for a new encoder. Hashing every row
instead would change the identity whenever a text is added.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["read_vectors", "vectors_identity", "column_identity", "BATCH_ROWS"]

BATCH_ROWS = 65_536
_PARQUET = (".parquet", ".pq")


def _preview(rows: Sequence[int], n: int = 10) -> str:
    shown = ", ".join(map(str, rows[:n]))
    return shown + (f", … ({len(rows)} in all)" if len(rows) > n else "")


def _open(path: Path, column: str):  # type: ignore[no-untyped-def]
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.suffix.lower() not in _PARQUET:
        raise DataError(
            f"{path}: embedding columns are read from Parquet files only (.parquet), not {path.suffix!r}"
        )
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        pf = pq.ParquetFile(path, buffer_size=1 << 22, pre_buffer=False)  # stream pages, not whole row groups
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: cannot read as Parquet ({str(exc).strip().splitlines()[0]})") from None
    names = pf.schema_arrow.names
    if column not in names:
        raise DataError(f"{path}: no embedding column {column!r} (columns: {', '.join(names)})")
    kind = pf.schema_arrow.field(column).type
    if not (
        (pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind))
        and pa.types.is_floating(kind.value_type)
    ):
        raise DataError(f"{path}: column {column!r} is {kind}, not a list of floats (one vector per row)")
    return pf


def vectors_identity(column: str, first_row: np.ndarray) -> str:
    """The encoder identity of vectors from ``column`` (see the module docstring for why the first row)."""
    v = np.ascontiguousarray(first_row, dtype=np.float32)
    return f"column:{column}:{len(v)}d:{hashlib.sha256(v.tobytes()).hexdigest()[:12]}"


def column_identity(path: str | Path, column: str) -> str:
    """The encoder identity of ``column`` in ``path`` without reading more than its first rows."""
    path = Path(path).expanduser()
    for batch in _open(path, column).iter_batches(batch_size=1, columns=[column]):
        first = batch.column(0)[0].values
        if first is None or len(first) == 0:
            raise DataError(f"{path}: the first vector in column {column!r} is empty")
        return vectors_identity(column, np.asarray(first.to_numpy(zero_copy_only=False), dtype=np.float32))
    raise DataError(f"{path}: no rows")


def read_vectors(
    path: str | Path, column: str, rows: Sequence[int] | np.ndarray | None = None
) -> tuple[np.ndarray, str]:
    """The unit-length ``(n, d)`` float32 vectors of ``column`` and their encoder identity.

    ``rows`` (0-based file rows, e.g. those a pool kept after skipping empty texts) selects rows;
    every row of the file is checked either way.
    """
    path = Path(path).expanduser()
    pf = _open(path, column)
    n = pf.metadata.num_rows
    out: np.ndarray | None = None
    identity = ""
    start = 0
    for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=[column]):
        block, norms = _checked_block(
            path, column, batch.column(0), start, None if out is None else out.shape[1]
        )
        if out is None:
            out = np.empty((n, block.shape[1]), dtype=np.float32)
        if start == 0:
            identity = vectors_identity(column, block[0])
        out[start : start + len(block)] = block / norms[:, None].astype(np.float32)
        start += len(block)
    import pyarrow as pa

    pa.default_memory_pool().release_unused()  # the decoded batches: give their memory back now, not later
    if out is None:
        raise DataError(f"{path}: no rows")
    if rows is not None:
        out = out[np.asarray(rows, dtype=np.int64)]
    return out, identity


def _checked_block(
    path: Path, column: str, arr: pa.ListArray, start: int, d: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """One batch's vectors (file rows from ``start``) as float32 rows of ``d`` numbers (``None``: the first
    row's), with their norms; refused, naming the data rows, where a row has no vector, another
    dimension, missing, NaN or infinite numbers, or only zeros."""
    import pyarrow.compute as pc

    here = np.arange(start + 1, start + len(arr) + 1)  # 1-based data rows, as the other errors say
    if arr.null_count:
        bad = here[np.asarray(arr.is_null(), dtype=bool)].tolist()
        raise DataError(
            f"{path}: {len(bad)} row(s) without a vector in column {column!r} at data rows {_preview(bad)}"
        )
    lengths = np.asarray(pc.list_value_length(arr), dtype=np.int64)
    if d is None:
        d = int(lengths[0]) if len(lengths) else 0
        if d == 0:
            raise DataError(f"{path}: the first vector in column {column!r} is empty")
    if np.any(lengths != d):
        bad = here[lengths != d].tolist()
        raise DataError(
            f"{path}: {len(bad)} vector(s) in column {column!r} do not have the first row's {d} numbers "
            f"(data rows {_preview(bad)}); every row needs a vector of the same dimension"
        )
    values = arr.flatten()
    if values.null_count:
        has_null = np.asarray(values.is_null(), dtype=bool).reshape(-1, d).any(axis=1)
        bad = here[has_null].tolist()
        raise DataError(
            f"{path}: {len(bad)} vector(s) in column {column!r} hold missing numbers at data rows {_preview(bad)}"
        )
    block = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, d)
    finite = np.isfinite(block).all(axis=1)
    if not finite.all():
        bad = here[~finite].tolist()
        raise DataError(
            f"{path}: {len(bad)} vector(s) in column {column!r} hold NaN or infinite numbers at data rows "
            f"{_preview(bad)}"
        )
    norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
    if np.any(norms == 0):
        bad = here[norms == 0].tolist()
        raise DataError(
            f"{path}: {len(bad)} zero vector(s) in column {column!r} at data rows {_preview(bad)}; a zero "
            f"vector has no direction to compare"
        )
    return block, norms
