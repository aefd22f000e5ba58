"""Audit metrics with intervals, model agreement, and the stopping rules."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.stopping import agreement, audit_metrics, stop_advice, wilson_interval


def test_wilson_interval_matches_the_textbook_value() -> None:
    lo, hi = wilson_interval(8, 10)  # 80 % of 10: the known 95 % Wilson interval is [0.490, 0.943]
    assert lo == pytest.approx(0.490, abs=1e-3) and hi == pytest.approx(0.943, abs=1e-3)
    assert wilson_interval(10, 10)[1] == 1.0 and wilson_interval(10, 10)[0] < 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_audit_metrics_bracket_the_point_estimates() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.8, y, (y + 1) % 4)
    m = audit_metrics(y, pred)
    assert m["n"] == 200 and m["accuracy"] == pytest.approx(float((y == pred).mean()))
    assert m["accuracy_ci"][0] < m["accuracy"] < m["accuracy_ci"][1]
    assert m["macro_f1_ci"][0] <= m["macro_f1"] <= m["macro_f1_ci"][1]
    assert audit_metrics([], []) == {"n": 0}


def test_agreement_is_one_for_identical_predictions_and_lower_otherwise() -> None:
    a = np.array([0, 1, 2, 0, 1, 2])
    assert agreement(a, a.copy()) == 1.0
    assert agreement(a, np.array([0, 1, 2, 0, 1, 0])) < 1.0


def advice(**kw):
    args = dict(sent=10, budget=100, kappas=[], audit_accuracy=[], audit_n=0)
    return {a.criterion: a for a in stop_advice(**{**args, **kw})}


def test_budget_fires_when_everything_is_sent() -> None:
    assert not advice(sent=99)["budget"].fired
    assert advice(sent=100)["budget"].fired


def test_stabilizing_needs_enough_consecutive_agreeing_models() -> None:
    assert not advice(kappas=[0.995, 0.999])["stabilizing"].fired  # two, three needed
    assert not advice(kappas=[0.995, 0.97, 0.999])["stabilizing"].fired
    assert advice(kappas=[0.5, 0.995, 0.992, 0.999])["stabilizing"].fired


def test_plateau_waits_for_enough_audit_labels_then_compares_gains() -> None:
    flat = [0.70, 0.80, 0.801, 0.802, 0.803]
    assert not advice(audit_accuracy=flat, audit_n=10)["plateau"].fired
    assert advice(audit_accuracy=flat, audit_n=40)["plateau"].fired
    assert not advice(audit_accuracy=[0.70, 0.74, 0.78, 0.82, 0.86], audit_n=40)["plateau"].fired


def test_macro_f1_rows_is_scikit_learns_macro_f1_over_the_labels_in_y_true_of_each_row() -> None:
    from sklearn.metrics import f1_score

    from labelloop.stopping import macro_f1_rows

    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 6, size=(40, 25))
    y_pred = np.where(rng.random((40, 25)) < 0.6, y_true, rng.integers(0, 8, size=(40, 25)))  # 6, 7: never true
    expected = [f1_score(t, p, labels=np.unique(t), average="macro", zero_division=0) for t, p in zip(y_true, y_pred)]
    assert np.allclose(macro_f1_rows(y_true, y_pred), expected, rtol=0, atol=1e-12)
    assert macro_f1_rows(np.array([1, 1, 2]), np.array([1, 1, 2]))[0] == 1.0
