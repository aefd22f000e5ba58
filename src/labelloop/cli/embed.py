"""``labelloop embed``: texts in, the same rows plus a unit-length ``embedding`` column out (Parquet).

Vectors go through the embedding cache, flushed as they are made, so a killed run loses at most one flush
and a rerun embeds only what is missing. The output is written to a temporary file and renamed into place.
With ``--ray`` the same encoder runs on a Ray cluster (:mod:`labelloop.ray_embed`; no cache there) and the
rows it returns in order are streamed into the same file, row group by row group.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import numpy as np
import typer
from rich.console import Console

from ..data import load_pool
from ..embeddings import EmbeddingCache, Encoder, default_cache_dir, text_key
from ..embeddings import embed as embed_texts
from ..encoders import BACKENDS, DEFAULT_BACKEND, PRECISIONS, available_cpus
from ..errors import DataError, LabelloopError
from ..outputs import check_output
from ..ray_embed import LOCAL
from . import app
from ._common import CacheDir, IdColumn, ModelPath, TextColumn

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

EMBEDDING_COLUMN = "embedding"


def optional_ray_address(args: list[str]) -> list[str]:
    """``--ray`` alone means the local Ray: typer has no options with an optional value, so the command line
    is completed before it is parsed (``--ray`` followed by nothing or by another option → ``--ray=local``)."""
    out = []
    for i, arg in enumerate(args):
        if arg == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
            arg = f"--ray={LOCAL}"
        out.append(arg)
    return out


DataOpt = Annotated[
    Path,
    typer.Option(
        help="Texts to embed: CSV, TSV, JSONL, Parquet or Arrow, or a folder (Parquet files, a saved "
        "Hugging Face dataset)."
    ),
]
BackendOpt = Annotated[str, typer.Option(help=f"Who runs the encoder: {', '.join(BACKENDS)}.")]
PrecisionOpt = Annotated[
    Optional[str],
    typer.Option(help=f"{', '.join(PRECISIONS)} (default fp32; int8 is faster, onnx only)."),
]
ThreadsOpt = Annotated[
    Optional[int], typer.Option(help="CPU threads (default: every core this process may use).", min=1)
]
BatchSizeOpt = Annotated[
    Optional[int],
    typer.Option(help="Texts per forward pass (default: 32 for onnx, 64 for torch).", min=1),
]
RayOpt = Annotated[
    Optional[str],
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        help="Embed on a Ray cluster: HEAD:PORT, auto, or no value for the local Ray (started if none "
        "runs). --threads is then per actor (default 1). Needs labelloop[ray] on every node.",
    ),
]


@app.command()
def embed(
    data: DataOpt,
    out: Annotated[Path, typer.Option(help="Parquet file to write: the input's columns plus `embedding`.")],
    text_column: TextColumn = "text",
    id_column: IdColumn = None,
    model: ModelPath = None,
    cache_dir: CacheDir = None,
    backend: BackendOpt = DEFAULT_BACKEND,
    precision: PrecisionOpt = None,
    threads: ThreadsOpt = None,
    batch_size: BatchSizeOpt = None,
    ray: RayOpt = None,
) -> None:
    """Embed a file's texts into a Parquet file (column `embedding`: float32 unit vectors).

    Fills the embedding cache as it goes: interrupted runs resume where they stopped, and a rerun on the
    same texts embeds nothing.
    """
    console = Console(stderr=True)
    out = _check_out(out)
    texts, frame = _read_rows(data, text_column, id_column)
    encoder = Encoder(
        model,
        batch_size=batch_size,
        threads=threads,
        backend=backend,  # type: ignore[arg-type]
        precision=precision,  # type: ignore[arg-type]
    )
    import pyarrow as pa

    frame = frame.drop(columns=[EMBEDDING_COLUMN], errors="ignore")  # replaced, never duplicated
    table = pa.Table.from_pandas(frame, preserve_index=False)  # one schema for the file, however written
    if ray is not None:
        _embed_on_ray(texts, table, encoder, ray, out, cache_dir, console)
    else:
        _embed_here(texts, table, encoder, out, cache_dir, console)


def _check_out(out: Path) -> Path:
    """``--out``: a Parquet file in a folder that exists and can be written, checked before any embedding."""
    if out.suffix.lower() not in (".parquet", ".pq"):
        raise LabelloopError(f"--out {out}: must be a .parquet file")
    out = check_output(out)  # a read-only place fails now, not after the embedding
    if not out.parent.exists():
        raise LabelloopError(f"--out {out}: folder {out.parent} does not exist")
    return out


def _read_rows(data: Path, text_column: str, id_column: str | None) -> tuple[list[str], pd.DataFrame]:
    """The texts, checked as every command checks them, and the file's rows as read (kept in the output)."""
    pool = load_pool(
        data, text_column, label_column=None, id_column=id_column, unique_ids=id_column is not None
    )
    from ..readers import read_frame

    frame = read_frame(Path(data))
    if len(frame) != len(pool):  # load_pool keeps every row unless told to skip: a bug if not
        raise DataError(f"{data}: read {len(frame)} rows but {len(pool)} texts")
    return pool.texts, frame


