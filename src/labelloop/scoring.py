"""Score a big pool in chunks, keeping only the rows a strategy can pick from.

The head's probabilities for a million candidates are a ``(10⁶, k)`` float64 matrix (616 MB at
k = 77), and scikit-learn upcasts the float32 features to float64 on the way (3 GB more at 384
dimensions); copying ``X[candidates]`` first adds the matrix again. Scoring ``chunk`` rows at a
time and keeping only the shortlist a strategy declares (:mod:`labelloop.strategies`) bounds the
extra memory by one chunk plus the shortlist, whatever the pool size.

Row by row the probabilities equal those of one big call to rounding only (about 1e-7 relative:
BLAS may sum a row in another order inside a block of another size), so two candidates whose
scores differ by less than that could swap places; ``tests/unit/test_scoring.py`` and the
BANKING77 selection pins check that selections do not change.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .head import Classifier
from .strategies import SCORES

__all__ = ["SCORE_CHUNK", "chunk_starts", "predict_proba", "predict", "uncertain_rows", "rows_of"]

# 16k rows of 384-d float32: 25 MB gathered, 50 MB more once scikit-learn has made them float64.
# One round at 1M rows (benchmarks/scale.py, load average ~12 on 2 cores): 64k-row chunks peaked 356 MB
# above the matrix with 3.7 CPU-s of score + select, 16k-row chunks 57 MB with 4.5 CPU-s (one run each).
SCORE_CHUNK = 16_384


def chunk_starts(n: int, chunk: int) -> range:
    """Start offsets of ``chunk``-row blocks covering ``n`` rows."""
    if chunk < 1:
        raise ValueError("chunk must be ≥ 1")
    return range(0, n, chunk)


def rows_of(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``X[rows]``, but ``X`` itself (no copy) when ``rows`` is every row in order."""
    if len(rows) == len(X) and (len(rows) == 0 or (rows[0] == 0 and np.all(np.diff(rows) == 1))):
        return X
    return X[rows]


def _blocks(head: Classifier, X: np.ndarray, rows: np.ndarray | None, chunk: int) -> Iterator[np.ndarray]:
    n = len(X) if rows is None else len(rows)
    for s in chunk_starts(n, chunk):
        block = X[s : s + chunk] if rows is None else X[rows[s : s + chunk]]
        yield head.predict_proba(block)


def predict_proba(
    head: Classifier, X: np.ndarray, rows: np.ndarray | None = None, chunk: int = SCORE_CHUNK
) -> np.ndarray:
    """The head's ``(len(rows), k)`` probabilities for ``X[rows]`` (default all rows), ``chunk`` rows at a time.

    The result is as big as the rows asked for: use it for shortlists, not for a whole big pool.
    """
    n = len(X) if rows is None else len(rows)
    out = np.empty((n, head.n_classes), dtype=np.float64)
    for s, p in zip(chunk_starts(n, chunk), _blocks(head, X, rows, chunk), strict=True):
        out[s : s + len(p)] = p
    return out


def predict(head: Classifier, X: np.ndarray, chunk: int = SCORE_CHUNK) -> np.ndarray:
    """The head's predicted label index for every row of ``X``, ``chunk`` rows at a time."""
    out = np.empty(len(X), dtype=np.int64)
    for s, p in zip(chunk_starts(len(X), chunk), _blocks(head, X, None, chunk), strict=True):
        out[s : s + len(p)] = p.argmax(axis=1)
    return out


def uncertain_rows(
    head: Classifier, X: np.ndarray, rows: np.ndarray, score: str, size: int, chunk: int = SCORE_CHUNK
) -> tuple[np.ndarray, np.ndarray]:
    """Positions into ``rows`` (ascending) of the ``size`` most uncertain rows by ``score``, and their probabilities.

    Rows tied with the ``size``-th highest score are all kept, so a strategy that breaks ties at
    random still sees every row it could have picked from the full set.
    """
    if size < 1:
        raise ValueError("size must be ≥ 1")
    score_of = SCORES[score]
    pos: np.ndarray = np.empty(0, dtype=np.int64)
    scores: np.ndarray = np.empty(0, dtype=np.float64)
    probs: np.ndarray = np.empty((0, head.n_classes), dtype=np.float64)
    for s, p in zip(chunk_starts(len(rows), chunk), _blocks(head, X, rows, chunk), strict=True):
        u = score_of(p)
        at: np.ndarray
        if len(scores) >= size:  # a row below the current size-th score can never enter the top
            fresh = np.flatnonzero(u >= scores.min())
            u, p, at = u[fresh], p[fresh], s + fresh
        else:
            at = np.arange(s, s + len(p))
        pos, scores, probs = (
            np.concatenate([pos, at]),
            np.concatenate([scores, u]),
            np.concatenate([probs, p]),
        )
        if len(scores) > size:
            cut = np.partition(scores, len(scores) - size)[len(scores) - size]
            keep = np.flatnonzero(scores >= cut)
            pos, scores, probs = pos[keep], scores[keep], probs[keep]
    return pos, probs
