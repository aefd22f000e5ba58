"""Encoder backends: the same tokens in, the same mean-pooled unit vectors out, by PyTorch or ONNX Runtime.

Embedding is the one step whose cost grows with the whole backlog, so the default runs the bundled model
through ONNX Runtime in fp32: the same vectors as PyTorch (cosine 1.0000) at about half the CPU or less.
int8 (per-channel dynamic quantization) is ~2x faster again with the same LR accuracy, but needed more labels
to reach 98 % in the label-efficiency simulation (3 seeds), so it is opt-in (benchmarks/embedding_speed.py).

The ONNX graph is exported from the local weights with ``torch.onnx.export`` at first use (nothing from a
hub) and kept under ``<cache>/onnx/<key>/``; the key names the model identity, the precision and the
versions of torch, onnx and onnxruntime, so an upgrade re-exports instead of reusing a stale graph. A graph
is written to a temporary name, checksummed and renamed into place: a kill mid-export leaves nothing that is
later read, and a damaged file is detected by its checksum and exported again.

Threads are set per call (torch) or per session (ONNX Runtime), never process-wide: a caller who imports
labelloop keeps its own ``torch.get_num_threads()``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal, Protocol, get_args

import numpy as np

from .errors import ModelError

__all__ = [
    "Backend",
    "Precision",
    "BACKENDS",
    "PRECISIONS",
    "DEFAULT_BACKEND",
    "DEFAULT_PRECISION",
    "Runner",
    "TorchRunner",
    "OnnxRunner",
    "check_backend",
    "available_cpus",
    "onnx_key",
    "export_onnx",
    "EXPORT_COUNT",
]

Backend = Literal["torch", "onnx"]
# int8: dynamic quantization, per-channel weights (cosine ≈ 0.993 to fp32, no accuracy loss measured);
# int8-per-tensor: onnxruntime's default quantize_dynamic (cosine ≈ 0.968, measurably lossy; benchmark only).
Precision = Literal["fp32", "int8", "int8-per-tensor"]
BACKENDS: tuple[str, ...] = get_args(Backend)
PRECISIONS: tuple[str, ...] = get_args(Precision)
DEFAULT_BACKEND: Backend = "onnx"
DEFAULT_PRECISION: Precision = "fp32"
_EXPORT_RECIPE = "mean-pool-l2-in-graph,opset17,legacy-exporter,v1"
EXPORT_COUNT = 0  # graphs exported by this process (tests check that a warm cache exports nothing)
_export_lock = threading.Lock()


def check_backend(backend: str, precision: str) -> tuple[Backend, Precision]:
    """Validate a backend/precision pair, one line naming what is allowed."""
    if backend not in BACKENDS:
        raise ModelError(f"unknown encoder backend {backend!r}; use one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise ModelError(f"unknown encoder precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if backend == "torch" and precision != "fp32":
        raise ModelError(f"the torch backend runs fp32 only (got {precision!r}); use --backend onnx for int8")
    return backend, precision  # type: ignore[return-value]


def available_cpus() -> int:
    """Cores this process may run on (``sched_getaffinity`` respects taskset and cgroup pinning)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class Runner(Protocol):
    """Tokenized batch (numpy int64 arrays by input name) → ``(batch, dim)`` float32 unit vectors.

    ``concurrent_batches`` is how many batches the caller may run at once from different threads.
    """

    input_names: tuple[str, ...]
    concurrent_batches: int

    def __call__(self, batch: Mapping[str, np.ndarray]) -> np.ndarray: ...


def _load_torch_model(path: Path):
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load a transformer from {path}: {str(exc).splitlines()[0]}") from None
    return model.eval()


def _pooled(model, inputs: Mapping[str, object]):
    """Mean over the attention mask, then L2 norm: the one pooling both backends compute."""
    import torch

    hidden = model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # type: ignore[attr-defined]
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


