"""Folders as input: a Hugging Face ``Dataset.save_to_disk`` folder or a folder of Parquet files.

Both are read with pyarrow alone, so the core does not need the ``datasets`` package (nor its cache):

- ``save_to_disk`` writes ``state.json`` (the shard files, in order), ``dataset_info.json`` (the features)
  and ``data-*.arrow`` shards in the Arrow IPC stream format. ``ClassLabel`` columns hold integers; they are
  read as their names, so a label column means the same in a CSV and in a saved dataset (-1 = unlabeled).
  A ``DatasetDict`` folder (``dataset_dict.json``, one sub-folder per split) is refused with the splits named:
  which split is the pool is the caller's choice.
- A Parquet folder (as written by Spark, Ray, pandas ``partition_cols`` or ``pyarrow.dataset``): every
  ``*.parquet`` file under it, in path order, with hive partitions (``year=2024/``) as columns.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .errors import DataError

__all__ = ["read_folder", "read_arrow_file"]

_HF_STATE = "state.json"
_HF_INFO = "dataset_info.json"
_HF_DICT = "dataset_dict.json"


def read_folder(path: Path) -> pd.DataFrame:
    """A folder's rows as one frame, in a stable order (see the module docstring for the layouts)."""
    if (path / _HF_DICT).exists():
        splits = _json(path / _HF_DICT).get("splits") or sorted(p.name for p in path.iterdir() if p.is_dir())
        raise DataError(
            f"{path}: a saved DatasetDict with splits {', '.join(map(str, splits))}; "
            f"pass one split's folder, e.g. {path / str(splits[0]) if splits else path}"
        )
    if (path / _HF_STATE).exists():
        return _read_saved_dataset(path)
    files = sorted(
        p
        for p in path.rglob("*.parquet")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(path).parts)
    )
    if files:
        return _read_parquet_folder(path, files)
    raise DataError(
        f"{path}: is a directory without Parquet files or a saved Hugging Face dataset (state.json); "
        f"expected one of those, or a CSV, JSONL or Parquet file"
    )


def read_arrow_file(path: Path) -> pd.DataFrame:
    """One Arrow IPC file, stream (``datasets`` shards) or random-access format."""
    import pyarrow as pa

    try:
        with pa.memory_map(str(path)) as source:
            try:
                table = pa.ipc.open_stream(source).read_all()
            except pa.ArrowInvalid:
                source.seek(0)
                table = pa.ipc.open_file(source).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{path}: not an Arrow IPC file ({_first_line(exc)})") from None
    return table.to_pandas()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read ({_first_line(exc)})") from None
    if not isinstance(value, dict):
        raise DataError(f"{path}: expected a JSON object")
    return value


def _read_saved_dataset(path: Path) -> pd.DataFrame:
    import pyarrow as pa

    state = _json(path / _HF_STATE)
    entries = state.get("_data_files")
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{path / _HF_STATE}: lists no data files (_data_files)")
    tables = []
    for entry in entries:
        name = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(name, str) or Path(name).name != name:
            raise DataError(f"{path / _HF_STATE}: a data file entry without a plain file name: {entry!r}")
        shard = path / name
        if not shard.is_file():
            raise DataError(f"{path}: data file {name} listed in state.json is missing")
        try:
            with pa.memory_map(str(shard)) as source:
                tables.append(pa.ipc.open_stream(source).read_all())
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{shard}: not an Arrow stream ({_first_line(exc)})") from None
    try:
        table = pa.concat_tables(tables)
    except pa.ArrowInvalid as exc:
        raise DataError(f"{path}: shards with different columns ({_first_line(exc)})") from None
    frame = table.to_pandas()
    info = _json(path / _HF_INFO) if (path / _HF_INFO).exists() else {}
    features = info.get("features")
    if isinstance(features, dict):
        for column, feature in features.items():
            if column in frame.columns and isinstance(feature, dict) and feature.get("_type") == "ClassLabel":
                frame[column] = _class_names(frame[column], feature.get("names") or [], path, column)
    return frame


def _class_names(values: pd.Series, names: list[str], path: Path, column: str) -> pd.Series:
    """ClassLabel integers → their names; -1 (datasets' "no label") and nulls → missing."""
    out: list[str | None] = []
    for row, value in enumerate(values, start=1):
        if value is None or pd.isna(value) or int(value) == -1:
            out.append(None)
        elif 0 <= int(value) < len(names):
            out.append(str(names[int(value)]))
        else:
            raise DataError(
                f"{path}: column {column!r} row {row} holds class {int(value)}, but the dataset names only "
                f"{len(names)} classes"
            )
    return pd.Series(out, index=values.index, dtype=object)


def _read_parquet_folder(path: Path, files: list[Path]) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.dataset as pads

    try:
        dataset = pads.dataset([str(f) for f in files], format="parquet", partitioning="hive",
                               partition_base_dir=str(path))  # fmt: skip
        table = dataset.to_table()
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as exc:
        raise DataError(f"{path}: cannot read as a Parquet folder ({_first_line(exc)})") from None
    return table.to_pandas()