def _embed_here(
    texts: list[str],
    table: pa.Table,
    encoder: Encoder,
    out: Path,
    cache_dir: Path | None,
    console: Console,
) -> None:
    """Embed in this process through the cache, write the file, and say how much was new and how fast."""
    cache = EmbeddingCache(cache_dir or default_cache_dir(), encoder.identity)
    unique = set(map(text_key, texts))
    cached = len(cache.get(list(unique)))
    t0, c0 = time.perf_counter(), time.process_time()
    vectors = embed_texts(texts, encoder, cache, progress=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    _write_atomically(out, [_with_vectors(table, vectors)])
    new = len(unique) - cached
    rate = f"{new / wall:,.0f} texts/s, {1000 * cpu / new:.2f} CPU ms/text" if new else "nothing to embed"
    console.print(
        f"wrote {len(texts):,} rows to {out} ({vectors.shape[1]}-d); embedded {new:,} new text(s), "
        f"{cached:,} from the cache, in {wall:.1f} s ({rate}; {encoder.backend} "
        f"{encoder.precision}, {encoder.threads or available_cpus()} thread(s))",
        highlight=False,
        soft_wrap=True,
    )


def _with_vectors(table: pa.Table, vectors: np.ndarray) -> pa.Table:
    """The output rows: the input's columns as read, plus ``embedding`` (fixed-size list of float32)."""
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1), type=pa.float32())
    return table.append_column(EMBEDDING_COLUMN, pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]))


def _write_atomically(out: Path, tables: Iterable[pa.Table]) -> None:
    """Write the tables (one schema) as one Parquet file: into a temporary name, renamed when complete."""
    import pyarrow.parquet as pq

    tmp = out.with_name(f".tmp-{uuid.uuid4().hex}-{out.name}")
    writer: pq.ParquetWriter | None = None
    try:
        for table in tables:
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
            writer = None
            os.replace(tmp, out)
    except OSError as exc:
        raise LabelloopError(f"--out {out}: cannot write ({exc.strerror})") from None
    finally:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)


def _embed_on_ray(
    texts: list[str],
    table: pa.Table,
    encoder: Encoder,
    address: str,
    out: Path,
    cache_dir: Path | None,
    console: Console,
) -> None:
    from ..ray_embed import embed_on_ray

    env = {}
    if cache_dir is not None or os.environ.get("LABELLOOP_CACHE_DIR"):  # where workers keep ONNX exports
        env["LABELLOOP_CACHE_DIR"] = str((cache_dir or default_cache_dir()).expanduser().resolve())
    t0, c0 = time.perf_counter(), time.process_time()
    dim, workers_cpu = 0, 0.0

    def tables() -> Iterator[pa.Table]:
        nonlocal dim, workers_cpu
        for start, vectors, cpu in embed_on_ray(
            texts, encoder, address, env=env, progress=console.is_terminal
        ):
            dim, workers_cpu = vectors.shape[1], workers_cpu + cpu
            yield _with_vectors(table.slice(start, len(vectors)), vectors)

    _write_atomically(out, tables())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    console.print(
        f"wrote {len(texts):,} rows to {out} ({dim}-d); embedded {len(texts):,} text(s) on Ray "
        f"({address}) in {wall:.1f} s ({len(texts) / wall:,.0f} texts/s; workers {1000 * workers_cpu / len(texts):.2f} "
        f"CPU ms/text, driver CPU {cpu:.1f} s; "
        f"{encoder.backend} {encoder.precision}, {encoder.threads or 1} thread(s) per actor)",
        highlight=False,
        soft_wrap=True,
    )
