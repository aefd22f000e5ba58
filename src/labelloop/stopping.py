"""Honest metrics and when to stop labeling. Pure functions: arrays and numbers in, numbers out.

Labels chosen by active learning are the hard cases, so accuracy on them understates the
model; the audit sample (drawn at random, never trained on) gives an unbiased estimate,
reported with a confidence interval because it is small.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["wilson_interval", "audit_metrics", "agreement", "Advice", "stop_advice"]


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion: sane even at n = 10 or p = 1, unlike p ± 2σ."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def macro_f1_rows(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Macro-F1 of each row of the ``(b, n)`` label arrays, over the labels present in that row's ``y_true``
    (scikit-learn's ``f1_score(labels=np.unique(y_true), average="macro")``), all rows at once: a bootstrap
    of 500 resamples costs one pass of counting, not 500 calls."""
    y_true, y_pred = np.atleast_2d(y_true), np.atleast_2d(y_pred)
    classes, codes = np.unique(np.concatenate([y_true.ravel(), y_pred.ravel()]), return_inverse=True)
    k, (b, n) = len(classes), y_true.shape
    t, p = codes[: b * n].reshape(b, n), codes[b * n :].reshape(b, n)
    offset = (np.arange(b) * k)[:, None]
    true_n = np.bincount((t + offset).ravel(), minlength=b * k).reshape(b, k)
    pred_n = np.bincount((p + offset).ravel(), minlength=b * k).reshape(b, k)
    hits = np.bincount((t + offset)[t == p], minlength=b * k).reshape(b, k)
    present = true_n > 0  # 2·TP + FP + FN = true_n + pred_n > 0 for every label present
    f1 = np.where(present, 2 * hits / np.maximum(true_n + pred_n, 1), 0.0)
    return f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)


def audit_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    *,
    n_boot: int = 500,
    seed: int = 0,
) -> dict[str, float | int | list[float]]:
    """Accuracy (Wilson interval) and macro-F1 (percentile bootstrap interval) on a labeled sample."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    n = len(y_true)
    if n == 0:
        return {"n": 0}
    correct = int((y_true == y_pred).sum())
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, n, n) for _ in range(n_boot)])  # the draws as before, one resample a call
    boots = macro_f1_rows(y_true[idx], y_pred[idx])
    return {
        "n": n,
        "accuracy": correct / n,
        "accuracy_ci": list(wilson_interval(correct, n)),
        "macro_f1": float(macro_f1_rows(y_true, y_pred)[0]),
        "macro_f1_ci": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
    }


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa between two models' predictions on the same texts (1 = identical)."""
    from sklearn.metrics import cohen_kappa_score

    if len(a) == 0:
        return float("nan")
    if np.array_equal(a, b):
        return 1.0
    return float(cohen_kappa_score(a, b))


@dataclass(frozen=True)
class Advice:
    criterion: str  # budget | stabilizing | plateau
    fired: bool
    reason: str


def stop_advice(
    *,
    sent: int,
    budget: int,
    kappas: Sequence[float],
    audit_accuracy: Sequence[float],
    audit_n: int,
    stabilizing_kappa: float = 0.99,
    stabilizing_rounds: int = 3,
    plateau_rounds: int = 3,
    plateau_delta: float = 0.005,
    min_audit: int = 30,
    metric: str = "accuracy",
) -> list[Advice]:
    """Each criterion's verdict, given the history of rounds (oldest first).

    * budget: every text the budget allows has been sent.
    * stabilizing (Bloodgood & Vijay-Shanker 2009): the last ``stabilizing_rounds`` models each
      agreed with their predecessor at kappa ≥ ``stabilizing_kappa`` on a fixed unlabeled stop set.
    * plateau: audit accuracy rose less than ``plateau_delta`` over the last ``plateau_rounds``
      rounds, once ``min_audit`` audit labels exist (``audit_accuracy`` holds ``metric``: micro-F1 in a
      multi-label campaign).
    """
    out = [Advice("budget", sent >= budget, f"{sent} of {budget} texts sent")]
    recent = [k for k in kappas if not math.isnan(k)][-stabilizing_rounds:]
    stable = len(recent) == stabilizing_rounds and min(recent) >= stabilizing_kappa
    out.append(
        Advice(
            "stabilizing",
            stable,
            f"last {len(recent)} model-to-model kappa(s) on the stop set: "
            f"{', '.join(f'{k:.3f}' for k in recent) or 'none yet'} (stop at ≥ {stabilizing_kappa} "
            f"{stabilizing_rounds}× in a row)",
        )
    )
    accs = list(audit_accuracy)
    if audit_n < min_audit or len(accs) <= plateau_rounds:
        out.append(
            Advice(
                "plateau",
                False,
                f"needs {min_audit} audit labels (have {audit_n}) and "
                f"{plateau_rounds + 1} rounds with audit {metric} (have {len(accs)})",
            )
        )
    else:
        gain = accs[-1] - max(accs[:-plateau_rounds])
        out.append(
            Advice(
                "plateau",
                gain < plateau_delta,
                f"audit {metric} gained {gain:+.3f} over the last {plateau_rounds} rounds "
                f"(stop below {plateau_delta:+.3f})",
            )
        )
    return out