class TorchRunner:
    """PyTorch fp32; the thread count is set for each batch and restored after it (a generator may pause)."""

    def __init__(self, path: Path, input_names: Sequence[str], threads: int) -> None:
        self.model = _load_torch_model(path)
        self.input_names = tuple(input_names)
        self.threads = threads
        self.concurrent_batches = 1  # torch parallelises inside a batch (its thread count is per call)

    def __call__(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                inputs = {k: torch.from_numpy(np.ascontiguousarray(batch[k])) for k in self.input_names}
                return _pooled(self.model, inputs).float().numpy()
        finally:
            torch.set_num_threads(before)


def onnx_key(model_identity: str, precision: str) -> str:
    """Directory name of an exported graph: what made it and what will run it."""
    from importlib.metadata import version

    parts = [model_identity, precision, _EXPORT_RECIPE]
    for dist in ("torch", "onnx", "onnxruntime"):
        try:
            parts.append(f"{dist}={version(dist)}")
        except Exception:
            parts.append(f"{dist}=?")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _valid(model: Path) -> bool:
    """The graph is whole: its checksum file (written after it) matches."""
    check = model.with_name("model.sha256")
    try:
        return model.exists() and check.read_text().strip() == _sha256(model)
    except OSError:
        return False


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """The quantizer logs a hint on the root logger, which would ``basicConfig`` a caller's logging."""
    import logging

    root = logging.getLogger()
    handler = logging.NullHandler() if not root.handlers else None
    if handler is not None:
        root.addHandler(handler)
    try:
        yield
    finally:
        if handler is not None:
            root.removeHandler(handler)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ModelError(
            f"the onnx backend needs onnx and onnxruntime ({exc}); "
            f"`pip install onnx onnxruntime` or use --backend torch"
        ) from None


def _trace(model_dir: Path, names: tuple[str, ...], out: Path) -> None:
    """Write the fp32 graph of ``model_dir`` (pooling and norm included) to ``out``."""
    import torch

    model = _load_torch_model(model_dir)

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args):  # positional: torch.onnx.export passes the inputs in order
            return _pooled(self.model, dict(zip(names, args, strict=True)))

    # Two rows of different lengths, so padding and the mask are traced as data, not constants.
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)
    dummy = {"input_ids": ids, "attention_mask": (ids != 0).long(), "token_type_ids": torch.zeros_like(ids)}
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {"embedding": {0: "batch"}}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(),
            tuple(dummy[n] for n in names),
            str(out),
            input_names=list(names),
            output_names=["embedding"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _install(graph: Path, model_path: Path) -> None:
    """Move ``graph`` to ``model_path``, then its checksum beside it: a reader trusts neither alone."""
    checksum = _sha256(graph)
    tmp_model = model_path.with_name(f".tmp-{uuid.uuid4().hex}.onnx")
    shutil.move(str(graph), tmp_model)
    with tmp_model.open("rb+") as fh:
        os.fsync(fh.fileno())
    model_path.with_name("model.sha256").unlink(missing_ok=True)  # invalid until both are in place
    os.replace(tmp_model, model_path)
    tmp_check = model_path.with_name(f".tmp-{uuid.uuid4().hex}.sha256")
    tmp_check.write_text(checksum + "\n")
    os.replace(tmp_check, model_path.with_name("model.sha256"))


def export_onnx(model_dir: Path, input_names: Sequence[str], precision: str, out_dir: Path) -> Path:
    """Export ``model_dir`` to ``out_dir/model.onnx`` (pooling and norm inside the graph), atomically.

    Returns the path of a whole, checksummed graph; an existing valid one is reused as it is.
    """
    global EXPORT_COUNT
    model_path = out_dir / "model.onnx"
    if _valid(model_path):
        return model_path
    _require_onnx()
    with _export_lock:
        if _valid(model_path):  # another thread finished it meanwhile
            return model_path
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelError(
                f"cannot write the exported encoder at {out_dir}: {exc.strerror}; "
                f"pass --cache-dir or set LABELLOOP_CACHE_DIR"
            ) from None
        work = Path(tempfile.mkdtemp(prefix=".tmp-export-", dir=out_dir.parent))
        try:
            final = work / "fp32.onnx"
            _trace(model_dir, tuple(input_names), final)
            if precision != "fp32":
                from onnxruntime.quantization import QuantType, quantize_dynamic

                fp32, final = final, work / "int8.onnx"
                with _quiet_root_logger():
                    quantize_dynamic(
                        str(fp32), str(final), weight_type=QuantType.QInt8, per_channel=precision == "int8"
                    )
            _install(final, model_path)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        EXPORT_COUNT += 1
    return model_path


class OnnxRunner:
    """ONNX Runtime on the CPU, threads set on the session only (no global state touched).

    The session runs each batch on one thread and takes ``threads`` batches at once (``run`` is
    thread-safe): a 32-text batch of a small model splits poorly over cores, and ONNX Runtime's
    spinning intra-op threads burn a core waiting whenever the machine is busy. Measured on 3,000
    BANKING77 texts, 2 cores, busy machine: 7.0 CPU-s as two one-thread batches at once against 12.2 with
    one two-thread batch at a time (benchmarks/embedding_speed.py times the default side by side).
    """

    def __init__(
        self,
        model_dir: Path,
        model_identity: str,
        input_names: Sequence[str],
        precision: str,
        threads: int,
        export_root: Path,
    ) -> None:
        _require_onnx()
        import onnxruntime as ort

        self.input_names = tuple(input_names)
        out_dir = export_root / onnx_key(model_identity, precision)
        path = export_onnx(model_dir, self.input_names, precision, out_dir)
        self.concurrent_batches = threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception:
            (out_dir / "model.sha256").unlink(missing_ok=True)
            path = export_onnx(model_dir, self.input_names, precision, out_dir)
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path

    def __call__(self, batch: Mapping[str, np.ndarray]) -> np.ndarray:
        feed = {k: np.ascontiguousarray(batch[k], dtype=np.int64) for k in self.input_names}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float32)
