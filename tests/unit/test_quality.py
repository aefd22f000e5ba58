"""Agreement statistics against hand-computed and textbook values; label-error ranking on planted flips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from labelloop.quality import (
    TooFewLabelsError,
    agreement_report,
    annotator_quality,
    check_rankable,
    cohen_kappa,
    krippendorff_alpha,
    out_of_fold_probabilities,
    pairwise_kappa,
    per_class_agreement,
    rank_label_errors,
    trusted_rows,
)
from labelloop.stopping import wilson_interval

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers, 12 units,
# missing values; nominal α = 0.743 (unit 12 has a single value and drops out).
KRIPPENDORFF_C = {
    "A": "1 2 3 3 2 1 4 1 2 . . .",
    "B": "1 2 3 3 2 2 4 1 2 5 . 3",
    "C": ". 3 3 3 2 3 4 2 2 5 1 .",
    "D": "1 2 3 3 2 4 4 1 2 5 1 .",
}


def _votes(rows: dict[str, str]) -> list[tuple[int, str, str]]:
    return [(u, a, v) for a, s in rows.items() for u, v in enumerate(s.split()) if v != "."]


def _pairs(table: list[tuple[str, str, int]]) -> tuple[list[str], list[str]]:
    a, b = [], []
    for x, y, n in table:
        a += [x] * n
        b += [y] * n
    return a, b


# -- Cohen's κ ------------------------------------------------------------------------------------

def test_cohen_kappa_textbook() -> None:
    # 50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 → p_o = .7, p_e = .5, κ = .4
    a, b = _pairs([("yes", "yes", 20), ("yes", "no", 5), ("no", "yes", 10), ("no", "no", 15)])
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_kappa_three_classes_by_hand() -> None:
    # p_o = 7/10; marginals a: x5 y3 z2, b: x4 y4 z2 → p_e = (20+12+4)/100 = .36; κ = .34/.64
    a, b = _pairs([("x", "x", 4), ("x", "y", 1), ("y", "y", 2), ("y", "z", 1), ("z", "z", 1), ("z", "y", 1)])
    assert cohen_kappa(a, b) == pytest.approx((0.7 - 0.36) / 0.64)


def test_cohen_kappa_degenerate_cases() -> None:
    assert cohen_kappa([], []) is None                                   # nothing shared
    assert cohen_kappa(["a"] * 5, ["a"] * 5) is None                     # p_e = 1: 0/0, not "perfect"
    assert cohen_kappa(["a", "b", "a"], ["a", "b", "a"]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)    # systematic disagreement
    assert cohen_kappa(["a"] * 4, ["a", "a", "b", "b"]) == pytest.approx(0.0)  # one rater constant
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


def test_pairwise_kappa_uses_only_shared_items() -> None:
    votes = [(1, "ann", "x"), (1, "bob", "x"), (2, "ann", "y"), (2, "bob", "y"),
             (3, "ann", "x"), (3, "bob", "y"),
             (4, "ann", "y"), (5, "bob", "x"), (6, "cid", "x")]         # unshared: must not count
    pairs = {(p.a, p.b): p for p in pairwise_kappa(votes)}
    ab = pairs[("ann", "bob")]
    assert ab.n_items == 3 and ab.observed == pytest.approx(2 / 3)
    assert ab.kappa == cohen_kappa(["x", "y", "x"], ["x", "y", "y"])
    assert pairs[("ann", "cid")].n_items == 0 and pairs[("ann", "cid")].kappa is None
    assert pairs[("ann", "cid")].observed is None


def test_later_vote_of_same_annotator_replaces_earlier() -> None:
    votes = [(1, "ann", "x"), (1, "bob", "y"), (1, "ann", "y"), (2, "ann", "x"), (2, "bob", "x")]
    (p,) = pairwise_kappa(votes)
    assert p.n_items == 2 and p.observed == 1.0


# -- Krippendorff's α -----------------------------------------------------------------------------

def test_alpha_krippendorff_textbook_example() -> None:
    assert krippendorff_alpha(_votes(KRIPPENDORFF_C)) == pytest.approx(0.743, abs=5e-4)


def test_alpha_two_raters_no_missing_by_hand() -> None:
    # Two raters, 4 items: (a,a) (a,b) (b,b) (b,b). Coincidences: o_aa=2, o_ab=o_ba=1, o_bb=4; n_a=3, n_b=5.
    # α = ((n-1)·Σo_cc − Σn_c(n_c−1)) / (n(n−1) − Σn_c(n_c−1)) = (7·6 − 26) / (56 − 26) = 16/30
    votes = [(1, "r", "a"), (1, "s", "a"), (2, "r", "a"), (2, "s", "b"), (3, "r", "b"), (3, "s", "b"),
             (4, "r", "b"), (4, "s", "b")]
    assert krippendorff_alpha(votes) == pytest.approx(16 / 30)


def test_alpha_degenerate_cases() -> None:
    assert krippendorff_alpha([]) is None
    assert krippendorff_alpha([(1, "r", "a"), (2, "r", "b")]) is None        # one annotator: nothing pairable
    assert krippendorff_alpha([(1, "r", "a"), (2, "s", "b")]) is None        # two annotators, no overlap
    assert krippendorff_alpha([(i, r, "a") for i in range(3) for r in "rs"]) is None  # all one label
    perfect = [(i, r, "ab"[i % 2]) for i in range(6) for r in "rst"]
    assert krippendorff_alpha(perfect) == pytest.approx(1.0)


# -- per class ------------------------------------------------------------------------------------

def test_per_class_specific_agreement_two_raters() -> None:
    # class x: both x on 4 items, one x on 2 items → positive specific agreement 2·4/(2·4+2) = .8
    votes = []
    for i in range(4):
        votes += [(i, "r", "x"), (i, "s", "x")]
    votes += [(4, "r", "x"), (4, "s", "y"), (5, "r", "y"), (5, "s", "x")]
    for i in range(6, 10):
        votes += [(i, "r", "y"), (i, "s", "y")]
    by = {c.label: c for c in per_class_agreement(votes)}
    assert by["x"].specific == pytest.approx(0.8) and by["x"].n_votes == 10
    assert by["y"].specific == pytest.approx(0.8)
    # With two classes "x vs rest" is the whole problem: one-vs-rest α equals the overall α.
    assert by["x"].alpha == pytest.approx(krippendorff_alpha(votes))


def test_per_class_one_vs_rest_separates_good_and_bad_classes() -> None:
    votes = []
    for i in range(10):  # class a: always agreed
        votes += [(f"a{i}", "r", "a"), (f"a{i}", "s", "a")]
    for i in range(10):  # b and c: confused half the time
        votes += [(f"b{i}", "r", "b"), (f"b{i}", "s", "c" if i % 2 else "b")]
    by = {c.label: c for c in per_class_agreement(votes)}
    assert by["a"].specific == 1.0 and by["a"].alpha == pytest.approx(1.0)
    assert by["b"].specific < 0.8 and by["c"].specific == 0.0
    assert by["c"].alpha is not None and by["c"].alpha < 0


# -- annotators -----------------------------------------------------------------------------------

def test_annotator_consensus_is_leave_one_out() -> None:
    votes = [(0, "good", "x"), (0, "ok", "x"), (0, "bad", "x"),
             (1, "good", "y"), (1, "ok", "y"), (1, "bad", "y"),
             (2, "good", "x"), (2, "ok", "x"), (2, "bad", "y"),
             (3, "good", "y"), (3, "ok", "x"), (3, "bad", "x")]
    q = {a.annotator: a for a in annotator_quality(votes)}
    # bad: items 0, 1 right; item 2 wrong (others say x, x); item 3 skipped (others y, x tie)
    assert (q["bad"].vs_consensus.correct, q["bad"].vs_consensus.n) == (2, 3)
    # good: item 2 skipped (others x, y); item 3 wrong (others x, x)
    assert (q["good"].vs_consensus.correct, q["good"].vs_consensus.n) == (2, 3)
    # ok: items 2 and 3 skipped. Counting ok's own vote would make item 3 "x" and score it 3/3.
    assert (q["ok"].vs_consensus.correct, q["ok"].vs_consensus.n) == (2, 2)
    assert q["bad"].vs_consensus.ci == wilson_interval(2, 3)
    assert q["bad"].vs_reference is None


def test_two_annotators_consensus_is_the_other_person() -> None:
    votes = [(i, "ann", "x") for i in range(5)] + [(i, "bob", "x" if i < 3 else "y") for i in range(5)]
    for a in annotator_quality(votes):
        assert (a.vs_consensus.correct, a.vs_consensus.n) == (3, 5)


def test_annotator_against_reference_and_lone_votes() -> None:
    votes = [(0, "ann", "x"), (1, "ann", "y"), (2, "ann", "y"), (3, "ann", "x")]  # nobody else: no consensus
    (a,) = annotator_quality(votes, reference={0: "x", 1: "x", 2: "y", 99: "y"})
    assert a.n_votes == 4
    assert a.vs_consensus.n == 0 and a.vs_consensus.value is None and a.vs_consensus.ci == (0.0, 1.0)
    assert a.vs_reference is not None
    assert (a.vs_reference.correct, a.vs_reference.n) == (2, 3)
    assert a.vs_reference.value == pytest.approx(2 / 3)


def test_agreement_report_on_textbook_data() -> None:
    votes = _votes(KRIPPENDORFF_C)
    rep = agreement_report(votes)
    assert rep.n_items == 12 and rep.n_multi == 11 and rep.n_annotators == 4
    assert rep.alpha == pytest.approx(0.743, abs=5e-4)
    assert len(rep.pairs) == 6
    assert rep.mean_kappa == pytest.approx(np.mean([p.kappa for p in rep.pairs]))
    assert sum(c.n_votes for c in rep.classes) == 40  # pairable values: 12 units minus the lone one
    d = rep.to_dict()
    assert d["alpha"] == rep.alpha and d["annotators"][0]["vs_consensus"]["n"] > 0


def test_skipped_vote_without_label_is_an_error() -> None:
    with pytest.raises(ValueError, match="no label"):
        krippendorff_alpha([(1, "r", None)])  # type: ignore[list-item]


# -- label errors ---------------------------------------------------------------------------------

def _planted(seed: int = 0, n_classes: int = 6, per_class: int = 60, dim: int = 40, noise: float = 0.1,
             spread: float = 0.55) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian blobs on the unit sphere with ``noise`` of the labels moved to another class."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y_true = np.repeat(np.arange(n_classes), per_class)
    X = centres[y_true] + spread * rng.normal(size=(len(y_true), dim)) / math.sqrt(dim)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    flipped = rng.choice(len(y_true), int(noise * len(y_true)), replace=False)
    y = y_true.copy()
    y[flipped] = (y_true[flipped] + rng.integers(1, n_classes, len(flipped))) % n_classes
    mask = np.zeros(len(y), dtype=bool)
    mask[flipped] = True
    return X, y, y_true, mask


def _precision_recall(flagged: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hit = int((flagged & truth).sum())
    return hit / max(int(flagged.sum()), 1), hit / int(truth.sum())


@pytest.mark.parametrize("seed", [0, 1])
def test_planted_flips_are_flagged(seed: int) -> None:
    X, y, y_true, planted = _planted(seed)
    s = rank_label_errors(X, y, 6, seed=seed)
    precision, recall = _precision_recall(s.flagged, planted)
    assert precision >= 0.8 and recall >= 0.7, (precision, recall)   # chance precision is 0.1
    # the suggestion is the true class for most flagged planted rows
    hits = s.flagged & planted
    assert (s.suggested[hits] == y_true[hits]).mean() >= 0.9
    # the score ranks planted rows on top: most of the top-k are planted
    top = s.order[: int(planted.sum())]
    assert planted[top].mean() >= 0.8
    assert 0.05 <= s.noise_rate <= 0.2
    assert np.all(np.diff(s.score[s.order]) <= 0)
    assert list(s.to_send()) == [i for i in s.order if s.flagged[i]]
    assert len(s.to_send(3)) == 3


def test_in_sample_probabilities_hide_the_flips() -> None:
    """Why out-of-fold matters: the same rule on in-sample probabilities finds far fewer planted flips."""
    from labelloop.head import Head

    X, y, _, planted = _planted(0)
    in_sample = Head(6).fit(X, y).predict_proba(X)
    _, recall_in = _precision_recall(rank_label_errors(X, y, 6, probabilities=in_sample).flagged, planted)
    _, recall_oof = _precision_recall(rank_label_errors(X, y, 6).flagged, planted)
    assert recall_in < 0.5 <= recall_oof


def test_out_of_fold_row_never_sees_its_own_label() -> None:
    """A copy of a class-0 point labeled 5: a model that saw the copy would split its vote between 0 and 5
    (the two rows are identical); held out, the copy is judged by its neighbours alone."""
    X, y, _, _ = _planted(0, noise=0.0)
    X2 = np.vstack([X, X[:1]])
    y2 = np.concatenate([y, [5]])
    p = out_of_fold_probabilities(X2, y2, 6, folds=5, seed=0)
    assert p.shape == (len(y2), 6) and np.allclose(p.sum(axis=1), 1.0)
    assert p[-1].argmax() == 0 and p[-1, 5] < 0.1


def test_rank_label_errors_bad_input() -> None:
    X, y, _, _ = _planted(0)
    with pytest.raises(ValueError, match="two classes"):
        rank_label_errors(X, np.zeros(len(y), dtype=int), 6)
    few = y.copy()
    few[np.flatnonzero(few == 3)[3:]] = 2                  # class 3 keeps 3 labels
    assert check_rankable(few, 5) == {3: 3}
    with pytest.raises(TooFewLabelsError) as err:
        rank_label_errors(X, few, 6, folds=5)
    assert err.value.counts == {3: 3} and "fewer than 5" in str(err.value)
    with pytest.raises(ValueError, match="out of range"):
        rank_label_errors(X, np.where(y == 0, 6, y), 6)


def test_classes_without_labels_are_ignored() -> None:
    """n_classes larger than the labels present (a campaign's label set): the empty columns change nothing."""
    X, y, _, _ = _planted(0)
    a = rank_label_errors(X, y, 6)
    b = rank_label_errors(X, y + 2, 9)                     # classes 0, 1 and 8 have no labels
    assert np.array_equal(a.flagged, b.flagged)
    assert np.allclose(a.score, b.score)
    assert np.array_equal(a.suggested + 2, b.suggested)
    assert b.probabilities.shape == (len(y), 9)


# -- the second pass ------------------------------------------------------------------------------


def test_trusted_rows_drop_the_flagged_but_never_most_of_a_class() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    flagged = np.array([1, 0, 0, 0, 1, 1, 1, 0, 1, 0], dtype=bool)
    # class 0: one of four flagged -> dropped; class 1: three of four -> the class is in doubt, all kept;
    # class 2: one of two (not more than half) -> dropped
    assert trusted_rows(y, flagged).tolist() == [0, 1, 1, 1, 1, 1, 1, 1, 0, 1]


def test_untrusted_rows_are_scored_but_never_trained_on() -> None:
    """Six copies of a class-0 point, all labeled 5: trained on, the other copies vouch for label 5;
    left out of training, each copy is judged by the clean class-0 rows around it."""
    X, y, _, _ = _planted(0, noise=0.0)
    X2 = np.vstack([X, np.repeat(X[:1], 6, axis=0)])
    y2 = np.concatenate([y, [5] * 6])
    trusted = np.ones(len(y2), dtype=bool)
    trusted[-6:] = False
    vouched = out_of_fold_probabilities(X2, y2, 6, folds=5, seed=0)
    judged = out_of_fold_probabilities(X2, y2, 6, folds=5, seed=0, trusted=trusted)
    assert vouched[-6:, 5].min() > 0.4
    assert judged[-6:, 5].max() < 0.05 and (judged[-6:].argmax(axis=1) == 0).all()
    assert np.allclose(judged.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="trusted has shape"):
        out_of_fold_probabilities(X2, y2, 6, trusted=trusted[:-1])


def _confusable_pairs(seed: int, n_pairs: int = 4, per_class: int = 60, dim: int = 32, noise: float = 0.12,
                      gap: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classes in close pairs (k and k + n_pairs), and ``noise`` of the labels moved to the partner class:
    the mistakes a tired annotator makes between two similar intents."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_pairs, dim))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    offset = rng.normal(size=(n_pairs, dim))
    offset /= np.linalg.norm(offset, axis=1, keepdims=True)
    centres = np.concatenate([base + gap * offset, base - gap * offset])
    y_true = np.repeat(np.arange(2 * n_pairs), per_class)
    X = centres[y_true] + 0.5 * rng.normal(size=(len(y_true), dim)) / math.sqrt(dim)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    rows = rng.choice(len(y_true), int(noise * len(y_true)), replace=False)
    y = y_true.copy()
    y[rows] = (y_true[rows] + n_pairs) % (2 * n_pairs)
    planted = np.zeros(len(y), dtype=bool)
    planted[rows] = True
    return X, y, planted


def test_second_pass_makes_fewer_false_alarms_on_confusable_flips() -> None:
    """Flips to the partner class drag the boundary between the two toward themselves; the first pass
    then doubts clean rows near it. Scored again without the flagged rows, the same flips are found with
    fewer false alarms (summed over seeds)."""
    false_alarms, hits = {1: 0, 2: 0}, {1: 0, 2: 0}
    for seed in range(3):
        X, y, planted = _confusable_pairs(seed)
        for passes in (1, 2):
            s = rank_label_errors(X, y, 8, seed=seed, passes=passes)
            false_alarms[passes] += int((s.flagged & ~planted).sum())
            hits[passes] += int((s.flagged & planted).sum())
    assert false_alarms[2] < false_alarms[1] / 2, false_alarms
    assert hits[2] >= hits[1], hits


def test_second_pass_counts_like_the_first_and_reorders() -> None:
    """How many labels are wrong is the first pass's estimate; which ones, the second pass's ranking."""
    X, y, _ = _confusable_pairs(0)
    one = rank_label_errors(X, y, 8, passes=1)
    two = rank_label_errors(X, y, 8, passes=2)
    assert two.flagged.sum() == one.flagged.sum() and two.noise_rate == one.noise_rate
    assert not np.array_equal(two.flagged, one.flagged)
    # the flagged rows are the second pass's lowest normalised margins
    p = two.probabilities
    given = p[np.arange(len(y)), y]
    others = np.where(np.eye(8, dtype=bool)[y], -np.inf, p).max(axis=1)
    margin = given - others
    assert margin[two.flagged].max() <= margin[~two.flagged].min()


def test_given_probabilities_are_one_pass_and_passes_is_checked() -> None:
    X, y, _, _ = _planted(0)
    p = out_of_fold_probabilities(X, y, 6, folds=5, seed=0)
    one = rank_label_errors(X, y, 6, passes=1)
    given = rank_label_errors(X, y, 6, probabilities=p)
    assert np.array_equal(one.flagged, given.flagged) and np.allclose(one.score, given.score)
    two = rank_label_errors(X, y, 6)
    assert not np.allclose(two.probabilities, p)  # the default refits
    with pytest.raises(ValueError, match="passes must be 1 or 2"):
        rank_label_errors(X, y, 6, passes=3)


def test_label_set_agreement_counts_each_label_decision_not_the_whole_set() -> None:
    """{a, b} against {a} agrees on a and on c (neither ticked) and differs on b: 2 of 3 decisions, where
    comparing whole sets would call it a plain disagreement. Each annotator's accuracy against the others
    still asks for the whole set."""
    from labelloop.quality import cohen_kappa, label_set_agreement_report

    votes = [("t1", "ann", "a|b"), ("t1", "bob", "a"),
             ("t2", "ann", "c"), ("t2", "bob", "c"),
             ("t3", "ann", "b"), ("t3", "bob", "b|c"),
             ("t4", "ann", "a")]  # one vote: counted as labeled, not as agreement
    ag = label_set_agreement_report(votes, ["a", "b", "c"], "|")
    assert (ag.n_items, ag.n_multi, ag.n_annotators) == (4, 3, 2)
    (pair,) = ag.pairs
    assert pair.n_items == 3 and pair.observed == pytest.approx(7 / 9)
    ann = ["y", "y", "n", "n", "n", "y", "n", "y", "n"]  # t1..t3 × a, b, c
    bob = ["y", "n", "n", "n", "n", "y", "n", "y", "y"]
    assert pair.kappa == pytest.approx(cohen_kappa(ann, bob))
    per_label = {c.label: c for c in ag.classes}
    assert per_label["a"].alpha == pytest.approx(1.0) and per_label["a"].specific == pytest.approx(1.0)
    assert per_label["b"].specific == pytest.approx(2 / 3) and per_label["b"].alpha < 1
    assert [(q.annotator, q.vs_consensus.correct, q.vs_consensus.n) for q in ag.annotators] == [
        ("ann", 1, 3), ("bob", 1, 3)]
