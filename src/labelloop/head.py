"""The classifier head: multinomial logistic regression on frozen embeddings.

Training takes a second or two, so the head is simply refit from scratch every
round. Probabilities always span the full label set, with zeros for classes that
have no label yet, so scores stay comparable from round to round.
"""

from __future__ import annotations

import warnings
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # scikit-learn loads when a head is fitted or rebuilt, not when a command starts
    from sklearn.linear_model import LogisticRegression

__all__ = ["Classifier", "Head", "one_blas_thread"]

# C=10 measured better than sklearn's default C=1 on BANKING77 (unit-norm
# embeddings need weak regularisation to separate 77 close intents).
DEFAULT_C = 10.0


class Classifier(Protocol):
    """What a campaign needs of a fitted head: :class:`Head`, or a multi-label
    :class:`labelloop.multilabel.MultiLabelHead` (one probability per label, not summing to one)."""

    @property
    def n_classes(self) -> int: ...
    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...
    def predict(self, X: np.ndarray) -> np.ndarray: ...
    def to_arrays(self) -> dict[str, np.ndarray]: ...


def one_blas_thread() -> AbstractContextManager[object]:
    """BLAS on one thread for the duration of a head fit (or a k-means), restored afterwards.

    A head fit is hundreds of small lbfgs steps; a second BLAS thread gains nothing on them and, when
    the cores are busy (a sync on a shared server), spin-waits at every step. One 2,000-label fit:
    0.5 s against ~12 s wall at load 10, and 0.24 s against 1.0 s on a quiet machine
    (benchmarks/results/head_threads*.md). It also makes a fit's floating-point order independent
    of the machine's core count.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


class Head:
    """Logistic regression over a fixed label set ``0..n_classes-1``."""

    def __init__(self, n_classes: int, C: float = DEFAULT_C, max_iter: int = 300, seed: int = 0) -> None:
        if n_classes < 1:
            raise ValueError("n_classes must be ≥ 1")
        self.n_classes = n_classes
        self.C = C
        self.max_iter = max_iter
        self.seed = seed
        self._model: LogisticRegression | None = None
        self._only_class: int | None = None

    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> Head:
        """Fit on rows ``X`` with label indices ``y`` (any subset of the label set)."""
        y = np.asarray(y)
        if len(X) != len(y):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        if len(y) == 0:
            raise ValueError("cannot fit the head on zero labels")
        if y.min() < 0 or y.max() >= self.n_classes:
            raise ValueError("label index out of range")
        present = np.unique(y)
        if len(present) == 1:  # LogisticRegression needs two classes
            self._model, self._only_class = None, int(present[0])
            return self
        self._only_class = None
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
        with warnings.catch_warnings(), one_blas_thread():
            # A few more lbfgs steps change nothing measurable; do not alarm the user every round.
            warnings.simplefilter("ignore", ConvergenceWarning)
            # "more classes than half the samples" is normal in early rounds, not a regression problem.
            warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
            model.fit(X, y, sample_weight=sample_weight)
        self._model = model
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_classes)`` probabilities; classes never seen in training get 0."""
        out = np.zeros((len(X), self.n_classes), dtype=np.float64)
        if self._only_class is not None:
            out[:, self._only_class] = 1.0
            return out
        if self._model is None:
            raise RuntimeError("the head is not fitted")
        out[:, self._model.classes_] = self._model.predict_proba(X)
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted parameters as plain arrays (stored by ``sync`` without pickle)."""
        if self._only_class is not None:
            return {"n_classes": np.array(self.n_classes), "only_class": np.array(self._only_class)}
        if self._model is None:
            raise RuntimeError("the head is not fitted")
        return {
            "n_classes": np.array(self.n_classes),
            "coef": self._model.coef_,
            "intercept": self._model.intercept_,
            "classes": self._model.classes_,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Head:
        """Rebuild a fitted head from :meth:`to_arrays`: same probabilities, no refit."""
        head = cls(int(arrays["n_classes"]))
        if "only_class" in arrays:
            head._only_class = int(arrays["only_class"])
            return head
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression()
        model.coef_ = np.asarray(arrays["coef"], dtype=np.float64)
        model.intercept_ = np.asarray(arrays["intercept"], dtype=np.float64)
        model.classes_ = np.asarray(arrays["classes"])
        model.n_features_in_ = model.coef_.shape[1]
        head._model = model
        return head
