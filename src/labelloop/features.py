"""What the head sees: each embedding blended with its nearest neighbours in the pool.

A frozen encoder places paraphrases of one intent near each other, but any single
embedding is noisy. Adding the mean of a text's nearest pool texts moves it toward
its local cluster, so a handful of labels generalise along the cluster instead of
around one point (the transductive idea behind label propagation and SGC, Wu et al.
2019, done once on the features so the head stays a plain logistic regression).
Only unlabeled structure is used: test or new texts look up neighbours in the pool,
never among themselves.

On BANKING77 it cut the labels margin-kmeans needs to reach 98 % of full-pool
accuracy from 1,520 to 1,020 (5 seeds; 1,540 to 1,080 over 10) and left the
full-pool accuracy where it was (0.931 against 0.930). It is a trade on small pools
that get labeled almost entirely: on the 721 demo tickets it is ahead early and
about one point behind at 400 labels (README, "Measured figures").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NeighbourSmoothing", "DEFAULT_SMOOTHING", "NO_SMOOTHING"]

# Rows of reference similarities computed at once: about 128 MB of float32.
_CHUNK_CELLS = 2**25


@dataclass(frozen=True)
class NeighbourSmoothing:
    """``x ↦ normalise(x + weight · mean of x's k nearest reference embeddings)``.

    A text that is itself in the reference set is its own nearest neighbour, so
    a pool text and the same text arriving later get the same features.
    ``k=0`` or ``weight=0`` leaves the embeddings as they are.
    """

    k: int = 6
    weight: float = 0.5

    def __post_init__(self) -> None:
        if self.k < 0 or self.weight < 0:
            raise ValueError("smoothing k and weight must be ≥ 0")

    @property
    def enabled(self) -> bool:
        return self.k > 0 and self.weight > 0

    def __str__(self) -> str:
        return f"knn-smooth(k={self.k}, weight={self.weight:g})" if self.enabled else "none"

    def __call__(
        self, X: np.ndarray, reference: np.ndarray | None = None, *, progress: bool = False
    ) -> np.ndarray:
        """Features for the unit-norm rows ``X``, with neighbours from ``reference`` (default: ``X`` itself)."""
        X = np.asarray(X, dtype=np.float32)
        ref = X if reference is None else np.asarray(reference, dtype=np.float32)
        if not self.enabled or len(X) == 0 or len(ref) == 0:
            return X.copy()
        if ref.shape[1] != X.shape[1]:
            raise ValueError(f"reference has {ref.shape[1]} dimensions, X has {X.shape[1]}")
        k = min(self.k, len(ref))
        rows = max(1, _CHUNK_CELLS // len(ref))
        starts = range(0, len(X), rows)
        if progress and len(starts) > 1:
            from tqdm.auto import tqdm

            starts = tqdm(starts, desc="neighbours", unit="chunk")
        out = np.empty_like(X)
        for s in starts:
            block = X[s : s + rows]
            if k == len(ref):
                neigh = np.broadcast_to(ref.mean(axis=0), block.shape)
            else:
                nearest = np.argpartition(block @ ref.T, len(ref) - k, axis=1)[:, -k:]
                neigh = ref[nearest].mean(axis=1)
            out[s : s + rows] = block + self.weight * neigh
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


DEFAULT_SMOOTHING = NeighbourSmoothing()
NO_SMOOTHING = NeighbourSmoothing(k=0)
