"""``labelloop suspects`` end to end as a real process: demo tickets with planted flips, pulled labels, bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelloop.cli.suspects import COLUMNS, _write_atomic
from labelloop.data import demo_paths

# Six intents of the demo tickets that people rarely confuse, so a flagged row is a planted flip, not a
# genuinely ambiguous ticket (the full demo set has ~4 % of those; benchmarks/label_errors.py).
CLASSES = ["cancel_subscription", "change_plan", "change_shipping_address", "double_charge", "password_reset",
           "update_payment_method"]
N_FLIPS = 16


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from labelloop.cli import main; main()", "suspects",
                           *map(str, args)], check=False, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """The six intents with N_FLIPS labels moved to another of them; ``truth`` kept aside, not in the file."""
    frame = pd.read_csv(demo_paths()[0], dtype=str)
    frame = frame[frame["label"].isin(CLASSES)].reset_index(drop=True)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(frame), N_FLIPS, replace=False)
    frame["truth"] = frame["label"]
    for r in rows:
        frame.loc[r, "label"] = rng.choice([c for c in CLASSES if c != frame.loc[r, "truth"]])
    path = tmp_path_factory.mktemp("suspects") / "tickets.csv"
    frame[["id", "text", "label"]].to_csv(path, index=False)
    return path, frame


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


@pytest.mark.slow
def test_suspects_ranks_planted_flips(planted, embedding_cache, tmp_path) -> None:
    data, frame = planted
    out = tmp_path / "out" / "suspects.csv"
    proc = _run("--data", data, "--cache-dir", embedding_cache, "--out", out)
    assert proc.returncode == 0, proc.stderr
    header, rows = _read(out)
    assert header == list(COLUMNS)
    assert len(rows) == len(frame)
    assert sorted(r["id"] for r in rows) == sorted(frame["id"])          # ids from the file's `id` column
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True) and 0 <= scores[-1] and scores[0] <= 1
    assert {r["flagged"] for r in rows} <= {"0", "1"}
    given = dict(zip(frame["id"], frame["label"], strict=True))
    truth = dict(zip(frame["id"], frame["truth"], strict=True))
    assert all(r["label"] == given[r["id"]] for r in rows)
    flipped = {i for i in truth if truth[i] != given[i]}
    flagged = {r["id"] for r in rows if r["flagged"] == "1"}
    hits = flagged & flipped
    assert len(hits) >= 0.6 * len(flagged) and len(hits) >= 0.6 * len(flipped), (len(hits), len(flagged))
    top = {r["id"] for r in rows[:N_FLIPS]}
    assert len(top & flipped) >= 0.6 * N_FLIPS                           # chance: N_FLIPS / rows ≈ 5 %
    suggested = {r["id"]: r["suggested"] for r in rows}
    assert sum(suggested[i] == truth[i] for i in hits) >= 0.8 * len(hits)
    assert sorted(p.name for p in out.parent.iterdir()) == ["suspects.csv"]   # no temp file left
    assert "Flagged" in proc.stderr


def _record(our_id: str, label: str, annotation_id: int, annotator: int) -> dict[str, object]:
    return {"event": "created", "id": our_id, "project": 1, "task_id": annotation_id, "annotation_id": annotation_id,
            "label": label, "annotator": annotator}


@pytest.mark.slow
def test_pulled_labels_override_and_add(planted, embedding_cache, tmp_path) -> None:
    _, frame = planted
    flipped = frame.index[frame["label"] != frame["truth"]]
    fixed = frame.loc[flipped[:5]]                          # a reviewer corrected five planted flips …
    unlabeled = frame.loc[frame["label"] == frame["truth"]].index[:3]
    new = frame.copy()
    new.loc[unlabeled, "label"] = ""                        # … and three texts are labeled only in Label Studio
    path = tmp_path / "tickets.csv"
    new[["id", "text", "label"]].to_csv(path, index=False)
    records = [_record(i, t, n, 7) for n, (i, t) in enumerate(zip(fixed["id"], fixed["truth"], strict=True))]
    records += [_record(frame.loc[r, "id"], frame.loc[r, "truth"], 100 + r, 8) for r in unlabeled]
    records.append(_record("not-in-data", CLASSES[0], 999, 8))
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "suspects.csv"
    proc = _run("--data", path, "--labels-file", labels, "--cache-dir", embedding_cache, "--out", out)
    assert proc.returncode == 0, proc.stderr
    _, rows = _read(out)
    by = {r["id"]: r for r in rows}
    assert len(rows) == len(frame)                          # the three unlabeled rows are back via the pull
    for i, t in zip(fixed["id"], fixed["truth"], strict=True):
        assert by[i]["label"] == t
    assert sum(by[i]["flagged"] == "1" for i in fixed["id"]) <= 1  # corrected labels are no longer suspects
    assert "not-in-data" not in by and "ignored" in proc.stderr


def _error(proc: subprocess.CompletedProcess[str], out: Path, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    msg = " ".join(proc.stderr.split())
    assert "error:" in msg and "Traceback" not in msg
    for n in needles:
        assert n in msg, msg
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.name}*"))


def test_bad_input_fails_with_one_line_and_writes_nothing(tmp_path) -> None:
    out = tmp_path / "suspects.csv"
    base = pd.DataFrame({"text": [f"text number {i}" for i in range(12)], "label": ["a", "b"] * 6})

    missing_text = tmp_path / "no_text.csv"
    base.rename(columns={"text": "body"}).to_csv(missing_text, index=False)
    _error(_run("--data", missing_text, "--out", out), out, "no text column 'text'", "--text-column")

    no_labels = tmp_path / "no_labels.csv"
    base[["text"]].to_csv(no_labels, index=False)
    _error(_run("--data", no_labels, "--out", out), out, "no labels in column 'label'")
    _error(_run("--data", no_labels, "--label-column", "intent", "--out", out), out, "'intent'")

    one_class = tmp_path / "one_class.csv"
    base.assign(label="a").to_csv(one_class, index=False)
    _error(_run("--data", one_class, "--out", out), out, "at least two classes", "found 1")

    rare = tmp_path / "rare.csv"
    base.assign(label=["a"] * 9 + ["b"] * 3).to_csv(rare, index=False)
    _error(_run("--data", rare, "--out", out), out, "fewer than 5 labels", "'b': 3", "folds")

    _error(_run("--data", tmp_path / "absent.csv", "--out", out), out, "file not found")
    _error(_run("--data", rare, "--labels-file", tmp_path / "absent.jsonl", "--out", out), out, "file not found")

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"not": "a record"}\n')
    _error(_run("--data", rare, "--labels-file", broken, "--out", out), out, "not a labelloop pull record")

    proc = _run("--data", rare, "--out", tmp_path)
    assert proc.returncode == 2 and "is a directory" in proc.stderr


def test_help_shows_an_example() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    assert "labelloop suspects --data" in proc.stdout and "--labels-file" in proc.stdout


class _Boom:
    def __str__(self) -> str:
        raise RuntimeError("disk full")


def test_write_is_atomic(tmp_path) -> None:
    out = tmp_path / "suspects.csv"
    out.write_text("previous\n")
    with pytest.raises(RuntimeError):
        _write_atomic(out, [("a", "x", "x", "0.1", 0), ("b", _Boom(), "x", "0.1", 0)])
    assert out.read_text() == "previous\n"                  # the old file is intact …
    assert [p.name for p in tmp_path.iterdir()] == ["suspects.csv"]  # … and no temp file is left
    _write_atomic(out, [("a", "x", "y", "0.9", 1)])
    assert out.read_text().splitlines() == [",".join(COLUMNS), "a,x,y,0.9,1"]


@pytest.mark.slow
def test_label_sets_are_named_as_such_not_ranked_silently(planted, embedding_cache, tmp_path) -> None:
    """Not yet for multi-label data: joined sets would each be a class of their own, and the run says so."""
    _, frame = planted
    sets = frame.copy()
    sets.loc[sets.index[:6], "label"] = "change_plan|double_charge"
    path = tmp_path / "sets.csv"
    sets[["id", "text", "label"]].to_csv(path, index=False)
    out = tmp_path / "suspects.csv"
    proc = _run("--data", path, "--cache-dir", embedding_cache, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "look like label sets" in " ".join(proc.stderr.split()) and "'change_plan|double_charge'" in proc.stderr
    plain = _run("--data", planted[0], "--cache-dir", embedding_cache, "--out", tmp_path / "plain.csv")
    assert plain.returncode == 0 and "label sets" not in plain.stderr
